//! Executes small ONNX CNNs with burn, so they run natively and in the browser without an ONNX
//! runtime: the ops of the packaged dlib age/gender classifiers and of the FER emotion model
//! (listed in `SUPPORTED`).

use std::collections::HashMap;

use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use super::{OnnxGraph, OnnxNode};
use crate::{Error, Result};

/// A value in the graph: image-like [N, C, H, W] or matrix [N, K].
#[derive(Clone)]
enum Value {
    Map(Tensor<4>),
    Mat(Tensor<2>),
}

pub struct OnnxModel {
    graph: OnnxGraph,
    consts: HashMap<String, Value>,
    name: String,
}

const SUPPORTED: [&str; 14] = [
    "Conv", "Mul", "Add", "Relu", "Pad", "AveragePool", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm", "Softmax", "BatchNormalization", "Reshape", "Squeeze",
];

impl OnnxModel {
    /// Parses and uploads a model; every op is checked here, not at first use.
    pub fn from_bytes(bytes: &[u8], name: &str, device: &Device) -> Result<Self> {
        let graph = super::parse(bytes).map_err(|why| Error::format(name, format!("not a readable ONNX model ({why})")))?;
        if let Some(n) = graph.nodes.iter().find(|n| !SUPPORTED.contains(&n.op.as_str())) {
            return Err(Error::format(name, format!("uses ONNX op `{}`, which deepface cannot run (supported: {})", n.op, SUPPORTED.join(", "))));
        }
        if graph.inputs.len() != 1 || graph.outputs.is_empty() {
            return Err(Error::format(name, format!("{} inputs and {} outputs; expected one image input", graph.inputs.len(), graph.outputs.len())));
        }
        let mut consts = HashMap::new();
        for (k, t) in &graph.initializers {
            if t.data.is_empty() {
                continue;
            }
            let v = match t.dims.as_slice() {
                [a, b, c, d] => Value::Map(Tensor::from_data(TensorData::new(t.data.clone(), [*a, *b, *c, *d]), device)),
                [a, b] => Value::Mat(Tensor::from_data(TensorData::new(t.data.clone(), [*a, *b]), device)),
                // Vectors broadcast along the channel/feature axis; a single value everywhere.
                [n] => Value::Mat(Tensor::from_data(TensorData::new(t.data.clone(), [1, *n]), device)),
                [] => Value::Mat(Tensor::from_data(TensorData::new(t.data.clone(), [1, 1]), device)),
                d => return Err(Error::format(name, format!("initializer `{k}` has unsupported rank {}", d.len()))),
            };
            consts.insert(k.clone(), v);
        }
        Ok(OnnxModel { graph, consts, name: name.to_string() })
    }

    /// Runs the graph on `input` and returns its first output as [N, K].
    pub fn run(&self, input: Tensor<4>) -> Result<Tensor<2>> {
        let mut vals: HashMap<&str, Value> = HashMap::new();
        vals.insert(self.graph.inputs[0].as_str(), Value::Map(input));
        for node in &self.graph.nodes {
            let out = self.eval(node, &vals)?;
            vals.insert(node.outputs[0].as_str(), out);
        }
        match vals.remove(self.graph.outputs[0].as_str()) {
            Some(Value::Mat(t)) => Ok(t),
            Some(Value::Map(t)) => {
                let [n, c, h, w] = t.dims();
                Ok(t.reshape([n, c * h * w]))
            }
            None => Err(self.err(format!("output `{}` is never computed", self.graph.outputs[0]))),
        }
    }

    fn err(&self, reason: String) -> Error {
        Error::format(&self.name, reason)
    }

    fn get<'a>(&'a self, vals: &'a HashMap<&str, Value>, name: &str) -> Result<Value> {
        vals.get(name).or_else(|| self.consts.get(name)).cloned().ok_or_else(|| self.err(format!("value `{name}` is used before it is computed")))
    }

    fn map(&self, v: Value, node: &OnnxNode) -> Result<Tensor<4>> {
        match v {
            Value::Map(t) => Ok(t),
            Value::Mat(_) => Err(self.err(format!("{} `{}` expects an image-shaped input", node.op, node.outputs[0]))),
        }
    }

    fn eval(&self, node: &OnnxNode, vals: &HashMap<&str, Value>) -> Result<Value> {
        let input = |i: usize| -> Result<Value> {
            let name = node.inputs.get(i).ok_or_else(|| self.err(format!("{} node lacks input #{i}", node.op)))?;
            self.get(vals, name)
        };
        let pairs = |node: &OnnxNode| -> [(usize, usize); 2] {
            let p = node.ints("pads").unwrap_or(&[0, 0, 0, 0]);
            let g = |i: usize| p.get(i).copied().unwrap_or(0).max(0) as usize;
            [(g(0), g(2)), (g(1), g(3))]
        };
        let two = |name: &str, default: usize| -> [usize; 2] {
            node.ints(name).map(|v| [v[0] as usize, v.get(1).copied().unwrap_or(v[0]) as usize]).unwrap_or([default; 2])
        };
        Ok(match node.op.as_str() {
            "Conv" => {
                let x = self.map(input(0)?, node)?;
                let w = self.map(input(1)?, node)?;
                let b = match node.inputs.get(2) {
                    Some(_) => match input(2)? {
                        Value::Mat(b) => Some(b.reshape([w.dims()[0]])),
                        Value::Map(_) => return Err(self.err("Conv bias must be a vector".into())),
                    },
                    None => None,
                };
                let opts = ConvOptions::new_with_padding(two("strides", 1), pairs(node), two("dilations", 1), node.int("group", 1) as usize);
                Value::Map(conv2d(x, w, b, opts))
            }
            "Mul" | "Add" => {
                let (a, b) = (input(0)?, input(1)?);
                let mul = node.op == "Mul";
                match (a, b) {
                    (Value::Map(a), Value::Map(b)) => Value::Map(if mul { a * b } else { a + b }),
                    (Value::Map(a), Value::Mat(b)) | (Value::Mat(b), Value::Map(a)) => {
                        // A vector or scalar against an image: along channels.
                        let [r, k] = b.dims();
                        let b = b.reshape([1, r * k, 1, 1]);
                        Value::Map(if mul { a * b } else { a + b })
                    }
                    (Value::Mat(a), Value::Mat(b)) => Value::Mat(if mul { a * b } else { a + b }),
                }
            }
            "Relu" => match input(0)? {
                Value::Map(t) => Value::Map(burn::tensor::activation::relu(t)),
                Value::Mat(t) => Value::Mat(burn::tensor::activation::relu(t)),
            },
            "Pad" => {
                let x = self.map(input(0)?, node)?;
                let pads = node
                    .inputs
                    .get(1)
                    .and_then(|n| self.graph.initializers.get(n))
                    .map(|t| t.ints.clone())
                    .or_else(|| node.ints("pads").map(<[i64]>::to_vec))
                    .filter(|p| p.len() == 8 && p.iter().all(|v| *v >= 0))
                    .ok_or_else(|| self.err("Pad needs 8 constant non-negative pads".into()))?;
                let mode = node.attrs.get("mode").is_none_or(|m| *m == super::Attr::Str("constant".into()));
                if !mode {
                    return Err(self.err("only constant Pad is supported".into()));
                }
                let p = |i: usize| pads[i] as usize;
                Value::Map(x.pad([(p(0), p(4)), (p(1), p(5)), (p(2), p(6)), (p(3), p(7))], PadMode::Constant(0.0)))
            }
            "AveragePool" => {
                let x = self.map(input(0)?, node)?;
                let opts = AvgPoolOptions::new(two("kernel_shape", 1))
                    .with_stride(two("strides", 1))
                    .with_padding_pairs(pairs(node))
                    .with_count_include_pad(node.int("count_include_pad", 0) != 0)
                    .with_ceil_mode(node.int("ceil_mode", 0) != 0);
                Value::Map(avg_pool2d(x, opts))
            }
            "MaxPool" => {
                let x = self.map(input(0)?, node)?;
                let mut opts = MaxPoolOptions::new(two("kernel_shape", 1));
                opts.stride = two("strides", 1);
                opts.padding = pairs(node);
                opts.ceil_mode = node.int("ceil_mode", 0) != 0;
                Value::Map(max_pool2d(x, opts))
            }
            "GlobalAveragePool" => Value::Map(self.map(input(0)?, node)?.mean_dim(3).mean_dim(2)),
            "Flatten" => match input(0)? {
                Value::Map(t) => {
                    let [n, c, h, w] = t.dims();
                    Value::Mat(t.reshape([n, c * h * w]))
                }
                m => m,
            },
            "Gemm" => {
                let a = match input(0)? {
                    Value::Mat(a) => a,
                    Value::Map(_) => return Err(self.err("Gemm input must be flattened".into())),
                };
                let mut b = match input(1)? {
                    Value::Mat(b) => b,
                    Value::Map(_) => return Err(self.err("Gemm weights must be a matrix".into())),
                };
                let a = if node.int("transA", 0) != 0 { a.transpose() } else { a };
                if node.int("transB", 0) != 0 {
                    b = b.transpose();
                }
                let mut y = a.matmul(b).mul_scalar(node.float("alpha", 1.0));
                if node.inputs.len() > 2 {
                    if let Value::Mat(c) = input(2)? {
                        y = y + c.mul_scalar(node.float("beta", 1.0));
                    }
                }
                Value::Mat(y)
            }
            "BatchNormalization" => {
                let x = self.map(input(0)?, node)?;
                let vec = |i: usize| -> Result<Tensor<4>> {
                    match input(i)? {
                        Value::Mat(t) => {
                            let [r, k] = t.dims();
                            Ok(t.reshape([1, r * k, 1, 1]))
                        }
                        Value::Map(_) => Err(self.err("BatchNormalization parameters must be vectors".into())),
                    }
                };
                let (scale, bias, mean, var) = (vec(1)?, vec(2)?, vec(3)?, vec(4)?);
                let eps = node.float("epsilon", 1e-5);
                Value::Map((x - mean) / var.add_scalar(eps).sqrt() * scale + bias)
            }
            "Reshape" => {
                let x = self.map(input(0)?, node)?;
                let target = node.inputs.get(1).and_then(|n| self.graph.initializers.get(n)).map(|t| t.ints.clone()).unwrap_or_default();
                let dims = x.dims();
                let total: usize = dims.iter().product();
                if target.len() != 4 {
                    return Err(self.err(format!("Reshape to rank {} is not supported (only 4)", target.len())));
                }
                let known: usize = target.iter().enumerate().map(|(i, &d)| if d == 0 { dims[i] } else if d < 0 { 1 } else { d as usize }).product();
                let shape: [usize; 4] = std::array::from_fn(|i| match target[i] {
                    0 => dims[i],
                    d if d < 0 => total / known.max(1),
                    d => d as usize,
                });
                if shape.iter().product::<usize>() != total {
                    return Err(self.err(format!("cannot reshape {dims:?} to {target:?}")));
                }
                Value::Map(x.reshape(shape))
            }
            "Squeeze" => match input(0)? {
                // Only the [N, C, 1, 1] -> [N, C] case that follows global pooling.
                Value::Map(t) => {
                    let [n, c, h, w] = t.dims();
                    if h != 1 || w != 1 {
                        return Err(self.err(format!("Squeeze of a {n}x{c}x{h}x{w} map is not supported")));
                    }
                    Value::Mat(t.reshape([n, c]))
                }
                m => m,
            },
            "Softmax" => match input(0)? {
                Value::Mat(t) => Value::Mat(burn::tensor::activation::softmax(t, 1)),
                Value::Map(t) => Value::Map(burn::tensor::activation::softmax(t, 1)),
            },
            other => return Err(self.err(format!("op `{other}` is not supported"))),
        })
    }
}
