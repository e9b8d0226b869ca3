//! Generation (a conditional model's sample, then feature inversion) and the paper's
//! baseline (class visualisation: gradient ascent on the classifier's attribute scores).

use burn::tensor::{Device, Tensor, TensorData};

use crate::data::attributes::Request;
use crate::fit::bundle::{Bundle, ModelKind};
use crate::make::invert::{self, InvertConfig, Inverted, LayerTarget, Progress, RunControl};
use crate::make::prior::{self, ImagePrior};
use crate::util::rng::Rng;
use crate::backbone::vgg::{Layer, Vgg16};
use crate::Result;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub model: ModelKind,
    pub seed: u64,
    pub steps: usize,
    /// Scale of the linear model's random part (None: the bundle's default).
    pub temperature: Option<f32>,
    /// Multiplier of the requested attribute change (None: the bundle's default).
    pub gain: Option<f32>,
    /// Adam step size (None: [`invert_config`]'s).
    pub lr: Option<f32>,
    /// Layers to match, among the model's (None: [`default_layers`]).
    pub layers: Option<Vec<Layer>>,
    /// Fault injection (tests): the loss turns NaN from this step on.
    pub poison_at: Option<usize>,
    /// What is optimised: pixels, or the face generator's latent code (or nothing).
    pub prior: ImagePrior,
    /// How far a request pushes the latent code (None: the bundle's prior's default).
    pub prior_gain: Option<f32>,
}

/// Deepest layer a generation matches by default. The linear model also predicts conv5_1
/// (editing and the classifier use it), but reaching it takes conv4_2, conv4_3 and conv5_1:
/// 29% of a 64 px step's FLOPs and over a quarter of its time on the page. On 48 faces
/// (8 attribute sets, seeds 1-6) generations without it pass the checks as often as with it
/// (README, "Steps against quality"), and their contact sheets look alike.
const DEEPEST_BY_DEFAULT: &str = "conv4_1";

/// The layers of `model_layers` that a generation matches unless asked otherwise: those down
/// to [`DEEPEST_BY_DEFAULT`], or all of them for a model that has none that shallow.
pub fn default_layers(model_layers: &[Layer]) -> Vec<Layer> {
    let deepest: Layer = DEEPEST_BY_DEFAULT.parse().expect("a layer name");
    let shallow: Vec<Layer> = model_layers.iter().copied().filter(|&l| l <= deepest).collect();
    if shallow.is_empty() { model_layers.to_vec() } else { shallow }
}

/// The layers a generation with `model` and `asked` (None: the default) would match, or why
/// the model cannot: checked before any work, so a bad choice fails at once.
pub fn layers_to_match(bundle: &Bundle, model: ModelKind, asked: Option<&[Layer]>) -> Result<Vec<Layer>> {
    let have = bundle.model_layers(model);
    let want = match asked {
        Some(layers) => layers.to_vec(),
        None => default_layers(&have),
    };
    if let Some(missing) = want.iter().find(|l| !have.contains(l)) {
        let names: Vec<&str> = have.iter().map(|l| l.name()).collect();
        return Err(crate::Error::invalid("layers", format!("the model predicts {}; `{missing}` is not among them", names.join(", "))));
    }
    Ok(want)
}

impl GenerateOptions {
    /// Refuses a temperature or gain that is not a finite number in [0, 10] (NaN would turn
    /// the target or the latent code into NaN, and the run would stop later with a message
    /// about the optimisation rather than about the setting), and one the route would not use
    /// ([`route_uses`]).
    pub fn validate(&self) -> Result<()> {
        check_factor("temperature", self.temperature)?;
        check_factor("gain", self.gain)?;
        check_factor("prior gain", self.prior_gain)?;
        self.check_route()
    }

    /// Refuses a setting that this model and image prior would not use, by name: a run that
    /// quietly ignored `--temperature` would look like proof that it changes nothing.
    fn check_route(&self) -> Result<()> {
        let uses = route_uses(self.model, self.prior);
        let route = match self.prior {
            ImagePrior::Latent => "the latent code alone".to_string(),
            ImagePrior::Pixels => format!("the {} model on pixels", self.model.name()),
            ImagePrior::Generator => format!("the {} model on the face generator", self.model.name()),
        };
        if self.temperature.is_some() && !uses.temperature {
            return Err(crate::Error::invalid("temperature", format!("{route} does not use it; it spreads the linear model's sample on pixels (through the face generator the seed's own face sets the person)")));
        }
        if self.gain.is_some() && !uses.gain {
            return Err(crate::Error::invalid("gain", format!("{route} does not use it; it scales the linear model's attribute shift (the latent code's push is the prior gain)")));
        }
        if self.prior_gain.is_some() && !uses.prior_gain {
            return Err(crate::Error::invalid("prior gain", format!("{route} does not use it; it pushes the face generator's code")));
        }
        Ok(())
    }
}

/// Which optional settings a route (model and image prior) reads: the one rule that
/// [`GenerateOptions::validate`] refuses by and `quality-set` hands its settings out by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteUses {
    /// The spread of the linear model's sample, which only pixel generation draws (through
    /// the generator the target's person comes from the seed's first face).
    pub temperature: bool,
    /// The linear model's attribute shift, which the latent code alone never reaches.
    pub gain: bool,
    /// The push of the generator's code, which pixels do not have.
    pub prior_gain: bool,
}

pub fn route_uses(model: ModelKind, prior: ImagePrior) -> RouteUses {
    let linear = model == ModelKind::Linear;
    RouteUses { temperature: linear && prior == ImagePrior::Pixels, gain: linear && prior != ImagePrior::Latent, prior_gain: prior != ImagePrior::Pixels }
}

/// `Some(v)` must be finite and within [0, 10], the range a bundle's own defaults are held to.
pub fn check_factor(name: &str, v: Option<f32>) -> Result<()> {
    match v {
        Some(v) if !(v.is_finite() && (0.0..=10.0).contains(&v)) => Err(crate::Error::invalid(name, format!("{v}; use a number between 0 and 10"))),
        _ => Ok(()),
    }
}

/// Target activations for `requests` at every layer the model predicts, as tensors on `device`.
/// Through the generator prior, the linear model's target takes its person (the residual part a
/// sample draws at random) from the request's first face G(z0), where the generation starts:
/// target and start then describe one person, and the seeds of a request stay different people
/// (docs/method.md, "Anchoring the generator route"). `vgg` reads that face.
pub async fn targets(vgg: &Vgg16, bundle: &Bundle, requests: &[Request], opts: &GenerateOptions, device: &Device) -> Result<Vec<LayerTarget>> {
    opts.validate()?;
    let blocks: Vec<(Layer, [usize; 3], Vec<f32>)> = match opts.model {
        ModelKind::Cgmm => {
            let c = &bundle.cgmm;
            vec![(c.layer, c.shape, c.sample(&bundle.vocab, requests, opts.seed)?)]
        }
        ModelKind::Linear => {
            let lin = &bundle.linear;
            let gain = opts.gain.unwrap_or(bundle.gain);
            let flat = match (&bundle.prior, opts.prior) {
                (Some(p), ImagePrior::Generator) => {
                    let phi = prior::first_face_activations(vgg, bundle, p, requests, opts.seed, opts.prior_gain, device).await?;
                    lin.anchored(&bundle.vocab, requests, gain, &phi)
                }
                _ => lin.sample(&bundle.vocab, requests, opts.seed, opts.temperature.unwrap_or(bundle.temperature), gain),
            };
            split_layers(&lin.layers, &flat)
        }
    };
    Ok(blocks
        .into_iter()
        .map(|(layer, [c, h, w], v)| LayerTarget { layer, weight: 1.0, target: Tensor::from_data(TensorData::new(v, [1, c, h, w]), device) })
        .collect())
}

/// Cuts a concatenated activation vector into its layers' blocks.
pub fn split_layers(layers: &[(Layer, [usize; 3])], flat: &[f32]) -> Vec<(Layer, [usize; 3], Vec<f32>)> {
    let mut at = 0;
    layers
        .iter()
        .map(|&(l, s)| {
            let n: usize = s.iter().product();
            at += n;
            (l, s, flat[at - n..at].to_vec())
        })
        .collect()
}

/// The starting image: the data set's mean face plus a little noise, so different seeds
/// start apart but every run starts face-like.
pub fn start_image(bundle: &Bundle, seed: u64, device: &Device) -> Tensor<4> {
    let s = bundle.image_size as usize;
    let mut rng = Rng::new(seed ^ 0x1417);
    let data: Vec<f32> = bundle.mean_face.iter().map(|m| (m + 0.08 * rng.normal()).clamp(0.0, 1.0)).collect();
    Tensor::from_data(TensorData::new(data, [1, 3, s, s]), device)
}

/// Steps of a generation unless asked otherwise. With Adam's beta2 at 0.99 (below), 100 steps
/// pass the same checks as 120 steps at 0.999 on 48 faces (gender 47 against 46, age group 48
/// and 48, face detected 48 against 47) for 2.1% more feature error: a sixth less waiting
/// on the browser's CPU fallback (README, "Steps against quality").
pub const DEFAULT_STEPS: usize = 100;

/// Steps of a generation through the generator prior: it starts from the request's face,
/// so fewer steps refine it. Measured on the scoreboard (linear model, 11 requests x 12
/// seeds; docs/method.md; before the route was anchored on the first face): faces found by
/// all three detectors 108 / 111 / 124 / 129 of 132 at 15 / 20 / 30 / 45 steps, two seeds
/// different people 69 / 64 / 55 / 48%. 30 keeps the faces above the training faces' own rate
/// (87%) at half the pixel route's time (2.0-2.2x sooner on the 2-core host, benchmarks.md).
pub const PRIOR_STEPS: usize = 30;

/// The default steps for `prior`.
pub fn default_steps(prior: ImagePrior) -> usize {
    match prior {
        ImagePrior::Pixels => DEFAULT_STEPS,
        ImagePrior::Generator => PRIOR_STEPS,
        ImagePrior::Latent => 0,
    }
}

/// The inversion settings of a generation with `opts`.
pub fn invert_config(opts: &GenerateOptions) -> InvertConfig {
    // Sampled targets are not exactly reachable; stronger smoothing than for reconstructions
    // (2e-4 against 3e-5) removes the colour speckle that chasing them leaves at 64 px.
    let cfg = InvertConfig { steps: opts.steps, seed: opts.seed, jitter: 1, report_every: 10, tv_weight: 2e-4, beta2: 0.99, poison_at: opts.poison_at, ..InvertConfig::default() };
    InvertConfig { lr: opts.lr.unwrap_or(cfg.lr), ..cfg }
}

/// The inversion settings of a generation through the generator prior: the code moves in
/// units of a standard normal, the pixels in [0, 1], so a larger step.
pub fn latent_config(opts: &GenerateOptions) -> InvertConfig {
    InvertConfig { lr: opts.lr.unwrap_or(0.1), ..invert_config(opts) }
}

/// Generation: inversion toward the target [`targets`] made with the same `opts` (a model's
/// sample, or through the generator the linear model's target anchored on the first face;
/// kept by the caller to measure the result against it); it matches the layers `opts`
/// chooses among the target's.
pub async fn generate(
    vgg: &Vgg16,
    bundle: &Bundle,
    requests: &[Request],
    targets: &[LayerTarget],
    opts: &GenerateOptions,
    device: &Device,
    run: RunControl<'_, impl FnMut(&Progress) -> bool>,
) -> Result<Inverted> {
    let want = layers_to_match(bundle, opts.model, opts.layers.as_deref())?;
    let matched: Vec<LayerTarget> = targets.iter().filter(|t| want.contains(&t.layer)).cloned().collect();
    match opts.prior {
        ImagePrior::Pixels => {
            let init = start_image(bundle, opts.seed, device);
            invert::invert(vgg, &matched, init, &invert_config(opts), run).await
        }
        ImagePrior::Latent => prior::preview(prior::prior_of(bundle)?, requests, opts.seed, opts.prior_gain, device).await,
        ImagePrior::Generator => {
            let p = prior::prior_of(bundle)?;
            let generator = crate::data::dcgan::Generator::new(&p.generator, device);
            let z0 = prior::code(p, requests, opts.seed, opts.prior_gain, device);
            let cfg = latent_config(opts);
            Ok(prior::invert_latent(vgg, &generator, &matched, z0, prior::LatentRoute::GENERATION, &cfg, run).await?.0)
        }
    }
}

/// The baseline: from the mean face plus noise, maximise the sum of the requested
/// attributes' log-probabilities (log(1 - p) for a negation), with total variation keeping
/// the image smooth.
pub async fn visualize(
    vgg: &Vgg16,
    bundle: &Bundle,
    requests: &[Request],
    seed: u64,
    steps: usize,
    device: &Device,
    run: RunControl<'_, impl FnMut(&Progress) -> bool>,
) -> Result<Inverted> {
    if requests.is_empty() {
        return Err(crate::Error::invalid("attributes", "class visualisation needs at least one attribute to ascend"));
    }
    let clf = bundle.classifier.to_device(device);
    let a = bundle.vocab.len();
    let mut pos = vec![0.0f32; a];
    let mut neg = vec![0.0f32; a];
    for r in requests {
        if r.strength > 0.0 {
            pos[r.attr] = r.strength;
        } else {
            neg[r.attr] = -r.strength;
        }
    }
    let pos = Tensor::<2>::from_data(TensorData::new(pos, [1, a]), device);
    let neg = Tensor::<2>::from_data(TensorData::new(neg, [1, a]), device);
    let cfg = InvertConfig { steps, seed, jitter: 1, report_every: 10, tv_weight: 2e-3, lr: 0.02, ..InvertConfig::default() };
    let init = start_image(bundle, seed, device);
    invert::optimise(init, &cfg, run, |x, shift, _| {
        invert::autodiff_grad(x, |x| {
            let seen = invert::jitter(x.clone(), shift);
            let lp = clf.log_probs(clf.logits(crate::fit::classifier::pooled(vgg.forward(seen, &crate::fit::classifier::feature_layers()))));
            let log_not = lp.clone().exp().neg().add_scalar(1.0).clamp_min(1e-6).log();
            let score = (lp * pos.clone().autodiff()).sum() + (log_not * neg.clone().autodiff()).sum();
            score.neg() + invert::total_variation(x).mul_scalar(cfg.tv_weight)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::default_layers;
    use crate::backbone::vgg::parse_layers;

    #[test]
    fn generation_matches_layers_down_to_conv4_1_unless_the_model_has_none_that_shallow() {
        let l = |s| parse_layers(s).unwrap();
        assert_eq!(default_layers(&l("conv3_1,conv4_1,conv5_1")), l("conv3_1,conv4_1"));
        assert_eq!(default_layers(&l("conv3_1")), l("conv3_1"));
        assert_eq!(default_layers(&l("conv5_1,conv5_3")), l("conv5_1,conv5_3"));
    }

    #[test]
    fn a_temperature_or_gain_that_is_not_a_number_in_range_is_refused_by_name() {
        use super::{GenerateOptions, ImagePrior};
        let pixels = GenerateOptions { model: crate::fit::bundle::ModelKind::Linear, seed: 1, steps: 1, temperature: Some(0.6), gain: Some(0.0), lr: None, layers: None, poison_at: None, prior: ImagePrior::Pixels, prior_gain: None };
        let generator = GenerateOptions { temperature: None, prior: ImagePrior::Generator, prior_gain: Some(10.0), ..pixels.clone() };
        assert!(pixels.validate().is_ok() && generator.validate().is_ok());
        for (bad, name) in [
            (GenerateOptions { temperature: Some(f32::NAN), ..pixels.clone() }, "temperature"),
            (GenerateOptions { gain: Some(-1.0), ..pixels.clone() }, "gain"),
            (GenerateOptions { prior_gain: Some(f32::INFINITY), ..generator.clone() }, "prior gain"),
        ] {
            let e = bad.validate().expect_err("refused").to_string();
            assert!(e.contains(name) && e.contains("between 0 and 10"), "{e}");
        }
    }

    #[test]
    fn a_setting_the_chosen_route_would_ignore_is_refused_by_name() {
        use super::{GenerateOptions, ImagePrior, ModelKind};
        let pixels = GenerateOptions { model: ModelKind::Linear, seed: 1, steps: 1, temperature: None, gain: None, lr: None, layers: None, poison_at: None, prior: ImagePrior::Pixels, prior_gain: None };
        let generator = GenerateOptions { prior: ImagePrior::Generator, ..pixels.clone() };
        let latent = GenerateOptions { prior: ImagePrior::Latent, ..pixels.clone() };
        let cgmm = GenerateOptions { model: ModelKind::Cgmm, ..pixels.clone() };
        // Each setting where its route uses it.
        for ok in [
            GenerateOptions { temperature: Some(1.0), gain: Some(2.0), ..pixels.clone() },
            GenerateOptions { gain: Some(2.0), prior_gain: Some(2.0), ..generator.clone() },
            GenerateOptions { prior_gain: Some(2.0), ..latent.clone() },
            GenerateOptions { model: ModelKind::Cgmm, prior_gain: Some(2.0), ..generator.clone() },
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
        for (bad, name, route) in [
            (GenerateOptions { temperature: Some(1.0), ..generator.clone() }, "temperature", "the linear model on the face generator"),
            (GenerateOptions { temperature: Some(1.0), ..latent.clone() }, "temperature", "the latent code alone"),
            (GenerateOptions { temperature: Some(1.0), ..cgmm.clone() }, "temperature", "the cgmm model on pixels"),
            (GenerateOptions { gain: Some(2.0), ..cgmm.clone() }, "gain", "the cgmm model on pixels"),
            (GenerateOptions { gain: Some(2.0), ..latent.clone() }, "gain", "the latent code alone"),
            (GenerateOptions { prior_gain: Some(2.0), ..pixels.clone() }, "prior gain", "the linear model on pixels"),
        ] {
            let e = bad.validate().expect_err("refused").to_string();
            assert!(e.contains(name) && e.contains(route) && e.contains("does not use it"), "{e}");
        }
    }
}
