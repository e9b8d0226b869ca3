//! `deepface evaluate`: generates faces for several attribute sets and seeds with each
//! conditional model, then measures what a user would check: does our classifier see the
//! requested gender and age group, does the face detector find a face, do seeds and
//! attribute sets give different faces. Also draws the contact sheet.

use std::fmt::Write as _;

use burn::tensor::Device;
use image::RgbImage;

use crate::fit::bundle::{Bundle, ModelKind};
use crate::fit::classifier::decide;
use crate::make::generate::{generate, targets, GenerateOptions};
use crate::make::invert::RunControl;
use crate::backbone::vgg::Vgg16;
use crate::{data::face, Result};

pub struct Generated {
    pub model: ModelKind,
    pub set: usize,
    pub seed: u64,
    pub image: RgbImage,
    pub probs: Vec<f32>,
    /// [`crate::make::invert::match_error`] of the finished 8-bit image against its target.
    pub error: f32,
}

/// Generates every (model, set, seed) face with `base`'s steps, step size and layers (its
/// model and seed are replaced); sets a model cannot express are skipped. The feature error
/// is measured at every layer the model predicts, also those the generation did not match.
pub fn run(vgg: &Vgg16, bundle: &Bundle, models: &[ModelKind], sets: &[String], seeds: &[u64], base: &GenerateOptions, device: &Device) -> Result<Vec<Generated>> {
    // Bad settings are the caller's error, not a set the model cannot express (below).
    crate::make::generate::invert_config(base).validate()?;
    for &model in models {
        crate::make::generate::layers_to_match(bundle, model, base.layers.as_deref())?;
    }
    let clf = bundle.classifier.to_device(device);
    let mut out = Vec::new();
    for &model in models {
        for (k, spec) in sets.iter().enumerate() {
            let req = bundle.vocab.parse(spec)?;
            for &seed in seeds {
                let opts = GenerateOptions { model, seed, ..base.clone() };
                let t = std::time::Instant::now();
                let targets = match pollster::block_on(targets(vgg, bundle, &req, &opts, device)) {
                    Ok(t) => t,
                    Err(crate::Error::Invalid { reason, .. }) => {
                        eprintln!("{model:?} cannot make `{spec}`: {reason}");
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let r = pollster::block_on(generate(vgg, bundle, &req, &targets, &opts, device, RunControl::silent()))?;
                let probs = pollster::block_on(crate::make::edit::classify(vgg, &clf, &r.image, bundle.image_size, device))?;
                let error = pollster::block_on(crate::make::invert::match_error(vgg, crate::util::imageops::to_tensor(&r.image, device), &targets))?;
                eprintln!("{model:?} `{spec}` seed {seed}: {:.1} s", t.elapsed().as_secs_f64());
                out.push(Generated { model, set: k, seed, image: r.image, probs, error });
            }
        }
    }
    Ok(out)
}

fn rms(a: &RgbImage, b: &RgbImage) -> f64 {
    let s: f64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    (s / a.as_raw().len() as f64).sqrt()
}

/// The measurements as a Markdown report.
pub fn report(bundle: &Bundle, sets: &[String], faces: &[Generated]) -> Result<String> {
    let v = &bundle.vocab;
    let mut md = String::new();
    let _ = writeln!(md, "| model | faces | gender agrees | age group agrees | other requested attributes agree | face detected | RMS distance, same set / other seed | RMS distance, same seed / other set | mean feature error |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for model in [ModelKind::Linear, ModelKind::Cgmm] {
        let mine: Vec<&Generated> = faces.iter().filter(|g| g.model == model).collect();
        if mine.is_empty() {
            continue;
        }
        let (mut g_ok, mut g_n, mut a_ok, mut a_n, mut o_ok, mut o_n, mut found) = (0, 0, 0, 0, 0, 0, 0);
        for g in &mine {
            let yes = decide(&g.probs, &bundle.classifier.heads);
            for r in v.parse(&sets[g.set])? {
                let agrees = yes[r.attr] == (r.strength > 0.0);
                let name = v.names[r.attr].as_str();
                if name == "Male" {
                    (g_ok, g_n) = (g_ok + usize::from(agrees), g_n + 1);
                } else if v.group_of(r.attr).is_some_and(|grp| grp.name == "Age") {
                    (a_ok, a_n) = (a_ok + usize::from(agrees), a_n + 1);
                } else {
                    (o_ok, o_n) = (o_ok + usize::from(agrees), o_n + 1);
                }
            }
            found += usize::from(face::is_face(&g.image));
        }
        let (mut d_seed, mut n_seed, mut d_set, mut n_set) = (0.0, 0, 0.0, 0);
        for (i, a) in mine.iter().enumerate() {
            for b in &mine[i + 1..] {
                if a.set == b.set && a.seed != b.seed {
                    d_seed += rms(&a.image, &b.image);
                    n_seed += 1;
                } else if a.seed == b.seed && a.set != b.set {
                    d_set += rms(&a.image, &b.image);
                    n_set += 1;
                }
            }
        }
        let pct = |ok: usize, n: usize| if n == 0 { "-".to_string() } else { format!("{ok}/{n} = {:.0}%", 100.0 * ok as f64 / n as f64) };
        let avg = |d: f64, n: usize| if n == 0 { "-".to_string() } else { format!("{:.1}", d / n as f64) };
        let _ = writeln!(
            md,
            "| {model:?} | {} | {} | {} | {} | {} | {} | {} | {:.4} |",
            mine.len(),
            pct(g_ok, g_n),
            pct(a_ok, a_n),
            pct(o_ok, o_n),
            pct(found, mine.len()),
            avg(d_seed, n_seed),
            avg(d_set, n_set),
            mine.iter().map(|g| f64::from(g.error)).sum::<f64>() / mine.len() as f64
        );
    }
    Ok(md)
}

/// Grid: one row per attribute set, one column per (model, seed); faces scaled 2x.
pub fn contact_sheet(faces: &[Generated], sets: usize, seeds: &[u64], size: u32) -> RgbImage {
    let cell = size * 2 + 4;
    let cols = 2 * seeds.len() as u32;
    let mut sheet = RgbImage::from_pixel(cols * cell + 8, sets as u32 * cell, image::Rgb([255, 255, 255]));
    for g in faces {
        let m = u32::from(g.model == ModelKind::Cgmm);
        let s = seeds.iter().position(|&x| x == g.seed).unwrap_or(0) as u32;
        let x = (m * seeds.len() as u32 + s) * cell + 2 + m * 8;
        let big = image::imageops::resize(&g.image, size * 2, size * 2, image::imageops::FilterType::Nearest);
        image::imageops::overlay(&mut sheet, &big, i64::from(x), i64::from(g.set as u32 * cell + 2));
    }
    sheet
}
