//! Weight import: formats, layer identification by shape order, and rejection of files that
//! are not VGG16.

mod common;

use deepface::backbone::weights::{self, InputConvention, Manifest};
use deepface::backbone::import::import_file;
use deepface::backbone::vgg::CONV_CHANNELS;

#[test]
fn onnx_with_shuffled_initializers_imports_in_graph_order() {
    let convs = common::random_convs(&common::vgg16_channels(), 7);
    let path = common::temp_file("vgg.onnx", &common::onnx_model(&convs));
    let imported = import_file(&path, None).unwrap();
    assert_eq!(imported.source.format, "onnx");
    // Layers past the first are copied untouched (conv1_1 gets the BGR convention: identity here).
    for (i, (_, _, w, b)) in convs.iter().enumerate() {
        assert_eq!(&imported.weights.layers[i].weight, w, "conv #{i}");
        assert_eq!(&imported.weights.layers[i].bias, b, "conv #{i}");
    }
    // Round trip through the f16 backbone file: within f16 precision.
    let manifest = Manifest::new(imported.source.clone());
    let bytes = weights::encode(&imported.weights, &manifest).unwrap();
    assert_eq!(bytes, weights::encode(&imported.weights, &manifest).unwrap(), "encoding is deterministic");
    let (back, m2) = weights::decode(&bytes, "mem").unwrap();
    assert_eq!(m2, manifest);
    let w0 = &imported.weights.layers[4].weight;
    let w1 = &back.layers[4].weight;
    assert!(w0.iter().zip(w1).all(|(a, b)| (a - b).abs() <= a.abs() * 1e-3 + 1e-7));
}

#[test]
fn truncated_files_are_rejected_with_a_reason() {
    let convs = common::random_convs(&common::vgg16_channels(), 7);
    let onnx = common::onnx_model(&convs);
    let path = common::temp_file("cut.onnx", &onnx[..onnx.len() / 2]);
    let err = import_file(&path, None).err().unwrap().to_string();
    assert!(err.contains("truncated"), "{err}");
    let backbone_bytes = std::fs::read(weights::default_path()).unwrap();
    let err = weights::decode(&backbone_bytes[..backbone_bytes.len() - 1000], "cut.safetensors").err().unwrap().to_string();
    assert!(err.contains("cut.safetensors") && err.contains("truncated"), "{err}");
    let err = weights::decode(&[], "empty").err().unwrap().to_string();
    assert!(err.contains("empty file"), "{err}");
}

#[test]
fn networks_that_are_not_vgg16_are_rejected() {
    // VGG19: 16 convs.
    let mut vgg19 = common::vgg16_channels();
    vgg19.insert(7, (256, 256));
    vgg19.insert(11, (512, 512));
    vgg19.push((512, 512));
    let path = common::temp_file("vgg19.onnx", &common::onnx_model(&common::random_convs(&vgg19, 1)));
    let err = import_file(&path, None).err().unwrap().to_string();
    assert!(err.contains("found 16 3x3 conv kernels") && err.contains("VGG16 has 13"), "{err}");
    // Right count, wrong widths (a half-width VGG).
    let half: Vec<(usize, usize)> = CONV_CHANNELS.iter().map(|&(i, o)| (if i == 3 { 3 } else { i / 2 }, o / 2)).collect();
    let path = common::temp_file("half.onnx", &common::onnx_model(&common::random_convs(&half, 1)));
    let err = import_file(&path, None).err().unwrap().to_string();
    assert!(err.contains("conv #1") && err.contains("maps 3->32") && err.contains("3->64"), "{err}");
    // Not weights at all.
    let path = common::temp_file("notes.txt", b"these are not weights\n");
    let err = import_file(&path, None).err().unwrap().to_string();
    assert!(err.contains("not a readable VGG16 weights file") && err.contains("expected ONNX"), "{err}");
    // A safetensors file that is not a deepface backbone.
    let other = common::safetensors(&[("x".into(), vec![2], vec![1.0, 2.0])]);
    let err = weights::decode(&other, "other.safetensors").err().unwrap().to_string();
    assert!(err.contains("not a deepface backbone"), "{err}");
}

/// torchvision `vgg16` names: features.0, 2, 5, 7, 10, ... (10 must sort after 7, not after
/// 0), plus a classifier tensor that must be ignored.
fn torchvision_state_dict(convs: &[(usize, usize, Vec<f32>, Vec<f32>)]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let idx = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
    let mut tensors = Vec::new();
    for (k, (cout, cin, w, b)) in convs.iter().enumerate() {
        tensors.push((format!("features.{}.weight", idx[k]), vec![*cout, *cin, 3, 3], w.clone()));
        tensors.push((format!("features.{}.bias", idx[k]), vec![*cout], b.clone()));
    }
    tensors.push(("classifier.0.weight".into(), vec![4, 8], vec![0.5; 32]));
    tensors
}

#[test]
fn torchvision_style_safetensors_map_by_natural_name_order_and_fold_the_convention() {
    let convs = common::random_convs(&common::vgg16_channels(), 3);
    let tensors = torchvision_state_dict(&convs);
    let path = common::temp_file("tv.safetensors", &common::safetensors(&tensors));
    let imported = import_file(&path, Some(InputConvention::torchvision())).unwrap();
    assert_eq!(imported.source.format, "safetensors");
    assert_eq!(imported.weights.layers[4].weight, convs[4].2);
    assert_eq!(imported.weights.layers[12].bias, convs[12].3);
    // conv1_1 was rescaled for 0..255 BGR input: torchvision's 1/(255*std) factor, channels reversed.
    let w_src = &convs[0].2;
    let w_new = &imported.weights.layers[0].weight;
    let ratio = w_new[2 * 9] / w_src[0]; // source R (channel 0) lands on canonical channel 2
    assert!((ratio - 1.0 / (255.0 * 0.229)).abs() < 1e-4, "{ratio}");
}

#[test]
fn keras_layout_kernels_are_transposed() {
    let convs = common::random_convs(&common::vgg16_channels(), 9);
    let mut tensors = Vec::new();
    for (k, (cout, cin, w, b)) in convs.iter().enumerate() {
        let mut hwio = vec![0.0; w.len()];
        for o in 0..*cout {
            for c in 0..*cin {
                for j in 0..9 {
                    hwio[(j * cin + c) * cout + o] = w[(o * cin + c) * 9 + j];
                }
            }
        }
        tensors.push((format!("block{k}_conv/kernel:0"), vec![3, 3, *cin, *cout], hwio));
        tensors.push((format!("block{k}_conv/bias:0"), vec![*cout], b.clone()));
    }
    let path = common::temp_file("keras.safetensors", &common::safetensors(&tensors));
    let imported = import_file(&path, None).unwrap();
    assert_eq!(imported.weights.layers[7].weight, convs[7].2);
}

#[test]
fn torchvision_pth_state_dict_imports() {
    let convs = common::random_convs(&common::vgg16_channels(), 5);
    let tensors = torchvision_state_dict(&convs);
    let path = common::temp_file("vgg16.pth", &common::torch_checkpoint(&tensors));
    let imported = import_file(&path, None).unwrap();
    assert_eq!(imported.source.format, "pytorch");
    assert_eq!(imported.source.convention, InputConvention::torchvision(), "the default for .pth");
    assert_eq!(imported.weights.layers[10].weight, convs[10].2);
    assert_eq!(imported.weights.layers[3].bias, convs[3].3);
    // A real PyTorch checkpoint of another network (4x4 transposed convs only) is refused.
    let other = common::torch_checkpoint(&[("main.0.weight".into(), vec![100, 512, 4, 4], vec![0.0; 100 * 512 * 16])]);
    let err = import_file(&common::temp_file("gan.pth", &other), None).err().unwrap().to_string();
    assert!(err.contains("found 0 3x3 conv kernels"), "{err}");
}
