//! VGG activations of a whole data set, computed in batches and cached on disk (f16), so
//! that re-fitting with other settings costs seconds instead of a pass through the network.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use half::f16;

use crate::backbone::vgg::{Layer, Vgg16};
use crate::{util::imageops, Error, Result};

const MAGIC: &[u8; 8] = b"DFFEAT01";

/// Activations of several layers for many images, one row per image: the layers' [C, H, W]
/// blocks one after another.
pub struct Features {
    pub layers: Vec<(Layer, [usize; 3])>,
    pub dim: usize,
    pub rows: usize,
    data: Vec<f16>,
}

impl Features {
    pub fn row(&self, i: usize) -> &[f16] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Where layer `k`'s block lies within a row.
    pub fn span(&self, k: usize) -> std::ops::Range<usize> {
        let start: usize = self.layers[..k].iter().map(|(_, s)| s.iter().product::<usize>()).sum();
        start..start + self.layers[k].1.iter().product::<usize>()
    }

    pub fn position(&self, layer: Layer) -> Result<usize> {
        self.layers.iter().position(|(l, _)| *l == layer).ok_or_else(|| Error::invalid("layer", format!("{layer} was not extracted")))
    }

    /// Rows `idx` of layer block `k` as f32, row-major.
    pub fn gather(&self, idx: &[usize], k: usize) -> Vec<f32> {
        let span = self.span(k);
        let mut out = Vec::with_capacity(idx.len() * span.len());
        for &i in idx {
            out.extend(self.row(i)[span.clone()].iter().map(|v| v.to_f32()));
        }
        out
    }

    /// Rows `idx`, whole, as f32.
    pub fn gather_all(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            out.extend(self.row(i).iter().map(|v| v.to_f32()));
        }
        out
    }

    /// Layer block `k` of rows `idx` as a [N, C, H, W] tensor.
    pub fn tensor(&self, idx: &[usize], k: usize, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.layers[k].1;
        Tensor::from_data(burn::tensor::TensorData::new(self.gather(idx, k), [idx.len(), c, h, w]), device)
    }
}

/// Runs the network over `paths` (each centre-cropped and resized to `size`), keeping
/// `layers`. With `cache`, the result is stored under a name derived from `key`, the
/// settings and every file's name and length, and reused when they all match.
pub fn extract(vgg: &Vgg16, device: &Device, paths: &[PathBuf], size: u32, layers: &[Layer], key: &str, cache: Option<&Path>) -> Result<Features> {
    let shapes: Vec<(Layer, [usize; 3])> = layers.iter().map(|&l| (l, l.shape(size as usize))).collect();
    let dim: usize = shapes.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    let cache_file = cache.map(|dir| {
        let mut id = format!("{key}|{size}|{}", layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(","));
        for p in paths {
            let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            id.push_str(&format!("|{}:{len}", p.display()));
        }
        dir.join(format!("{}.f16", &crate::backbone::weights::sha256_hex(id.as_bytes())[..16]))
    });
    if let Some(f) = &cache_file {
        if let Some(feats) = read_cache(f, &shapes, dim, paths.len()) {
            eprintln!("features: {} images from cache {}", paths.len(), f.display());
            return Ok(feats);
        }
    }
    let bar = indicatif::ProgressBar::new(paths.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("features {bar:30} {pos}/{len} images, {per_sec}, eta {eta}").expect("valid template"),
    );
    let mut data = Vec::with_capacity(paths.len() * dim);
    for chunk in paths.chunks(32) {
        let imgs = chunk
            .iter()
            .map(|p| imageops::load(p).map(|img| imageops::to_tensor(&imageops::square(&img, size), device)))
            .collect::<Result<Vec<_>>>()?;
        let acts = vgg.forward(Tensor::cat(imgs, 0), layers);
        let host: Vec<Vec<f32>> = acts.into_iter().map(imageops::read_native).collect::<Result<_>>()?;
        for b in 0..chunk.len() {
            for (h, (_, s)) in host.iter().zip(&shapes) {
                let n: usize = s.iter().product();
                data.extend(h[b * n..(b + 1) * n].iter().map(|&v| f16::from_f32(v)));
            }
        }
        bar.inc(chunk.len() as u64);
        // Logs (no terminal) get a line every 2,000 images instead of a bar.
        if bar.is_hidden() && (data.len() / dim) % 2000 < chunk.len() {
            eprintln!("features: {}/{} images", data.len() / dim, paths.len());
        }
    }
    bar.finish_and_clear();
    let feats = Features { layers: shapes, dim, rows: paths.len(), data };
    if !feats.data.iter().all(|v| v.is_finite()) {
        return Err(Error::Backend("the network produced non-finite activations".into()));
    }
    if let Some(f) = &cache_file {
        write_cache(f, &feats)?;
    }
    Ok(feats)
}

fn read_cache(path: &Path, shapes: &[(Layer, [usize; 3])], dim: usize, rows: usize) -> Option<Features> {
    let bytes = std::fs::read(path).ok()?;
    let body = bytes.strip_prefix(MAGIC)?;
    if body.len() != rows * dim * 2 {
        return None;
    }
    let data = body.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]])).collect();
    Some(Features { layers: shapes.to_vec(), dim, rows, data })
}

/// Written under a temporary name and renamed: an interrupted run leaves no cache that
/// would later be read as complete.
fn write_cache(path: &Path, feats: &Features) -> Result<()> {
    crate::util::platform::write_atomic(path, |f| {
        f.write_all(MAGIC)?;
        for v in &feats.data {
            f.write_all(&v.to_le_bytes())?;
        }
        Ok(())
    })
}
