//! The burn VGG16 against the original ONNX model run by onnxruntime (fixture made by
//! scripts/make_reference.py).

mod common;

use burn::tensor::{Tensor, TensorData};
use deepface::backbone::vgg::Layer;

fn fixture() -> Vec<u8> {
    std::fs::read(common::repo().join("tests/fixtures/vgg16_reference.safetensors")).unwrap()
}

fn tensor(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let v = st.tensor(name).unwrap();
    (v.shape().to_vec(), v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

#[test]
fn activations_match_onnxruntime() {
    let bytes = fixture();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (shape, input) = tensor(&st, "input_rgb01");
    let device = common::device();
    let x = Tensor::<4>::from_data(TensorData::new(input, [shape[0], shape[1], shape[2], shape[3]]), &device);
    let vgg = common::default_vgg();
    let layers: Vec<Layer> = ["conv1_2", "conv3_1", "conv5_1"].iter().map(|n| n.parse().unwrap()).collect();
    let ours = vgg.forward(x, &layers);
    for (layer, act) in layers.iter().zip(ours) {
        let (shape, want) = tensor(&st, layer.name());
        assert_eq!(act.dims().to_vec(), shape, "{layer} shape");
        let got: Vec<f32> = act.into_data().try_to_vec().unwrap();
        let err: f64 = got.iter().zip(&want).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
        let max_abs = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let peak = want.iter().fold(0.0f32, |m, b| m.max(b.abs()));
        println!("{layer}: relative L2 error {:.2e}, max abs error {max_abs:.3e} (peak {peak:.1})", err / norm);
        assert!(err / norm < 1e-3, "{layer}: relative error {:.2e} exceeds 1e-3", err / norm);
        // Elementwise too, relative to the layer's range: no single unit may be off.
        assert!(max_abs / peak < 1e-2, "{layer}: max abs error {max_abs} vs peak {peak}");
    }
}

#[test]
fn first_weights_are_the_published_imagenet_vgg16() {
    // Keras/Caffe VGG16 conv1_1: first kernel value and bias, to the file's f16 precision.
    let w = common::default_backbone();
    assert!((w.layers[0].weight[0] - 0.429_470_57).abs() < 5e-4, "{}", w.layers[0].weight[0]);
    assert!((w.layers[0].bias[0] - 0.734_298_35).abs() < 5e-4, "{}", w.layers[0].bias[0]);
}

#[test]
fn forward_is_truncated_and_ordered() {
    let vgg = common::default_vgg();
    let device = common::device();
    let x = Tensor::<4>::zeros([2, 3, 64, 48], &device).add_scalar(0.5);
    let layers: Vec<Layer> = ["pool5", "conv1_1", "conv4_1"].iter().map(|n| n.parse().unwrap()).collect();
    let out = vgg.forward(x.clone(), &layers);
    assert_eq!(out.iter().map(|t| t.dims()).collect::<Vec<_>>(), vec![[2, 512, 2, 1], [2, 64, 64, 48], [2, 512, 8, 6]]);
    // A shallow request gives the same values as the same layer inside a deep one.
    let alone = vgg.forward(x, &layers[1..2]);
    let a: Vec<f32> = alone[0].clone().into_data().try_to_vec().unwrap();
    let b: Vec<f32> = out[1].clone().into_data().try_to_vec().unwrap();
    assert_eq!(a, b);
    assert!("conv9_9".parse::<Layer>().unwrap_err().to_string().contains("valid layers: conv1_1"));
}
