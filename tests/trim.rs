//! The browser's trimmed backbone (`scripts/trim_backbone.py`): same activations as the full
//! file up to where it stops, accepted by bundles fitted on the full file when it reaches
//! every layer they use, refused with the reason when it does not.

mod common;

use std::process::Command;

use deepface::backbone::weights;
use deepface::fit::bundle::Bundle;
use deepface::make::invert::noise_image;
use deepface::backbone::vgg::{Layer, Vgg16};

fn trim(upto: &str) -> Vec<u8> {
    let out = std::env::temp_dir().join(format!("deepface-trim-{upto}-{}.safetensors", std::process::id()));
    let st = Command::new("python3")
        .arg(common::repo().join("scripts/trim_backbone.py"))
        .arg(weights::default_path())
        .arg(&out)
        .args(["--upto", upto])
        .status()
        .expect("python3 runs");
    assert!(st.success());
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
}

#[test]
fn trimmed_backbone_matches_the_full_one_and_bundles_accept_it() {
    let full_bytes = std::fs::read(weights::default_path()).unwrap();
    let bundle = Bundle::from_bytes(&std::fs::read(common::repo().join("model/default.bundle")).unwrap(), "default").unwrap();
    let bytes = trim("conv5_1");
    assert!(bytes.len() < full_bytes.len() * 7 / 10, "{} of {} bytes", bytes.len(), full_bytes.len());
    let (w, m) = weights::decode(&bytes, "trimmed").unwrap();
    assert_eq!(w.layers.len(), 11);
    assert_eq!(m.trimmed_from.as_deref(), Some(weights::sha256_hex(&full_bytes).as_str()));

    let device = common::device();
    let (vgg, full) = (Vgg16::new(&w, &device), common::default_vgg());
    let c51: Layer = "conv5_1".parse().unwrap();
    assert_eq!(vgg.deepest(), c51);
    assert!(vgg.reaches(c51) && !vgg.reaches("conv5_2".parse().unwrap()));
    let x = noise_image(64, 0.2, 3, &device);
    let a = deepface::util::imageops::read_native(vgg.forward(x.clone(), &[c51]).remove(0)).unwrap();
    let b = deepface::util::imageops::read_native(full.forward(x, &[c51]).remove(0)).unwrap();
    assert_eq!(a, b, "the trimmed network must compute the same conv5_1");

    let sha = weights::sha256_hex(&bytes);
    bundle.check_backbone_file(&sha, m.trimmed_from.as_deref(), Some(vgg.deepest())).unwrap();
    // Without its manifest's word, the trimmed file is just another backbone.
    assert!(bundle.check_backbone(&sha).is_err());

    // Cut before conv5_1: the bundle's classifier needs conv5_1.
    let short = trim("conv4_3");
    let (w, m) = weights::decode(&short, "short").unwrap();
    let deepest = Vgg16::new(&w, &device).deepest();
    let e = bundle.check_backbone_file(&weights::sha256_hex(&short), m.trimmed_from.as_deref(), Some(deepest)).unwrap_err().to_string();
    assert!(e.contains("uses layer conv5_1") && e.contains("trimmed after conv4_3"), "{e}");
}
