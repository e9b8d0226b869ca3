//! Feature inversion: optimise an image's pixels so that its VGG16 activations match targets.
//!
//! Objective (Mahendran & Vedaldi 2015, as used by Deep Feature Interpolation):
//!   sum_l a_l ||phi_l(x) - T_l||^2 / ||T_l||^2  +  lambda_TV TV_2(x)  +  lambda_a ||x - 1/2||_alpha^alpha
//! with x in [0, 1] (projected after every Adam step). Normalising each layer by its target's
//! energy makes the layer weights comparable across layers and image sizes.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::util::imageops::{read_f32, tensor_to_image};
use crate::util::optim::{adam_step, ADAM_BETA2};
use crate::util::rng::Rng;
use crate::backbone::vgg::{Layer, Vgg16};
use crate::{Error, Result};

/// One term of the feature loss.
#[derive(Clone, Debug)]
pub struct LayerTarget {
    pub layer: Layer,
    pub weight: f32,
    /// [1, C, H, W] activations to match (no autodiff).
    pub target: Tensor<4>,
}

#[derive(Clone, Debug)]
pub struct InvertConfig {
    pub steps: usize,
    /// Adam step size in [0, 1] pixel units.
    pub lr: f32,
    /// Adam's second-moment decay: 0.99 forgets the large gradients of the first steps
    /// sooner than the usual 0.999, which suits short runs.
    pub beta2: f32,
    /// Cosine decay of the step size to 10% by the last step: the last steps polish detail
    /// instead of jittering around the optimum.
    pub lr_decay: bool,
    /// Weight of TV with beta = 2 (sum of squared neighbour differences), in [0, 1] units.
    pub tv_weight: f32,
    /// Take the TV of the change from the start image (x - init) instead of the image's own:
    /// an edit then smooths only what it adds and leaves the photo's own edges alone.
    pub tv_of_change: bool,
    /// Weight of the alpha-norm of (x - 1/2); 0 disables it.
    pub norm_weight: f32,
    /// Even exponent of that norm (2 = L2; Mahendran & Vedaldi use 6).
    pub norm_alpha: u32,
    /// Random translation of up to this many pixels each step (0 = none). Helps generation
    /// from sampled targets; hurts exact reconstruction.
    pub jitter: u32,
    /// Standard deviation of the grey-plus-noise start image.
    pub init_noise: f32,
    pub seed: u64,
    /// Read the loss back (and offer a preview) every this many steps. Each read waits for
    /// the device, so the browser uses a larger value than native code.
    pub report_every: usize,
    /// Fault injection for tests: from this step on the loss and its gradient are multiplied
    /// by NaN, so the divergence check and the messages built on it can be exercised end to
    /// end. None in use.
    pub poison_at: Option<usize>,
}

impl Default for InvertConfig {
    /// Defaults measured on real face crops at 128 px (see README): lr 0.05 and TV 3e-5 reach
    /// over 30 dB PSNR from conv3_1 in 300 steps.
    fn default() -> Self {
        InvertConfig {
            steps: 300,
            lr: 0.05,
            beta2: ADAM_BETA2,
            lr_decay: true,
            tv_weight: 3e-5,
            tv_of_change: false,
            norm_weight: 0.0,
            norm_alpha: 2,
            jitter: 0,
            init_noise: 0.05,
            seed: 0,
            report_every: 10,
            poison_at: None,
        }
    }
}

impl InvertConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str, why: String| Err(Error::invalid(what, why));
        if self.steps == 0 {
            return bad("steps", "0; at least 1 step is needed".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("learning rate", format!("{}; must be a positive number", self.lr));
        }
        if !(self.beta2 > 0.0 && self.beta2 < 1.0) {
            return bad("beta2", format!("{}; must be between 0 and 1", self.beta2));
        }
        for (what, v) in [("tv weight", self.tv_weight), ("norm weight", self.norm_weight), ("init noise", self.init_noise)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(what, format!("{v}; must be a finite number >= 0"));
            }
        }
        if self.norm_alpha == 0 || !self.norm_alpha.is_multiple_of(2) {
            return bad("norm alpha", format!("{}; must be an even integer >= 2", self.norm_alpha));
        }
        Ok(())
    }
}

/// How the caller of a long run (an inversion, a generation, an edit) follows and stops it:
/// `on_progress` is called every `report_every` steps and at the end, with the image so far
/// when `previews` is set; its returning `false`, or `cancel` being set, stops the run with
/// [`Error::Cancelled`].
pub struct RunControl<'a, F: FnMut(&Progress) -> bool> {
    pub cancel: Option<&'a AtomicBool>,
    pub previews: bool,
    pub on_progress: F,
}

impl RunControl<'static, fn(&Progress) -> bool> {
    /// A run nobody follows or stops (a batch job, a test).
    pub fn silent() -> Self {
        RunControl { cancel: None, previews: false, on_progress: |_| true }
    }
}

impl<'a, F: FnMut(&Progress) -> bool> RunControl<'a, F> {
    /// The same control lent to one stage of a run that has several (an edit through the
    /// generator fits the photo, then edits the fit): the same cancel flag, previews and
    /// progress callback.
    pub fn reborrow(&mut self) -> RunControl<'a, &mut F> {
        RunControl { cancel: self.cancel, previews: self.previews, on_progress: &mut self.on_progress }
    }
}

impl<F: FnMut(&Progress) -> bool> RunControl<'static, F> {
    /// A run followed by `on_progress`, without previews or a cancel flag (the CLI).
    pub fn reporting(on_progress: F) -> Self {
        RunControl { cancel: None, previews: false, on_progress }
    }
}

/// What the progress callback sees.
#[derive(Clone, Debug)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    /// The current image, when the caller asked for previews.
    pub image: Option<RgbImage>,
}

pub struct Inverted {
    pub image: RgbImage,
    /// [1, 3, H, W] in [0, 1].
    pub tensor: Tensor<4>,
    /// Loss at the last step.
    pub loss: f32,
}

/// Activations of `img` ([1, 3, H, W], [0, 1]) at `layers`, as inversion targets of weight 1.
pub fn targets_from_image(vgg: &Vgg16, img: Tensor<4>, layers: &[Layer]) -> Vec<LayerTarget> {
    vgg.forward(img.without_autodiff(), layers)
        .into_iter()
        .zip(layers)
        .map(|(target, &layer)| LayerTarget { layer, weight: 1.0, target })
        .collect()
}

/// Grey image plus Gaussian noise, deterministic for a seed on every backend.
pub fn noise_image(size: usize, std: f32, seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = Rng::new(seed);
    let data: Vec<f32> = rng.normals(3 * size * size).into_iter().map(|n| (0.5 + std * n).clamp(0.0, 1.0)).collect();
    Tensor::from_data(TensorData::new(data, [1, 3, size, size]), device)
}

/// Total variation with beta = 2, written with squares: `powf` is slower and its gradient
/// is undefined at 0 on some backends.
pub fn total_variation(x: Tensor<4>) -> Tensor<1> {
    let [n, c, h, w] = x.dims();
    let dx = x.clone().slice([0..n, 0..c, 0..h, 1..w]) - x.clone().slice([0..n, 0..c, 0..h, 0..w - 1]);
    let dy = x.clone().slice([0..n, 0..c, 1..h, 0..w]) - x.slice([0..n, 0..c, 0..h - 1, 0..w]);
    dx.square().sum() + dy.square().sum()
}

/// sum_i w_i ||f_i - T_i||^2 / ||T_i||^2 over the layers; `inv_norms[i]` is 1 / ||T_i||^2.
fn feature_loss(feats: Vec<Tensor<4>>, targets: &[LayerTarget], inv_norms: &[f32]) -> Tensor<1> {
    let diffs = feats.into_iter().zip(targets).map(|(f, t)| f - t.target.clone()).collect();
    loss_of_diffs(diffs, targets, inv_norms)
}

/// [`feature_loss`] from the differences f_i - T_i.
fn loss_of_diffs(diffs: Vec<Tensor<4>>, targets: &[LayerTarget], inv_norms: &[f32]) -> Tensor<1> {
    diffs
        .into_iter()
        .zip(targets)
        .zip(inv_norms)
        .map(|((d, t), inv)| d.square().sum().mul_scalar(t.weight * inv))
        .reduce(|a, b| a + b)
        .expect("at least one target")
}

/// (x - 1/2)^(alpha - 1) for the even exponent `alpha` of the norm term: its gradient is alpha
/// times this, its value the sum of this times (x - 1/2).
fn odd_power(x: Tensor<4>, alpha: u32) -> (Tensor<4>, Tensor<4>) {
    let c = x.sub_scalar(0.5);
    let c2 = c.clone().square();
    let mut odd = c.clone();
    for _ in 1..alpha / 2 {
        odd = odd * c2.clone();
    }
    (odd, c)
}

/// 1 / ||T||^2 of each target, read back once before a loop so the loop reads nothing extra.
async fn inv_norms(targets: &[LayerTarget]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let e = read_f32(t.target.clone().square().sum()).await?[0];
        if !e.is_finite() {
            return Err(Error::NonFinite { step: 0, value: e });
        }
        // An all-zero target (possible deep in the network for a blank image) would divide by 0.
        out.push(1.0 / e.max(1e-6));
    }
    Ok(out)
}

/// The objective of one inversion, with what every step reuses.
pub(crate) struct Objective<'a> {
    vgg: &'a Vgg16,
    targets: &'a [LayerTarget],
    layers: Vec<Layer>,
    /// 1 / ||T_l||^2 of each target.
    inv_norms: Vec<f32>,
    cfg: &'a InvertConfig,
    /// Made on the first step, not before the loop: only the hand-written gradient needs it,
    /// and on WebGPU kernels uploaded before the loop left burn's fusion planning each step
    /// into 49 dispatches against 25 when they are made inside it (conv3_1, 64 px; 1650 ->
    /// 1508-1577 ms a step on SwiftShader). Why fusion plans them apart is not known.
    tv: OnceCell<TvGrad>,
    /// What the TV is measured from: the start image under [`InvertConfig::tv_of_change`].
    tv_origin: Option<Tensor<4>>,
}

impl<'a> Objective<'a> {
    pub(crate) async fn new(vgg: &'a Vgg16, targets: &'a [LayerTarget], cfg: &'a InvertConfig) -> Result<Self> {
        Ok(Objective {
            vgg,
            targets,
            layers: targets.iter().map(|t| t.layer).collect(),
            inv_norms: inv_norms(targets).await?,
            cfg,
            tv: OnceCell::new(),
            tv_origin: None,
        })
    }

    /// Measures the TV term from `origin` (x - origin) instead of from zero.
    pub(crate) fn with_tv_origin(self, origin: Tensor<4>) -> Self {
        Objective { tv_origin: Some(origin.without_autodiff()), ..self }
    }

    /// What the TV term smooths: the image, or its change from the origin.
    fn tv_input(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.tv_origin {
            Some(o) => x - o.clone(),
            None => x,
        }
    }

    /// The scalar objective for image `x`, seen shifted by `shift` (the jitter).
    fn value(&self, x: Tensor<4>, shift: (i64, i64)) -> Tensor<1> {
        let cfg = self.cfg;
        let mut loss = feature_loss(self.vgg.forward(jitter(x.clone(), shift), &self.layers), self.targets, &self.inv_norms);
        if cfg.tv_weight > 0.0 {
            loss = loss + total_variation(self.tv_input(x.clone())).mul_scalar(cfg.tv_weight);
        }
        if cfg.norm_weight > 0.0 {
            let (odd, c) = odd_power(x, cfg.norm_alpha);
            loss = loss + (odd * c).sum().mul_scalar(cfg.norm_weight);
        }
        loss
    }

    /// The objective's gradient at `x` and, when `want_loss`, its value. Which way is faster
    /// depends on the backend, so each takes its own: on burn's CPU backend autodiff, whose
    /// convolutions and pools are deepface's own differentiable operations
    /// (`crate::backbone::cpu_kernels`); on the GPU backends the hand-written gradient, which reuses the
    /// forward kernel (see [`Vgg16::input_grad`]).
    pub(crate) fn grad(&self, x: Tensor<4>, shift: (i64, i64), want_loss: bool) -> Result<(Option<Tensor<1>>, Tensor<4>)> {
        if crate::backbone::vgg::is_cpu(&x.device()) {
            autodiff_grad(x, |x| self.value(x, shift))
        } else {
            Ok(self.grad_by_hand(x, shift, want_loss))
        }
    }

    /// [`Objective::value`] differentiated by hand. The value costs reductions the gradient
    /// does not need, so it is computed only when asked (the steps the loop reports).
    fn grad_by_hand(&self, x: Tensor<4>, shift: (i64, i64), want_loss: bool) -> (Option<Tensor<1>>, Tensor<4>) {
        let cfg = self.cfg;
        let trace = self.vgg.trace(jitter(x.clone(), shift), &self.layers);
        let diffs: Vec<Tensor<4>> = self.targets.iter().map(|t| trace.at(t.layer) - t.target.clone()).collect();
        let feat_grads = diffs
            .iter()
            .zip(self.targets)
            .zip(&self.inv_norms)
            .map(|((d, t), inv)| d.clone().mul_scalar(2.0 * t.weight * inv))
            .collect();
        let mut grad = jitter(self.vgg.input_grad(&trace, &self.layers, feat_grads), (-shift.0, -shift.1));
        let mut loss = want_loss.then(|| loss_of_diffs(diffs, self.targets, &self.inv_norms));
        if cfg.tv_weight > 0.0 {
            let [_, c, h, w] = x.dims();
            let tv = self.tv.get_or_init(|| TvGrad::new([c, h, w], &x.device()));
            let d = self.tv_input(x.clone());
            grad = grad + tv.of(d.clone()).mul_scalar(cfg.tv_weight);
            loss = loss.map(|l| l + total_variation(d).mul_scalar(cfg.tv_weight));
        }
        if cfg.norm_weight > 0.0 {
            let (odd, c) = odd_power(x, cfg.norm_alpha);
            loss = loss.map(|l| l + (odd.clone() * c).sum().mul_scalar(cfg.norm_weight));
            grad = grad + odd.mul_scalar(cfg.norm_weight * cfg.norm_alpha as f32);
        }
        (loss, grad)
    }
}

/// `x` rolled by `shift` pixels down and right (the jitter the network sees).
pub fn jitter(x: Tensor<4>, shift: (i64, i64)) -> Tensor<4> {
    if shift == (0, 0) {
        x
    } else {
        x.roll(&[shift.0, shift.1], &[2, 3])
    }
}

/// Gradient of [`total_variation`] for [C, H, W] images: at each pixel
/// 2 (n x - the sum of its n in-image 4-neighbours), as one depthwise convolution (zero
/// padding: a neighbour outside the image adds nothing) plus an elementwise term. The
/// kernels are uploaded once per run, not per step.
struct TvGrad {
    neighbours: Tensor<4>,
    counts: Tensor<4>,
}

impl TvGrad {
    fn new([c, h, w]: [usize; 3], device: &Device) -> Self {
        let k: Vec<f32> = (0..c).flat_map(|_| [0.0, -2.0, 0.0, -2.0, 0.0, -2.0, 0.0, -2.0, 0.0]).collect();
        let inside = |i: usize, n: usize| 2 - usize::from(i == 0) - usize::from(i + 1 == n);
        let counts: Vec<f32> = (0..h).flat_map(|i| (0..w).map(move |j| 2.0 * (inside(i, h) + inside(j, w)) as f32)).collect();
        TvGrad {
            neighbours: Tensor::from_data(TensorData::new(k, [c, 1, 3, 3]), device),
            counts: Tensor::from_data(TensorData::new(counts, [1, 1, h, w]), device),
        }
    }

    /// The gradient at `x`, a [1, C, H, W] image of the size given to [`TvGrad::new`].
    fn of(&self, x: Tensor<4>) -> Tensor<4> {
        let c = self.neighbours.dims()[0];
        conv2d(x.clone(), self.neighbours.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], c)) + x * self.counts.clone()
    }
}

/// How far `x`'s activations are from the targets: the objective's feature term, unshifted
/// and without regularisers. Judges a schedule by the image it ends with (the last step's
/// loss depends on that step's random shift).
pub async fn match_error(vgg: &Vgg16, x: Tensor<4>, targets: &[LayerTarget]) -> Result<f32> {
    let layers: Vec<Layer> = targets.iter().map(|t| t.layer).collect();
    let inv = inv_norms(targets).await?;
    Ok(read_f32(feature_loss(vgg.forward(x.without_autodiff(), &layers), targets, &inv)).await?[0])
}

/// Runs the optimisation from `init`, followed and stopped through `run`. A non-finite loss
/// is an error, never an image.
pub async fn invert(vgg: &Vgg16, targets: &[LayerTarget], init: Tensor<4>, cfg: &InvertConfig, run: RunControl<'_, impl FnMut(&Progress) -> bool>) -> Result<Inverted> {
    cfg.validate()?;
    if targets.is_empty() {
        return Err(Error::invalid("targets", "no layer to match"));
    }
    let mut objective = Objective::new(vgg, targets, cfg).await?;
    if cfg.tv_of_change {
        objective = objective.with_tv_origin(init.clone());
    }
    optimise(init, cfg, run, |x, shift, want_loss| objective.grad(x, shift, want_loss)).await
}

/// The value and gradient of a differentiable `loss(x)`, by burn's autodiff: for objectives
/// without a hand-written gradient (the class-visualisation baseline).
pub fn autodiff_grad(x: Tensor<4>, loss_of: impl FnOnce(Tensor<4>) -> Tensor<1>) -> Result<(Option<Tensor<1>>, Tensor<4>)> {
    let xa = x.autodiff().require_grad();
    let loss = loss_of(xa.clone());
    let grads = loss.backward();
    let g = xa.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the image".into()))?;
    Ok((Some(loss.without_autodiff()), g))
}

/// Adam on the pixels of `init` (kept in [0, 1]) against any objective, given as
/// `grad_of(x, shift, want_loss)` -> (its value when asked, its gradient): the loop shared by
/// inversion and the class-visualisation baseline.
pub async fn optimise(
    init: Tensor<4>,
    cfg: &InvertConfig,
    run: RunControl<'_, impl FnMut(&Progress) -> bool>,
    grad_of: impl Fn(Tensor<4>, (i64, i64), bool) -> Result<(Option<Tensor<1>>, Tensor<4>)>,
) -> Result<Inverted> {
    Ok(optimise_param(init, Some((0.0, 1.0)), cfg, run, grad_of, |x| x).await?.0)
}

/// Adam on any parameter tensor (the pixels, or a generator's latent code) whose image is
/// `image_of(p)`, with jitter, cosine learning-rate decay, progress, cancel and divergence
/// checks; `bounds` clamps the parameter after each step. Returns the image and the parameter.
pub async fn optimise_param<const D: usize>(
    init: Tensor<D>,
    bounds: Option<(f32, f32)>,
    cfg: &InvertConfig,
    mut run: RunControl<'_, impl FnMut(&Progress) -> bool>,
    grad_of: impl Fn(Tensor<D>, (i64, i64), bool) -> Result<(Option<Tensor<1>>, Tensor<D>)>,
    image_of: impl Fn(Tensor<D>) -> Tensor<4>,
) -> Result<(Inverted, Tensor<D>)> {
    cfg.validate()?;
    let mut x = init.without_autodiff();
    let mut m = x.zeros_like();
    let mut v = x.zeros_like();
    let mut rng = Rng::new(cfg.seed ^ 0xA5A5);
    let report_every = cfg.report_every.max(1);
    let mut loss_value = f32::NAN;
    for step in 1..=cfg.steps {
        if run.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled { step });
        }
        let shift = if cfg.jitter > 0 {
            let j = i64::from(cfg.jitter);
            (rng.range(-j, j), rng.range(-j, j))
        } else {
            (0, 0)
        };
        let report = step % report_every == 0 || step == cfg.steps;
        let (mut loss, mut g) = grad_of(x.clone(), shift, report)?;
        if cfg.poison_at.is_some_and(|p| step >= p) {
            loss = loss.map(|l| l.mul_scalar(f32::NAN));
            g = g.mul_scalar(f32::NAN);
        }
        if report {
            let loss = loss.ok_or_else(|| Error::Backend("the objective gave no value on a reporting step".into()))?;
            loss_value = read_f32(loss).await?[0];
            if !loss_value.is_finite() {
                return Err(Error::NonFinite { step, value: loss_value });
            }
        }
        let lr = if cfg.lr_decay {
            let p = (step - 1) as f32 / cfg.steps.max(2).saturating_sub(1) as f32;
            cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f32::consts::PI * p).cos()))
        } else {
            cfg.lr
        };
        let (nx, nm, nv) = adam_step(x, m, v, g, step as i32, lr, cfg.beta2);
        let nx = match bounds {
            Some((lo, hi)) => nx.clamp(lo, hi),
            None => nx,
        };
        (x, m, v) = (nx, nm, nv);
        if report {
            let image = if run.previews { Some(tensor_to_image(image_of(x.clone())).await?) } else { None };
            if !(run.on_progress)(&Progress { step, steps: cfg.steps, loss: loss_value, image }) {
                return Err(Error::Cancelled { step });
            }
            crate::util::platform::yield_now().await;
        }
    }
    let tensor = image_of(x.clone());
    let image = tensor_to_image(tensor.clone()).await?;
    Ok((Inverted { image, tensor, loss: loss_value }, x))
}

#[cfg(test)]
mod gradient_tests {
    use super::*;
    use crate::util::imageops::read_native;

    #[test]
    fn the_hand_written_gradient_is_autodiffs() {
        let dev = burn::tensor::Device::flex();
        let vgg = Vgg16::new(&crate::backbone::weights::load(&crate::backbone::weights::default_path()).unwrap().0, &dev);
        let cfg = InvertConfig { tv_weight: 1e-3, norm_weight: 1e-2, norm_alpha: 6, ..InvertConfig::default() };
        // 35 px: odd sizes leave a row and a column the pools drop. On the CPU the autodiff
        // gradient comes from deepface's own layers (`cpu_kernels`), the hand-written one from
        // burn's conv2d and max pool: the two implementations check each other.
        for (size, layers, shift, origin) in [(32, "conv3_1", (0, 0), false), (35, "conv1_2,pool2,conv4_1", (2, -1), true)] {
            let layers = crate::backbone::vgg::parse_layers(layers).unwrap();
            let targets: Vec<LayerTarget> = targets_from_image(&vgg, noise_image(size, 0.2, 1, &dev), &layers)
                .into_iter()
                .enumerate()
                .map(|(i, t)| LayerTarget { weight: 1.0 + i as f32, ..t })
                .collect();
            let x = noise_image(size, 0.1, 2, &dev);
            let mut objective = pollster::block_on(Objective::new(&vgg, &targets, &cfg)).unwrap();
            if origin {
                // TV measured from another image (an edit's start), not from zero
                objective = objective.with_tv_origin(noise_image(size, 0.3, 3, &dev));
            }
            let (want_loss, want) = autodiff_grad(x.clone(), |x| objective.value(x, shift)).unwrap();
            let (want_loss, want) = (read_native(want_loss.unwrap()).unwrap()[0], read_native(want).unwrap());
            let (loss, grad) = objective.grad_by_hand(x, shift, true);
            let (loss, got) = (read_native(loss.unwrap()).unwrap()[0], read_native(grad).unwrap());
            assert!((loss - want_loss).abs() <= 1e-5 * want_loss.abs(), "loss {loss} against {want_loss} at {size} px");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(scale > 0.0 && worst <= 1e-4 * scale, "gradient off by {worst} (largest {scale}) at {size} px, {layers:?}");
        }
    }
}
