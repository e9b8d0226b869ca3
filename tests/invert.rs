//! Feature inversion on a real face photo, and its failure modes.

mod common;

use std::sync::atomic::AtomicBool;

use burn::tensor::{Tensor, TensorData};
use deepface::make::invert::{invert, noise_image, targets_from_image, InvertConfig, LayerTarget, RunControl};
use deepface::backbone::vgg::{parse_layers, Layer};
use deepface::{util::imageops, util::metrics, Error};

#[test]
fn reconstructs_a_real_face_from_conv3_1() {
    let device = common::device();
    let vgg = common::default_vgg();
    let photo = imageops::square(&imageops::load(&common::face("solvay_7.png")).unwrap(), 64);
    let layers = parse_layers("conv3_1").unwrap();
    let targets = targets_from_image(&vgg, imageops::to_tensor(&photo, &device), &layers);
    let cfg = InvertConfig { steps: 150, report_every: 25, ..InvertConfig::default() };
    let start = noise_image(64, cfg.init_noise, 0, &device);
    let start_psnr = metrics::psnr(&photo, &pollster::block_on(imageops::tensor_to_image(start.clone())).unwrap());
    let mut losses = Vec::new();
    let out = pollster::block_on(invert(&vgg, &targets, start, &cfg, RunControl { cancel: None, previews: true, on_progress: |p: &_| {
        assert!(p.image.as_ref().is_some_and(|i| i.dimensions() == (64, 64)));
        losses.push(p.loss);
        true
    } }))
    .unwrap();
    let psnr = metrics::psnr(&photo, &out.image);
    let ssim = metrics::ssim(&photo, &out.image);
    println!("start {start_psnr:.2} dB -> {psnr:.2} dB, SSIM {ssim:.3}, losses {losses:?}");
    assert_eq!(losses.len(), 6);
    assert!(losses.last().unwrap() < &(losses[0] * 0.5), "loss did not fall: {losses:?}");
    assert!(psnr > 20.0, "PSNR {psnr:.2} dB");
    assert!(ssim > 0.7, "SSIM {ssim:.3}");
    assert!(start_psnr < 15.0);
}

fn small_setup() -> (deepface::backbone::vgg::Vgg16, Vec<LayerTarget>, burn::tensor::Device) {
    let device = common::device();
    let vgg = common::default_vgg();
    let img = noise_image(32, 0.2, 5, &device);
    let targets = targets_from_image(&vgg, img, &[Layer::all().nth(3).unwrap()]);
    (vgg, targets, device)
}

#[test]
fn non_finite_loss_is_an_error_not_an_image() {
    let (vgg, targets, device) = small_setup();
    let cfg = InvertConfig { steps: 5, report_every: 1, ..InvertConfig::default() };
    // A NaN pixel in the start image poisons the loss at the first step.
    let mut data = vec![0.5f32; 3 * 32 * 32];
    data[100] = f32::NAN;
    let init = Tensor::<4>::from_data(TensorData::new(data, [1, 3, 32, 32]), &device);
    let err = pollster::block_on(invert(&vgg, &targets, init, &cfg, RunControl::silent())).err().expect("NaN must fail");
    assert!(matches!(err, Error::NonFinite { step: 1, .. }), "{err}");
    assert!(err.to_string().contains("diverged at step 1"), "{err}");
    // An infinite target is caught before any step.
    let bad = vec![LayerTarget { target: targets[0].target.clone().add_scalar(f32::INFINITY), ..targets[0].clone() }];
    let init = noise_image(32, 0.05, 0, &device);
    let err = pollster::block_on(invert(&vgg, &bad, init, &cfg, RunControl::silent())).err().expect("inf target must fail");
    assert!(matches!(err, Error::NonFinite { step: 0, .. }), "{err}");
}

#[test]
fn cancellation_by_callback_and_by_flag() {
    let (vgg, targets, device) = small_setup();
    let cfg = InvertConfig { steps: 50, report_every: 3, ..InvertConfig::default() };
    let init = noise_image(32, 0.05, 0, &device);
    let err = pollster::block_on(invert(&vgg, &targets, init.clone(), &cfg, RunControl::reporting(|_| false))).err().unwrap();
    assert!(matches!(err, Error::Cancelled { step: 3 }), "{err}");
    let flag = AtomicBool::new(true);
    let err = pollster::block_on(invert(&vgg, &targets, init, &cfg, RunControl { cancel: Some(&flag), ..RunControl::silent() })).err().unwrap();
    assert!(matches!(err, Error::Cancelled { step: 1 }), "{err}");
}

#[test]
fn bad_settings_are_named() {
    let (vgg, targets, device) = small_setup();
    let init = noise_image(32, 0.05, 0, &device);
    for (cfg, needle) in [
        (InvertConfig { steps: 0, ..InvertConfig::default() }, "steps"),
        (InvertConfig { lr: f32::NAN, ..InvertConfig::default() }, "learning rate"),
        (InvertConfig { norm_alpha: 3, ..InvertConfig::default() }, "even integer"),
        (InvertConfig { tv_weight: -1.0, ..InvertConfig::default() }, "tv weight"),
        (InvertConfig { beta2: 1.0, ..InvertConfig::default() }, "beta2"),
    ] {
        let err = pollster::block_on(invert(&vgg, &targets, init.clone(), &cfg, RunControl::silent())).err().unwrap();
        assert!(err.to_string().contains(needle), "{err} should mention {needle}");
    }
    assert!(imageops::check_size(16).unwrap_err().to_string().contains("at least 32 px"));
}

/// The total variation of one image, as a number.
fn tv_of(t: Tensor<4>) -> f32 {
    deepface::make::invert::total_variation(t).into_data().try_to_vec::<f32>().unwrap()[0]
}

#[test]
fn total_variation_of_known_images() {
    let device = common::device();
    let flat = Tensor::<4>::zeros([1, 3, 8, 8], &device).add_scalar(0.3);
    assert_eq!(tv_of(flat), 0.0);
    // Vertical stripes of 0 and 1: every horizontal neighbour pair differs by 1.
    let stripes: Vec<f32> = (0..3 * 8 * 8).map(|i| (i % 2) as f32).collect();
    let t = Tensor::<4>::from_data(TensorData::new(stripes, [1, 3, 8, 8]), &device);
    assert!((tv_of(t) - 3.0 * 8.0 * 7.0).abs() < 1e-4);
}

#[test]
fn nan_in_the_loss_stops_the_run_with_its_step() {
    let device = common::device();
    let vgg = common::default_vgg();
    let img = noise_image(32, 0.2, 1, &device);
    let targets = targets_from_image(&vgg, img, &["conv1_2".parse().unwrap()]);
    let cfg = InvertConfig { steps: 20, report_every: 5, poison_at: Some(7), ..InvertConfig::default() };
    let mut last = 0;
    let r = pollster::block_on(invert(&vgg, &targets, noise_image(32, 0.05, 2, &device), &cfg, RunControl::reporting(|p| {
        last = p.step;
        true
    })));
    match r {
        Err(Error::NonFinite { step, value }) => {
            assert_eq!(step, 10, "the first report after the NaN must stop the run");
            assert!(value.is_nan());
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a NaN loss was not noticed"),
    }
    assert_eq!(last, 5, "no progress may be reported after the NaN");
}

#[test]
fn match_error_is_zero_for_the_target_image_and_falls_as_inversion_runs() {
    let (vgg, targets, device) = small_setup();
    let own = noise_image(32, 0.2, 5, &device);
    let other = noise_image(32, 0.2, 6, &device);
    let e_own = pollster::block_on(deepface::make::invert::match_error(&vgg, own, &targets)).unwrap();
    let e_other = pollster::block_on(deepface::make::invert::match_error(&vgg, other.clone(), &targets)).unwrap();
    assert!(e_own < 1e-6, "the target image itself: {e_own}");
    assert!(e_other > 0.05, "another noise image: {e_other}");
    let cfg = InvertConfig { steps: 40, ..InvertConfig::default() };
    let out = pollster::block_on(invert(&vgg, &targets, other, &cfg, RunControl::silent())).unwrap();
    let e_after = pollster::block_on(deepface::make::invert::match_error(&vgg, out.tensor, &targets)).unwrap();
    assert!(e_after < 0.5 * e_other, "40 steps: {e_other} -> {e_after}");
}

#[test]
fn tv_of_the_change_smooths_what_is_added_not_the_start_image() {
    // Started from a photo whose own activations are the target, the feature term has nothing
    // to ask: whatever the run changes is the smoothing term's doing.
    let device = common::device();
    let vgg = common::default_vgg();
    let photo = imageops::square(&imageops::load(&common::face("solvay_7.png")).unwrap(), 64);
    let start = imageops::to_tensor(&photo, &device);
    let targets = targets_from_image(&vgg, start.clone(), &parse_layers("conv3_1").unwrap());
    let before = tv_of(start.clone());
    let run = |tv_of_change| {
        let cfg = InvertConfig { steps: 30, lr: 0.02, tv_weight: 1e-2, tv_of_change, report_every: 10, ..InvertConfig::default() };
        pollster::block_on(invert(&vgg, &targets, start.clone(), &cfg, RunControl::silent())).unwrap()
    };
    let (image_tv, change_tv) = (run(false), run(true));
    let (a, b) = (tv_of(image_tv.tensor.clone()), tv_of(change_tv.tensor.clone()));
    assert!(a < 0.8 * before, "the image's own TV smooths the photo: {before} -> {a}");
    assert!(b > 0.97 * before, "the change's TV must leave the photo's edges: {before} -> {b}");
    assert!(metrics::psnr(&photo, &change_tv.image) > metrics::psnr(&photo, &image_tv.image) + 5.0);
}
