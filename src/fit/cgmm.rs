//! The paper's "custom Gaussian mixture model": per attribute, a diagonal Gaussian of one
//! layer's activations over a random set of faces that have it; a weight per attribute
//! learned by SGD; a sample for attribute set C is (1/|C|) sum_{i in C} w_i z_i with
//! z_i ~ N(mu_i, Sigma_i).

use serde::{Deserialize, Serialize};

use crate::data::attributes::{Request, Vocabulary};
use crate::util::rng::Rng;
use crate::backbone::vgg::Layer;
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct Cgmm {
    pub layer: Layer,
    pub shape: [usize; 3],
    /// Per attribute: mean and variance of the activations ([C*H*W] each).
    pub mu: Vec<Vec<f32>>,
    pub var: Vec<Vec<f32>>,
    pub w: Vec<f32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CgmmFit {
    pub per_attr: usize,
    /// Relative objective (divided by the mean ||phi||^2) per epoch.
    pub loss: Vec<f64>,
}

/// `rows` returns the activations of training image i (length = shape product); `labels` the
/// ±1 labels of the same images. `per_attr` positives are drawn at random for each Gaussian
/// (all of them when there are fewer).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    vocab: &Vocabulary,
    layer: Layer,
    shape: [usize; 3],
    labels: &[&[i8]],
    rows: &dyn Fn(usize) -> Vec<f32>,
    per_attr: usize,
    lambda: f64,
    epochs: usize,
    seed: u64,
) -> Result<(Cgmm, CgmmFit)> {
    let d: usize = shape.iter().product();
    let a = vocab.len();
    let mut rng = Rng::new(seed);
    let (mut mu, mut var) = (Vec::with_capacity(a), Vec::with_capacity(a));
    for attr in 0..a {
        let mut pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i][attr] > 0).collect();
        if pos.is_empty() {
            return Err(Error::invalid("data set", format!("attribute `{}` has no positive image in the training split", vocab.names[attr])));
        }
        for i in (1..pos.len()).rev() {
            pos.swap(i, rng.range(0, i as i64) as usize);
        }
        pos.truncate(per_attr.max(1));
        let (mut s, mut s2) = (vec![0.0f64; d], vec![0.0f64; d]);
        for &i in &pos {
            for ((x, y), v) in s.iter_mut().zip(&mut s2).zip(rows(i)) {
                *x += f64::from(v);
                *y += f64::from(v) * f64::from(v);
            }
        }
        let n = pos.len() as f64;
        mu.push(s.iter().map(|x| (x / n) as f32).collect::<Vec<f32>>());
        var.push(s2.iter().zip(&s).map(|(y, x)| ((y / n - (x / n).powi(2)).max(0.0)) as f32).collect::<Vec<f32>>());
    }
    // The objective is quadratic in w, so it only needs, per image, phi.mu_j and ||phi||^2,
    // and the Gram matrix of the means: SGD over images on these is the same SGD as on raw
    // activations, thousands of times cheaper.
    let gram: Vec<f64> = (0..a * a).map(|jk| dot(&mu[jk / a], &mu[jk % a])).collect();
    let mut proj = Vec::with_capacity(labels.len() * a);
    let mut energy = Vec::with_capacity(labels.len());
    for i in 0..labels.len() {
        let phi = rows(i);
        energy.push(dot(&phi, &phi));
        proj.extend(mu.iter().map(|m| dot(&phi, m)));
    }
    let scale = energy.iter().sum::<f64>() / energy.len().max(1) as f64;
    let sets: Vec<Vec<usize>> = labels.iter().map(|l| (0..a).filter(|&j| l[j] > 0).collect()).collect();
    let mut w = vec![1.0f64; a];
    let mut loss = Vec::with_capacity(epochs);
    let mut order: Vec<usize> = (0..labels.len()).filter(|&i| !sets[i].is_empty()).collect();
    let lr = 0.5;
    for epoch in 0..epochs {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.range(0, i as i64) as usize);
        }
        let step = lr / (1.0 + epoch as f64);
        let mut total = 0.0;
        for batch in order.chunks(32) {
            let mut grad: Vec<f64> = w.iter().map(|wj| 2.0 * lambda * wj).collect();
            for &i in batch {
                let c = &sets[i];
                let inv = 1.0 / c.len() as f64;
                // residual r = phi - inv * sum_j w_j mu_j; d||r||^2/dw_k = -2 inv mu_k . r
                for &k in c {
                    let mu_r = proj[i * a + k] - inv * c.iter().map(|&j| w[j] * gram[k * a + j]).sum::<f64>();
                    grad[k] += -2.0 * inv * mu_r / scale / batch.len() as f64;
                }
                let pred_sq: f64 = c.iter().flat_map(|&j| c.iter().map(move |&k| (j, k))).map(|(j, k)| w[j] * w[k] * gram[j * a + k]).sum::<f64>() * inv * inv;
                let cross: f64 = c.iter().map(|&j| w[j] * proj[i * a + j]).sum::<f64>() * inv;
                total += (energy[i] - 2.0 * cross + pred_sq) / scale;
            }
            w.iter_mut().zip(&grad).for_each(|(wj, g)| *wj -= step * g);
        }
        let value = total / order.len().max(1) as f64 + lambda * w.iter().map(|x| x * x).sum::<f64>();
        if !value.is_finite() || w.iter().any(|x| !x.is_finite()) {
            return Err(Error::NonFinite { step: epoch + 1, value: value as f32 });
        }
        loss.push(value);
    }
    let model = Cgmm { layer, shape, mu, var, w: w.iter().map(|&x| x as f32).collect() };
    Ok((model, CgmmFit { per_attr, loss }))
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
}

impl Cgmm {
    /// The expected activations for attribute set `c`: (1/|C|) sum w_i mu_i.
    pub fn mean(&self, c: &[usize]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.mu[0].len()];
        for &i in c {
            out.iter_mut().zip(&self.mu[i]).for_each(|(o, m)| *o += self.w[i] * m / c.len() as f32);
        }
        out
    }

    /// A sample for the requested attributes. The model knows only present attributes, so a
    /// negation is refused; a strength s < 1 scales that attribute's weight by s.
    pub fn sample(&self, vocab: &Vocabulary, requests: &[Request], seed: u64) -> Result<Vec<f32>> {
        if let Some(r) = requests.iter().find(|r| r.strength < 0.0) {
            return Err(Error::invalid(
                "attributes",
                format!("the paper's cGMM models present attributes only, so `-{}` cannot be asked of it; use the linear model", vocab.names[r.attr]),
            ));
        }
        let c: Vec<&Request> = requests.iter().filter(|r| r.strength > 0.0).collect();
        if c.is_empty() {
            return Err(Error::invalid("attributes", "the paper's cGMM needs at least one attribute to ask for"));
        }
        let mut rng = Rng::new(seed);
        let mut out = vec![0.0f32; self.mu[0].len()];
        for r in &c {
            let (mu, var) = (&self.mu[r.attr], &self.var[r.attr]);
            let k = self.w[r.attr] * r.strength / c.len() as f32;
            for ((o, m), v) in out.iter_mut().zip(mu).zip(var) {
                *o += k * (m + v.sqrt() * rng.normal());
            }
        }
        Ok(out)
    }
}
