//! A small, fast slice of the independent scoreboard (the full one is `scripts/quality.sh`):
//! faces generated with the default model and prior are judged by networks generation never
//! backpropagates through - the FER expression network, the dlib gender network (run by
//! deepface's ONNX executor) and the SeetaFace detector - with generous bounds, so that a change
//! that breaks what users see fails the tests. Also the generator prior's bad inputs, the
//! fit of a photo in the generator that `alter --method generator` starts from, and the
//! frame an edit crops a photo's face into (where the generator draws its faces).

mod common;

use deepface::data::face;
use deepface::data::label::FaceLabels;
use deepface::fit::bundle::Bundle;
use deepface::make::generate::{default_steps, generate, targets, GenerateOptions};
use deepface::make::invert::RunControl;
use deepface::make::prior::ImagePrior;
use deepface::Error;

fn bundle() -> Bundle {
    Bundle::from_bytes(&std::fs::read(common::repo().join("model/default.bundle")).unwrap(), "default").unwrap()
}

fn options(bundle: &Bundle, seed: u64, prior: ImagePrior) -> GenerateOptions {
    GenerateOptions { model: bundle.default_model, seed, steps: default_steps(prior), temperature: None, gain: None, lr: None, layers: None, poison_at: None, prior, prior_gain: None }
}

#[test]
fn independent_networks_see_what_was_asked_in_generated_faces() {
    let dev = common::device();
    let (vgg, bundle) = (common::default_vgg(), bundle());
    assert!(bundle.prior.is_some(), "the default model carries the generator prior");
    let labeler = common::labeler();
    let judge = |spec: &str| -> Vec<(FaceLabels, bool)> {
        let req = bundle.vocab.parse(spec).unwrap();
        let faces: Vec<_> = (1..=4)
            .map(|seed| {
                let opts = options(&bundle, seed, ImagePrior::Generator);
                let t = pollster::block_on(targets(&vgg, &bundle, &req, &opts, &dev)).unwrap();
                pollster::block_on(generate(&vgg, &bundle, &req, &t, &opts, &dev, RunControl::silent())).unwrap().image
            })
            .collect();
        labeler.predict(&faces).unwrap().into_iter().zip(faces.iter().map(face::is_face)).collect()
    };
    let [smiling, serious, male, female] = ["Smiling", "-Smiling", "Male", "-Male"].map(judge);
    let all: Vec<&(FaceLabels, bool)> = smiling.iter().chain(&serious).chain(&male).chain(&female).collect();
    let found = all.iter().filter(|(_, f)| *f).count();
    assert!(found >= 12, "SeetaFace finds a face in {found} of 16 generated faces");
    let happy = |v: &[(FaceLabels, bool)]| v.iter().filter(|(l, _)| l.p_smiling > 0.5).count();
    assert!(happy(&smiling) >= 3 && happy(&serious) <= 1, "FER reads {} of 4 Smiling and {} of 4 -Smiling faces as smiling", happy(&smiling), happy(&serious));
    let p_male = |v: &[(FaceLabels, bool)]| v.iter().map(|(l, _)| l.p_male).sum::<f32>() / v.len() as f32;
    assert!(p_male(&male) > p_male(&female) + 0.2, "dlib's P(male): {:.2} for Male faces, {:.2} for -Male", p_male(&male), p_male(&female));
}

#[test]
fn the_generator_route_holds_the_code_near_the_seeds_own_and_its_residual_small() {
    // The anchor is what keeps two seeds of a request apart (docs/method.md): without it the
    // code drifts toward the one face the model's target describes. The residual inside the
    // generator then matches the target more closely than the held code can alone, and stays
    // a correction of the seed's face, not a new face.
    use deepface::data::dcgan::Generator;
    use deepface::make::generate::{latent_config, layers_to_match};
    use burn::tensor::Tensor;
    use deepface::make::prior::{self, LatentRoute, ANCHOR_WEIGHT};
    let dev = common::device();
    let (vgg, bundle) = (common::default_vgg(), bundle());
    let p = bundle.prior.as_ref().unwrap();
    let g = Generator::new(&p.generator, &dev);
    let req = bundle.vocab.parse("Senior,-Smiling").unwrap();
    let opts = options(&bundle, 5, ImagePrior::Generator);
    let want = layers_to_match(&bundle, opts.model, None).unwrap();
    let t: Vec<_> = pollster::block_on(targets(&vgg, &bundle, &req, &opts, &dev)).unwrap().into_iter().filter(|t| want.contains(&t.layer)).collect();
    let z0 = prior::code(p, &req, opts.seed, None, &dev);
    let cfg = latent_config(&opts);
    let run = |route: LatentRoute| pollster::block_on(prior::invert_latent(&vgg, &g, &t, z0.clone(), route, &cfg, RunControl::silent())).unwrap();
    let moved = |z: Tensor<2>| -> f32 { (z - z0.clone()).square().mean().into_scalar() };
    let free = moved(run(LatentRoute { anchor: 0.0, detail: None }).1);
    let (code_only, z_held) = run(LatentRoute { anchor: ANCHOR_WEIGHT, detail: None });
    let held = moved(z_held);
    println!("mean squared move of the code: {free:.3} free, {held:.3} anchored");
    assert!(held > 0.0 && held < 0.5 * free, "anchored {held:.3} against free {free:.3}");

    let (with_detail, _) = run(LatentRoute::GENERATION);
    let first = prior::render(&g, z0.clone());
    let rms = |a: Tensor<4>, b: Tensor<4>| -> f32 { (a - b).square().mean().sqrt().into_scalar() };
    let (by_code, by_detail) = (rms(code_only.tensor.clone(), first.clone()), rms(with_detail.tensor.clone(), code_only.tensor.clone()));
    println!("objective {:.4} code alone, {:.4} with the residual; RMS change from the first face {by_code:.4}, the residual's own {by_detail:.4}", code_only.loss, with_detail.loss);
    assert!(with_detail.loss < code_only.loss, "the residual should match the target better: {} against {}", with_detail.loss, code_only.loss);
    assert!(by_detail > 0.002 && by_detail < 0.1, "the residual's change of the image (RMS, of 1) should be a correction: {by_detail:.4}");
}

#[test]
fn the_generator_prior_refuses_what_it_cannot_do() {
    let dev = common::device();
    let (vgg, mut bundle) = (common::default_vgg(), bundle());
    let req = bundle.vocab.parse("Male").unwrap();
    // NaN in the code stops the run like NaN in the pixels does.
    let opts = GenerateOptions { poison_at: Some(3), ..options(&bundle, 1, ImagePrior::Generator) };
    let t = pollster::block_on(targets(&vgg, &bundle, &req, &opts, &dev)).unwrap();
    let e = pollster::block_on(generate(&vgg, &bundle, &req, &t, &opts, &dev, RunControl::silent())).err().expect("NaN stops the run");
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
    // A start that does not fit the route is refused, not cut to fit: a code and residual
    // for a route that moves the code alone, or a width that is neither.
    {
        use deepface::data::dcgan::{Generator, LATENT};
        use deepface::make::prior::{invert_latent, LatentRoute};
        let g = Generator::new(&bundle.prior.as_ref().unwrap().generator, &dev);
        let cfg = deepface::make::generate::latent_config(&options(&bundle, 1, ImagePrior::Generator));
        let start = |n: usize| burn::tensor::Tensor::<2>::zeros([1, n], &dev);
        let refuse = |n: usize, route| pollster::block_on(invert_latent(&vgg, &g, &t, start(n), route, &cfg, RunControl::silent())).err().expect("refused").to_string();
        let e = refuse(LATENT + 256 * 8 * 8, LatentRoute { anchor: 0.0, detail: None });
        assert!(e.contains("code alone") && e.contains(&LATENT.to_string()), "{e}");
        let e = refuse(LATENT + 7, LatentRoute::GENERATION);
        assert!(e.contains(&format!("{} numbers", LATENT + 7)), "{e}");
    }
    // A bundle from before the prior: generator modes say why, pixels still work.
    bundle.prior = None;
    let bytes = bundle.to_bytes().unwrap();
    let old = Bundle::from_bytes(&bytes, "old").unwrap();
    assert!(old.prior.is_none());
    for prior in [ImagePrior::Generator, ImagePrior::Latent] {
        let opts = options(&old, 1, prior);
        let e = pollster::block_on(generate(&vgg, &old, &req, &t, &opts, &dev, RunControl::silent())).err().expect("no generator").to_string();
        assert!(e.contains("no face generator") && e.contains("pixels"), "{e}");
    }
    let opts = GenerateOptions { steps: 2, ..options(&old, 1, ImagePrior::Pixels) };
    assert!(pollster::block_on(generate(&vgg, &old, &req, &t, &opts, &dev, RunControl::silent())).is_ok());
    // A damaged generator tensor is refused with its name (checksum recomputed, so the parser
    // behind it is what answers).
    let mut with = std::fs::read(common::repo().join("model/default.bundle")).unwrap();
    corrupt_first_generator_value(&mut with);
    let e = Bundle::from_bytes(&with, "damaged").expect_err("NaN in the generator is refused").to_string();
    assert!(e.contains("prior.gen.weight0") && e.contains("non-finite"), "{e}");
}

/// Writes f16 NaN over the first value of `prior.gen.weight0` and recomputes the checksum.
fn corrupt_first_generator_value(bytes: &mut [u8]) {
    use sha2::Digest;
    let hlen = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + hlen]).unwrap();
    let offset = header["tensors"].as_array().unwrap().iter().find(|t| t["name"] == "prior.gen.weight0").unwrap()["offset"].as_u64().unwrap() as usize;
    let at = 20 + hlen + offset;
    bytes[at..at + 2].copy_from_slice(&half::f16::NAN.to_le_bytes());
    let end = bytes.len() - 32;
    let hash: [u8; 32] = sha2::Sha256::digest(&bytes[..end]).into();
    bytes[end..].copy_from_slice(&hash);
}

#[test]
fn a_photos_fit_in_the_generator_is_the_photos_face_and_an_edit_through_it_does_what_was_asked() {
    // The fit once started at z = 0, where no gradient reached the code; and with the code
    // alone it was another person, so an edit's change landed beside the photo's features.
    use deepface::data::dcgan::{Generator, LATENT};
    use deepface::make::edit::{self, EditMethod, EditOptions, PHOTO_FIT};
    use deepface::make::prior::LatentRoute;
    use deepface::util::imageops::{load, to_tensor};
    let dev = common::device();
    let (vgg, bundle) = (common::default_vgg(), bundle());
    let g = Generator::new(&bundle.prior.as_ref().unwrap().generator, &dev);
    let photo = load(&common::repo().join("data/real_faces/astronaut_collins.png")).unwrap();
    let (crop, faces) = edit::face_crop(&photo, bundle.image_size);
    assert!(!faces.is_empty(), "the committed photo shows a face");
    let fit = |crop: &image::RgbImage, steps, route| pollster::block_on(edit::fit_in_generator(&vgg, &bundle, &g, crop, steps, 0, route, &dev, RunControl::silent())).unwrap();
    let code = |p: burn::tensor::Tensor<2>| -> Vec<f32> { p.slice([0..1, 0..LATENT]).into_data().try_to_vec::<f32>().unwrap() };
    let ((first, p1), (last, p40)) = (fit(&crop, 1, PHOTO_FIT), fit(&crop, 40, PHOTO_FIT));
    let mean_sq = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / a.len() as f32;
    let moved = mean_sq(&code(p1), &code(p40.clone()));
    println!("feature loss {:.4} after 1 step, {:.4} after 40; mean squared move of the code {moved:.3}", first.loss, last.loss);
    assert!(moved > 0.01, "the code moved by {moved:.4} between step 1 and step 40");
    assert!(last.loss < 0.8 * first.loss, "loss {:.4} -> {:.4}", first.loss, last.loss);
    // The residual makes the fit the photo's face: in pixels, far closer than the code alone.
    let target = to_tensor(&crop, &dev);
    let rms = |x: burn::tensor::Tensor<4>| -> f32 { (x - target.clone()).square().mean().sqrt().into_scalar() };
    let (code_only, _) = fit(&crop, 40, LatentRoute { anchor: 0.0, detail: None });
    let (with_residual, code_alone) = (rms(last.tensor.clone()), rms(code_only.tensor));
    println!("RMS pixel distance of the fit from the photo's crop: {with_residual:.3} with the residual, {code_alone:.3} with the code alone");
    assert!(with_residual < 0.7 * code_alone, "{with_residual:.3} against {code_alone:.3}");
    // Another photo, another code.
    let other = load(&common::repo().join("data/real_faces/grace_hopper.png")).unwrap();
    let (_, p_other) = fit(&edit::face_crop(&other, bundle.image_size).0, 40, PHOTO_FIT);
    let apart = mean_sq(&code(p40), &code(p_other));
    assert!(apart > 0.01, "two photos' codes differ by {apart:.4}");

    // An edit through the fit, judged by the dlib age network (never optimised against), on
    // the whole photo and its mirror image as the scoreboard reads it: on the real-photo set
    // this photo's Senior edit aged her by 20 years.
    let req = bundle.vocab.parse("Senior").unwrap();
    let clf = bundle.classifier.to_device(&dev);
    let opts = EditOptions { strength: edit::DEFAULT_STRENGTH, steps: edit::DEFAULT_STEPS, seed: 0, centre_if_no_face: false, method: EditMethod::Generator, keep_colours: false };
    let e = pollster::block_on(edit::alter(&vgg, &bundle, &clf, &photo, &req, &opts, &dev, RunControl::silent())).unwrap();
    let ages = common::labeler().label(&[photo.clone(), e.photo.clone()]).unwrap();
    println!("dlib's age: {:.1} before, {:.1} after the Senior edit", ages[0].expected_age, ages[1].expected_age);
    assert!(ages[1].expected_age > ages[0].expected_age + 5.0, "age {:.1} -> {:.1}", ages[0].expected_age, ages[1].expected_age);
}

#[test]
fn the_edit_crop_puts_a_photos_face_where_the_generator_draws_faces() {
    // The attribute directions are maps over the training faces' frame; an edit crops a photo
    // so that its face's box is centred where the detector finds the generator's faces.
    use deepface::make::{edit::FACE_FRAME, prior};
    let dev = common::device();
    let bundle = bundle();
    let p = bundle.prior.as_ref().unwrap();
    let centres: Vec<(f32, f32)> = (1..=16)
        .filter_map(|seed| {
            let img = pollster::block_on(prior::preview(p, &[], seed, None, &dev)).unwrap().image;
            let f = *face::frame_faces(&img).first()?;
            let side = face::FRAME_SIDE as f32;
            Some(((f.x as f32 + f.width as f32 / 2.0) / side, (f.y as f32 + f.height as f32 / 2.0) / side))
        })
        .collect();
    assert!(centres.len() >= 10, "SeetaFace finds {} of 16 generated faces", centres.len());
    let n = centres.len() as f32;
    let (cx, cy) = (centres.iter().map(|c| c.0).sum::<f32>() / n, centres.iter().map(|c| c.1).sum::<f32>() / n);
    println!("the generator's faces are centred at ({cx:.3}, {cy:.3}) of the frame; the edit's crop at {:?}", FACE_FRAME.centre);
    assert!((cx - FACE_FRAME.centre.0).abs() < 0.03 && (cy - FACE_FRAME.centre.1).abs() < 0.03, "({cx:.3}, {cy:.3}) against {:?}", FACE_FRAME.centre);
}
