//! The stronger conditional model: activations on several layers as a linear function of the
//! whole attribute vector (present and absent attributes both count), plus a low-rank
//! Gaussian residual from PCA. A sample moves along the main directions faces actually vary
//! in, so it is a coherent face rather than the mean plus per-neuron noise, and the
//! coefficient of an attribute is the direction an edit follows (as in Deep Feature
//! Interpolation).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::data::attributes::{Request, Vocabulary};
use crate::util::rng::Rng;
use crate::backbone::vgg::Layer;

/// The numbers are fixed once the model is made ([`LinearGaussian::new`]): the least squares
/// of [`LinearGaussian::coords_of`] keeps their Gram matrix from its first use.
#[derive(Clone, Debug)]
pub struct LinearGaussian {
    pub layers: Vec<(Layer, [usize; 3])>,
    /// Training frequency of each attribute: the "don't care" value.
    pub base: Vec<f32>,
    pub mean: Vec<f32>,
    /// [attributes, D]: change of the activations per unit of each attribute.
    pub coef: Vec<f32>,
    /// [components, D]: principal directions of the residual, each scaled by its std.
    pub basis: Vec<f32>,
    /// The least squares on all rows (attributes, then principal directions): built at the
    /// first anchored target and kept, since every generation through the face generator
    /// solves with the same 30 x 30 matrix (building it reads all D activations 465 times:
    /// 40 ms of a 1 s generation natively).
    rows_fit: OnceLock<RowsFit>,
}

/// Weighted least squares on a fixed set of rows: the weights and the Gram matrix's Cholesky
/// factor (None when the rows are degenerate).
#[derive(Clone, Debug)]
struct RowsFit {
    weights: Vec<f64>,
    factor: Option<Vec<f64>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinearFit {
    pub components: usize,
    /// Share of the residual variance (of the PCA sample, per-layer normalised) the
    /// components explain.
    pub explained: f32,
}

impl LinearGaussian {
    pub fn new(layers: Vec<(Layer, [usize; 3])>, base: Vec<f32>, mean: Vec<f32>, coef: Vec<f32>, basis: Vec<f32>) -> Self {
        LinearGaussian { layers, base, mean, coef, basis, rows_fit: OnceLock::new() }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }
    pub fn components(&self) -> usize {
        self.basis.len() / self.dim().max(1)
    }

    /// Expected activations for attribute vector `x`.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let d = self.dim();
        let mut out = self.mean.clone();
        for (a, (&xa, &ba)) in x.iter().zip(&self.base).enumerate() {
            let k = xa - ba;
            if k != 0.0 {
                out.iter_mut().zip(&self.coef[a * d..(a + 1) * d]).for_each(|(o, c)| *o += k * c);
            }
        }
        out
    }

    /// A face's activations for the requests: the prediction (the requested change of the
    /// attribute vector multiplied by `gain`: one unit of an attribute's average effect is
    /// small next to how much faces differ) plus `temperature` times a
    /// Gaussian draw in the residual's principal subspace, clamped at 0 (all tapped layers
    /// follow a ReLU).
    pub fn sample(&self, vocab: &Vocabulary, requests: &[Request], seed: u64, temperature: f32, gain: f32) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let coords: Vec<f32> = (0..self.components()).map(|_| temperature * rng.normal()).collect();
        self.with_coords(vocab, requests, gain, &coords)
    }

    /// The prediction for `requests` (see [`Self::sample`] for `gain`) plus `coords` on the
    /// residual's principal directions, clamped at 0.
    pub fn with_coords(&self, vocab: &Vocabulary, requests: &[Request], gain: f32, coords: &[f32]) -> Vec<f32> {
        self.with_coords_at(&self.request_vector(vocab, requests, gain), coords)
    }

    /// The prediction for attribute vector `x` plus `coords` on the residual's principal
    /// directions, clamped at 0 (all tapped layers follow a ReLU).
    pub fn with_coords_at(&self, x: &[f32], coords: &[f32]) -> Vec<f32> {
        let d = self.dim();
        let mut out = self.predict(x);
        for (z, b) in coords.iter().zip(self.basis.chunks_exact(d)) {
            out.iter_mut().zip(b).for_each(|(o, b)| *o += z * b);
        }
        out.iter_mut().for_each(|v| *v = v.max(0.0));
        out
    }

    /// The attribute vector of `requests`, its change from the base multiplied by `gain`.
    fn request_vector(&self, vocab: &Vocabulary, requests: &[Request], gain: f32) -> Vec<f32> {
        vocab.vector(requests, &self.base).iter().zip(&self.base).map(|(x, b)| b + gain * (x - b)).collect()
    }

    /// 1 / the RMS of each activation's layer in the mean face: scales every layer to unit
    /// RMS, so that no layer dominates the residual PCA or a least-squares fit.
    fn layer_scales(&self) -> Vec<f32> {
        let mut scale = vec![1.0f32; self.dim()];
        let mut at = 0;
        for (_, s) in &self.layers {
            let len: usize = s.iter().product();
            let rms = (self.mean[at..at + len].iter().map(|v| v * v).sum::<f32>() / len as f32).sqrt().max(1e-6);
            scale[at..at + len].iter_mut().for_each(|v| *v = 1.0 / rms);
            at += len;
        }
        scale
    }

    /// All rows the least squares of [`Self::coords_of`] fits on: the attribute directions,
    /// then the principal directions.
    fn all_rows(&self) -> Vec<&[f32]> {
        let d = self.dim();
        self.coef.chunks_exact(d).chain(self.basis.chunks_exact(d)).collect()
    }

    /// The least squares on [`Self::all_rows`], each activation weighted by its layer's scale
    /// squared ([`Self::layer_scales`]); built once.
    fn rows_fit(&self) -> &RowsFit {
        self.rows_fit.get_or_init(|| {
            let weights: Vec<f64> = self.layer_scales().into_iter().map(|s| f64::from(s).powi(2)).collect();
            let rows = self.all_rows();
            let k = rows.len();
            let mut gram = vec![0.0f64; k * k];
            for i in 0..k {
                for j in 0..=i {
                    let v = dot_weighted(rows[i], rows[j], &weights);
                    gram[i * k + j] = v;
                    gram[j * k + i] = v;
                }
                gram[i * k + i] += 1e-4 * gram[i * k + i].max(1e-12);
            }
            RowsFit { factor: crate::util::linalg::cholesky(&gram, k), weights }
        })
    }

    /// Where a face's activations `phi` lie on the residual's principal directions once its
    /// own attributes are accounted for: least squares on the attribute directions and the
    /// principal directions together, of which the latter's coordinates are returned (zeros
    /// when the rows are degenerate). They describe the person apart from the attributes (a
    /// young face's coordinates do not carry its youth into an older request's target).
    pub fn coords_of(&self, phi: &[f32]) -> Vec<f32> {
        let r: Vec<f32> = phi.iter().zip(&self.mean).map(|(p, m)| p - m).collect();
        let fit = self.rows_fit();
        let rows = self.all_rows();
        let k = rows.len();
        let all = match &fit.factor {
            Some(l) => {
                let rhs: Vec<f64> = rows.iter().map(|row| dot_weighted(row, &r, &fit.weights)).collect();
                crate::util::linalg::cholesky_solve(l, k, &rhs, 1).into_iter().map(|v| v as f32).collect()
            }
            None => vec![0.0; k],
        };
        all[self.base.len()..].to_vec()
    }

    /// The target of a request anchored on a face: the prediction for `requests` plus the
    /// face's own coordinates ([`Self::coords_of`]) in place of a random draw.
    pub fn anchored(&self, vocab: &Vocabulary, requests: &[Request], gain: f32, phi: &[f32]) -> Vec<f32> {
        self.with_coords(vocab, requests, gain, &self.coords_of(phi))
    }

    /// Direction of attribute `attr` in activation space (its coefficient row).
    pub fn direction(&self, attr: usize) -> &[f32] {
        let d = self.dim();
        &self.coef[attr * d..(attr + 1) * d]
    }
}

/// sum of a_i b_i w_i, in f64.
fn dot_weighted(a: &[f32], b: &[f32], w: &[f64]) -> f64 {
    a.iter().zip(b).zip(w).map(|((x, y), w)| f64::from(*x) * f64::from(*y) * w).sum::<f64>()
}

#[cfg(not(target_arch = "wasm32"))]
use {
    crate::{util::linalg, Error, Result},
    burn::tensor::{Device, Tensor, TensorData},
};

#[cfg(not(target_arch = "wasm32"))]
/// Fits the model. `rows(i)` gives image i's activations (all layers, length D); `x` the
/// attribute vectors (0/1), one per image. `pca_rows` images (a prefix of a random order)
/// feed the residual PCA; `ridge` regularises the regression.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    layers: Vec<(Layer, [usize; 3])>,
    x: &[Vec<f32>],
    rows: &(dyn Fn(&[usize]) -> Vec<f32> + Sync),
    components: usize,
    pca_rows: usize,
    ridge: f64,
    seed: u64,
    device: &Device,
) -> Result<(LinearGaussian, LinearFit)> {
    let n = x.len();
    let a = x.first().map_or(0, Vec::len);
    let d: usize = layers.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    if n < 2 {
        return Err(Error::invalid("data set", "the linear model needs at least 2 training images"));
    }
    let base: Vec<f32> = (0..a).map(|j| x.iter().map(|r| r[j]).sum::<f32>() / n as f32).collect();
    let centred: Vec<f32> = x.iter().flat_map(|r| r.iter().zip(&base).map(|(v, b)| v - b)).collect();
    // Sums over images in chunks on the device: sum phi, and X_c^T phi.
    let mut sum = Tensor::<2>::zeros([1, d], device);
    let mut xtp = Tensor::<2>::zeros([a, d], device);
    let idx: Vec<usize> = (0..n).collect();
    for chunk in idx.chunks(512) {
        let m = chunk.len();
        let phi = Tensor::<2>::from_data(TensorData::new(rows(chunk), [m, d]), device);
        let xc = Tensor::<2>::from_data(TensorData::new(centred[chunk[0] * a..(chunk[0] + m) * a].to_vec(), [m, a]), device);
        sum = sum + phi.clone().sum_dim(0);
        xtp = xtp + xc.transpose().matmul(phi);
    }
    let mean: Vec<f32> = crate::util::imageops::read_native(sum.div_scalar(n as f32))?;
    if !mean.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFinite { step: 0, value: f32::NAN });
    }
    let xtp: Vec<f64> = crate::util::imageops::read_native(xtp)?.into_iter().map(f64::from).collect();
    let mut xtx = vec![0.0f64; a * a];
    for r in centred.chunks_exact(a.max(1)) {
        for j in 0..a {
            for k in 0..a {
                xtx[j * a + k] += f64::from(r[j]) * f64::from(r[k]);
            }
        }
    }
    for j in 0..a {
        // Ridge relative to n: group one-hot columns sum to a constant, so X_c^T X_c alone is singular.
        xtx[j * a + j] += ridge * n as f64;
    }
    let coef: Vec<f32> = linalg::solve_spd(&xtx, a, &xtp, d)
        .ok_or_else(|| Error::invalid("data set", "the attribute labels are degenerate (the regression has no solution)"))?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let model = LinearGaussian::new(layers, base, mean, coef, Vec::new());

    // Residual PCA on a random subset, each layer scaled to unit RMS so no layer dominates.
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in (1..n).rev() {
        order.swap(i, rng.range(0, i as i64) as usize);
    }
    order.truncate(pca_rows.clamp(2, n));
    let m = order.len();
    let scale = model.layer_scales();
    let mut resid = rows(&order);
    for (r, &i) in resid.chunks_exact_mut(d).zip(&order) {
        let pred = model.predict(&x[i]);
        r.iter_mut().zip(&pred).zip(&scale).for_each(|((v, p), s)| *v = (*v - p) * s);
    }
    let r = Tensor::<2>::from_data(TensorData::new(resid, [m, d]), device);
    let gram: Vec<f64> = crate::util::imageops::read_native(r.clone().matmul(r.clone().transpose()))?.into_iter().map(f64::from).collect();
    let total: f64 = (0..m).map(|i| gram[i * m + i]).sum();
    let k = components.min(m - 1);
    let (vals, vecs) = linalg::top_eigen(&gram, m, k, seed ^ 0x5eed);
    let u: Vec<f32> = vecs.iter().flat_map(|v| v.iter().map(|&x| x as f32)).collect();
    let u = Tensor::<2>::from_data(TensorData::new(u, [k, m]), device);
    // Principal direction times its std: R^T u_k / sqrt(m - 1), then undo the layer scaling.
    let mut basis = crate::util::imageops::read_native(u.matmul(r).div_scalar(((m - 1) as f32).sqrt()))?;
    for row in basis.chunks_exact_mut(d) {
        row.iter_mut().zip(&scale).for_each(|(b, s)| *b /= s);
    }
    if !basis.iter().chain(&model.coef).chain(&model.mean).all(|v| v.is_finite()) {
        return Err(Error::NonFinite { step: 0, value: f32::NAN });
    }
    // A new model, not `model.basis = basis`: nothing may keep a least squares on the old rows.
    let model = LinearGaussian::new(model.layers, model.base, model.mean, model.coef, basis);
    let explained = (vals.iter().take(k).sum::<f64>() / total.max(1e-300)) as f32;
    Ok((model, LinearFit { components: k, explained }))
}

#[cfg(test)]
mod tests {
    use super::LinearGaussian;
    use crate::util::rng::Rng;

    #[test]
    fn a_faces_coordinates_leave_its_attributes_out() {
        // Two layers of different scale, 3 attributes, 4 residual directions, all random.
        let layers = vec![("conv3_1".parse().unwrap(), [2, 4, 4]), ("conv4_1".parse().unwrap(), [3, 2, 2])];
        let d = 32 + 12;
        let mut rng = Rng::new(9);
        let mut draw = |n: usize, s: f32| -> Vec<f32> { rng.normals(n).into_iter().map(|v| v * s).collect() };
        let mean: Vec<f32> = draw(d, 0.5).into_iter().map(|v| v.abs() + 3.0).collect();
        let model = LinearGaussian::new(layers, vec![0.5; 3], mean, draw(3 * d, 0.3), draw(4 * d, 0.2));
        // A face with attribute 0 present and 2 absent, at known residual coordinates: its
        // attributes must not leak into the coordinates.
        let c = [0.7, -1.2, 0.3, 2.0];
        let phi = model.with_coords_at(&[1.0, 0.5, 0.0], &c);
        assert!(phi.iter().all(|&v| v > 0.0), "no clamping in this set-up");
        let got = model.coords_of(&phi);
        for (g, w) in got.iter().zip(c) {
            assert!((g - w).abs() < 1e-3, "coordinates {got:?}, made with {c:?}");
        }
        // The second solve (from the kept factor) and a clone's give the same numbers.
        assert_eq!(model.coords_of(&phi), got);
        assert_eq!(model.clone().coords_of(&phi), got);
    }
}
