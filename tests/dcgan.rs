//! The DCGAN generator against an independent NumPy computation of the same network
//! (scripts/make_dcgan_reference.py), and `synth`'s handling of bad checkpoints.
//! Needs the packaged checkpoint: `scripts/fetch_models.sh` (run by scripts/test.sh).

mod common;

use burn::tensor::{Tensor, TensorData};
use deepface::data::dcgan::{read_checkpoint, Generator};

fn checkpoint() -> std::path::PathBuf {
    let p = common::repo().join(".cache/models/gan_face_generate/weights.tar");
    assert!(p.exists(), "{} missing: run scripts/fetch_models.sh", p.display());
    p
}

fn generator() -> Generator {
    let t = read_checkpoint(&checkpoint(), Some("netG_state_dict")).unwrap();
    Generator::from_state_dict(&t, "weights.tar", &common::device()).unwrap()
}

#[test]
fn matches_the_numpy_reference() {
    let bytes = std::fs::read(common::repo().join("tests/fixtures/dcgan_reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |n: &str| -> Vec<f32> { st.tensor(n).unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() };
    let (z, want) = (read("z"), read("images"));
    let z = Tensor::<2>::from_data(TensorData::new(z, [3, 100]), &common::device());
    let got: Vec<f32> = generator().forward(z).into_data().try_to_vec().unwrap();
    assert_eq!(got.len(), want.len());
    let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    println!("max abs difference to NumPy: {max:.2e}");
    assert!(max < 1e-3, "max abs difference {max}");
}

#[test]
fn split_at_any_block_the_generator_draws_the_same_face() {
    // The generator route adds its residual between forward_to and forward_from
    // (src/make/prior.rs); with nothing added, the two halves must be the whole network.
    let g = generator();
    let z = Tensor::<2>::from_data(TensorData::new(deepface::data::dcgan::latent(3, 4), [1, 100]), &common::device());
    let whole: Vec<f32> = g.forward(z.clone()).into_data().try_to_vec().unwrap();
    for (k, dims) in [(1, [1, 512, 4, 4]), (2, [1, 256, 8, 8]), (3, [1, 128, 16, 16])] {
        let inner = g.forward_to(z.clone(), k);
        assert_eq!(inner.dims(), dims, "activations after block {k}");
        let halves: Vec<f32> = g.forward_from(inner, k).into_data().try_to_vec().unwrap();
        let max = whole.iter().zip(&halves).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max < 1e-5, "split at block {k}: max difference {max}");
    }
}

#[test]
fn sampling_is_deterministic_per_seed_and_index() {
    let g = generator();
    let d = common::device();
    let (_, a) = g.sample(7, 10, 2, &d);
    let (_, b) = g.sample(7, 11, 1, &d);
    let (_, c) = g.sample(8, 11, 1, &d);
    let a: Vec<f32> = a.into_data().try_to_vec().unwrap();
    let b: Vec<f32> = b.into_data().try_to_vec().unwrap();
    let c: Vec<f32> = c.into_data().try_to_vec().unwrap();
    assert_eq!(&a[3 * 64 * 64..], &b[..], "image 11 of seed 7 is the same in any batch");
    assert_ne!(b, c, "another seed gives another face");
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn is_face_accepts_a_face_crop_and_refuses_flat_and_noise_images() {
    let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/faces/solvay_7.png")).unwrap().to_rgb8();
    let (crop, faces) = deepface::make::edit::face_crop(&photo, 64);
    assert_eq!(faces.len(), 1);
    assert!(deepface::data::face::is_face(&crop));
    assert!(!deepface::data::face::is_face(&image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]))));
    let mut s = 1u32;
    let noise = image::RgbImage::from_fn(64, 64, |_, _| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = (s >> 24) as u8;
        image::Rgb([v, v, v])
    });
    assert!(!deepface::data::face::is_face(&noise));
}

#[test]
fn synth_writes_detected_faces_atomically() {
    let dir = std::env::temp_dir().join(format!("deepface-synth-{}", std::process::id()));
    let out = dir.join("set");
    let r = deepface::data::synth::synth(&checkpoint(), &out, 6, 3, 4, &common::device(), |_, _| {}).unwrap();
    assert_eq!(r.kept, 6);
    let files: Vec<_> = std::fs::read_dir(out.join("img_align_celeba")).unwrap().collect();
    assert_eq!(files.len(), 6);
    assert!(!out.with_extension("partial").exists());
    for f in files {
        let img = image::open(f.unwrap().path()).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (64, 64));
        assert!(deepface::data::face::is_face(&img), "every kept image has a face");
    }
    // An existing folder is never overwritten.
    let err = deepface::data::synth::synth(&checkpoint(), &out, 1, 3, 4, &common::device(), |_, _| {}).err().unwrap().to_string();
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn bad_checkpoints_are_named() {
    let d = common::device();
    let missing = std::path::Path::new("/nonexistent/weights.tar");
    let err = read_checkpoint(missing, None).err().unwrap().to_string();
    assert!(err.contains("/nonexistent/weights.tar"), "{err}");
    let bytes = std::fs::read(checkpoint()).unwrap();
    let cut = common::temp_file("cut.tar", &bytes[..bytes.len() / 3]);
    let err = read_checkpoint(&cut, Some("netG_state_dict")).err().unwrap().to_string();
    assert!(err.contains("cut.tar") && err.contains("not a readable PyTorch checkpoint"), "{err}");
    let text = common::temp_file("w.tar", b"hello");
    assert!(read_checkpoint(&text, None).is_err());
    let empty = common::temp_file("e.tar", b"");
    assert!(read_checkpoint(&empty, None).err().unwrap().to_string().contains("empty file"));
    // A real checkpoint of another network: the missing tensor is named.
    let mut t = read_checkpoint(&checkpoint(), Some("netG_state_dict")).unwrap();
    t.remove("main.4.running_var");
    let err = Generator::from_state_dict(&t, "weights.tar", &d).err().unwrap().to_string();
    assert!(err.contains("missing tensor `main.4.running_var`"), "{err}");
}
