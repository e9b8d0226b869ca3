//! Image quality measures for reconstructions.

use image::RgbImage;

/// Peak signal-to-noise ratio in dB over all channels (8-bit peak).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "psnr of images of different sizes");
    let n = a.as_raw().len() as f64;
    let mse = a.as_raw().iter().zip(b.as_raw()).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>() / n;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01,
/// K2 0.03, computed per channel and averaged, over the window positions inside the image.
pub fn ssim(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "ssim of images of different sizes");
    let (w, h) = (a.width() as usize, a.height() as usize);
    const R: usize = 5;
    if w <= 2 * R || h <= 2 * R {
        return f64::NAN;
    }
    let g: Vec<f64> = (0..=2 * R).map(|i| (-((i as f64 - R as f64).powi(2)) / (2.0 * 1.5 * 1.5)).exp()).collect();
    let gs: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / gs).collect();
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    for c in 0..3 {
        let plane = |img: &RgbImage| -> Vec<f64> { img.pixels().map(|p| f64::from(p[c])).collect() };
        let (x, y) = (plane(a), plane(b));
        let prod = |p: &[f64], q: &[f64]| -> Vec<f64> { p.iter().zip(q).map(|(u, v)| u * v).collect() };
        let blur = |p: &[f64]| -> Vec<f64> { separable(p, w, h, &g) };
        let (mx, my) = (blur(&x), blur(&y));
        let (sxx, syy, sxy) = (blur(&prod(&x, &x)), blur(&prod(&y, &y)), blur(&prod(&x, &y)));
        for j in R..h - R {
            for i in R..w - R {
                let k = j * w + i;
                let (ux, uy) = (mx[k], my[k]);
                let (vx, vy, cxy) = (sxx[k] - ux * ux, syy[k] - uy * uy, sxy[k] - ux * uy);
                total += ((2.0 * ux * uy + c1) * (2.0 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                count += 1;
            }
        }
    }
    total / count as f64
}

/// Separable filter, valid where the window fits (edges are left as computed with clamping,
/// and never read by `ssim`).
fn separable(p: &[f64], w: usize, h: usize, g: &[f64]) -> Vec<f64> {
    let r = g.len() / 2;
    let mut tmp = vec![0.0; p.len()];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] = g.iter().enumerate().map(|(k, gk)| gk * p[y * w + (x + k).saturating_sub(r).min(w - 1)]).sum();
        }
    }
    let mut out = vec![0.0; p.len()];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = g.iter().enumerate().map(|(k, gk)| gk * tmp[(y + k).saturating_sub(r).min(h - 1) * w + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u64, w: u32, h: u32) -> RgbImage {
        let mut rng = crate::util::rng::Rng::new(seed);
        RgbImage::from_fn(w, h, |_, _| image::Rgb([0, 0, 0].map(|_: u8| (rng.uniform() * 255.0) as u8)))
    }

    #[test]
    fn identical_images() {
        let a = noise(1, 32, 32);
        assert!(psnr(&a, &a).is_infinite());
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn unrelated_noise_is_dissimilar() {
        let (a, b) = (noise(1, 32, 32), noise(2, 32, 32));
        assert!(psnr(&a, &b) < 10.0);
        assert!(ssim(&a, &b) < 0.1);
    }

    #[test]
    fn psnr_of_known_error() {
        let a = RgbImage::from_pixel(8, 8, image::Rgb([100, 100, 100]));
        let b = RgbImage::from_pixel(8, 8, image::Rgb([110, 110, 110]));
        // MSE 100 -> 10 log10(65025 / 100) = 28.13 dB.
        assert!((psnr(&a, &b) - 28.1308).abs() < 1e-3);
    }
}
