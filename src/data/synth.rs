//! `deepface synth`: a folder of synthetic 64x64 faces from the DCGAN generator, keeping only
//! those the face detector accepts (the same detector the app uses on selfies).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use rayon::prelude::*;

use crate::data::dcgan::{self, Generator};
use crate::{data::face, util::imageops, Error, Result};

pub const IMAGE_DIR: &str = "img_align_celeba";

pub struct SynthReport {
    pub kept: usize,
    pub dropped: usize,
    pub out: PathBuf,
}

/// Generates faces until `count` pass the detector (giving up after `4 * count` tries).
/// Files are written to `out.partial` and renamed to `out` only when complete, so an
/// interrupted run never leaves a folder that looks finished.
pub fn synth(checkpoint: &Path, out: &Path, count: usize, seed: u64, batch: usize, device: &Device, mut progress: impl FnMut(usize, usize)) -> Result<SynthReport> {
    if count == 0 {
        return Err(Error::invalid("count", "0; ask for at least one face"));
    }
    if out.exists() {
        return Err(Error::invalid("output folder", format!("{} already exists; choose a new folder", out.display())));
    }
    let tensors = dcgan::read_checkpoint(checkpoint, Some("netG_state_dict"))?;
    let generator = Generator::from_state_dict(&tensors, &checkpoint.display().to_string(), device)?;
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let images = partial.join(IMAGE_DIR);
    std::fs::create_dir_all(&images).map_err(|e| Error::io(images.display(), e))?;
    // `tried` counts the images examined, so the drop rate is exact even in the last batch.
    let (mut kept, mut tried) = (0usize, 0u64);
    while kept < count {
        if tried >= 4 * count as u64 + 64 {
            return Err(Error::invalid("generator", format!("only {kept} of {tried} generated images contained a detectable face")));
        }
        let n = batch.max(1);
        let (_, imgs) = generator.sample(seed, tried, n, device);
        let data = crate::util::imageops::read_native(imgs)?;
        let imgs: Vec<_> = (0..n).map(|i| imageops::from_planar(&data[i * 3 * 64 * 64..(i + 1) * 3 * 64 * 64], dcgan::SIZE, dcgan::SIZE)).collect();
        // Detection dominates the run time: one thread per core.
        let found: Vec<bool> = imgs.par_iter().map(face::is_face).collect();
        for (img, found) in imgs.into_iter().zip(found) {
            if kept == count {
                break;
            }
            let index = tried;
            tried += 1;
            if found {
                kept += 1;
                // The name records the latent index, so any image can be regenerated.
                let name = format!("{kept:06}_{index}.png");
                img.save(images.join(&name)).map_err(|e| Error::Image { what: name, reason: e.to_string() })?;
            }
        }
        progress(kept, tried as usize);
    }
    let meta = serde_json::json!({
        "generator": "gan-face-generate==1.1.1 DCGAN (trained on DigiFace-1M: non-commercial research use only)",
        "seed": seed, "kept": kept, "generated": tried, "dropped_by_face_detector": tried as usize - kept,
    });
    std::fs::write(partial.join("synth.json"), serde_json::to_string_pretty(&meta).unwrap() + "\n").map_err(|e| Error::io(partial.display(), e))?;
    std::fs::write(partial.join("NOTICE"), NOTICE).map_err(|e| Error::io(partial.display(), e))?;
    std::fs::rename(&partial, out).map_err(|e| Error::io(out.display(), e))?;
    Ok(SynthReport { kept, dropped: tried as usize - kept, out: out.to_path_buf() })
}

pub const NOTICE: &str = "Images made by the DCGAN generator of PyPI gan-face-generate==1.1.1 (MIT code),\n\
trained on DigiFace-1M (Microsoft), which is licensed for non-commercial research use only.\n\
These images and any model fitted on them inherit that restriction.\n";
