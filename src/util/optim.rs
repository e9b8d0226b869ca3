//! The Adam update, shared by the inversion's optimisers and the classifier's training.

use burn::tensor::Tensor;

/// Adam's usual second-moment decay.
pub const ADAM_BETA2: f32 = 0.999;

/// One bias-corrected Adam update (beta1 0.9): returns the new parameters and moments.
pub fn adam_step<const D: usize>(p: Tensor<D>, m: Tensor<D>, v: Tensor<D>, g: Tensor<D>, t: i32, lr: f32, b2: f32) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (b1, eps) = (0.9f32, 1e-8f32);
    let m = m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
    let v = v.mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
    let step = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
    (p - m.clone().div(v.clone().sqrt().add_scalar(eps)).mul_scalar(step), m, v)
}
