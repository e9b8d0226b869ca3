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

/// Milliseconds since an arbitrary start (wall clock in the browser).
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1000.0
    }
}

/// Writes a file under a temporary name, then renames it: an interrupted run never leaves a
/// half-written file under the final name (which a later run would read as complete).
/// Creates the parent folder.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic(path: &std::path::Path, write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> crate::Result<()> {
    let io = |e| crate::Error::io(path.display(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    write(&mut f).map_err(io)?;
    f.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
