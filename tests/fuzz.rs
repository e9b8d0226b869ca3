//! Property tests ("fuzzing" that runs in CI in seconds): the image decoder, the RGBA upload
//! path and the two model-file loaders get random and damaged input. None may panic or
//! allocate without bound; each must either succeed with a sane result or return an error.
//! Damaged model files get their checksum recomputed, so the parser behind the checksum is
//! exercised and not only the checksum.

mod common;

use std::sync::OnceLock;

use deepface::fit::bundle::Bundle;
use deepface::{backbone::weights, util::imageops};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn bundle_bytes() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| std::fs::read(common::repo().join("model/default.bundle")).expect("committed default bundle"))
}

fn backbone_bytes() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| std::fs::read(weights::default_path()).expect("committed backbone"))
}

/// A small real photo as PNG and as JPEG, the formats uploads arrive in natively.
fn encoded_photos() -> &'static [Vec<u8>; 2] {
    static P: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    P.get_or_init(|| {
        let img = imageops::square(&imageops::load(&common::face("solvay_7.png")).unwrap(), 48);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let mut jpg = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
        [png, jpg]
    })
}

/// Where the bundle's JSON header ends (the part most worth damaging).
fn bundle_header_end(b: &[u8]) -> usize {
    20 + u64::from_le_bytes(b[12..20].try_into().unwrap()) as usize
}

fn mutate(bytes: &[u8], edits: &[(usize, u8)], within: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &(at, v) in edits {
        let i = at % within.min(out.len());
        out[i] = v;
    }
    out
}

fn with_checksum(mut body: Vec<u8>) -> Vec<u8> {
    let sum = Sha256::digest(&body);
    body.extend_from_slice(&sum);
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_not_an_image(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // No image format has random-looking magic bytes; the decoder must say so, not panic.
        prop_assert!(imageops::decode(&bytes, "random").is_err());
    }

    #[test]
    fn damaged_photos_decode_or_fail_cleanly(which in 0usize..2, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..12), cut in 0usize..4096) {
        let src = &encoded_photos()[which];
        let mut bytes = mutate(src, &edits, src.len());
        bytes.truncate(bytes.len().saturating_sub(cut % src.len()));
        if let Ok(img) = imageops::decode(&bytes, "damaged") {
            let px = u64::from(img.width()) * u64::from(img.height());
            prop_assert!(px > 0 && px <= imageops::MAX_PIXELS);
        }
    }

    #[test]
    fn png_headers_claiming_huge_sizes_are_refused_before_decoding(w in 1u32..200_000, h in 1u32..200_000) {
        // A valid PNG signature and IHDR chunk with the claimed size, then no pixel data.
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&w.to_be_bytes());
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&13u32.to_be_bytes());
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&ihdr);
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
        for name in [b"IDAT", b"IEND"] {
            png.extend_from_slice(&0u32.to_be_bytes());
            png.extend_from_slice(name);
            png.extend_from_slice(&crc32(name).to_be_bytes());
        }
        let r = imageops::decode(&png, "header only");
        prop_assert!(r.is_err());
        let msg = r.unwrap_err().to_string();
        if u64::from(w) * u64::from(h) > imageops::MAX_PIXELS {
            prop_assert!(msg.contains("too large"), "{}", msg);
        }
    }

    #[test]
    fn rgba_uploads_must_match_their_size(w in 0u32..300, h in 0u32..300, extra in -8i64..8) {
        let want = u64::from(w) * u64::from(h) * 4;
        let len = (want as i64 + extra).max(0) as usize;
        let data = vec![7u8; len];
        let r = imageops::from_rgba(&data, w, h);
        if w > 0 && h > 0 && extra == 0 {
            let img = r.unwrap();
            prop_assert_eq!(img.dimensions(), (w, h));
        } else {
            prop_assert!(r.is_err());
        }
    }

    #[test]
    fn random_bytes_after_the_bundle_signature_are_refused(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut b = b"DFMODEL\0".to_vec();
        b.extend_from_slice(&tail);
        prop_assert!(Bundle::from_bytes(&b, "random").is_err());
        prop_assert!(Bundle::from_bytes(&with_checksum(b), "random").is_err());
    }
}

proptest! {
    // Each case copies and hashes a real model file (9 and 29 MB): fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn damaged_bundles_load_or_fail_cleanly(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), in_header in any::<bool>()) {
        let src = bundle_bytes();
        let body = &src[..src.len() - 32];
        let within = if in_header { bundle_header_end(src) + 64 } else { body.len() };
        let damaged = with_checksum(mutate(body, &edits, within));
        if let Ok(b) = Bundle::from_bytes(&damaged, "damaged") {
            // Whatever loads must be usable: every tensor the model needs is finite and sized.
            prop_assert!(!b.vocab.is_empty());
            prop_assert!(b.image_size >= 32);
        }
        // Without the recomputed checksum, any change is caught.
        let raw = mutate(src, &edits, within);
        if raw != src {
            prop_assert!(Bundle::from_bytes(&raw, "damaged").is_err());
        }
    }

    #[test]
    fn cut_bundles_are_refused(keep in 0usize..9_000_000) {
        let src = bundle_bytes();
        let keep = keep % src.len();
        prop_assert!(Bundle::from_bytes(&src[..keep], "cut").is_err());
    }

    #[test]
    fn damaged_backbones_load_or_fail_cleanly(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<bool>()) {
        let src = backbone_bytes();
        // The safetensors header (names, shapes, offsets) is where damage matters.
        let header = 8 + u64::from_le_bytes(src[..8].try_into().unwrap()) as usize;
        let mut bytes = mutate(src, &edits, header + 16);
        if cut {
            bytes.truncate(header + edits[0].0 % (src.len() - header));
        }
        if let Ok((w, _)) = weights::decode(&bytes, "damaged") {
            prop_assert_eq!(w.layers.len(), 13);
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
