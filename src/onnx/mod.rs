//! Just enough of ONNX's protobuf to read small CNNs: the graph's initializers and its nodes
//! (with attributes) in topological order. Used to import VGG16 weights and, through
//! [`run`], to execute the packaged age and gender classifiers on burn. A full ONNX runtime
//! would be a heavy dependency for that.

pub mod run;

use std::collections::HashMap;

use half::f16;

/// A tensor read from the file, converted to f32.
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    /// Float initializers as f32 (empty for integer ones).
    pub data: Vec<f32>,
    /// Integer (int64/int32) initializers, e.g. Pad's pads.
    pub ints: Vec<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Str(String),
}

pub struct OnnxNode {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: HashMap<String, Attr>,
}

impl OnnxNode {
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.attrs.get(name) {
            Some(Attr::Int(v)) => *v,
            _ => default,
        }
    }
    pub fn float(&self, name: &str, default: f32) -> f32 {
        match self.attrs.get(name) {
            Some(Attr::Float(v)) => *v,
            _ => default,
        }
    }
    pub fn ints(&self, name: &str) -> Option<&[i64]> {
        match self.attrs.get(name) {
            Some(Attr::Ints(v)) => Some(v),
            _ => None,
        }
    }
}

pub struct OnnxGraph {
    pub initializers: HashMap<String, OnnxTensor>,
    /// Every node, in graph (topological) order.
    pub nodes: Vec<OnnxNode>,
    /// Names of the graph inputs that are not initializers, and of the outputs.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

pub type ParseResult<T> = std::result::Result<T, String>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
    Fixed64,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> ParseResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("the file ends inside a number (truncated?)")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("malformed varint".into())
    }

    fn take(&mut self, n: usize) -> ParseResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or("the file ends inside a field (truncated?)")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Next (field number, value), or None at the end of the message.
    fn field(&mut self) -> ParseResult<Option<(u64, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let n = self.varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(self.take(4)?.try_into().expect("4 bytes")),
            t => return Err(format!("unsupported protobuf wire type {t}: not an ONNX model")),
        };
        Ok(Some((key >> 3, value)))
    }
}

pub fn parse(bytes: &[u8]) -> ParseResult<OnnxGraph> {
    // ModelProto: field 7 = graph.
    let mut r = Reader::new(bytes);
    let mut graph = None;
    while let Some((num, v)) = r.field()? {
        if let (7, Value::Bytes(b)) = (num, v) {
            graph = Some(b);
        }
    }
    let graph = graph.ok_or("no graph in the file: not an ONNX model")?;
    // GraphProto: 1 = node, 5 = initializer, 11 = input, 12 = output (ValueInfo: 1 = name).
    let mut r = Reader::new(graph);
    let mut out = OnnxGraph { initializers: HashMap::new(), nodes: Vec::new(), inputs: Vec::new(), outputs: Vec::new() };
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Bytes(b)) => out.nodes.push(node(b)?),
            (5, Value::Bytes(b)) => {
                let (name, t) = tensor(b)?;
                out.initializers.insert(name, t);
            }
            (11, Value::Bytes(b)) => out.inputs.push(value_info_name(b)?),
            (12, Value::Bytes(b)) => out.outputs.push(value_info_name(b)?),
            _ => {}
        }
    }
    out.inputs.retain(|i| !out.initializers.contains_key(i));
    Ok(out)
}

fn string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn value_info_name(bytes: &[u8]) -> ParseResult<String> {
    let mut r = Reader::new(bytes);
    while let Some((num, v)) = r.field()? {
        if let (1, Value::Bytes(b)) = (num, v) {
            return Ok(string(b));
        }
    }
    Ok(String::new())
}

fn node(bytes: &[u8]) -> ParseResult<OnnxNode> {
    // NodeProto: 1 = input, 2 = output, 4 = op_type, 5 = attribute.
    let mut r = Reader::new(bytes);
    let mut n = OnnxNode { op: String::new(), inputs: Vec::new(), outputs: Vec::new(), attrs: HashMap::new() };
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Bytes(b)) => n.inputs.push(string(b)),
            (2, Value::Bytes(b)) => n.outputs.push(string(b)),
            (4, Value::Bytes(b)) => n.op = string(b),
            (5, Value::Bytes(b)) => {
                let (name, attr) = attribute(b)?;
                if let Some(a) = attr {
                    n.attrs.insert(name, a);
                }
            }
            _ => {}
        }
    }
    Ok(n)
}

fn attribute(bytes: &[u8]) -> ParseResult<(String, Option<Attr>)> {
    // AttributeProto: 1 = name, 2 = f, 3 = i, 4 = s, 8 = ints.
    let mut r = Reader::new(bytes);
    let (mut name, mut attr, mut ints) = (String::new(), None, Vec::new());
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Bytes(b)) => name = string(b),
            (2, Value::Fixed32(f)) => attr = Some(Attr::Float(f32::from_le_bytes(f))),
            (3, Value::Varint(i)) => attr = Some(Attr::Int(i as i64)),
            (4, Value::Bytes(b)) => attr = Some(Attr::Str(string(b))),
            (8, Value::Varint(i)) => ints.push(i as i64),
            (8, Value::Bytes(b)) => {
                let mut p = Reader::new(b);
                while p.pos < b.len() {
                    ints.push(p.varint()? as i64);
                }
            }
            _ => {}
        }
    }
    if attr.is_none() && !ints.is_empty() {
        attr = Some(Attr::Ints(ints));
    }
    Ok((name, attr))
}

fn tensor(bytes: &[u8]) -> ParseResult<(String, OnnxTensor)> {
    // TensorProto: 1 = dims, 2 = data_type, 4 = float_data, 8 = name, 9 = raw_data,
    // 14 = data_location (1 = external).
    let mut r = Reader::new(bytes);
    let (mut dims, mut dtype, mut name) = (Vec::new(), 0u64, String::new());
    let (mut raw, mut floats): (Option<&[u8]>, Vec<f32>) = (None, Vec::new());
    let mut int_data: Vec<i64> = Vec::new();
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Varint(d)) => dims.push(d as usize),
            (1, Value::Bytes(b)) => {
                let mut p = Reader::new(b);
                while p.pos < b.len() {
                    dims.push(p.varint()? as usize);
                }
            }
            (2, Value::Varint(t)) => dtype = t,
            (4, Value::Bytes(b)) => floats.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            (7, Value::Bytes(b)) => {
                let mut p = Reader::new(b);
                while p.pos < b.len() {
                    int_data.push(p.varint()? as i64);
                }
            }
            (8, Value::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (9, Value::Bytes(b)) => raw = Some(b),
            (14, Value::Varint(1)) => return Err("weights stored in an external data file; re-save the model with the weights inside it".into()),
            _ => {}
        }
    }
    let n: usize = dims.iter().product();
    let data = match (dtype, raw) {
        (1, Some(b)) => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        (1, None) => floats,
        (10, Some(b)) => b.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        (11, Some(b)) => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
        // Integer and other initializers (shapes, indices) are never conv weights.
        _ => Vec::new(),
    };
    if matches!(dtype, 1 | 10 | 11) && data.len() != n {
        return Err(format!("initializer `{name}` declares {n} values but holds {} (truncated?)", data.len()));
    }
    // 7 = INT64 (raw or int64_data, field 7), 6 = INT32.
    let ints = match (dtype, raw) {
        (7, Some(b)) => b.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
        (7, None) => int_data,
        (6, Some(b)) => b.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap()))).collect(),
        _ => Vec::new(),
    };
    Ok((name, OnnxTensor { dims, data, ints }))
}
