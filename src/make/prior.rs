//! The image prior of a generation: bare pixels (the paper), the face generator G(z) with its
//! latent code optimised until the image's VGG16 activations match the target (Nguyen et al.
//! 2016: feature matching through a generator network), or the latent code of a request alone,
//! rendered in one generator pass (the instant preview and the sliders).

use burn::tensor::{Device, Tensor, TensorData};

use crate::backbone::vgg::Vgg16;
use crate::data::attributes::Request;
use crate::data::dcgan::{to_unit, Generator, LATENT};
use crate::fit::bundle::{Bundle, Prior};
use crate::make::invert::{optimise_param, InvertConfig, Inverted, LayerTarget, Objective, Progress, RunControl};
use crate::util::imageops::{read_f32, tensor_to_image};
use crate::{Error, Result};

/// What a generation optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePrior {
    /// The image's pixels, smoothed by total variation: the paper's method.
    Pixels,
    /// The generator's latent code, starting from the request's code.
    Generator,
    /// No optimisation: the request's latent code through the generator.
    Latent,
}

impl std::str::FromStr for ImagePrior {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pixels" => Ok(ImagePrior::Pixels),
            "generator" => Ok(ImagePrior::Generator),
            "latent" => Ok(ImagePrior::Latent),
            _ => Err(Error::invalid("prior", format!("unknown prior `{s}`; valid: generator, latent, pixels"))),
        }
    }
}

impl ImagePrior {
    pub fn name(self) -> &'static str {
        match self {
            ImagePrior::Pixels => "pixels",
            ImagePrior::Generator => "generator",
            ImagePrior::Latent => "latent",
        }
    }
}

/// Weight of mean(z^2) in the objective: keeps the code where the generator was trained (a
/// standard normal's codes have mean(z^2) near 1) while the features pull it toward the target.
pub const LATENT_WEIGHT: f32 = 0.05;

/// The bundle's prior, or why a generator mode cannot run with this bundle.
pub fn prior_of(bundle: &Bundle) -> Result<&Prior> {
    bundle.prior.as_ref().ok_or_else(|| {
        Error::invalid("prior", "this model bundle has no face generator (it was made before generator priors, or without `deepface add-prior`); generate with the pixels prior, or add one with `deepface add-prior`")
    })
}

/// The request's latent code as a [1, LATENT] tensor.
pub fn code(prior: &Prior, requests: &[Request], seed: u64, gain: Option<f32>, device: &Device) -> Tensor<2> {
    let z = prior.latent.code(requests, seed, gain.unwrap_or(prior.gain));
    Tensor::from_data(TensorData::new(z, [1, LATENT]), device)
}

/// G(z) as an image in [0, 1].
pub fn render(generator: &Generator, z: Tensor<2>) -> Tensor<4> {
    to_unit(generator.forward(z))
}

/// The image of the request's code alone: one generator pass.
pub async fn preview(prior: &Prior, requests: &[Request], seed: u64, gain: Option<f32>, device: &Device) -> Result<Inverted> {
    crate::make::generate::check_factor("prior gain", gain)?;
    let generator = Generator::new(&prior.generator, device);
    let tensor = render(&generator, code(prior, requests, seed, gain, device));
    Ok(Inverted { image: tensor_to_image(tensor.clone()).await?, tensor, loss: 0.0 })
}

/// Activations of the request's first face G(z0) at the linear model's layers, as one vector
/// in the model's order.
pub async fn first_face_activations(vgg: &Vgg16, bundle: &Bundle, prior: &Prior, requests: &[Request], seed: u64, gain: Option<f32>, device: &Device) -> Result<Vec<f32>> {
    let generator = Generator::new(&prior.generator, device);
    let layers: Vec<_> = bundle.linear.layers.iter().map(|(l, _)| *l).collect();
    let mut phi = Vec::with_capacity(bundle.linear.dim());
    for f in vgg.forward(render(&generator, code(prior, requests, seed, gain, device)), &layers) {
        phi.extend(crate::util::imageops::read_f32(f).await?);
    }
    Ok(phi)
}

/// Weight of mean((z - z0)^2) in a generation's objective, z0 being the request's own code.
/// The target a model samples is close to one face per request; tied to its start, the code
/// keeps the seed's person and stays where the generator draws faces. Measured on the
/// scoreboard with the code alone moving (linear model, 11 requests x 12 seeds, 30 steps;
/// docs/method.md): at weights 0 / 0.5 / 2 / 5 / 12, faces found by all three detectors
/// 124 / 127 / 128 / 123 / 117 of 132, two seeds different people 55 / 53 / 61 / 70 / 74%.
/// With the detail residual ([`DETAIL_WEIGHT`]) taking up what the held code no longer
/// reaches, the anchor can be heavier: at 5 / 12 / 20 / 30 (seeds 1-24, 264 faces), faces
/// found 253 / 253 / 248 / 244, two seeds different people 54 / 60 / 64 / 65%; 12 is the
/// lightest that keeps the faces above the 95% with the least variety lost.
pub const ANCHOR_WEIGHT: f32 = 12.0;

/// The generator's block whose output a generation may adjust: its 8 x 8 x 256 activations,
/// where the generator has laid out the face and not yet drawn its texture. A residual there
/// is rendered by the generator's last three blocks, so what it adds is drawn as the
/// generator draws skin and hair; a residual on the pixels paints texture instead
/// (docs/method.md, "Age through the generator"). After block 1 (4 x 4) it kept more variety
/// and lost faces and gender; after block 3 (16 x 16) the seeds differed less (method.md).
pub const DETAIL_BLOCK: usize = 2;

/// Weight of the detail residual's mean square, relative to the mean square of the first
/// face's activations at [`DETAIL_BLOCK`]. Measured on the scoreboard (docs/method.md,
/// "A residual inside the generator"; 11 requests x 24 seeds, anchor 12): against the code
/// alone, faces found by all three detectors 253 against 249 of 264, gender as asked 94
/// against 86 of 96, Child or Senior 28 against 16 of 48, two seeds different people 60%
/// against 67%. Lighter, the residual makes each request's seeds one face (weight 1, run
/// after the code: 44% different people).
pub const DETAIL_WEIGHT: f32 = 100.0;

/// The residual's step relative to the code's (the one value measured): Adam moves every
/// parameter by about its step size, so this sets how far the residual can go in a run
/// next to the code.
const DETAIL_STEP: f32 = 0.5;

/// What a generator-route inversion moves besides the code, and what holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatentRoute {
    /// Weight of mean((z - z0)^2): 0 where z0 is not the person sought, as in a photo's fit,
    /// which starts from a random code.
    pub anchor: f32,
    /// Weight of the penalty on the detail residual's distance from where it started
    /// ([`DETAIL_WEIGHT`] in a generation); None: the code alone moves.
    pub detail: Option<f32>,
}

impl LatentRoute {
    /// A generation: the code held near the request's own, with the detail residual.
    pub const GENERATION: LatentRoute = LatentRoute { anchor: ANCHOR_WEIGHT, detail: Some(DETAIL_WEIGHT) };
}

/// The image of an inversion's parameters: the code's first [`LATENT`] numbers, then (with
/// a detail residual of `shape`) the residual, added to the generator's activations after
/// [`DETAIL_BLOCK`]. The same function draws plain and autodiff tensors.
fn draw(generator: &Generator, p: Tensor<2>, shape: Option<[usize; 3]>) -> Tensor<4> {
    match shape {
        None => render(generator, p),
        Some([c, h, w]) => {
            let z = p.clone().slice([0..1, 0..LATENT]);
            let detail = p.slice([0..1, LATENT..LATENT + c * h * w]).reshape([1, c, h, w]).mul_scalar(DETAIL_STEP);
            let x = generator.forward_from(generator.forward_to(z, DETAIL_BLOCK) + detail, DETAIL_BLOCK);
            to_unit(x)
        }
    }
}

/// Feature inversion through the generator: Adam on z (and, where `route` has one, a
/// residual on the generator's inner activations) so that the image's activations match
/// `targets`, with mean(z^2) weighted [`LATENT_WEIGHT`], `route.anchor` times
/// mean((z - z0)^2) holding the code near its start z0, and the residual's distance from its
/// start held by `route.detail`. `start` is a code ([1, LATENT]; the residual starts at zero)
/// or a code followed by a residual (what an earlier run returned). The image gradient comes
/// from the same objective as pixel inversion (on the GPU its hand-written gradient), and
/// burn's autodiff carries it back through G alone. Returns the image and the final
/// parameters (the code, then the residual where the route has one).
pub async fn invert_latent(
    vgg: &Vgg16,
    generator: &Generator,
    targets: &[LayerTarget],
    start: Tensor<2>,
    route: LatentRoute,
    cfg: &InvertConfig,
    run: RunControl<'_, impl FnMut(&Progress) -> bool>,
) -> Result<(Inverted, Tensor<2>)> {
    cfg.validate()?;
    if targets.is_empty() {
        return Err(Error::invalid("targets", "no layer to match"));
    }
    // TV is the pixel route's prior; the generator is this route's.
    let pixel_cfg = InvertConfig { tv_weight: 0.0, norm_weight: 0.0, ..cfg.clone() };
    let objective = Objective::new(vgg, targets, &pixel_cfg).await?;
    let z0 = start.clone().slice([0..1, 0..LATENT]);
    // The residual's penalty is relative to the first face's own activations there, so its
    // weight means the same for a dark face and a bright one.
    let (shape, detail_weight, start, r0) = match route.detail {
        // A residual given to a route that has none would be dropped without a word.
        None if start.dims()[1] != LATENT => return Err(Error::invalid("start", format!("{} numbers: a route that moves the code alone starts from a code of {LATENT}", start.dims()[1]))),
        None => (None, 0.0, z0.clone(), None),
        Some(weight) => {
            let inner = generator.forward_to(z0.clone(), DETAIL_BLOCK);
            let [_, c, h, w] = inner.dims();
            let n = c * h * w;
            let power = read_f32(inner.square().mean()).await?[0].max(1e-6);
            let weight = weight * DETAIL_STEP * DETAIL_STEP / (n as f32 * power);
            match start.dims()[1] {
                d if d == LATENT + n => {
                    let r0 = start.clone().slice([0..1, LATENT..LATENT + n]);
                    (Some([c, h, w]), weight, start, Some(r0))
                }
                LATENT => (Some([c, h, w]), weight, Tensor::cat(vec![z0.clone(), Tensor::zeros([1, n], &z0.device())], 1), None),
                d => return Err(Error::invalid("start", format!("{d} numbers: a code has {LATENT}, a code and its residual {}", LATENT + n))),
            }
        }
    };
    let (k, ka) = (LATENT_WEIGHT / LATENT as f32, route.anchor / LATENT as f32);
    let penalty = |p: Tensor<2>| -> Tensor<1> {
        let z = p.clone().slice([0..1, 0..LATENT]);
        let moved = z.clone() - z0.clone().autodiff();
        let mut pen = z.square().sum().mul_scalar(k) + moved.square().sum().mul_scalar(ka);
        if let Some([c, h, w]) = shape {
            let r = p.slice([0..1, LATENT..LATENT + c * h * w]);
            let r = match &r0 {
                Some(r0) => r - r0.clone().autodiff(),
                None => r,
            };
            pen = pen + r.square().sum().mul_scalar(detail_weight);
        }
        pen
    };
    let grad_of = |p: Tensor<2>, shift: (i64, i64), want_loss: bool| -> Result<(Option<Tensor<1>>, Tensor<2>)> {
        let pa = p.autodiff().require_grad();
        let xa = draw(generator, pa.clone(), shape);
        let (loss, gx) = objective.grad(xa.clone().without_autodiff(), shift, want_loss)?;
        let pen = penalty(pa.clone());
        let grads = ((xa * gx.autodiff()).sum() + pen.clone()).backward();
        let g = pa.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the latent code".into()))?;
        Ok((loss.map(|l| l + pen.without_autodiff()), g))
    };
    optimise_param(start, None, cfg, run, grad_of, |p| draw(generator, p, shape)).await
}
