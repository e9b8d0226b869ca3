//! The inversion-step benchmark, shared by `deepface bench` and the browser's
//! `DeepFace.bench`, so both time exactly the same work.

use burn::tensor::Device;

use crate::make::invert::{invert, noise_image, targets_from_image, InvertConfig, RunControl};
use crate::util::platform::now_ms;
use crate::backbone::vgg::{Layer, Vgg16};
use crate::{util::imageops, Error, Result};

pub struct Timing {
    /// Median and fastest ms per step (forward + backward + Adam) over the runs.
    pub step_ms: f64,
    pub step_ms_min: f64,
    /// Median ms of a forward pass alone (read back, so the work is finished).
    pub forward_ms: f64,
    /// Counted FLOPs of one forward pass (a step is about twice that).
    pub forward_flops: f64,
}


fn median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

/// Times `runs` inversions of `steps` steps at `size` px toward the activations of a noise
/// image at `layers` (default inversion settings), after one untimed warm-up run.
pub async fn time_steps(vgg: &Vgg16, layers: &[Layer], size: usize, steps: usize, runs: usize, device: &Device) -> Result<Timing> {
    imageops::check_size(size as u32)?;
    let deepest = *layers.iter().max().ok_or_else(|| Error::invalid("layers", "none given"))?;
    let (steps, runs) = (steps.max(1), runs.max(1));
    let targets = targets_from_image(vgg, noise_image(size, 0.2, 1, device), layers);
    let cfg = InvertConfig { steps, report_every: steps, ..InvertConfig::default() };
    let init = noise_image(size, 0.05, 2, device);
    invert(vgg, &targets, init.clone(), &InvertConfig { steps: 2, ..cfg.clone() }, RunControl::silent()).await?;
    let mut per_step = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = now_ms();
        invert(vgg, &targets, init.clone(), &cfg, RunControl::silent()).await?;
        per_step.push((now_ms() - t) / steps as f64);
    }
    let mut forward = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = now_ms();
        for o in vgg.forward(init.clone(), layers) {
            imageops::read_f32(o.sum()).await?;
        }
        forward.push(now_ms() - t);
    }
    let (step_ms, step_ms_min) = median(per_step);
    Ok(Timing { step_ms, step_ms_min, forward_ms: median(forward).0, forward_flops: deepest.forward_flops(size) })
}
