//! The image prior of a generation: bare pixels (the paper), the face generator G(z) with its
//! latent code optimised until the image's VGG16 activations match the target (Nguyen et al.
//! 2016: feature matching through a generator network), or the latent code of a request alone,
//! rendered in one generator pass (the instant preview and the sliders).

use burn::tensor::{Device, Tensor, TensorData};

use crate::backbone::vgg::Vgg16;
use crate::data::attributes::Request;
use crate::data::dcgan::{Generator, LATENT};
use crate::fit::bundle::{Bundle, Prior};
use crate::make::invert::{optimise_param, InvertConfig, Inverted, LayerTarget, Objective, Progress, RunControl};
use crate::util::imageops::tensor_to_image;
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
    generator.forward(z).add_scalar(1.0).mul_scalar(0.5)
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
/// scoreboard with the sampled target (linear model, 11 requests x 12 seeds, 30 steps;
/// docs/method.md): at weights 0 / 0.5 / 2 / 5 / 12, faces found by all three detectors
/// 124 / 127 / 128 / 123 / 117 of 132, two seeds different people 55 / 53 / 61 / 70 / 74%,
/// Child or Senior as asked 6 / 9 / 8 / 6 / 3 of 24. With the anchored target as well (the
/// default): 124, 69%, 7.
pub const ANCHOR_WEIGHT: f32 = 2.0;

/// Feature inversion through the generator: Adam on z so that G(z)'s activations match
/// `targets`, with `anchor` times mean((z - z0)^2) holding the code near its start
/// ([`ANCHOR_WEIGHT`] for a generation; 0 where z0 is not the person sought, as in a photo's
/// projection, which starts from a random code). The image gradient comes from the same
/// objective as pixel inversion (on the GPU its hand-written gradient), and burn's autodiff
/// carries it back through G alone.
pub async fn invert_latent(
    vgg: &Vgg16,
    generator: &Generator,
    targets: &[LayerTarget],
    z0: Tensor<2>,
    anchor: f32,
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
    let z_start = z0.clone();
    let grad_of = |z: Tensor<2>, shift: (i64, i64), want_loss: bool| -> Result<(Option<Tensor<1>>, Tensor<2>)> {
        let za = z.clone().autodiff().require_grad();
        let xa = render(generator, za.clone());
        let (loss, gx) = objective.grad(xa.clone().without_autodiff(), shift, want_loss)?;
        let grads = (xa * gx.autodiff()).sum().backward();
        let gz = za.grad(&grads).ok_or_else(|| Error::Backend("no gradient reached the latent code".into()))?;
        let (k, ka) = (LATENT_WEIGHT / LATENT as f32, anchor / LATENT as f32);
        let moved = z.clone() - z_start.clone();
        let loss = loss.map(|l| l + z.clone().square().sum().mul_scalar(k) + moved.clone().square().sum().mul_scalar(ka));
        Ok((loss, gz + z.mul_scalar(2.0 * k) + moved.mul_scalar(2.0 * ka)))
    };
    optimise_param(z0, None, cfg, run, grad_of, |z| render(generator, z)).await
}
