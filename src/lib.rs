//! deepface: face generation and editing by feature inversion through a VGG16 network.
//!
//! The same code runs natively (burn's `flex` CPU backend) and in the browser (WebGPU, with
//! `flex` as the fallback): every function takes a burn [`Device`](burn::tensor::Device).

pub mod backbone;
#[cfg(not(target_arch = "wasm32"))]
pub mod card;
#[cfg(not(target_arch = "wasm32"))]
pub mod dataset;
pub mod dcgan;
pub mod error;
pub mod face;
pub mod imageops;
#[cfg(not(target_arch = "wasm32"))]
pub mod import;
pub mod invert;
pub mod label;
pub mod metrics;
pub mod onnx;
pub mod rng;
#[cfg(not(target_arch = "wasm32"))]
pub mod synth;
pub mod vgg;

pub use error::{Error, Result};
