//! Where the model files live, so that the CLI and the tests work from any directory.

use std::path::PathBuf;

/// The environment variable that points deepface at another model folder.
pub const MODEL_DIR_VAR: &str = "DEEPFACE_MODEL_DIR";

/// The model folder: `$DEEPFACE_MODEL_DIR` when set, else the `model/` folder of the source
/// tree this binary was built from (the committed default model), else `./model`.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODEL_DIR_VAR).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("model");
    if built.is_dir() { built } else { PathBuf::from("model") }
}

/// A file of the model folder, e.g. `model_file("default.bundle")`.
pub fn model_file(name: &str) -> PathBuf {
    model_dir().join(name)
}

