use std::fmt;

/// Every failure deepface reports. Messages name what was expected, so a user can act on them
/// without reading the source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A weights, backbone or model file that is not what it claims to be.
    #[error("{file}: {reason}")]
    Format { file: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("cannot read image {what}: {reason}")]
    Image { what: String, reason: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("the optimisation diverged at step {step}: the loss became {value} (not finite); try a smaller learning rate")]
    NonFinite { step: usize, value: f32 },
    #[error("cancelled at step {step}")]
    Cancelled { step: usize },
    #[error("compute backend failed: {0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io { path: path.to_string(), source }
    }
    pub fn format(file: impl fmt::Display, reason: impl Into<String>) -> Self {
        Error::Format { file: file.to_string(), reason: reason.into() }
    }
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { what: what.into(), reason: reason.into() }
    }
}
