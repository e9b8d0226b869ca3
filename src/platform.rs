//! What differs between the browser and native builds, kept in one place.

/// Hands control back to the browser's event loop once (a zero-delay timer). The CPU
/// backend's readbacks complete at once, so without this a long optimisation in a Web Worker
/// would never let a queued message (such as cancel) through. Natively it does nothing.
#[cfg(target_arch = "wasm32")]
pub async fn yield_now() {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    let p = Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        match Reflect::get(&global, &JsValue::from_str("setTimeout")).ok().and_then(|f| f.dyn_into::<Function>().ok()) {
            Some(f) => {
                let _ = f.call2(&global, &resolve, &JsValue::from(0));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_now() {}
