//! The model bundle: one file with everything fitted (classifier heads, the paper's cGMM, the
//! linear-Gaussian model, vocabulary, mean face) plus the sha256 of the backbone it was
//! fitted with. Layout: magic, format version (u32), header length (u64), JSON header,
//! tensor bytes, and a sha256 of everything before it, so damage anywhere is caught on load.

use serde::{Deserialize, Serialize};

use crate::data::attributes::Vocabulary;
use crate::fit::cgmm::Cgmm;
use crate::fit::classifier::Classifier;
use crate::data::dcgan::{GeneratorWeights, LATENT};
use crate::fit::latent::LatentModel;
use crate::fit::linear::LinearGaussian;
use crate::backbone::vgg::Layer;
use crate::{Error, Result};

pub const MAGIC: &[u8; 8] = b"DFMODEL\0";
pub const VERSION: u32 = 1;

/// Which conditional model turns attributes into target activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The paper's per-attribute Gaussians (conv3_1 by default).
    Cgmm,
    /// Linear-Gaussian on several layers with a PCA residual.
    Linear,
}

impl ModelKind {
    /// The name the CLI, the page and the scoreboard's groups use.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Cgmm => "cgmm",
            ModelKind::Linear => "linear",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cgmm" => Ok(ModelKind::Cgmm),
            "linear" => Ok(ModelKind::Linear),
            _ => Err(Error::invalid("model", format!("unknown model `{s}`; valid: cgmm, linear"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Bundle {
    pub image_size: u32,
    pub backbone_sha256: String,
    pub vocab: Vocabulary,
    pub classifier: Classifier,
    pub cgmm: Cgmm,
    pub linear: LinearGaussian,
    pub default_model: ModelKind,
    /// Temperature of linear-model samples unless asked otherwise.
    pub temperature: f32,
    /// Multiplier of requested attribute changes in linear-model samples unless asked otherwise.
    pub gain: f32,
    /// Planar RGB in [0, 1], [3, size, size].
    pub mean_face: Vec<f32>,
    /// What the fit measured (free-form, shown by the CLI and the page).
    pub report: serde_json::Value,
    /// The face generator and the attributes' directions in its latent space (`deepface
    /// add-prior`); None in bundles made before it, which then generate in pixel mode only.
    pub prior: Option<Prior>,
}

/// The generator prior: an image is G(z), and a request starts from [`LatentModel::code`].
#[derive(Clone, Debug, PartialEq)]
pub struct Prior {
    pub generator: GeneratorWeights,
    pub latent: LatentModel,
    /// How far past the class means a request pushes its latent projections, in standard
    /// deviations, unless asked otherwise.
    pub gain: f32,
}

#[derive(Serialize, Deserialize)]
struct TensorEntry {
    name: String,
    dtype: String,
    shape: Vec<usize>,
    offset: usize,
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    image_size: u32,
    backbone_sha256: String,
    vocabulary: Vocabulary,
    default_model: ModelKind,
    temperature: f32,
    gain: f32,
    classifier_heads: Vec<crate::fit::classifier::Head>,
    cgmm_layer: String,
    cgmm_w: Vec<f32>,
    linear_layers: Vec<String>,
    linear_base: Vec<f32>,
    linear_components: usize,
    report: serde_json::Value,
    /// The prior's default gain; absent (older bundles) when the bundle has no prior.
    #[serde(default)]
    prior_gain: Option<f32>,
    tensors: Vec<TensorEntry>,
}

struct Writer {
    entries: Vec<TensorEntry>,
    data: Vec<u8>,
}

impl Writer {
    fn put(&mut self, name: &str, shape: Vec<usize>, v: &[f32], half: bool) -> Result<()> {
        let offset = self.data.len();
        if half && v.iter().any(|x| x.abs() > 65504.0) {
            return Err(Error::invalid("model", format!("`{name}` holds values beyond the f16 range")));
        }
        if half {
            v.iter().for_each(|x| self.data.extend(half::f16::from_f32(*x).to_le_bytes()));
        } else {
            v.iter().for_each(|x| self.data.extend(x.to_le_bytes()));
        }
        self.entries.push(TensorEntry { name: name.into(), dtype: if half { "f16" } else { "f32" }.into(), shape, offset });
        Ok(())
    }
}

impl Bundle {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut w = Writer { entries: Vec::new(), data: Vec::new() };
        let c = &self.classifier;
        let (f, l) = (c.feat_mean.len(), c.bias.len());
        w.put("classifier.feat_mean", vec![f], &c.feat_mean, false)?;
        w.put("classifier.feat_std", vec![f], &c.feat_std, false)?;
        w.put("classifier.weight", vec![f, l], &c.weight, false)?;
        w.put("classifier.bias", vec![l], &c.bias, false)?;
        let (a, d3) = (self.cgmm.mu.len(), self.cgmm.mu[0].len());
        w.put("cgmm.mu", vec![a, d3], &self.cgmm.mu.concat(), true)?;
        // Standard deviations, not variances: squared activations overflow f16.
        let std: Vec<f32> = self.cgmm.var.iter().flatten().map(|v| v.sqrt()).collect();
        w.put("cgmm.std", vec![a, d3], &std, true)?;
        let lin = &self.linear;
        let d = lin.dim();
        w.put("linear.mean", vec![d], &lin.mean, true)?;
        w.put("linear.coef", vec![lin.base.len(), d], &lin.coef, true)?;
        w.put("linear.basis", vec![lin.components(), d], &lin.basis, true)?;
        let s = self.image_size as usize;
        w.put("mean_face", vec![3, s, s], &self.mean_face, true)?;
        if let Some(p) = &self.prior {
            let g = &p.generator;
            for (i, (v, shape)) in g.weights.iter().zip(GeneratorWeights::weight_shapes()).enumerate() {
                w.put(&format!("prior.gen.weight{i}"), shape.to_vec(), v, true)?;
            }
            for (i, (sc, sh)) in g.scales.iter().zip(&g.shifts).enumerate() {
                w.put(&format!("prior.gen.scale{i}"), vec![sc.len()], sc, false)?;
                w.put(&format!("prior.gen.shift{i}"), vec![sh.len()], sh, false)?;
            }
            let l = &p.latent;
            w.put("prior.latent.directions", vec![l.attrs(), LATENT], &l.directions.concat(), false)?;
            w.put("prior.latent.stats", vec![3, l.attrs()], &[l.pos_mean.clone(), l.neg_mean.clone(), l.std.clone()].concat(), false)?;
        }
        let header = Header {
            format: "deepface-model".into(),
            image_size: self.image_size,
            backbone_sha256: self.backbone_sha256.clone(),
            vocabulary: self.vocab.clone(),
            default_model: self.default_model,
            temperature: self.temperature,
            gain: self.gain,
            classifier_heads: c.heads.clone(),
            cgmm_layer: self.cgmm.layer.name().into(),
            cgmm_w: self.cgmm.w.clone(),
            linear_layers: lin.layers.iter().map(|(l, _)| l.name().to_string()).collect(),
            linear_base: lin.base.clone(),
            linear_components: lin.components(),
            report: self.report.clone(),
            prior_gain: self.prior.as_ref().map(|p| p.gain),
            tensors: w.entries,
        };
        let json = serde_json::to_vec(&header).map_err(|e| Error::Backend(e.to_string()))?;
        let mut out = Vec::with_capacity(json.len() + w.data.len() + 60);
        out.extend(MAGIC);
        out.extend(VERSION.to_le_bytes());
        out.extend((json.len() as u64).to_le_bytes());
        out.extend(&json);
        out.extend(&w.data);
        let hash = sha256(&out);
        out.extend(hash);
        Ok(out)
    }

    /// Reads and validates a bundle; `name` is used in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Bundle> {
        let bad = |reason: String| Error::format(name, reason);
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(bad("not a deepface model bundle (it does not start with the bundle signature)".into()));
        }
        if bytes.len() < 20 + 32 {
            return Err(bad(format!("truncated: only {} bytes", bytes.len())));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!("bundle format version {version}, but this deepface reads version {VERSION}: fit the model again with this version (`deepface fit`)")));
        }
        let hlen = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
        let body_end = bytes.len() - 32;
        if hlen > body_end - 20 {
            return Err(bad(format!("truncated: the header alone claims {hlen} bytes, the file has {}", bytes.len())));
        }
        if sha256(&bytes[..body_end]) != bytes[body_end..] {
            return Err(bad("corrupt: checksum mismatch (the file was damaged or cut short; download or fit it again)".into()));
        }
        let h: Header = serde_json::from_slice(&bytes[20..20 + hlen]).map_err(|e| bad(format!("unreadable header: {e}")))?;
        let data = &bytes[20 + hlen..body_end];
        let tensor = |key: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let e = h.tensors.iter().find(|t| t.name == key).ok_or_else(|| bad(format!("missing tensor `{key}`")))?;
            if e.shape != shape {
                return Err(bad(format!("tensor `{key}` has shape {:?}, expected {shape:?}", e.shape)));
            }
            let n: usize = shape.iter().product();
            let width = if e.dtype == "f16" { 2 } else { 4 };
            let raw = data.get(e.offset..e.offset + n * width).ok_or_else(|| bad(format!("tensor `{key}` lies outside the file")))?;
            let v: Vec<f32> = if width == 2 {
                raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()
            } else {
                raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            };
            if !v.iter().all(|x| x.is_finite()) {
                return Err(bad(format!("tensor `{key}` holds non-finite values")));
            }
            Ok(v)
        };
        let vocab = Vocabulary::new(&h.vocabulary.names)?;
        let a = vocab.len();
        let s = h.image_size as usize;
        if !(32..=1024).contains(&s) {
            return Err(bad(format!("image size {s} is outside 32..1024")));
        }
        let f = crate::fit::classifier::feature_dim();
        let l: usize = h.classifier_heads.iter().map(|x| x.width()).sum();
        let classifier = Classifier {
            heads: h.classifier_heads.clone(),
            feat_mean: tensor("classifier.feat_mean", &[f])?,
            feat_std: tensor("classifier.feat_std", &[f])?,
            weight: tensor("classifier.weight", &[f, l])?,
            bias: tensor("classifier.bias", &[l])?,
        };
        if classifier.attrs() != a {
            return Err(bad(format!("the classifier covers {} attributes, the vocabulary has {a}", classifier.attrs())));
        }
        let layer: Layer = h.cgmm_layer.parse()?;
        let shape = layer.shape(s);
        let d3: usize = shape.iter().product();
        if h.cgmm_w.len() != a {
            return Err(bad(format!("{} cGMM weights for {a} attributes", h.cgmm_w.len())));
        }
        let split = |v: Vec<f32>| v.chunks(d3).map(<[f32]>::to_vec).collect::<Vec<_>>();
        let cgmm = Cgmm { layer, shape, mu: split(tensor("cgmm.mu", &[a, d3])?), var: split(tensor("cgmm.std", &[a, d3])?.iter().map(|s| s * s).collect()), w: h.cgmm_w.clone() };
        let layers: Vec<(Layer, [usize; 3])> = h.linear_layers.iter().map(|n| n.parse().map(|l: Layer| (l, l.shape(s)))).collect::<Result<_>>()?;
        let d: usize = layers.iter().map(|(_, sh)| sh.iter().product::<usize>()).sum();
        if h.linear_base.len() != a {
            return Err(bad(format!("{} base values for {a} attributes", h.linear_base.len())));
        }
        let linear = LinearGaussian::new(layers, h.linear_base.clone(), tensor("linear.mean", &[d])?, tensor("linear.coef", &[a, d])?, tensor("linear.basis", &[h.linear_components, d])?);
        let prior = match h.prior_gain {
            None => None,
            Some(gain) => {
                if !(gain.is_finite() && (0.0..=10.0).contains(&gain)) {
                    return Err(bad(format!("prior gain {gain} is outside 0..10")));
                }
                let mut g = GeneratorWeights { weights: Vec::new(), scales: Vec::new(), shifts: Vec::new() };
                for (i, shape) in GeneratorWeights::weight_shapes().iter().enumerate() {
                    g.weights.push(tensor(&format!("prior.gen.weight{i}"), shape)?);
                }
                for (i, c) in GeneratorWeights::norm_widths().iter().enumerate() {
                    g.scales.push(tensor(&format!("prior.gen.scale{i}"), &[*c])?);
                    g.shifts.push(tensor(&format!("prior.gen.shift{i}"), &[*c])?);
                }
                let dirs = tensor("prior.latent.directions", &[a, LATENT])?;
                let stats = tensor("prior.latent.stats", &[3, a])?;
                let latent = LatentModel {
                    directions: dirs.chunks(LATENT).map(<[f32]>::to_vec).collect(),
                    pos_mean: stats[..a].to_vec(),
                    neg_mean: stats[a..2 * a].to_vec(),
                    std: stats[2 * a..].to_vec(),
                };
                Some(Prior { generator: g, latent, gain })
            }
        };
        Ok(Bundle {
            prior,
            image_size: h.image_size,
            backbone_sha256: h.backbone_sha256,
            vocab,
            classifier,
            cgmm,
            linear,
            default_model: h.default_model,
            temperature: h.temperature,
            gain: h.gain,
            mean_face: tensor("mean_face", &[3, s, s])?,
            report: h.report,
        })
    }

    /// The layers whose activations `model` predicts.
    pub fn model_layers(&self, model: ModelKind) -> Vec<Layer> {
        match model {
            ModelKind::Cgmm => vec![self.cgmm.layer],
            ModelKind::Linear => self.linear.layers.iter().map(|&(l, _)| l).collect(),
        }
    }

    /// Every layer the bundle's models read: what a trimmed backbone must still reach.
    pub fn layers_used(&self) -> Vec<Layer> {
        let mut l = self.model_layers(ModelKind::Linear);
        l.extend(self.model_layers(ModelKind::Cgmm));
        l.extend(crate::fit::classifier::feature_layers());
        l.sort();
        l.dedup();
        l
    }

    /// The backbone must be the one the bundle was fitted with (or a trimmed copy of it that
    /// still reaches every layer the models use): activations of another network mean
    /// nothing to the fitted models.
    pub fn check_backbone(&self, sha256: &str) -> Result<()> {
        self.check_backbone_file(sha256, None, None)
    }

    /// As [`Bundle::check_backbone`], for a file whose manifest may say it was trimmed from
    /// the full backbone, and whose network stops at `deepest`.
    pub fn check_backbone_file(&self, sha256: &str, trimmed_from: Option<&str>, deepest: Option<Layer>) -> Result<()> {
        if let (Some(from), Some(deepest)) = (trimmed_from, deepest) {
            if from == self.backbone_sha256 {
                if let Some(l) = self.layers_used().into_iter().find(|&l| l > deepest) {
                    return Err(Error::invalid("model", format!("the bundle uses layer {l}, but this backbone was trimmed after {deepest}: load the full backbone")));
                }
                return Ok(());
            }
        }
        if self.backbone_sha256 != sha256 {
            return Err(Error::invalid(
                "model",
                format!("the bundle was fitted with backbone sha256 {}…, but the loaded backbone is {}…", &self.backbone_sha256[..12.min(self.backbone_sha256.len())], &sha256[..12.min(sha256.len())]),
            ));
        }
        Ok(())
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
