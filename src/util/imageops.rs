//! Image decoding, resizing and conversion to and from tensors.

use burn::tensor::{Device, Tensor, TensorData};
use image::{imageops::FilterType, DynamicImage, RgbImage};

use crate::{Error, Result};

/// Larger inputs are refused before decoding: a 12000x12000 RGBA image alone needs 576 MB.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Smallest image side the network is run on: four poolings of a smaller image leave
/// conv5 with nothing to see.
pub const MIN_SIZE: u32 = 32;

/// Decodes PNG or JPEG bytes. `what` names the input in error messages.
pub fn decode(bytes: &[u8], what: &str) -> Result<RgbImage> {
    let err = |reason: String| Error::Image { what: what.to_string(), reason };
    if bytes.is_empty() {
        return Err(err("the file is empty (0 bytes)".into()));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err("not a PNG or JPEG image (unrecognised contents)".into()));
    }
    let (w, h) = reader.into_dimensions().map_err(|e| err(format!("corrupt image header: {e}")))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(err(format!("{w}x{h} is too large; at most {MAX_PIXELS} pixels")));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
    reader.no_limits();
    let img = reader.decode().map_err(|e| err(format!("corrupt or unsupported image data: {e}")))?;
    Ok(img.to_rgb8())
}

/// An RGBA buffer as the browser hands it over (canvas pixels), checked against its size.
pub fn from_rgba(data: &[u8], width: u32, height: u32) -> Result<RgbImage> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels == 0 || data.len() as u64 != pixels * 4 {
        return Err(Error::Image { what: "upload".into(), reason: format!("{} bytes do not make a {width}x{height} RGBA image", data.len()) });
    }
    if pixels > MAX_PIXELS {
        return Err(Error::Image { what: "upload".into(), reason: format!("{width}x{height} is more than {MAX_PIXELS} pixels") });
    }
    Ok(RgbImage::from_fn(width, height, |x, y| {
        let i = (u64::from(y) * u64::from(width) + u64::from(x)) as usize * 4;
        image::Rgb([data[i], data[i + 1], data[i + 2]])
    }))
}

#[cfg(not(target_arch = "wasm32"))]
pub fn load(path: &std::path::Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    decode(&bytes, &path.display().to_string())
}

pub fn check_size(size: u32) -> Result<()> {
    if size < MIN_SIZE {
        return Err(Error::invalid("size", format!("{size} px; at least {MIN_SIZE} px is needed (VGG16 pools the image four times)")));
    }
    if size > 1024 {
        return Err(Error::invalid("size", format!("{size} px; at most 1024 px")));
    }
    Ok(())
}

/// The largest square in the middle of `img`: (x, y, side) in pixels.
pub fn centre_square(img: &RgbImage) -> (u32, u32, u32) {
    let side = img.width().min(img.height());
    ((img.width() - side) / 2, (img.height() - side) / 2, side)
}

/// The square (x, y, side) of `img`, resized to `size` x `size`.
pub fn crop_square(img: &RgbImage, (x, y, side): (u32, u32, u32), size: u32) -> RgbImage {
    resize(&image::imageops::crop_imm(img, x, y, side, side).to_image(), size, size)
}

/// Centre square crop, resized to `size` x `size`.
pub fn square(img: &RgbImage, size: u32) -> RgbImage {
    crop_square(img, centre_square(img), size)
}

pub fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    DynamicImage::ImageRgb8(img.clone()).resize_exact(w, h, FilterType::Lanczos3).to_rgb8()
}

/// Whether `img` is a black-and-white photo: its channels differ by less than 3 levels on
/// average (scans of old photos are rarely exactly grey).
pub fn is_grey(img: &RgbImage) -> bool {
    let spread: u64 = img.pixels().map(|p| u64::from(p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2]))).sum();
    spread < 3 * u64::from(img.width()) * u64::from(img.height())
}

/// `after` with `before`'s colours: each pixel gets `before` plus the change's mean over the
/// three channels, so an edit keeps its light and shade and loses any tint it brought.
pub fn brightness_of_change(before: &RgbImage, after: &RgbImage) -> RgbImage {
    RgbImage::from_fn(after.width(), after.height(), |x, y| {
        let (b0, b1) = (before.get_pixel(x, y), after.get_pixel(x, y));
        let mean = (0..3).map(|c| f32::from(b1[c]) - f32::from(b0[c])).sum::<f32>() / 3.0;
        image::Rgb([0, 1, 2].map(|c| (f32::from(b0[c]) + mean).round().clamp(0.0, 255.0) as u8))
    })
}

/// [1, 3, H, W] tensor of RGB values in [0, 1].
pub fn to_tensor(img: &RgbImage, device: &Device) -> Tensor<4> {
    let (w, h) = img.dimensions();
    let (w, h) = (w as usize, h as usize);
    let mut data = vec![0.0f32; 3 * w * h];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            data[c * w * h + i] = f32::from(p[c]) / 255.0;
        }
    }
    Tensor::from_data(TensorData::new(data, [1, 3, h, w]), device)
}

/// Planar RGB in [0, 1] (one image of a [1, 3, H, W] tensor) to an 8-bit image.
pub fn from_planar(data: &[f32], w: usize, h: usize) -> RgbImage {
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        image::Rgb([0, 1, 2].map(|c| (data[c * w * h + i].clamp(0.0, 1.0) * 255.0).round() as u8))
    })
}

/// Reads a [1, 3, H, W] tensor back to an image. Asynchronous because a blocking read
/// panics in the browser.
pub async fn tensor_to_image(t: Tensor<4>) -> Result<RgbImage> {
    let [_, _, h, w] = t.dims();
    let data = read_f32(t).await?;
    Ok(from_planar(&data, w, h))
}

pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(|e| Error::Backend(format!("{e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

/// Blocking readback, for native code only (a blocking read panics in the browser).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_native<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().map_err(|e| Error::Backend(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_of_change_keeps_the_light_and_drops_the_tint() {
        let before = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(40 + x * 20 + y) as u8, 90, (200 - y * 10) as u8]));
        // A change with colour in it: red up 30, green up 15, blue down 30 (mean +5).
        let after = RgbImage::from_fn(8, 8, |x, y| {
            let p = before.get_pixel(x, y);
            image::Rgb([p[0] + 30, p[1] + 15, p[2] - 30])
        });
        let kept = brightness_of_change(&before, &after);
        for (b, k) in before.pixels().zip(kept.pixels()) {
            assert_eq!([0, 1, 2].map(|c| i32::from(k[c]) - i32::from(b[c])), [5; 3]);
        }
        assert!(is_grey(&brightness_of_change(&RgbImage::from_pixel(4, 4, image::Rgb([70; 3])), &RgbImage::from_pixel(4, 4, image::Rgb([120, 60, 30])))));
    }
}
