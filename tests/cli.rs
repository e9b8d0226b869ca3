//! The command-line tool: a real run and the bad inputs a user can give it.

mod common;

use std::process::Command;

fn deepface(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_deepface")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn invert_writes_a_reconstruction_and_reports_quality() {
    let out = std::env::temp_dir().join(format!("deepface-cli-{}.png", std::process::id()));
    let face = common::face("solvay_0.png");
    let (ok, stdout, stderr) = deepface(&["invert", "--image", face.to_str().unwrap(), "--layers", "conv2_2", "--size", "48", "--steps", "60", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (48, 48));
    let psnr: f64 = stdout.split("PSNR ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).expect(&stdout);
    assert!(psnr > 18.0, "{stdout}");
}

#[test]
fn bad_inputs_get_specific_messages() {
    let text = common::temp_file("photo.jpg", b"definitely not a jpeg");
    let empty = common::temp_file("empty.png", b"");
    let face = common::face("solvay_0.png");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["invert", "--image", text.to_str().unwrap()], "not a PNG or JPEG image"),
        (vec!["invert", "--image", empty.to_str().unwrap()], "empty (0 bytes)"),
        (vec!["invert", "--image", "/nonexistent/face.png"], "/nonexistent/face.png"),
        (vec!["invert", "--image", face.to_str().unwrap(), "--size", "16"], "at least 32 px"),
        (vec!["invert", "--image", face.to_str().unwrap(), "--layers", "conv6_1"], "unknown layer `conv6_1`"),
        (vec!["invert", "--image", face.to_str().unwrap(), "--backbone", text.to_str().unwrap()], "not a readable safetensors backbone"),
        (vec!["import-vgg", text.to_str().unwrap(), "--out", "/tmp/x.safetensors"], "not a readable VGG16 weights file"),
        (vec!["import-vgg", face.to_str().unwrap(), "--convention", "weird"], "expected caffe-bgr, torchvision or vggface"),
    ];
    for (args, needle) in cases {
        let (ok, _, stderr) = deepface(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: `{stderr}` should contain `{needle}`");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn crop_faces_finds_the_face_in_a_crop() {
    let dir = std::env::temp_dir().join(format!("deepface-crops-{}", std::process::id()));
    let face = common::face("solvay_3.png");
    let (ok, stdout, stderr) = deepface(&["crop-faces", face.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--size", "64"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 faces found"), "{stdout}");
    // A flat grey image has no face: a clear error.
    let grey = image::RgbImage::from_pixel(200, 200, image::Rgb([128, 128, 128]));
    let path = dir.join("grey.png");
    grey.save(&path).unwrap();
    let (ok, _, stderr) = deepface(&["crop-faces", path.to_str().unwrap(), "--out", dir.to_str().unwrap()]);
    assert!(!ok && stderr.contains("no face found"), "{stderr}");
}

/// The fitted default bundle through the CLI: a short generation, classification of a real
/// face, an edit, and the messages for bad requests.
#[test]
fn generate_classify_alter_and_bad_requests() {
    let dir = std::env::temp_dir().join(format!("deepface-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("face.png");
    let (ok, stdout, stderr) = deepface(&["generate", "--attrs", "Male,Senior", "--seed", "3", "--steps", "20", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("classifier sees: "), "{stdout}");
    assert_eq!(image::open(&out).unwrap().width(), 64);

    let face = common::face("solvay_0.png");
    let (ok, stdout, stderr) = deepface(&["classify", face.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 face(s) found") && stdout.contains("Smiling"), "{stdout}");

    // Einstein (solvay_7) does not smile; asking for Smiling must strengthen the smile as an
    // independent expression network (FER, which no edit backpropagates through) reads it.
    let edited = dir.join("edited.png");
    let serious = common::face("solvay_7.png");
    let (ok, stdout, stderr) = deepface(&["alter", serious.to_str().unwrap(), "--attrs", "Smiling", "--steps", "30", "--out", edited.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let original = image::open(&serious).unwrap();
    assert_eq!(image::open(&edited).unwrap().width(), original.width(), "the whole photo comes back at full size");
    // A black-and-white photo (this one exactly grey) takes only the change's brightness: it
    // stays black and white, up to rounding.
    let spread = image::open(&edited).unwrap().to_rgb8().pixels().map(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap()).max().unwrap();
    assert!(spread <= 5, "the edit tinted a black-and-white photo: channels up to {spread} levels apart");
    let smiling: Vec<f32> = stdout
        .lines()
        .find(|l| l.starts_with("Smiling"))
        .expect(&stdout)
        .split(|c: char| c == '%' || c == '>' || c.is_whitespace())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(smiling.len() == 2, "the classifier's before and after are printed: {stdout}");
    let judged = common::labeler().label(&[original.to_rgb8(), image::open(&edited).unwrap().to_rgb8()]).unwrap();
    let (before, after) = (judged[0].p_smiling, judged[1].p_smiling);
    assert!(after > before + 0.1, "FER's P(happy) should rise by 0.1 or more: {before} -> {after} ({stdout})");

    // By default a colour photo's face takes the change's brightness and no tint: every
    // pixel's change is the same in the three channels up to rounding (the crop's, the two
    // resized crops' and the mix's: at most 4 levels apart here), and the face did change.
    // `--change-colours` lets the tint through (about 50 levels apart here); `--keep-colours`, the
    // default's old flag, is still accepted and changes nothing.
    let colour = common::repo().join("data/real_faces/obama.png");
    let original = image::open(&colour).unwrap().to_rgb8();
    let tint_and_light = |flag: Option<&str>| -> (i32, i32) {
        let out = dir.join(format!("obama{}.png", flag.unwrap_or("")));
        let mut args = vec!["alter", colour.to_str().unwrap(), "--attrs", "-Smiling", "--steps", "10", "--out", out.to_str().unwrap()];
        args.extend(flag);
        let (ok, _, stderr) = deepface(&args);
        assert!(ok, "{stderr}");
        let edited = image::open(&out).unwrap().to_rgb8();
        let (mut tint, mut light) = (0i32, 0i32);
        for (p, q) in original.pixels().zip(edited.pixels()) {
            let d: Vec<i32> = (0..3).map(|c| i32::from(q[c]) - i32::from(p[c])).collect();
            // A channel clipped at 0 or 255 cannot take the whole change.
            if q.0.iter().all(|&v| v > 0 && v < 255) {
                tint = tint.max(d.iter().max().unwrap() - d.iter().min().unwrap());
            }
            light = light.max((d.iter().sum::<i32>() / 3).abs());
        }
        (tint, light)
    };
    let (tint, light) = tint_and_light(None);
    assert!(tint <= 5, "by default the channels changed by up to {tint} levels apart");
    assert!(light >= 5, "the face's brightness changed by at most {light} levels");
    assert_eq!(tint_and_light(Some("--keep-colours")), (tint, light), "--keep-colours is the default");
    let (tint, _) = tint_and_light(Some("--change-colours"));
    assert!(tint >= 20, "with --change-colours the channels changed by only up to {tint} levels apart");

    let text = common::temp_file("model.bundle", b"not a model");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["generate", "--attrs", "Male,Beard"], "unknown attribute `Beard`; valid attributes: Male, Child, Youth, Middle_Aged, Senior, Smiling"),
        (vec!["generate", "--attrs", "Child,Senior"], "Child and Senior are mutually exclusive (group Age)"),
        (vec!["generate", "--attrs", "-Male", "--using", "cgmm"], "cGMM models present attributes only"),
        (vec!["generate", "--attrs", "Male", "--using", "gan"], "unknown model `gan`; valid: cgmm, linear"),
        (vec!["evaluate", "--models", "linear,gan"], "unknown model `gan`; valid: cgmm, linear"),
        (vec!["evaluate", "--lr=NaN"], "invalid learning rate: NaN; must be a positive number"),
        (vec!["evaluate", "--lr=-1"], "invalid learning rate: -1; must be a positive number"),
        (vec!["evaluate", "--steps", "0"], "invalid steps: 0; at least 1 step is needed"),
        (vec!["generate", "--attrs", "Male", "--layers", "conv9_9"], "unknown layer `conv9_9`"),
        // A setting the route would not use is refused, not ignored.
        (vec!["generate", "--attrs", "Male", "--prior", "generator", "--temperature", "1"], "invalid temperature: the linear model on the face generator does not use it"),
        (vec!["quality-set", "edits", "--out", "/tmp/deepface-never-written", "--temperature", "1"], "invalid temperature: `quality-set edits` does not use it"),
        (vec!["generate", "--attrs", "Male", "--using", "linear", "--layers", "conv2_1"], "the model predicts conv3_1, conv4_1, conv5_1; `conv2_1` is not among them"),
        // Refused before the linear faces are made, not minutes later at the cGMM.
        (vec!["evaluate", "--models", "linear,cgmm", "--layers", "conv3_1,conv4_1"], "the model predicts conv3_1; `conv4_1` is not among them"),
        (vec!["generate", "--model", text.to_str().unwrap()], "not a deepface model bundle"),
        (vec!["alter", face.to_str().unwrap(), "--attrs", ""], "choose at least one attribute"),
    ];
    for (args, needle) in cases {
        let (ok, _, stderr) = deepface(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: `{stderr}` should contain `{needle}`");
    }
}

/// What a first-time user types: a negated attribute as the value, from another folder, and an
/// output that cannot be written (refused before the generation, named as a write error).
#[test]
fn hyphen_values_any_folder_and_unwritable_outputs() {
    let dir = std::env::temp_dir().join(format!("deepface-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run_in = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_deepface")).args(args).current_dir(&dir).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, _, stderr) = run_in(&["generate", "--attrs", "-Male,Senior", "--seed", "1", "--steps", "3", "--out", "f.png"]);
    assert!(ok, "{stderr}");
    assert!(dir.join("f.png").exists());
    // Another model folder through the flag: a folder without the model is named in the error.
    let (ok, _, stderr) = run_in(&["generate", "--attrs", "Male", "--model-dir", "/nonexistent-models", "--steps", "3"]);
    assert!(!ok && stderr.contains("/nonexistent-models/default.bundle"), "{stderr}");
    let not_a_dir = common::temp_file("plain-file", b"x");
    let blocked = not_a_dir.join("face.png");
    for (out, needle) in [(blocked.to_str().unwrap(), "cannot write"), ("face.txt", "must end in .png, .jpg or .jpeg")] {
        let start = std::time::Instant::now();
        let (ok, stdout, stderr) = run_in(&["generate", "--attrs", "Male", "--out", out]);
        assert!(!ok && stderr.contains(needle), "{out}: {stderr}");
        assert!(!stdout.contains("classifier sees"), "refused before generating: {stdout}");
        assert!(start.elapsed().as_secs() < 60);
    }
    for cmd in ["generate", "alter", "invert", "fit", "detect", "evaluate", "classify", "synth"] {
        let (ok, stdout, _) = run_in(&[cmd, "--help"]);
        assert!(ok && stdout.contains("Example:\n  deepface"), "{cmd} --help has no example: {stdout}");
    }
}
