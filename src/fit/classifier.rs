//! Attribute classifier: linear heads on pooled VGG activations. As in the paper, mutually
//! exclusive attributes share one softmax head (with a "none of these" class when the data
//! has faces with no member); every other attribute has its own sigmoid head. Everything
//! after the network is differentiable, so the baseline (class visualisation) can ascend it.

use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::attributes::Vocabulary;
use crate::backbone::vgg::{Layer, Vgg16};
#[cfg(not(target_arch = "wasm32"))]
use crate::{Error, Result};

/// Activations are average-pooled to GRID x GRID cells: position matters (a smile is at the
/// bottom of the face), fine detail does not.
pub const GRID: usize = 4;

/// The layers the heads read (conv5_1 for identity-level traits, conv4_1 for local ones).
pub fn feature_layers() -> Vec<Layer> {
    vec!["conv4_1".parse().expect("valid"), "conv5_1".parse().expect("valid")]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Head {
    Group { members: Vec<usize>, none: bool },
    Single { attr: usize },
}

impl Head {
    pub fn width(&self) -> usize {
        match self {
            Head::Group { members, none } => members.len() + usize::from(*none),
            Head::Single { .. } => 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Classifier {
    pub heads: Vec<Head>,
    /// Per-feature standardisation measured on the training split.
    pub feat_mean: Vec<f32>,
    pub feat_std: Vec<f32>,
    /// [features, logits], row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The classifier's tensors on a device, built once per model load.
pub struct DeviceClassifier {
    heads: Vec<Head>,
    attrs: usize,
    mean: Tensor<2>,
    inv_std: Tensor<2>,
    weight: Tensor<2>,
    bias: Tensor<2>,
}

/// [N, F] features from the activations of [`feature_layers`], in that order.
pub fn pooled(acts: Vec<Tensor<4>>) -> Tensor<2> {
    Tensor::cat(acts.into_iter().map(|a| adaptive_avg_pool2d(a, [GRID, GRID]).flatten::<2>(1, 3)).collect(), 1)
}

pub fn feature_dim() -> usize {
    feature_layers().iter().map(|l| l.channels() * GRID * GRID).sum()
}

impl Classifier {
    pub fn logits_len(&self) -> usize {
        self.heads.iter().map(Head::width).sum()
    }

    pub fn attrs(&self) -> usize {
        self.heads
            .iter()
            .map(|h| match h {
                Head::Group { members, .. } => members.len(),
                Head::Single { .. } => 1,
            })
            .sum()
    }

    pub fn to_device(&self, device: &Device) -> DeviceClassifier {
        let f = self.feat_mean.len();
        let l = self.bias.len();
        let t = |v: Vec<f32>, shape: [usize; 2]| Tensor::from_data(TensorData::new(v, shape), device);
        DeviceClassifier {
            heads: self.heads.clone(),
            attrs: self.attrs(),
            mean: t(self.feat_mean.clone(), [1, f]),
            inv_std: t(self.feat_std.iter().map(|s| 1.0 / s).collect(), [1, f]),
            weight: t(self.weight.clone(), [f, l]),
            bias: t(self.bias.clone(), [1, l]),
        }
    }
}

impl DeviceClassifier {
    pub fn logits(&self, feats: Tensor<2>) -> Tensor<2> {
        ((feats - self.mean.clone()) * self.inv_std.clone()).matmul(self.weight.clone()) + self.bias.clone()
    }

    /// Log-probability of each attribute being present, [N, attributes] in vocabulary order.
    pub fn log_probs(&self, logits: Tensor<2>) -> Tensor<2> {
        let n = logits.dims()[0];
        let mut cols: Vec<Option<Tensor<2>>> = vec![None; self.attrs];
        let mut at = 0;
        for h in &self.heads {
            let z = logits.clone().slice([0..n, at..at + h.width()]);
            match h {
                Head::Group { members, .. } => {
                    let lp = log_softmax(z, 1);
                    for (k, &m) in members.iter().enumerate() {
                        cols[m] = Some(lp.clone().slice([0..n, k..k + 1]));
                    }
                }
                Head::Single { attr } => cols[*attr] = Some(log_sigmoid(z)),
            }
            at += h.width();
        }
        Tensor::cat(cols.into_iter().map(|c| c.expect("every attribute has a head")).collect(), 1)
    }

    /// Probabilities for RGB images in [0, 1] ([N, 3, H, W]).
    pub fn probs(&self, vgg: &Vgg16, rgb: Tensor<4>) -> Tensor<2> {
        self.log_probs(self.logits(pooled(vgg.forward(rgb, &feature_layers())))).exp()
    }
}

/// Yes/no per attribute from probabilities: a group member is present when it is the most
/// likely class of its group (the "none" class included), an independent attribute when p > 0.5.
pub fn decide(probs: &[f32], heads: &[Head]) -> Vec<bool> {
    let mut out = vec![false; probs.len()];
    for h in heads {
        match h {
            Head::Group { members, .. } => {
                let none = 1.0 - members.iter().map(|&m| probs[m]).sum::<f32>();
                let best = members.iter().copied().max_by(|&a, &b| probs[a].total_cmp(&probs[b])).expect("groups have members");
                out[best] = probs[best] > none;
            }
            Head::Single { attr } => out[*attr] = probs[*attr] > 0.5,
        }
    }
    out
}

/// The heads for a vocabulary and the training labels (±1 per attribute).
pub fn heads_for(vocab: &Vocabulary, labels: &[&[i8]]) -> Vec<Head> {
    let mut heads: Vec<Head> = vocab
        .groups
        .iter()
        .map(|g| Head::Group { members: g.members.clone(), none: labels.iter().any(|row| g.members.iter().all(|&m| row[m] <= 0)) })
        .collect();
    heads.extend(vocab.independent().into_iter().map(|attr| Head::Single { attr }));
    heads
}

/// Held-out quality of one attribute.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttrScore {
    pub name: String,
    pub positives: usize,
    pub accuracy: f32,
    /// Mean of the true-positive and true-negative rates: 50% for a constant guess.
    pub balanced: f32,
}

pub fn score(vocab: &Vocabulary, predicted: &[Vec<bool>], labels: &[&[i8]]) -> Vec<AttrScore> {
    (0..vocab.len())
        .map(|a| {
            let (mut tp, mut tn, mut pos, mut neg) = (0usize, 0usize, 0usize, 0usize);
            for (p, l) in predicted.iter().zip(labels) {
                if l[a] > 0 {
                    pos += 1;
                    tp += usize::from(p[a]);
                } else {
                    neg += 1;
                    tn += usize::from(!p[a]);
                }
            }
            let rate = |x: usize, n: usize| if n == 0 { 1.0 } else { x as f32 / n as f32 };
            AttrScore {
                name: vocab.names[a].clone(),
                positives: pos,
                accuracy: rate(tp + tn, pos + neg),
                balanced: 0.5 * (rate(tp, pos) + rate(tn, neg)),
            }
        })
        .collect()
}

#[cfg(not(target_arch = "wasm32"))]
/// Trains the heads on `x` ([N, F] pooled features, row-major) by minibatch Adam on
/// class-weighted cross-entropy plus `l2` * ||W||^2. Faces with two members of one group marked present
/// are left out of that group's loss.
pub fn train(heads: Vec<Head>, x: &[f32], labels: &[&[i8]], l2: f32, epochs: usize, seed: u64, device: &Device) -> Result<Classifier> {
    let n = labels.len();
    let f = feature_dim();
    if x.len() != n * f {
        return Err(Error::invalid("features", format!("{} values for {n} images of {f} features", x.len())));
    }
    let mut mean = vec![0.0f64; f];
    let mut sq = vec![0.0f64; f];
    for row in x.chunks_exact(f) {
        for ((m, s), &v) in mean.iter_mut().zip(&mut sq).zip(row) {
            *m += f64::from(v);
            *s += f64::from(v) * f64::from(v);
        }
    }
    let feat_mean: Vec<f32> = mean.iter().map(|m| (m / n as f64) as f32).collect();
    let feat_std: Vec<f32> = sq.iter().zip(&mean).map(|(s, m)| ((s / n as f64 - (m / n as f64).powi(2)).max(0.0).sqrt() as f32).max(1e-3)).collect();
    let l: usize = heads.iter().map(Head::width).sum();
    // Targets per logit column: one-hot for groups (zero rows = left out), 0/1 for singles.
    let mut target = vec![0.0f32; n * l];
    for (i, row) in labels.iter().enumerate() {
        let mut at = 0;
        for h in &heads {
            match h {
                Head::Group { members, none } => {
                    let on: Vec<usize> = (0..members.len()).filter(|&k| row[members[k]] > 0).collect();
                    match on.as_slice() {
                        [k] => target[i * l + at + k] = 1.0,
                        [] if *none => target[i * l + at + members.len()] = 1.0,
                        _ => {}
                    }
                }
                Head::Single { .. } => {}
            }
            if let Head::Single { attr } = h {
                target[i * l + at] = f32::from(u8::from(row[*attr] > 0));
            }
            at += h.width();
        }
    }
    // Class weights (total / (classes x count)): the rare attributes (2% Senior) would
    // otherwise never be predicted, and generating "Senior" could never be checked.
    let (mut pos_w, mut neg_w) = (vec![1.0f32; l], vec![1.0f32; l]);
    let mut at = 0;
    for h in &heads {
        let cols = at..at + h.width();
        let count = |c: usize, v: f32| target.chunks_exact(l).filter(|r| r[c] == v).count() as f32;
        match h {
            Head::Group { .. } => {
                let counts: Vec<f32> = cols.clone().map(|c| count(c, 1.0)).collect();
                let valid: f32 = counts.iter().sum();
                for (c, k) in cols.zip(&counts) {
                    pos_w[c] = if *k > 0.0 { (valid / (h.width() as f32 * k)).min(20.0) } else { 0.0 };
                }
            }
            Head::Single { .. } => {
                let (p, q) = (count(at, 1.0), count(at, 0.0));
                pos_w[at] = if p > 0.0 { (n as f32 / (2.0 * p)).min(20.0) } else { 0.0 };
                neg_w[at] = if q > 0.0 { (n as f32 / (2.0 * q)).min(20.0) } else { 0.0 };
            }
        }
        at += h.width();
    }
    let pos_w = Tensor::<2>::from_data(TensorData::new(pos_w, [1, l]), device);
    let neg_w = Tensor::<2>::from_data(TensorData::new(neg_w, [1, l]), device);
    let standard: Vec<f32> = x.chunks_exact(f).flat_map(|row| row.iter().zip(&feat_mean).zip(&feat_std).map(|((v, m), s)| (v - m) / s)).collect();
    let mut w: Tensor<2> = Tensor::zeros([f, l], device);
    let mut b: Tensor<2> = Tensor::zeros([1, l], device);
    let (mut mw, mut vw, mut mb, mut vb) = (w.zeros_like(), w.zeros_like(), b.zeros_like(), b.zeros_like());
    let batch = 256.min(n).max(1);
    let mut rng = crate::util::rng::Rng::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0;
    for _ in 0..epochs {
        for i in (1..n).rev() {
            order.swap(i, rng.range(0, i as i64) as usize);
        }
        for chunk in order.chunks(batch) {
            t += 1;
            let xb: Vec<f32> = chunk.iter().flat_map(|&i| standard[i * f..(i + 1) * f].iter().copied()).collect();
            let tb: Vec<f32> = chunk.iter().flat_map(|&i| target[i * l..(i + 1) * l].iter().copied()).collect();
            let m = chunk.len();
            let xb = Tensor::<2>::from_data(TensorData::new(xb, [m, f]), device);
            let tb = Tensor::<2>::from_data(TensorData::new(tb, [m, l]), device);
            let wa = w.clone().autodiff().require_grad();
            let ba = b.clone().autodiff().require_grad();
            let z = xb.autodiff().matmul(wa.clone()) + ba.clone();
            let loss = head_loss(&heads, z, tb.autodiff(), pos_w.clone().autodiff(), neg_w.clone().autodiff()).div_scalar(m as f32) + wa.clone().square().sum().mul_scalar(l2);
            let grads = loss.backward();
            let gw = wa.grad(&grads).ok_or_else(|| Error::Backend("no gradient for the classifier weights".into()))?;
            let gb = ba.grad(&grads).ok_or_else(|| Error::Backend("no gradient for the classifier bias".into()))?;
            (w, mw, vw) = crate::util::optim::adam_step(w, mw, vw, gw, t, 1e-3, crate::util::optim::ADAM_BETA2);
            (b, mb, vb) = crate::util::optim::adam_step(b, mb, vb, gb, t, 1e-3, crate::util::optim::ADAM_BETA2);
        }
    }
    let weight = crate::util::imageops::read_native(w)?;
    let bias = crate::util::imageops::read_native(b)?;
    if !weight.iter().chain(&bias).all(|v| v.is_finite()) {
        return Err(Error::NonFinite { step: t as usize, value: f32::NAN });
    }
    Ok(Classifier { heads, feat_mean, feat_std, weight, bias })
}

#[cfg(not(target_arch = "wasm32"))]
/// Weighted cross-entropy: `pos_w` weighs each logit's positive class (group members and
/// present independent attributes), `neg_w` an independent attribute's absence.
fn head_loss(heads: &[Head], z: Tensor<2>, target: Tensor<2>, pos_w: Tensor<2>, neg_w: Tensor<2>) -> Tensor<1> {
    let n = z.dims()[0];
    let mut at = 0;
    let mut total: Option<Tensor<1>> = None;
    for h in heads {
        let r = at..at + h.width();
        let (zh, th) = (z.clone().slice([0..n, r.clone()]), target.clone().slice([0..n, r.clone()]));
        let (wp, wn) = (pos_w.clone().slice([0..1, r.clone()]), neg_w.clone().slice([0..1, r]));
        let term = match h {
            Head::Group { .. } => (th * wp * log_softmax(zh, 1)).sum().neg(),
            Head::Single { .. } => (th.clone() * wp * log_sigmoid(zh.clone()) + th.neg().add_scalar(1.0) * wn * log_sigmoid(zh.neg())).sum().neg(),
        };
        total = Some(match total {
            Some(t) => t + term,
            None => term,
        });
        at += h.width();
    }
    total.expect("at least one head")
}
