//! Image sets for the independent scoreboard (`scripts/quality.sh`): generated faces, the
//! training faces themselves (the ceiling the data allows) and edits of real photos, each with
//! a manifest naming what the images were optimised against, so the scoreboard can refuse to
//! judge them with that network.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use serde_json::{json, Value};

use deepface::data::dcgan::Generator;
use deepface::fit::bundle::{Bundle, ModelKind};
use deepface::make::generate::{default_steps, generate, route_uses, targets, GenerateOptions, RouteUses};
use deepface::make::invert::RunControl;
use deepface::make::prior::{self, ImagePrior};
use deepface::util::imageops;
use deepface::{Error, Result};

use crate::common::{classify, save_png, BundleArgs};

/// The networks every deepface generation and edit backpropagates through.
const OPTIMISED_AGAINST: [&str; 1] = ["deepface-vgg16"];

/// Write a scoreboard image set and its manifest.json.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface quality-set generated --out /tmp/q/gen --seeds 1-12\n  deepface quality-set edits --photos data/real_faces --out /tmp/q/edits")]
pub struct QualitySet {
    /// generated, training or edits.
    kind: String,
    #[arg(long)]
    out: PathBuf,
    /// Requests separated by ';' (an empty one asks for nothing).
    #[arg(long, allow_hyphen_values = true, default_value = ";Male;-Male;Smiling;-Smiling;Child;Youth;Middle_Aged;Senior;Male,Smiling,Senior;-Male,Child")]
    requests: String,
    /// Seeds, e.g. 1-12 or 1,5,9.
    #[arg(long, default_value = "1-12")]
    seeds: String,
    #[arg(long, default_value = "linear,cgmm")]
    models: String,
    #[arg(long, default_value = "pixels,generator,latent")]
    priors: String,
    /// How far requests push the latent code (default: the bundle's).
    #[arg(long)]
    prior_gain: Option<f32>,
    /// Real photos to edit (edits).
    #[arg(long, default_value = "data/real_faces")]
    photos: PathBuf,
    /// Edit methods (edits): features (Deep Feature Interpolation), generator (the same shift
    /// through the face generator).
    #[arg(long, default_value = "features,generator")]
    edit_methods: String,
    /// Edits change the faces' colours as well (by default, as on the page, a face takes only
    /// the change's brightness).
    #[arg(long)]
    change_colours: bool,
    /// Edit strength (default: the page's).
    #[arg(long)]
    strength: Option<f32>,
    /// Steps of every generation or edit (default: each image prior's, the page's for edits).
    #[arg(long)]
    steps: Option<usize>,
    /// Sampling temperature of the linear model's target on pixels (generated; default: the bundle's); the generator route takes its person from the seed's face.
    #[arg(long)]
    temperature: Option<f32>,
    /// The synthetic data set (training).
    #[arg(long, default_value = "data/synth20k")]
    data: PathBuf,
    #[command(flatten)]
    bundle: BundleArgs,
}

fn parse_seeds(s: &str) -> Result<Vec<u64>> {
    let bad = || Error::invalid("seeds", format!("`{s}`; write e.g. 1-12 or 1,5,9"));
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (u64, u64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        return if a <= b { Ok((a..=b).collect()) } else { Err(bad()) };
    }
    s.split(',').map(|x| x.trim().parse().map_err(|_| bad())).collect()
}

fn wants(bundle: &Bundle, spec: &str) -> Result<Value> {
    let mut m = serde_json::Map::new();
    for r in bundle.vocab.parse(spec)? {
        m.insert(bundle.vocab.names[r.attr].clone(), json!(if r.strength > 0.0 { 1 } else { -1 }));
    }
    Ok(Value::Object(m))
}

fn scores(bundle: &Bundle, probs: &[f32]) -> Value {
    Value::Object(bundle.vocab.names.iter().zip(probs).map(|(n, p)| (n.clone(), json!(p))).collect())
}

fn folder_name(spec: &str) -> String {
    if spec.is_empty() { "none".into() } else { spec.replace(',', "_") }
}

impl QualitySet {
    pub fn run(self, device: &Device) -> Result<()> {
        // Refused before any image is made (a request the model cannot make is skipped below).
        deepface::make::generate::check_factor("temperature", self.temperature)?;
        deepface::make::generate::check_factor("prior gain", self.prior_gain)?;
        // A setting this kind of set does not use is refused, not ignored.
        let generated = self.kind == "generated";
        for (name, given, used) in [
            ("temperature", self.temperature.is_some(), generated),
            ("prior gain", self.prior_gain.is_some(), generated),
            ("change colours", self.change_colours, self.kind == "edits"),
        ] {
            if given && !used {
                return Err(Error::invalid(name, format!("`quality-set {}` does not use it", self.kind)));
            }
        }
        let (vgg, bundle) = self.bundle.load(device)?;
        std::fs::create_dir_all(&self.out).map_err(|e| Error::io(self.out.display(), e))?;
        let specs: Vec<String> = self.requests.split(';').map(|s| s.trim().to_string()).collect();
        let mut items = Vec::new();
        let save = |img: &image::RgbImage, rel: &str| -> Result<()> {
            let path = self.out.join(rel);
            std::fs::create_dir_all(path.parent().expect("a file in a folder")).map_err(|e| Error::io(path.display(), e))?;
            save_png(img, &path)
        };
        let (kind, against): (&str, &[&str]) = match self.kind.as_str() {
            "generated" => {
                let seeds = parse_seeds(&self.seeds)?;
                let models: Vec<ModelKind> = self.models.split(',').map(|m| m.trim().parse()).collect::<Result<_>>()?;
                let priors: Vec<ImagePrior> = self.priors.split(',').map(|p| p.trim().parse()).collect::<Result<_>>()?;
                // The latent code alone does not use the VGG model: once, under the linear model.
                let routes: Vec<(ModelKind, ImagePrior)> =
                    models.iter().flat_map(|&m| priors.iter().map(move |&p| (m, p))).filter(|&(m, p)| !(p == ImagePrior::Latent && m == ModelKind::Cgmm)).collect();
                // Each setting goes to the routes that use it (`GenerateOptions::validate` refuses
                // it elsewhere); a setting no route of the set uses is refused here, not ignored.
                let uses: Vec<RouteUses> = routes.iter().map(|&(m, p)| route_uses(m, p)).collect();
                if self.temperature.is_some() && !uses.iter().any(|u| u.temperature) {
                    return Err(Error::invalid("temperature", "no route of this set uses it; it spreads the linear model's sample on pixels (--models linear --priors pixels)"));
                }
                if self.prior_gain.is_some() && !uses.iter().any(|u| u.prior_gain) {
                    return Err(Error::invalid("prior gain", "no route of this set uses it; it pushes the face generator's code (--priors generator or latent)"));
                }
                for (&(model, prior), uses) in routes.iter().zip(&uses) {
                    let group = if prior == ImagePrior::Latent { "latent".to_string() } else { format!("{}-{}", model.name(), prior.name()) };
                    for spec in &specs {
                        let req = bundle.vocab.parse(spec)?;
                        for &seed in &seeds {
                            let opts = GenerateOptions { model, seed, steps: self.steps.unwrap_or(default_steps(prior)), temperature: self.temperature.filter(|_| uses.temperature), gain: None, lr: None, layers: None, poison_at: None, prior, prior_gain: self.prior_gain.filter(|_| uses.prior_gain) };
                            let t = match pollster::block_on(targets(&vgg, &bundle, &req, &opts, device)) {
                                Ok(t) => t,
                                Err(Error::Invalid { reason, .. }) => {
                                    eprintln!("{group} cannot make `{spec}`: {reason}");
                                    break;
                                }
                                Err(e) => return Err(e),
                            };
                            let started = std::time::Instant::now();
                            let r = pollster::block_on(generate(&vgg, &bundle, &req, &t, &opts, device, RunControl::silent()))?;
                            let secs = started.elapsed().as_secs_f64();
                            let rel = format!("{group}/{}/seed{seed}.png", folder_name(spec));
                            save(&r.image, &rel)?;
                            let ours = scores(&bundle, &classify(&vgg, &bundle, &r.image, device)?);
                            eprintln!("{rel}: {secs:.1} s");
                            items.push(json!({"file": rel, "model": group, "request": spec, "wants": wants(&bundle, spec)?, "seed": seed, "seconds": secs, "ours": ours}));
                        }
                    }
                }
                ("generated", &OPTIMISED_AGAINST)
            }
            "training" => {
                // The training faces for each request: G(latent(seed, index)) of the first
                // faces of the test split whose labels match it.
                let p = prior::prior_of(&bundle)?;
                let generator = Generator::new(&p.generator, device);
                let per = parse_seeds(&self.seeds)?.len();
                let seed = crate::fit::synth_seed(&self.data)?;
                let faces = labelled_test_faces(&self.data, &bundle.vocab.names)?;
                for spec in &specs {
                    let req = bundle.vocab.parse(spec)?;
                    let matching = faces.iter().filter(|(_, l)| req.iter().all(|r| (l[r.attr] > 0) == (r.strength > 0.0))).take(per);
                    for (k, (index, _)) in matching.enumerate() {
                        let z = burn::tensor::Tensor::from_data(burn::tensor::TensorData::new(deepface::data::dcgan::latent(seed, *index), [1, deepface::data::dcgan::LATENT]), device);
                        let img = pollster::block_on(imageops::tensor_to_image(prior::render(&generator, z)))?;
                        let rel = format!("training/{}/{index}.png", folder_name(spec));
                        save(&img, &rel)?;
                        let ours = scores(&bundle, &classify(&vgg, &bundle, &img, device)?);
                        items.push(json!({"file": rel, "model": "training faces", "request": spec, "wants": wants(&bundle, spec)?, "seed": k, "ours": ours}));
                    }
                }
                ("photos", &[])
            }
            "edits" => {
                let clf = bundle.classifier.to_device(device);
                let mut photos: Vec<PathBuf> = std::fs::read_dir(&self.photos)
                    .map_err(|e| Error::io(self.photos.display(), e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "png" || x == "jpg"))
                    .collect();
                photos.sort();
                let methods: Vec<(String, deepface::make::edit::EditMethod)> =
                    self.edit_methods.split(',').map(|m| Ok((m.trim().to_string(), m.trim().parse()?))).collect::<Result<_>>()?;
                for photo in &photos {
                    let name = photo.file_name().expect("a file").to_string_lossy().into_owned();
                    let img = imageops::load(photo)?;
                    save(&img, &format!("orig/{name}"))?;
                    for (method_name, method) in &methods {
                        let opts = deepface::make::edit::EditOptions {
                            strength: self.strength.unwrap_or(deepface::make::edit::DEFAULT_STRENGTH),
                            steps: self.steps.unwrap_or(deepface::make::edit::DEFAULT_STEPS),
                            seed: 0,
                            centre_if_no_face: true,
                            method: *method,
                            keep_colours: !self.change_colours,
                        };
                        for spec in specs.iter().filter(|s| !s.is_empty()) {
                            let req = bundle.vocab.parse(spec)?;
                            let started = std::time::Instant::now();
                            let e = pollster::block_on(deepface::make::edit::alter(&vgg, &bundle, &clf, &img, &req, &opts, device, RunControl::silent()))?;
                            let rel = format!("edits/{method_name}/{}/{name}", folder_name(spec));
                            save(&e.photo, &rel)?;
                            let (x, y, side) = e.rect;
                            eprintln!("{rel}");
                            items.push(json!({"file": rel, "original": format!("orig/{name}"), "model": method_name, "request": spec, "wants": wants(&bundle, spec)?,
                                "seconds": started.elapsed().as_secs_f64(),
                                "face_box": [x, y, side, side], "solve_side": bundle.image_size, "ours_before": scores(&bundle, &e.probs_before), "ours_after": scores(&bundle, &e.probs_after)}));
                        }
                    }
                }
                ("edited", &OPTIMISED_AGAINST)
            }
            other => return Err(Error::invalid("kind", format!("`{other}`; valid: generated, training, edits"))),
        };
        let manifest = json!({"kind": kind, "optimised_against": against, "items": items});
        let path = self.out.join("manifest.json");
        std::fs::write(&path, serde_json::to_string_pretty(&manifest).expect("json")).map_err(|e| Error::io(path.display(), e))?;
        println!("{} images -> {}", items.len(), path.display());
        Ok(())
    }
}

/// (latent index, labels in `names` order) of the test split's faces.
fn labelled_test_faces(dir: &Path, names: &[String]) -> Result<Vec<(u64, Vec<i8>)>> {
    crate::fit::labelled_latents(dir, names, "2")
}
