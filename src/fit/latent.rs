//! Attributes in the face generator's latent space (after InterFaceGAN: attributes are close to
//! linear directions there). Every synthetic training face is G(z) for a latent z that its file
//! name recovers, so each attribute gets a direction: the difference of the mean latents of the
//! faces with and without it. A request's code is a seeded random latent whose projections on
//! the requested directions are moved to where the faces with (or without) the attribute lie,
//! and beyond by `gain` within-class standard deviations.

use crate::data::attributes::Request;
use crate::data::dcgan::LATENT;
use crate::util::rng::Rng;
use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct LatentModel {
    /// One unit direction per attribute, [A][LATENT].
    pub directions: Vec<Vec<f32>>,
    /// Mean projection of the latents of faces with / without the attribute.
    pub pos_mean: Vec<f32>,
    pub neg_mean: Vec<f32>,
    /// Pooled within-class standard deviation of the projection.
    pub std: Vec<f32>,
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl LatentModel {
    /// `latents`: N rows of LATENT values; `labels`: N rows of +1 / -1 per attribute.
    pub fn fit(latents: &[Vec<f32>], labels: &[Vec<i8>], attrs: usize) -> Result<Self> {
        if latents.len() != labels.len() || latents.is_empty() {
            return Err(Error::invalid("latent model", format!("{} latents for {} label rows", latents.len(), labels.len())));
        }
        let mut m = LatentModel { directions: Vec::new(), pos_mean: Vec::new(), neg_mean: Vec::new(), std: Vec::new() };
        for a in 0..attrs {
            let mut sums = [vec![0f64; LATENT], vec![0f64; LATENT]];
            let mut counts = [0usize; 2];
            for (z, l) in latents.iter().zip(labels) {
                let k = usize::from(l[a] > 0);
                counts[k] += 1;
                sums[k].iter_mut().zip(z).for_each(|(s, v)| *s += *v as f64);
            }
            if counts[0] == 0 || counts[1] == 0 {
                return Err(Error::invalid("latent model", format!("attribute {a} has no {} faces", if counts[1] == 0 { "positive" } else { "negative" })));
            }
            let diff: Vec<f64> = (0..LATENT).map(|i| sums[1][i] / counts[1] as f64 - sums[0][i] / counts[0] as f64).collect();
            let norm = diff.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            let dir: Vec<f32> = diff.iter().map(|x| (x / norm) as f32).collect();
            let (mut sum, mut sq) = ([0f64; 2], [0f64; 2]);
            for (z, l) in latents.iter().zip(labels) {
                let k = usize::from(l[a] > 0);
                let p = dot(z, &dir) as f64;
                sum[k] += p;
                sq[k] += p * p;
            }
            let mean = [sum[0] / counts[0] as f64, sum[1] / counts[1] as f64];
            let var = (sq[0] - counts[0] as f64 * mean[0] * mean[0] + sq[1] - counts[1] as f64 * mean[1] * mean[1]) / (latents.len() as f64 - 2.0).max(1.0);
            m.directions.push(dir);
            m.neg_mean.push(mean[0] as f32);
            m.pos_mean.push(mean[1] as f32);
            m.std.push(var.max(0.0).sqrt() as f32);
        }
        Ok(m)
    }

    pub fn attrs(&self) -> usize {
        self.directions.len()
    }

    /// The seed's random latent before any attribute is applied (drawn apart from the training
    /// faces' latents, whose seeds are the data set's).
    pub fn seed_latent(seed: u64) -> Vec<f32> {
        Rng::new(seed ^ 0x1A7E_47C0_DE5E_ED00).normals(LATENT)
    }

    /// The latent code for `requests` from `seed`: each requested direction, made orthogonal to
    /// those applied before it (so a later attribute does not undo an earlier one), gets the
    /// projection of its class mean moved `gain` standard deviations further out; strength s in
    /// (0, 1] goes that fraction of the way from the midpoint of the two class means.
    pub fn code(&self, requests: &[Request], seed: u64, gain: f32) -> Vec<f32> {
        self.apply(Self::seed_latent(seed), requests, gain, false)
    }

    /// Moves `z` along the requested directions as [`LatentModel::code`] does; with
    /// `only_further`, a projection already past its goal stays where it is (an edit of a face
    /// that already smiles must not make it smile less).
    pub fn apply(&self, mut z: Vec<f32>, requests: &[Request], gain: f32, only_further: bool) -> Vec<f32> {
        let mut applied: Vec<Vec<f32>> = Vec::new();
        for r in requests {
            let a = r.attr;
            let mut n = self.directions[a].clone();
            for u in &applied {
                let p = dot(&n, u);
                n.iter_mut().zip(u).for_each(|(x, y)| *x -= p * y);
            }
            let len = dot(&n, &n).sqrt();
            if len < 1e-3 {
                continue;
            }
            n.iter_mut().for_each(|x| *x /= len);
            let mid = 0.5 * (self.pos_mean[a] + self.neg_mean[a]);
            let half = 0.5 * (self.pos_mean[a] - self.neg_mean[a]) + gain * self.std[a];
            let s = r.strength.clamp(-1.0, 1.0);
            let now = dot(&z, &n);
            let goal = match mid + s * half {
                g if only_further && s > 0.0 => g.max(now),
                g if only_further && s < 0.0 => g.min(now),
                g => g,
            };
            z.iter_mut().zip(&n).for_each(|(x, y)| *x += (goal - now) * y);
            applied.push(n);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_direction_is_found_and_a_request_moves_along_it() {
        // Faces "have" attribute 0 when their latent's first coordinate is positive.
        let latents: Vec<Vec<f32>> = (0..2000).map(|i| Rng::new(i).normals(LATENT)).collect();
        let labels: Vec<Vec<i8>> = latents.iter().map(|z| vec![if z[0] > 0.0 { 1 } else { -1 }, if z[1] > 0.5 { 1 } else { -1 }]).collect();
        let m = LatentModel::fit(&latents, &labels, 2).unwrap();
        assert!(m.directions[0][0] > 0.95, "direction {:?}", &m.directions[0][..3]);
        assert!(m.pos_mean[0] > 0.5 && m.neg_mean[0] < -0.5);
        let ask = |s| m.code(&[Request { attr: 0, strength: s }], 3, 1.0);
        assert!(ask(1.0)[0] > m.pos_mean[0] && ask(-1.0)[0] < m.neg_mean[0]);
        // The seed decides everything else: two seeds, one request, different latents.
        let other = m.code(&[Request { attr: 0, strength: 1.0 }], 4, 1.0);
        assert!(dot(&ask(1.0)[1..], &other[1..]).abs() < 40.0);
        assert!(LatentModel::fit(&latents, &vec![vec![1i8, 1]; 2000], 2).is_err(), "an attribute no face lacks is refused");
    }
}
