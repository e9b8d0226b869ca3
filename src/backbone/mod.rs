//! The VGG16 network the method reads faces through: its weight file, import from other
//! formats, the network itself and deepface's own CPU and WebGPU kernels (the CPU ones also
//! serve the face generator of `data::dcgan`).
//! Uses `util` and `onnx`.

#[cfg(not(target_arch = "wasm32"))]
pub mod import;
pub mod vgg;
pub mod weights;
pub(crate) mod cpu_kernels;
#[cfg(feature = "webgpu")]
mod gpu_conv;
