//! deepface: face generation and editing by feature inversion through a VGG16 network.
//!
//! The same code runs natively (burn's `flex` CPU backend) and in the browser (WebGPU, with
//! `flex` as the fallback): every function takes a burn [`Device`](burn::tensor::Device).
//!
//! The folders follow the pipeline, and each uses only those before it:
//! `util` -> `onnx` -> `backbone` (VGG16) -> `data` (faces, labels) -> `fit` (models) ->
//! `make` (inversion, generation, editing) -> `web` (the page's API) and `bin/` (the CLI).

pub mod util;
pub mod onnx;
pub mod backbone;
pub mod data;
pub mod fit;
pub mod make;
pub mod error;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{Error, Result};
