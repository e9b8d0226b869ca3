//! Fitting the models on a data set's VGG16 features: the attribute classifier, the paper's
//! cGMM, the linear-Gaussian model, and the bundle file that carries them to the page.
//! Uses `util`, `backbone` and `data`.

pub mod bundle;
pub mod cgmm;
pub mod classifier;
#[cfg(not(target_arch = "wasm32"))]
pub mod features;
pub mod latent;
pub mod linear;
#[cfg(not(target_arch = "wasm32"))]
pub mod pipeline;
#[cfg(not(target_arch = "wasm32"))]
pub mod tsne;
