//! deepface: face generation and editing by feature inversion through a VGG16 network.
//!
//! The same code runs natively (burn's `flex` CPU backend) and in the browser (WebGPU, with
//! `flex` as the fallback): every function takes a burn [`Device`](burn::tensor::Device).

pub mod attributes;
pub mod bench;
pub mod backbone;
pub mod bundle;
#[cfg(not(target_arch = "wasm32"))]
pub mod card;
#[cfg(not(target_arch = "wasm32"))]
pub mod dataset;
pub mod cgmm;
pub mod classifier;
#[cfg(not(target_arch = "wasm32"))]
pub mod features;
#[cfg(not(target_arch = "wasm32"))]
pub mod fit;
pub mod generate;
#[cfg(feature = "webgpu")]
mod gpu_conv;
mod cpu_kernels;
pub mod dcgan;
pub mod edit;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod evaluate;
pub mod face;
pub mod imageops;
#[cfg(not(target_arch = "wasm32"))]
pub mod import;
pub mod invert;
pub mod linalg;
pub mod linear;
#[cfg(not(target_arch = "wasm32"))]
pub mod label;
pub mod metrics;
pub mod onnx;
pub mod platform;
pub mod rng;
#[cfg(not(target_arch = "wasm32"))]
pub mod synth;
#[cfg(not(target_arch = "wasm32"))]
pub mod tsne;
pub mod vgg;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
