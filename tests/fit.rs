//! Fitting on a tiny real subset of the default data set (34 faces), then generating from the
//! result: the whole chain in well under two minutes.

mod common;

use std::sync::OnceLock;

use burn::tensor::{Tensor, TensorData};
use deepface::fit::bundle::{Bundle, ModelKind};
use deepface::data::dataset::Dataset;
use deepface::fit::pipeline::{fit, FitOptions, FitReport};
use deepface::make::generate::{generate, split_layers, targets, GenerateOptions};
use deepface::make::invert::RunControl;
use deepface::make::prior::ImagePrior;
use deepface::backbone::vgg::Vgg16;
use deepface::{fit::classifier, make::edit, util::imageops, Error};

fn tiny() -> std::path::PathBuf {
    common::repo().join("tests/fixtures/tiny_faces")
}

fn fitted() -> &'static (Vgg16, Bundle, FitReport) {
    static FIT: OnceLock<(Vgg16, Bundle, FitReport)> = OnceLock::new();
    FIT.get_or_init(|| {
        let ds = Dataset::load(&tiny()).unwrap();
        let vgg = common::default_vgg();
        let opts = FitOptions { cache: None, components: 8, ..FitOptions::default() };
        let (bundle, report) = fit(&ds, &vgg, "test-backbone", &common::device(), &opts).unwrap();
        (vgg, bundle, report)
    })
}

#[test]
fn fit_reports_and_the_bundle_round_trips() {
    let (vgg, bundle, report) = fitted();
    assert_eq!(report.images, [22, 6, 6]);
    assert_eq!(bundle.vocab.names, ["Male", "Child", "Youth", "Middle_Aged", "Senior", "Smiling"]);
    assert_eq!(bundle.vocab.groups.len(), 1, "the age groups form one softmax head");
    assert_eq!(bundle.image_size, 64);
    let c = &report.comparison;
    assert!(c.cgmm > 0.0 && c.linear > 0.0 && c.mean_activations > 0.0 && c.linear_all_layers.is_finite(), "{c:?}");
    assert!(report.linear.explained > 0.0 && report.linear.explained <= 1.0 + 1e-4);

    // The classifier must have learned its training faces (22 images, 16k features: it can).
    let ds = Dataset::load(&tiny()).unwrap();
    let (mut right, mut total) = (0, 0);
    let device = common::device();
    let clf = bundle.classifier.to_device(&device);
    for i in (0..ds.len()).filter(|&i| ds.splits[i] == deepface::data::dataset::Split::Train) {
        let img = imageops::load(&ds.image_path(i)).unwrap();
        let probs = pollster::block_on(edit::classify(vgg, &clf, &img, bundle.image_size, &device)).unwrap();
        let yes = classifier::decide(&probs, &bundle.classifier.heads);
        for (a, &y) in yes.iter().enumerate() {
            right += usize::from(y == (ds.labels[i][a] > 0));
            total += 1;
        }
    }
    assert!(right as f64 / total as f64 > 0.9, "training accuracy {right}/{total}");

    let bytes = bundle.to_bytes().unwrap();
    assert_eq!(bytes, bundle.to_bytes().unwrap(), "encoding is deterministic");
    assert!(bytes.len() < 15_000_000, "{} bytes", bytes.len());
    let back = Bundle::from_bytes(&bytes, "tiny.bundle").unwrap();
    assert_eq!(back.vocab, bundle.vocab);
    assert_eq!(back.classifier.heads, bundle.classifier.heads);
    assert_eq!(back.classifier.weight, bundle.classifier.weight, "classifier weights are stored in f32");
    assert_eq!(back.cgmm.w, bundle.cgmm.w);
    assert_eq!(back.linear.components(), 8);
    let worst = back.linear.coef.iter().zip(&bundle.linear.coef).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0f32, f32::max);
    assert!(worst < 2e-3, "f16 storage error {worst}");
}

/// The linear model's targets include the classifier's layers, so the classifier can read a
/// target directly: asking for an attribute must raise its score, asking for its absence
/// must lower it.
#[test]
fn requested_attributes_move_the_targets() {
    let (_, bundle, _) = fitted();
    let dev = common::device();
    let clf = bundle.classifier.to_device(&dev);
    let lin = &bundle.linear;
    let p = |spec: &str, attr: usize| -> f32 {
        let req = bundle.vocab.parse(spec).unwrap();
        let blocks = split_layers(&lin.layers, &lin.sample(&bundle.vocab, &req, 1, 0.0, 1.0));
        let acts: Vec<Tensor<4>> = classifier::feature_layers()
            .iter()
            .map(|l| {
                let (_, [c, h, w], v) = blocks.iter().find(|b| b.0 == *l).expect("classifier layer is modelled").clone();
                Tensor::from_data(TensorData::new(v, [1, c, h, w]), &dev)
            })
            .collect();
        imageops::read_native(clf.log_probs(clf.logits(classifier::pooled(acts))).exp()).unwrap()[attr]
    };
    for (attr, name) in [(0, "Male"), (5, "Smiling"), (4, "Senior")] {
        let (yes, no) = (p(name, attr), p(&format!("-{name}"), attr));
        assert!(yes > no + 0.2, "{name}: P = {yes} when asked for, {no} when asked against");
    }
    let req = bundle.vocab.parse("Male").unwrap();
    let (a, b, a0, b0) = (lin.sample(&bundle.vocab, &req, 1, 1.0, 1.0), lin.sample(&bundle.vocab, &req, 2, 1.0, 1.0), lin.sample(&bundle.vocab, &req, 1, 0.0, 1.0), lin.sample(&bundle.vocab, &req, 2, 0.0, 1.0));
    assert_ne!(a, b, "seeds give different samples");
    assert_eq!(a0, b0, "temperature 0 is the mean prediction");
}

#[test]
fn generation_makes_distinct_faces_and_refuses_what_a_model_cannot_express() {
    let (vgg, bundle, _) = fitted();
    let dev = common::device();
    let run = |model, spec: &str, seed| {
        let opts = GenerateOptions { model, seed, steps: 30, temperature: None, gain: None, lr: None, layers: None, poison_at: None, prior: ImagePrior::Pixels, prior_gain: None };
        let req = bundle.vocab.parse(spec)?;
        let targets = pollster::block_on(targets(vgg, bundle, &req, &opts, &dev))?;
        pollster::block_on(generate(vgg, bundle, &req, &targets, &opts, &dev, RunControl::silent()))
    };
    let a = run(ModelKind::Linear, "Male,Smiling", 1).unwrap().image;
    let b = run(ModelKind::Linear, "Male,Smiling", 2).unwrap().image;
    assert_eq!(a.dimensions(), (64, 64));
    let raw = a.as_raw();
    let mean = raw.iter().map(|&v| f64::from(v)).sum::<f64>() / raw.len() as f64;
    let std = (raw.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / raw.len() as f64).sqrt();
    assert!(std > 15.0, "a face has contrast, got std {std}");
    let rms = (raw.iter().zip(b.as_raw()).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum::<f64>() / raw.len() as f64).sqrt();
    assert!(rms > 2.0, "seeds 1 and 2 gave the same face (RMS {rms})");
    assert!(run(ModelKind::Cgmm, "Male,Senior", 1).is_ok());
    let e = run(ModelKind::Cgmm, "-Male", 1).err().expect("must fail").to_string();
    assert!(e.contains("cGMM models present attributes only"), "{e}");
    let opts = GenerateOptions { model: ModelKind::Linear, seed: 1, steps: 2, temperature: None, gain: None, lr: None, layers: Some(vec!["conv2_1".parse().unwrap()]), poison_at: None, prior: ImagePrior::Pixels, prior_gain: None };
    let t = pollster::block_on(targets(vgg, bundle, &[], &opts, &dev)).unwrap();
    let e = pollster::block_on(generate(vgg, bundle, &[], &t, &opts, &dev, RunControl::silent())).err().expect("conv2_1 is not modelled").to_string();
    assert!(e.contains("`conv2_1` is not among them"), "{e}");
}

#[test]
fn damaged_bundles_are_refused_with_the_reason() {
    let (_, bundle, _) = fitted();
    let bytes = bundle.to_bytes().unwrap();
    let err = |b: &[u8]| Bundle::from_bytes(b, "m.bundle").unwrap_err().to_string();
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(err(&flipped).contains("corrupt: checksum mismatch"), "{}", err(&flipped));
    assert!(err(&bytes[..bytes.len() / 3]).contains("m.bundle"), "truncated");
    assert!(err(&bytes[..30]).contains("truncated") || err(&bytes[..30]).contains("checksum"), "{}", err(&bytes[..30]));
    let mut v2 = bytes.clone();
    v2[8] = 2;
    assert!(err(&v2).contains("bundle format version 2, but this deepface reads version 1"), "{}", err(&v2));
    assert!(err(b"PK\x03\x04 a zip file").contains("not a deepface model bundle"));
    let e = bundle.check_backbone("0123456789abcdef").unwrap_err().to_string();
    assert!(e.contains("fitted with backbone"), "{e}");
}

#[test]
fn an_attribute_without_positives_is_named() {
    let dir = std::env::temp_dir().join(format!("deepface-nopos-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = tiny();
    let text = std::fs::read_to_string(src.join("list_attr_celeba.txt")).unwrap();
    // Every face loses Senior (column 5).
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i < 2 {
                return l.to_string();
            }
            let mut f: Vec<&str> = l.split_whitespace().collect();
            f[5] = "-1";
            f.join(" ")
        })
        .collect();
    std::fs::write(dir.join("list_attr_celeba.txt"), lines.join("\n") + "\n").unwrap();
    std::fs::copy(src.join("list_eval_partition.txt"), dir.join("list_eval_partition.txt")).unwrap();
    let images = dir.join("img_align_celeba");
    if !images.exists() {
        std::os::unix::fs::symlink(src.join("img_align_celeba"), &images).unwrap();
    }
    let ds = Dataset::load(&dir).unwrap();
    let opts = FitOptions { cache: None, ..FitOptions::default() };
    let e = fit(&ds, &common::default_vgg(), "x", &common::device(), &opts).expect_err("must fail").to_string();
    assert!(e.contains("attribute `Senior` has no positive image in the training split"), "{e}");
}

#[test]
fn nan_during_fitting_is_an_error() {
    let vocab = deepface::data::attributes::Vocabulary::new(&["A".to_string(), "B".to_string()]).unwrap();
    let labels: Vec<&[i8]> = vec![&[1, -1], &[-1, 1], &[1, 1]];
    let layer = "conv5_1".parse().unwrap();
    let rows = |i: usize| if i == 2 { vec![f32::NAN; 4] } else { vec![1.0; 4] };
    let r = deepface::fit::cgmm::fit(&vocab, layer, [1, 2, 2], &labels, &rows, 10, 1e-4, 3, 1);
    assert!(matches!(r, Err(Error::NonFinite { .. })), "{:?}", r.map(|_| ()));
    let x = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
    let rows = |idx: &[usize]| idx.iter().flat_map(|&i| if i == 1 { vec![f32::NAN; 4] } else { vec![1.0; 4] }).collect::<Vec<f32>>();
    let r = deepface::fit::linear::fit(vec![(layer, [1, 2, 2])], &x, &rows, 2, 3, 1e-3, 1, &common::device());
    assert!(matches!(r, Err(Error::NonFinite { .. })), "{:?}", r.map(|_| ()));
}
