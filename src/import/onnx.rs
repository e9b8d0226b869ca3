//! Just enough of ONNX's protobuf to pull conv weights out of a model: the graph's
//! initializers and its Conv nodes in topological order. A full ONNX runtime would be a
//! heavy dependency for reading 26 tensors.

use std::collections::HashMap;

use half::f16;

/// A tensor read from the file, converted to f32.
pub struct OnnxTensor {
    pub dims: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct OnnxGraph {
    pub initializers: HashMap<String, OnnxTensor>,
    /// (op_type, inputs) of every node, in graph order.
    pub nodes: Vec<(String, Vec<String>)>,
}

pub type ParseResult<T> = std::result::Result<T, String>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed32,
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
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
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
    // GraphProto: 1 = node, 5 = initializer.
    let mut r = Reader::new(graph);
    let mut out = OnnxGraph { initializers: HashMap::new(), nodes: Vec::new() };
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Bytes(b)) => out.nodes.push(node(b)?),
            (5, Value::Bytes(b)) => {
                let (name, t) = tensor(b)?;
                out.initializers.insert(name, t);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn node(bytes: &[u8]) -> ParseResult<(String, Vec<String>)> {
    // NodeProto: 1 = input, 4 = op_type.
    let mut r = Reader::new(bytes);
    let (mut op, mut inputs) = (String::new(), Vec::new());
    while let Some((num, v)) = r.field()? {
        match (num, v) {
            (1, Value::Bytes(b)) => inputs.push(String::from_utf8_lossy(b).into_owned()),
            (4, Value::Bytes(b)) => op = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
    }
    Ok((op, inputs))
}

fn tensor(bytes: &[u8]) -> ParseResult<(String, OnnxTensor)> {
    // TensorProto: 1 = dims, 2 = data_type, 4 = float_data, 8 = name, 9 = raw_data,
    // 14 = data_location (1 = external).
    let mut r = Reader::new(bytes);
    let (mut dims, mut dtype, mut name) = (Vec::new(), 0u64, String::new());
    let (mut raw, mut floats): (Option<&[u8]>, Vec<f32>) = (None, Vec::new());
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
    Ok((name, OnnxTensor { dims, data }))
}
