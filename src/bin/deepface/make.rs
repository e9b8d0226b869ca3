//! Making and reading faces: classification, generation, editing, the baseline, evaluation.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::Device;

use deepface::backbone::vgg::parse_layers;
use deepface::fit::bundle::ModelKind;
use deepface::make::generate::{generate, GenerateOptions};
use deepface::make::invert::RunControl;
use deepface::make::prior::ImagePrior;
use deepface::util::{imageops, metrics};
use deepface::{Error, Result};

use crate::common::{check_output, classify, print_probs, report_steps, save_png, BundleArgs};

/// Say which attributes the face in a photo has (the largest face found; else the centre).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface classify selfie.jpg")]
pub struct Classify {
    photo: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

impl Classify {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { photo, bundle } = self;
        let (vgg, bundle) = bundle.load(device)?;
        let img = imageops::load(&photo)?;
        // The same detection and crop as `alter` and the page, so all three agree.
        let (crop, faces) = deepface::make::edit::face_crop(&img, bundle.image_size);
        match faces.first() {
            Some(f) => println!("{} face(s) found; classifying the largest ({}x{} at {}, {})", faces.len(), f.width, f.height, f.x, f.y),
            None => println!("no face found; classifying the centre of the photo"),
        }
        let probs = classify(&vgg, &bundle, &crop, device)?;
        let yes = deepface::fit::classifier::decide(&probs, &bundle.classifier.heads);
        for (a, name) in bundle.vocab.names.iter().enumerate() {
            println!("{name:<12} {:>5.1}%  {}", 100.0 * probs[a], if yes[a] { "yes" } else { "no" });
        }
        Ok(())
    }
}

/// Generate a face with the requested attributes, e.g. --attrs "Male,Smiling=0.5,-Senior".
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface generate --attrs -Male,Smiling --seed 1 --out face.png")]
pub struct Generate {
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    attrs: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Optimisation steps (default: 30 through the generator, 100 on pixels).
    #[arg(long)]
    steps: Option<usize>,
    /// What is optimised: generator (the face generator's latent code; the default where the
    /// bundle has one), pixels (the paper's method) or latent (the request's code alone, no
    /// optimisation: instant).
    #[arg(long)]
    prior: Option<String>,
    /// How far the request pushes the latent code, in standard deviations (generator and
    /// latent priors; default: the bundle's).
    #[arg(long)]
    prior_gain: Option<f32>,
    /// cgmm (the paper's) or linear (default: the bundle's choice).
    #[arg(long)]
    using: Option<String>,
    /// Spread of the linear model's samples on pixels (default: the bundle's); refused on other routes (through the generator the seed's own face sets the person).
    #[arg(long)]
    temperature: Option<f32>,
    /// Multiplier of the requested attribute change (linear model on pixels or the generator; default: the bundle's).
    #[arg(long)]
    gain: Option<f32>,
    /// Layers to match, comma-separated, among the model's (default: those down to conv4_1).
    #[arg(long)]
    layers: Option<String>,
    #[arg(long, default_value = "face.png")]
    out: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

impl Generate {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { attrs, seed, steps, prior, prior_gain, using, temperature, gain, layers, out, bundle } = self;
        check_output(&out, true)?;
        let (vgg, bundle) = bundle.load(device)?;
        let req = bundle.vocab.parse(&attrs)?;
        let model = using.map(|m| m.parse()).transpose()?.unwrap_or(bundle.default_model);
        let layers = layers.as_deref().map(parse_layers).transpose()?;
        let prior = match prior {
            Some(p) => p.parse()?,
            None if bundle.prior.is_some() => ImagePrior::Generator,
            None => {
                eprintln!("note: this model bundle has no face generator; generating on pixels (see `deepface add-prior`)");
                ImagePrior::Pixels
            }
        };
        let steps = steps.unwrap_or(deepface::make::generate::default_steps(prior));
        let opts = GenerateOptions { model, seed, steps, temperature, gain, lr: None, layers, poison_at: None, prior, prior_gain };
        let start = Instant::now();
        let targets = pollster::block_on(deepface::make::generate::targets(&vgg, &bundle, &req, &opts, device))?;
        let r = pollster::block_on(generate(&vgg, &bundle, &req, &targets, &opts, device, RunControl::reporting(report_steps)))?;
        save_png(&r.image, &out)?;
        let probs = classify(&vgg, &bundle, &r.image, device)?;
        println!("{model:?} model, {} prior, seed {seed}, {steps} steps in {:.1} s -> {}", prior.name(), start.elapsed().as_secs_f64(), out.display());
        print_probs(&bundle, &probs);
        Ok(())
    }
}

/// Edit the largest face in a photo toward attributes (feature interpolation along the
/// linear model's directions); writes the whole photo with the face edited.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface alter selfie.jpg --attrs Smiling --strength 4 --out edited.png")]
pub struct Alter {
    photo: PathBuf,
    #[arg(long, allow_hyphen_values = true)]
    attrs: String,
    /// Multiplies the attribute shift; 4 moves a face's classifier score most of the way.
    #[arg(long, default_value_t = deepface::make::edit::DEFAULT_STRENGTH)]
    strength: f32,
    #[arg(long, default_value_t = deepface::make::edit::DEFAULT_STEPS)]
    steps: usize,
    /// With no face found, edit the photo's centre instead of failing.
    #[arg(long)]
    centre: bool,
    /// features (Deep Feature Interpolation) or generator (the same shift, drawn by the face
    /// generator from the face's fit in it).
    #[arg(long, default_value = "features")]
    method: String,
    /// Let the edit change the face's colours as well: by default the face takes only the
    /// change's brightness, since its colour is tints (red mouths, coloured streaks in the
    /// hair) rather than what was asked.
    #[arg(long)]
    change_colours: bool,
    /// Keep the photo's colours: the default since 2026-12-06, still accepted for scripts
    /// written before.
    #[arg(long, hide = true, conflicts_with = "change_colours")]
    keep_colours: bool,
    #[arg(long, default_value = "edited.png")]
    out: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

impl Alter {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { photo, attrs, strength, steps, centre, method, change_colours, keep_colours: _, out, bundle } = self;
        check_output(&out, true)?;
        let (vgg, bundle) = bundle.load(device)?;
        let req = bundle.vocab.parse(&attrs)?;
        let img = imageops::load(&photo)?;
        let clf = bundle.classifier.to_device(device);
        let opts = deepface::make::edit::EditOptions { strength, steps, seed: 0, centre_if_no_face: centre, method: method.parse()?, keep_colours: !change_colours };
        let start = Instant::now();
        let e = pollster::block_on(deepface::make::edit::alter(&vgg, &bundle, &clf, &img, &req, &opts, device, RunControl::reporting(report_steps)))?;
        save_png(&e.photo, &out)?;
        let (x, y, side) = e.rect;
        println!(
            "{} face(s) found; edited {side}x{side} at ({x}, {y}) in {:.1} s -> {}",
            e.faces_found,
            start.elapsed().as_secs_f64(),
            out.display()
        );
        println!("face PSNR after vs before: {:.1} dB", metrics::psnr(&e.crop_before, &e.crop_after));
        for (a, name) in bundle.vocab.names.iter().enumerate() {
            println!("{name:<12} {:>5.1}% -> {:>5.1}%", 100.0 * e.probs_before[a], 100.0 * e.probs_after[a]);
        }
        Ok(())
    }
}

/// The paper's baseline: gradient ascent on the classifier's attribute scores from the mean face.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface visualize --attrs Male,Smiling --out baseline.png")]
pub struct Visualize {
    #[arg(long, allow_hyphen_values = true)]
    attrs: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    steps: usize,
    #[arg(long, default_value = "visualized.png")]
    out: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

impl Visualize {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { attrs, seed, steps, out, bundle } = self;
        check_output(&out, true)?;
        let (vgg, bundle) = bundle.load(device)?;
        let req = bundle.vocab.parse(&attrs)?;
        let start = Instant::now();
        let r = pollster::block_on(deepface::make::generate::visualize(&vgg, &bundle, &req, seed, steps, device, RunControl::reporting(report_steps)))?;
        save_png(&r.image, &out)?;
        println!("class visualisation, {steps} steps in {:.1} s -> {}", start.elapsed().as_secs_f64(), out.display());
        print_probs(&bundle, &classify(&vgg, &bundle, &r.image, device)?);
        Ok(())
    }
}

/// Generate faces for several attribute sets and seeds with both models; report agreement
/// with the requested attributes and distances; write a contact sheet.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface evaluate --models linear --seeds 1,2 --out /tmp/sheet.png")]
pub struct Evaluate {
    /// Attribute sets separated by ';'.
    #[arg(long, default_value = "Male,Youth;-Male,Youth;Male,Middle_Aged;-Male,Middle_Aged;Male,Senior;-Male,Senior;Male,Youth,Smiling;-Male,Middle_Aged,Smiling", allow_hyphen_values = true)]
    sets: String,
    #[arg(long, default_value = "1,2,3")]
    seeds: String,
    #[arg(long, default_value_t = deepface::make::generate::DEFAULT_STEPS)]
    steps: usize,
    /// Adam step size (default: the generation default), to compare schedules.
    #[arg(long)]
    lr: Option<f32>,
    /// Conditional models to evaluate, comma-separated.
    #[arg(long, default_value = "linear,cgmm")]
    models: String,
    /// Layers the generations match (default: each model's, down to conv4_1).
    #[arg(long)]
    layers: Option<String>,
    #[arg(long, default_value = "docs/contact_sheet.png")]
    out: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

impl Evaluate {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { sets, seeds, steps, lr, models, layers, out, bundle } = self;
        check_output(&out, true)?;
        let (vgg, bundle) = bundle.load(device)?;
        let sets: Vec<String> = sets.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let seeds: Vec<u64> = seeds.split(',').map(|s| s.trim().parse().map_err(|_| Error::invalid("seeds", format!("`{s}` is not a number")))).collect::<Result<_>>()?;
        let models: Vec<ModelKind> = models.split(',').map(|m| m.trim().parse()).collect::<Result<_>>()?;
        let layers = layers.as_deref().map(parse_layers).transpose()?;
        let base = GenerateOptions { model: bundle.default_model, seed: 0, steps, temperature: None, gain: None, lr, layers, poison_at: None, prior: ImagePrior::Pixels, prior_gain: None };
        let faces = deepface::make::evaluate::run(&vgg, &bundle, &models, &sets, &seeds, &base, device)?;
        let md = deepface::make::evaluate::report(&bundle, &sets, &faces)?;
        let sheet = deepface::make::evaluate::contact_sheet(&faces, sets.len(), &seeds, bundle.image_size);
        save_png(&sheet, &out)?;
        println!("{md}");
        println!("rows (top to bottom): {}", sets.join(" | "));
        println!("columns: linear model seeds {seeds:?}, then the paper's cGMM seeds {seeds:?} -> {}", out.display());
        Ok(())
    }
}
