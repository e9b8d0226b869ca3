//! Making images from fitted models: feature inversion, generation, editing of photos, and the
//! evaluation and benchmarks of both. Uses every stage below it.

pub mod bench;
pub mod edit;
#[cfg(not(target_arch = "wasm32"))]
pub mod evaluate;
pub mod generate;
pub mod invert;
pub mod prior;
