//! Face detection (SeetaFace frontal detector via `rustface`) and square face crops.

use image::RgbImage;

/// The detector's model, embedded so that the browser build needs no extra download.
/// BSD-2 licensed, see `model/NOTICE`.
static SEETA_MODEL: &[u8] = include_bytes!("../model/seeta_fd_frontal_v1.0.bin");

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaceBox {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub score: f64,
}

/// Parsing the 1.2 MB model costs more than detecting in a small image: do it once.
fn model() -> rustface::Model {
    static MODEL: std::sync::OnceLock<rustface::Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| rustface::read_model(SEETA_MODEL).expect("embedded SeetaFace model is valid")).clone()
}

/// Faces in `img`, largest first.
pub fn detect(img: &RgbImage, min_face: u32) -> Vec<FaceBox> {
    let mut detector = rustface::create_detector_with_model(model());
    detector.set_min_face_size(min_face.max(20));
    detector.set_score_thresh(2.0);
    detector.set_pyramid_scale_factor(0.8);
    detector.set_slide_window_step(4, 4);
    let gray = image::imageops::grayscale(img);
    let (w, h) = gray.dimensions();
    if w < 20 || h < 20 {
        return Vec::new();
    }
    let mut faces: Vec<FaceBox> = detector
        .detect(&rustface::ImageData::new(gray.as_raw(), w, h))
        .into_iter()
        .map(|f| {
            let b = f.bbox();
            FaceBox { x: b.x(), y: b.y(), width: b.width(), height: b.height(), score: f.score() }
        })
        .collect();
    faces.sort_by_key(|f| std::cmp::Reverse(f.width * f.height));
    faces
}

/// A square crop around `face`, enlarged by `margin` (0.4 = 40% more on each side's total),
/// clamped inside the image, resized to `size`.
pub fn crop(img: &RgbImage, face: &FaceBox, margin: f32, size: u32) -> RgbImage {
    let side = (face.width.max(face.height) as f32 * (1.0 + margin)).round() as i64;
    let side = side.min(i64::from(img.width().min(img.height())));
    let cx = i64::from(face.x) + i64::from(face.width) / 2;
    let cy = i64::from(face.y) + i64::from(face.height) / 2;
    let x = (cx - side / 2).clamp(0, i64::from(img.width()) - side);
    let y = (cy - side / 2).clamp(0, i64::from(img.height()) - side);
    let c = image::imageops::crop_imm(img, x as u32, y as u32, side as u32, side as u32).to_image();
    crate::imageops::resize(&c, size, size)
}
