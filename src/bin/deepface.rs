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
    /// Time inversion steps (forward + backward + Adam) at several sizes.
    Bench {
        #[arg(long, default_value = "conv3_1")]
        layers: String,
        #[arg(long, default_value = "64,128,224")]
        sizes: String,
        #[arg(long, default_value_t = 20)]
        steps: usize,
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
        Command::Bench { layers, sizes, steps, model } => bench(&device, &model, &parse_layers(&layers)?, &sizes, steps),
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

fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Image { what: path.display().to_string(), reason: e.to_string() })
}

fn bench(device: &Device, model: &ModelArgs, layers: &[deepface::vgg::Layer], sizes: &str, steps: usize) -> Result<()> {
    let vgg = model.load(device)?;
    println!("backend flex (CPU), layers {}", layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(","));
    println!("| size | ms/step (median) | min | max |");
    println!("|---|---|---|---|");
    for size in sizes.split(',') {
        let size: usize = size.trim().parse().map_err(|_| Error::invalid("sizes", format!("`{size}` is not a number")))?;
        imageops::check_size(size as u32)?;
        let target_img = noise_image(size, 0.2, 1, device);
        let targets = targets_from_image(&vgg, target_img, layers);
        let cfg = InvertConfig { steps: 1, report_every: 1, ..InvertConfig::default() };
        let mut x = noise_image(size, 0.05, 2, device);
        let mut times = Vec::new();
        // Two warm-up steps, then timed single-step runs (each includes the loss read-back,
        // which synchronises).
        for i in 0..steps + 2 {
            let t = Instant::now();
            let r = pollster::block_on(invert(&vgg, &targets, x.clone(), &cfg, None, false, |_| true))?;
            if i >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            x = r.tensor;
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("| {size} | {:.1} | {:.1} | {:.1} |", times[times.len() / 2], times[0], times[times.len() - 1]);
    }
    Ok(())
}
