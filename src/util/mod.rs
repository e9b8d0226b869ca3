//! Plumbing every stage shares: image conversion, small linear algebra, the seeded RNG, the
//! clock and yielding on each platform, image metrics, the Adam step, where the model files live.
//! Uses nothing else of deepface.

pub mod imageops;
pub mod linalg;
pub mod metrics;
pub mod optim;
pub mod paths;
pub mod platform;
pub mod rng;
