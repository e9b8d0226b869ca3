//! Faces and their labels: the attribute vocabulary and requests, the DCGAN face generator,
//! face detection and cropping, the synthetic data set, pseudo-labelling and CelebA-format sets.
//! Uses `util`, `onnx` and `backbone`.

pub mod attributes;
#[cfg(not(target_arch = "wasm32"))]
pub mod card;
#[cfg(not(target_arch = "wasm32"))]
pub mod dataset;
pub mod dcgan;
pub mod face;
#[cfg(not(target_arch = "wasm32"))]
pub mod label;
#[cfg(not(target_arch = "wasm32"))]
pub mod synth;
