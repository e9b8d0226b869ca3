//! Face detection (SeetaFace frontal detector via `rustface`) and square face crops.

use image::RgbImage;
use crate::util::imageops;

/// The detector's model, embedded so that the browser build needs no extra download.
/// BSD-2 licensed, see `model/NOTICE`.
static SEETA_MODEL: &[u8] = include_bytes!("../../model/seeta_fd_frontal_v1.0.bin");

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

/// Whether a generated image (a face filling a small square frame) holds a face the detector
/// accepts: the one test of "is it a face" for the page's verdict, the evaluation and the
/// training-data filter. The detector's smallest window is 20 px, so the image is looked at
/// 128 px wide (faces filling a 64 px frame are found far more reliably after the upscale), and
/// a face must be [`MIN_FRAME_FACE`] or more: a face-like texture in a corner does not count.
pub fn is_face(img: &RgbImage) -> bool {
    !frame_faces(img).is_empty()
}

/// The side of the square [`frame_faces`] looks at a generated image in.
pub const FRAME_SIDE: u32 = 128;

/// The smallest face [`frame_faces`] counts in a [`FRAME_SIDE`] square, in pixels.
pub const MIN_FRAME_FACE: u32 = 40;

/// The faces [`is_face`] counts, in the coordinates of a [`FRAME_SIDE`] square: the one rule
/// for finding a face in a small square frame, so callers that need the boxes (where the
/// generator draws its faces) apply exactly the rule that decides "is it a face".
pub fn frame_faces(img: &RgbImage) -> Vec<FaceBox> {
    detect(&imageops::resize(img, FRAME_SIDE, FRAME_SIDE), MIN_FRAME_FACE)
}

/// Where a face's detector box sits in a square crop: the box's side as a fraction of the
/// crop's, and the box's centre in fractions of the crop's side (x, y from the top left).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub box_side: f32,
    pub centre: (f32, f32),
}

impl Frame {
    /// The box in the middle, enlarged by `margin` (0.4 = 40% more side).
    pub fn margin(margin: f32) -> Frame {
        Frame { box_side: 1.0 / (1.0 + margin), centre: (0.5, 0.5) }
    }
}

/// The square that puts `face` where `frame` says, moved inside the image: (x, y, side) in
/// pixels.
pub fn crop_rect(img: &RgbImage, face: &FaceBox, frame: Frame) -> (u32, u32, u32) {
    let side = (face.width.max(face.height) as f32 / frame.box_side).round() as i64;
    let side = side.min(i64::from(img.width().min(img.height())));
    let cx = f64::from(face.x) + f64::from(face.width) / 2.0;
    let cy = f64::from(face.y) + f64::from(face.height) / 2.0;
    let x = ((cx - f64::from(frame.centre.0) * side as f64).round() as i64).clamp(0, i64::from(img.width()) - side);
    let y = ((cy - f64::from(frame.centre.1) * side as f64).round() as i64).clamp(0, i64::from(img.height()) - side);
    (x as u32, y as u32, side as u32)
}

/// [`crop_rect`]'s square, resized to `size`.
pub fn crop(img: &RgbImage, face: &FaceBox, frame: Frame, size: u32) -> RgbImage {
    imageops::crop_square(img, crop_rect(img, face, frame), size)
}

/// Applies an edit made at low resolution to the full-resolution square (x, y, side) of
/// `photo`: the change `after - before` is scaled up and added, so the photo keeps its own
/// fine detail, through a mask that is 1 in the middle and falls smoothly to 0 at the
/// square's edge, so no seam shows.
pub fn paste_back(photo: &RgbImage, before: &RgbImage, after: &RgbImage, (x, y, side): (u32, u32, u32)) -> RgbImage {
    let up = |i: &RgbImage| image::imageops::resize(i, side, side, image::imageops::FilterType::Triangle);
    let (before, after) = (up(before), up(after));
    let mut out = photo.clone();
    let half = side as f32 / 2.0;
    for py in 0..side {
        for px in 0..side {
            // Distance from the centre in units of the half side (max-norm blended with the
            // Euclidean one: a rounded square), then a cosine ramp over its outer 30%.
            let dx = (px as f32 + 0.5 - half) / half;
            let dy = (py as f32 + 0.5 - half) / half;
            let r = (0.5 * dx.abs().max(dy.abs()) + 0.5 * (dx * dx + dy * dy).sqrt()).min(1.0);
            let w = if r < 0.7 { 1.0 } else { 0.5 * (1.0 + (std::f32::consts::PI * (r - 0.7) / 0.3).cos()) };
            let (ox, oy) = (x + px, y + py);
            let (a, b0, b1) = (photo.get_pixel(ox, oy), before.get_pixel(px, py), after.get_pixel(px, py));
            let change = [0, 1, 2].map(|c| f32::from(b1[c]) - f32::from(b0[c]));
            let mixed = image::Rgb([0, 1, 2].map(|c| (f32::from(a[c]) + w * change[c]).round().clamp(0.0, 255.0) as u8));
            out.put_pixel(ox, oy, mixed);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crop_puts_the_box_where_the_frame_says_and_stays_inside_the_image() {
        let img = RgbImage::new(400, 300);
        let face = FaceBox { x: 150, y: 100, width: 80, height: 80, score: 10.0 };
        let frame = Frame { box_side: 0.5, centre: (0.5, 0.6) };
        let (x, y, side) = crop_rect(&img, &face, frame);
        assert_eq!(side, 160);
        // The box's centre (190, 140) lands at (0.5, 0.6) of the square.
        assert_eq!((x, y), (190 - 80, 140 - 96));
        // The centred frame of a margin is the old crop: the box in the middle.
        assert_eq!(crop_rect(&img, &face, Frame::margin(1.0)), (110, 60, 160));
        // Near the edge the square moves inside the image; too large, it shrinks to fit.
        let corner = FaceBox { x: 0, y: 250, width: 40, height: 40, score: 10.0 };
        let (x, y, side) = crop_rect(&img, &corner, frame);
        assert_eq!((x, y + side), (0, 300));
        let huge = FaceBox { x: 0, y: 0, width: 300, height: 300, score: 10.0 };
        assert_eq!(crop_rect(&img, &huge, frame).2, 300);
    }

    #[test]
    fn paste_back_adds_the_change_inside_the_square_and_nothing_outside() {
        let colour = RgbImage::from_fn(40, 40, |x, y| image::Rgb([100 + (x % 50) as u8, 60, 40 + (y % 30) as u8]));
        let before = imageops::resize(&colour, 8, 8);
        let after = RgbImage::from_fn(8, 8, |x, y| {
            let p = before.get_pixel(x, y);
            image::Rgb([p[0] + 30, p[1], p[2]])
        });
        let out = paste_back(&colour, &before, &after, (0, 0, 40));
        assert_eq!(i32::from(out.get_pixel(20, 20)[0]) - i32::from(colour.get_pixel(20, 20)[0]), 30);
        assert_eq!(out.get_pixel(20, 20)[1], colour.get_pixel(20, 20)[1]);
        assert_eq!(out.get_pixel(0, 0), colour.get_pixel(0, 0), "the square's corner is untouched");
    }
}
