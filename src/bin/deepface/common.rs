//! What the commands share: loading the backbone and the model bundle, checking an output path
//! before the work starts, saving images, printing progress and scores.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use deepface::backbone::vgg::Vgg16;
use deepface::backbone::weights;
use deepface::fit::bundle::Bundle;
use deepface::util::paths;
use deepface::{Error, Result};

#[derive(clap::Args)]
pub struct ModelArgs {
    /// Backbone file (default: vgg16_conv.safetensors in the model folder).
    #[arg(long)]
    backbone: Option<PathBuf>,
}

impl ModelArgs {
    pub fn load(&self, device: &Device) -> Result<Vgg16> {
        Ok(self.load_with_sha(device)?.0)
    }

    pub fn load_with_sha(&self, device: &Device) -> Result<(Vgg16, String)> {
        let path = self.backbone.clone().unwrap_or_else(weights::default_path);
        let (w, _) = weights::load(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok((Vgg16::new(&w, device), weights::sha256_hex(&bytes)))
    }
}

#[derive(clap::Args)]
pub struct BundleArgs {
    /// Model bundle made by `deepface fit` (default: default.bundle in the model folder).
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    backbone: ModelArgs,
}

impl BundleArgs {
    pub fn load(&self, device: &Device) -> Result<(Vgg16, Bundle)> {
        let path = self.model.clone().unwrap_or_else(|| paths::model_file("default.bundle"));
        let bundle = deepface::fit::pipeline::load_bundle(&path)?;
        let (vgg, sha) = self.backbone.load_with_sha(device)?;
        bundle.check_backbone(&sha)?;
        Ok((vgg, bundle))
    }
}

/// Refuses an output path that cannot be written, before minutes of work are spent on what
/// goes into it: its folder must exist (or be creatable), be writable, and an image must have
/// an extension the encoder knows.
pub fn check_output(path: &Path, image: bool) -> Result<()> {
    let err = |reason: String| Error::Write { path: path.display().to_string(), reason };
    if path.is_dir() {
        return Err(err("it is a folder; give a file name".into()));
    }
    if image {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        if !matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
            return Err(err("the file name must end in .png, .jpg or .jpeg".into()));
        }
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create the folder {}: {e}", dir.display())))?;
    let probe = dir.join(format!(".deepface-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| err(format!("the folder {} is not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

pub fn report_steps(p: &deepface::make::invert::Progress) -> bool {
    if p.step.is_multiple_of(50) || p.step == p.steps {
        eprintln!("step {:>4}/{}  loss {:.5}", p.step, p.steps, p.loss);
    }
    true
}

pub fn print_probs(bundle: &Bundle, probs: &[f32]) {
    let yes = deepface::fit::classifier::decide(probs, &bundle.classifier.heads);
    let seen: Vec<String> = bundle.vocab.names.iter().zip(probs).zip(yes).map(|((n, p), y)| format!("{}{n} {:.0}%", if y { "+" } else { "-" }, 100.0 * p)).collect();
    println!("classifier sees: {}", seen.join("  "));
}

pub fn write_atomic(out: &Path, bytes: &[u8]) -> Result<()> {
    deepface::util::platform::write_atomic(out, |f| f.write_all(bytes))
}

/// Classifier probabilities of one image (a CLI command classifies once, so the classifier is
/// put on the device here).
pub fn classify(vgg: &Vgg16, bundle: &Bundle, img: &image::RgbImage, device: &Device) -> Result<Vec<f32>> {
    let clf = bundle.classifier.to_device(device);
    pollster::block_on(deepface::make::edit::classify(vgg, &clf, img, bundle.image_size, device))
}

pub fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Write { path: path.display().to_string(), reason: e.to_string() })
}
