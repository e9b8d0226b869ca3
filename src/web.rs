//! The browser API (wasm-bindgen), used from a Web Worker by `www/worker.js`.
//!
//! Every long call returns a Promise and reads results back asynchronously (a blocking read
//! panics in the browser). The object is shared through an `Rc`, so `cancel()` can be called
//! while a generation runs.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::Device;
use image::RgbImage;
use js_sys::{Function, Object, Promise, Reflect, Uint8ClampedArray};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::fit::bundle::{Bundle, ModelKind};
use crate::fit::classifier::DeviceClassifier;
use crate::make::edit::{self, EditOptions};
use crate::make::generate::{self, GenerateOptions};
use crate::make::invert::{Progress, RunControl};
use crate::make::prior::ImagePrior;
use crate::util::platform::now_ms;
use crate::backbone::vgg::Vgg16;
use crate::{backbone::weights, Error};

/// `initThreadPool(n)` for the threaded CPU build: starts n Web Workers sharing this module's
/// memory, which rayon (and so burn's CPU kernels) then use.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

struct Inner {
    vgg: Vgg16,
    bundle: Bundle,
    clf: DeviceClassifier,
    device: Device,
    backend: String,
    cancel: AtomicBool,
    busy: Cell<bool>,
}

#[wasm_bindgen]
pub struct DeepFace {
    inner: Rc<Inner>,
}

fn js_err(e: Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

fn rgba(img: &RgbImage) -> Uint8ClampedArray {
    let mut out = Vec::with_capacity(img.as_raw().len() / 3 * 4);
    for p in img.pixels() {
        out.extend([p[0], p[1], p[2], 255]);
    }
    Uint8ClampedArray::from(out.as_slice())
}

fn image_obj(img: &RgbImage) -> Object {
    let o = Object::new();
    set(&o, "width", img.width());
    set(&o, "height", img.height());
    set(&o, "rgba", rgba(img));
    o
}

/// Calls the JS progress callback; its return value `false` cancels.
fn report(cb: &Function, p: &Progress, ms_per_step: f64) -> bool {
    let o = Object::new();
    set(&o, "step", p.step as u32);
    set(&o, "steps", p.steps as u32);
    set(&o, "loss", p.loss);
    set(&o, "msPerStep", ms_per_step);
    if let Some(img) = &p.image {
        set(&o, "preview", image_obj(img));
    }
    !matches!(cb.call1(&JsValue::NULL, &o), Ok(v) if v == JsValue::FALSE)
}

#[derive(Serialize)]
struct AttributeInfo {
    name: String,
    description: String,
    group: Option<String>,
}

#[derive(Serialize)]
struct Info {
    backend: String,
    image_size: u32,
    default_model: ModelKind,
    /// What `generate` and `alter` use when not told, so the page's fields start there.
    defaults: Defaults,
    attributes: Vec<AttributeInfo>,
    groups: Vec<crate::data::attributes::Group>,
    report: serde_json::Value,
    /// Whether the bundle carries the face generator (the generator prior and the previews).
    has_prior: bool,
}

#[derive(Serialize)]
struct Defaults {
    /// The prior a generation uses unless told: "generator" where the bundle has one.
    prior: &'static str,
    /// Steps on pixels and through the generator.
    steps: usize,
    prior_steps: usize,
    edit_steps: usize,
    edit_strength: f32,
}

/// `generate`'s options. Unknown keys are refused (see [`options`]).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct GenOpts {
    seed: Option<u64>,
    steps: Option<usize>,
    model: Option<String>,
    temperature: Option<f32>,
    gain: Option<f32>,
    /// "generator", "pixels" or "latent" (default: generator where the bundle has one).
    prior: Option<String>,
    prior_gain: Option<f32>,
    /// Fault injection (tests): the loss turns NaN from this step on.
    nan_at_step: Option<usize>,
}

/// `preview`'s options: the latent code alone reads only these, so a model, temperature or
/// steps given to it are refused rather than silently unused.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct PreviewOpts {
    seed: Option<u64>,
    prior_gain: Option<f32>,
    /// With `false`, the image alone (the page draws it at once and asks for its scores with
    /// `score_face` after).
    scores: Option<bool>,
}

/// The most steps one call of the page's API runs: the page offers fewer, and a larger number
/// from a script is refused, not clamped.
const MAX_STEPS: usize = 2000;

/// A call's options object, read strictly: a misspelt key or a value of the wrong type is
/// refused by name instead of every option quietly falling back to its default. `undefined`
/// or `null` means all defaults.
fn options<T: serde::de::DeserializeOwned + Default>(opts: JsValue, call: &str) -> Result<T, JsValue> {
    if opts.is_undefined() || opts.is_null() {
        return Ok(T::default());
    }
    let bad = |why: String| js_err(Error::invalid(format!("{call} options"), why));
    // serde_wasm_bindgen's errors are JS Errors, whose text starts with "Error: ".
    let text = |e: serde_wasm_bindgen::Error| e.to_string().trim_start_matches("Error: ").to_string();
    if !opts.is_object() || js_sys::Array::is_array(&opts) {
        let shown = js_sys::JSON::stringify(&opts).ok().and_then(|s| s.as_string()).unwrap_or_else(|| "the value given".into());
        return Err(bad(format!("{shown} is not an object such as {{ seed: 7 }}")));
    }
    // Each key on its own first, so that a value of the wrong type (NaN for steps included)
    // names its key.
    let keys: Vec<String> = Object::keys(opts.unchecked_ref::<Object>()).iter().filter_map(|k| k.as_string()).collect();
    for k in &keys {
        let one = Object::new();
        set(&one, k, Reflect::get(&opts, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED));
        serde_wasm_bindgen::from_value::<T>(one.into()).map_err(|e| bad(format!("`{k}`: {}", text(e))))?;
    }
    // serde_wasm_bindgen reads only the fields it knows, so unknown keys are found on a JSON
    // copy (its types are checked above; a NaN there turns null, hence not read from it).
    let json: serde_json::Value = serde_wasm_bindgen::from_value(opts.clone()).map_err(|e| bad(text(e)))?;
    serde_json::from_value::<T>(json).map_err(|e| bad(e.to_string()))?;
    serde_wasm_bindgen::from_value(opts).map_err(|e| bad(text(e)))
}

/// `steps` as given, or `default`; more than [`MAX_STEPS`] is refused (0 is refused by the
/// optimiser itself, with the CLI's message).
fn steps_of(steps: Option<usize>, default: usize) -> Result<usize, JsValue> {
    match steps {
        Some(n) if n > MAX_STEPS => Err(js_err(Error::invalid("steps", format!("{n}; the page runs at most {MAX_STEPS}")))),
        n => Ok(n.unwrap_or(default)),
    }
}

fn default_prior(b: &Bundle) -> ImagePrior {
    if b.prior.is_some() { ImagePrior::Generator } else { ImagePrior::Pixels }
}

/// `alter`'s options. Unknown keys are refused (see [`options`]).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct AlterOpts {
    strength: Option<f32>,
    steps: Option<usize>,
    seed: Option<u64>,
    centre_if_no_face: bool,
    /// The page's "Keep the photo's colours" (`keepColours`), on unless set to false.
    keep_colours: bool,
}

impl Default for AlterOpts {
    fn default() -> Self {
        AlterOpts { strength: None, steps: None, seed: None, centre_if_no_face: false, keep_colours: true }
    }
}

/// WebGPU when asked for and available, else burn's CPU backend. The wgpu runtime can be
/// initialised once per page, so the device is kept.
async fn pick_device(backend: &str) -> (Device, String) {
    thread_local! {
        static GPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
    }
    #[cfg(feature = "webgpu")]
    if backend != "cpu" {
        if let Some(d) = GPU.with(|g| g.borrow().clone()) {
            return (d, "WebGPU".into());
        }
        match Device::wgpu_options().init_async().await {
            Ok(d) => {
                GPU.with(|g| *g.borrow_mut() = Some(d.clone()));
                return (d, "WebGPU".into());
            }
            Err(e) => return (Device::flex(), format!("CPU (WebGPU failed: {e})")),
        }
    }
    let _ = (backend, &GPU);
    (Device::flex(), cpu_label())
}

/// "CPU", or with the threaded build's pool running, "CPU, N threads": the one label the
/// page, the API and the benchmarks show.
fn cpu_label() -> String {
    #[cfg(feature = "threads")]
    if rayon::current_num_threads() > 1 {
        return format!("CPU, {} threads", rayon::current_num_threads());
    }
    "CPU".into()
}

#[wasm_bindgen]
impl DeepFace {
    /// Loads the backbone and the model bundle (bytes, as fetched) on `backend` ("webgpu",
    /// "cpu" or "auto"). Rejects a corrupt or mismatched file with the reason.
    pub async fn load(backbone_bytes: Vec<u8>, bundle_bytes: Vec<u8>, backend: String) -> Result<DeepFace, JsValue> {
        let bundle = Bundle::from_bytes(&bundle_bytes, "model bundle").map_err(js_err)?;
        let (weights, manifest) = weights::decode(&backbone_bytes, "backbone").map_err(js_err)?;
        let deepest: crate::backbone::vgg::Layer = crate::backbone::vgg::CONV_NAMES[weights.layers.len() - 1].parse().map_err(js_err)?;
        bundle.check_backbone_file(&weights::sha256_hex(&backbone_bytes), manifest.trimmed_from.as_deref(), Some(deepest)).map_err(js_err)?;
        let (device, backend) = pick_device(&backend).await;
        let vgg = Vgg16::new(&weights, &device);
        let clf = bundle.classifier.to_device(&device);
        // One tiny forward pass surfaces a broken device now rather than mid-generation.
        let probe = crate::util::imageops::to_tensor(&RgbImage::from_pixel(32, 32, image::Rgb([128, 128, 128])), &device);
        crate::util::imageops::read_f32(vgg.forward(probe, &["conv1_1".parse().map_err(js_err)?]).remove(0).sum()).await.map_err(js_err)?;
        Ok(DeepFace { inner: Rc::new(Inner { vgg, bundle, clf, device, backend, cancel: AtomicBool::new(false), busy: Cell::new(false) }) })
    }

    /// Backend, image size, attributes (name, description, group) and the fit report.
    pub fn info(&self) -> Result<JsValue, JsValue> {
        let b = &self.inner.bundle;
        let attributes = (0..b.vocab.len())
            .map(|a| AttributeInfo { name: b.vocab.names[a].clone(), description: b.vocab.description(a), group: b.vocab.group_of(a).map(|g| g.name.clone()) })
            .collect();
        let info = Info {
            backend: self.inner.backend.clone(),
            image_size: b.image_size,
            default_model: b.default_model,
            defaults: Defaults { prior: default_prior(b).name(), steps: generate::DEFAULT_STEPS, prior_steps: generate::PRIOR_STEPS, edit_steps: edit::DEFAULT_STEPS, edit_strength: edit::DEFAULT_STRENGTH },
            attributes,
            groups: b.vocab.groups.clone(),
            report: b.report.clone(),
            has_prior: b.prior.is_some(),
        };
        // JSON-compatible: plain objects rather than Maps, so the page can read the report.
        info.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| JsError::new(&e.to_string()).into())
    }

    /// Validates an attribute request such as `Male,Smiling=0.5,-Senior` (throws the reason).
    pub fn check_attributes(&self, attrs: &str) -> Result<(), JsValue> {
        self.inner.bundle.vocab.parse(attrs).map(|_| ()).map_err(js_err)
    }

    /// Stops the running generation or edit at its next step.
    pub fn cancel(&self) {
        self.inner.cancel.store(true, Ordering::Relaxed);
    }

    /// The inversion-step benchmark of `deepface bench` on this backend: resolves to
    /// {msPerStep, msPerStepMin, forwardMs, gflopsStep} (median of `runs`).
    pub fn bench(&self, layers: String, size: u32, steps: u32, runs: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let layers = crate::backbone::vgg::parse_layers(&layers).map_err(js_err)?;
            let t = crate::make::bench::time_steps(&inner.vgg, &layers, size as usize, steps as usize, runs as usize, &inner.device).await.map_err(js_err)?;
            let out = Object::new();
            set(&out, "msPerStep", t.step_ms);
            set(&out, "msPerStepMin", t.step_ms_min);
            set(&out, "forwardMs", t.forward_ms);
            set(&out, "gflopsStep", 2.0 * t.forward_flops / t.step_ms / 1e6);
            Ok(out.into())
        })
    }

    /// Resolves to {image, probs, model, steps, msPerStep}.
    pub fn generate(&self, attrs: String, opts: JsValue, on_progress: Function) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let o: GenOpts = options(opts, "generate")?;
            let b = &inner.bundle;
            let req = b.vocab.parse(&attrs).map_err(js_err)?;
            let model = match o.model {
                Some(m) => m.parse().map_err(js_err)?,
                None => b.default_model,
            };
            let prior = match o.prior {
                Some(p) => p.parse().map_err(js_err)?,
                None => default_prior(b),
            };
            let steps = steps_of(o.steps, generate::default_steps(prior))?;
            let opts = GenerateOptions { model, seed: o.seed.unwrap_or(0), steps, temperature: o.temperature, gain: o.gain, lr: None, layers: None, poison_at: o.nan_at_step, prior, prior_gain: o.prior_gain };
            let t0 = now_ms();
            let targets = generate::targets(&inner.vgg, b, &req, &opts, &inner.device).await.map_err(js_err)?;
            let r = run_loop(&inner, &on_progress, t0, |run| generate::generate(&inner.vgg, b, &req, &targets, &opts, &inner.device, run)).await?;
            let probs = edit::classify(&inner.vgg, &inner.clf, &r.image, b.image_size, &inner.device).await.map_err(js_err)?;
            let face_found = crate::data::face::is_face(&r.image);
            let out = Object::new();
            set(&out, "image", image_obj(&r.image));
            set(&out, "probs", js_sys::Float32Array::from(probs.as_slice()));
            set(&out, "faceFound", face_found);
            set(&out, "model", model.name());
            set(&out, "prior", prior.name());
            set(&out, "steps", steps as u32);
            set(&out, "msPerStep", (now_ms() - t0) / steps.max(1) as f64);
            Ok(out.into())
        })
    }

    /// The request's face from its latent code alone: one generator pass and (unless
    /// `opts.scores` is false) the classifier, no optimisation (the page's live sliders).
    /// Resolves to {image, probs, ms}; `ms` covers what was computed.
    pub fn preview(&self, attrs: String, opts: JsValue) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let o: PreviewOpts = options(opts, "preview")?;
            let b = &inner.bundle;
            let req = b.vocab.parse(&attrs).map_err(js_err)?;
            let t0 = now_ms();
            let prior = crate::make::prior::prior_of(b).map_err(js_err)?;
            let r = crate::make::prior::preview(prior, &req, o.seed.unwrap_or(0), o.prior_gain, &inner.device).await.map_err(js_err)?;
            let out = Object::new();
            set(&out, "image", image_obj(&r.image));
            if o.scores.unwrap_or(true) {
                let probs = edit::classify(&inner.vgg, &inner.clf, &r.image, b.image_size, &inner.device).await.map_err(js_err)?;
                set(&out, "probs", js_sys::Float32Array::from(probs.as_slice()));
            }
            set(&out, "ms", now_ms() - t0);
            Ok(out.into())
        })
    }

    /// Attribute probabilities of an RGBA image that is a face crop already (a generated face):
    /// no face search. Resolves to a Float32Array in the vocabulary's order.
    pub fn score_face(&self, rgba: Vec<u8>, width: u32, height: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let img = crate::util::imageops::from_rgba(&rgba, width, height).map_err(js_err)?;
            let probs = edit::classify(&inner.vgg, &inner.clf, &img, inner.bundle.image_size, &inner.device).await.map_err(js_err)?;
            Ok(js_sys::Float32Array::from(probs.as_slice()).into())
        })
    }

    /// Attribute probabilities of the largest face in an RGBA image (or of its centre).
    pub fn classify(&self, rgba: Vec<u8>, width: u32, height: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let photo = crate::util::imageops::from_rgba(&rgba, width, height).map_err(js_err)?;
            let (crop, faces) = edit::face_crop(&photo, inner.bundle.image_size);
            let probs = edit::classify(&inner.vgg, &inner.clf, &crop, inner.bundle.image_size, &inner.device).await.map_err(js_err)?;
            let out = Object::new();
            set(&out, "faces", faces.len() as u32);
            set(&out, "probs", js_sys::Float32Array::from(probs.as_slice()));
            set(&out, "crop", image_obj(&crop));
            Ok(out.into())
        })
    }

    /// Edits the largest face of an RGBA photo toward `attrs`; resolves to {image (the whole
    /// photo), before, after (face crops), probsBefore, probsAfter, faces, box, msPerStep}.
    pub fn alter(&self, rgba: Vec<u8>, width: u32, height: u32, attrs: String, opts: JsValue, on_progress: Function) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = begin(&inner)?;
            let o: AlterOpts = options(opts, "alter")?;
            let photo = crate::util::imageops::from_rgba(&rgba, width, height).map_err(js_err)?;
            let req = inner.bundle.vocab.parse(&attrs).map_err(js_err)?;
            let steps = steps_of(o.steps, edit::DEFAULT_STEPS)?;
            let eo = EditOptions { strength: o.strength.unwrap_or(edit::DEFAULT_STRENGTH), steps, seed: o.seed.unwrap_or(0), centre_if_no_face: o.centre_if_no_face, method: edit::EditMethod::Features, keep_colours: o.keep_colours };
            let t0 = now_ms();
            let e = run_loop(&inner, &on_progress, t0, |run| edit::alter(&inner.vgg, &inner.bundle, &inner.clf, &photo, &req, &eo, &inner.device, run)).await?;
            let out = Object::new();
            set(&out, "image", image_obj(&e.photo));
            set(&out, "before", image_obj(&e.crop_before));
            set(&out, "after", image_obj(&e.crop_after));
            set(&out, "probsBefore", js_sys::Float32Array::from(e.probs_before.as_slice()));
            set(&out, "probsAfter", js_sys::Float32Array::from(e.probs_after.as_slice()));
            set(&out, "faces", e.faces_found as u32);
            set(&out, "psnr", crate::util::metrics::psnr(&e.crop_before, &e.crop_after));
            let bx = Object::new();
            set(&bx, "x", e.rect.0);
            set(&bx, "y", e.rect.1);
            set(&bx, "side", e.rect.2);
            set(&out, "box", bx);
            set(&out, "msPerStep", (now_ms() - t0) / steps.max(1) as f64);
            Ok(out.into())
        })
    }
}

/// One operation at a time: a second call while one runs is refused, not interleaved.
struct Busy(Rc<Inner>);
impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.set(false);
    }
}
fn begin(inner: &Rc<Inner>) -> Result<Busy, JsValue> {
    if inner.busy.replace(true) {
        return Err(JsError::new("busy: another generation or edit is running; cancel it first").into());
    }
    inner.cancel.store(false, Ordering::Relaxed);
    Ok(Busy(inner.clone()))
}

/// The page's progress callback: forwards each report (with its preview) to JS.
type PageProgress<'a> = Box<dyn FnMut(&Progress) -> bool + 'a>;

/// Runs an optimisation under the page's control: `cancel()` stops it, previews are shown, and
/// progress goes to JS (the loop itself yields to the event loop after each report, see
/// `platform::yield_now`, so `cancel()` can arrive).
async fn run_loop<'a, T, F, Fut>(inner: &'a Inner, cb: &'a Function, t0: f64, f: F) -> Result<T, JsValue>
where
    F: FnOnce(RunControl<'a, PageProgress<'a>>) -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let on_progress: PageProgress<'a> = Box::new(move |p: &Progress| report(cb, p, (now_ms() - t0) / p.step.max(1) as f64) && !inner.cancel.load(Ordering::Relaxed));
    f(RunControl { cancel: Some(&inner.cancel), previews: true, on_progress }).await.map_err(js_err)
}
