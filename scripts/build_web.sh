#!/usr/bin/env bash
# Builds the browser app into pkg/: the library for wasm32 (WebGPU + CPU fallback, release),
# then wasm-bindgen --target web at exactly the version Cargo.lock pins, then wasm-opt when
# it is installed (skipped when DEEPFACE_WASM_OPT=0: it costs minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
want=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  echo "== installing wasm-bindgen-cli $want"
  cargo install wasm-bindgen-cli --version "$want"
fi
echo "== wasm32 release build (WebGPU + CPU)"
cargo build --lib --release --target wasm32-unknown-unknown --no-default-features --features webgpu
wasm-bindgen --target web --no-typescript --out-dir pkg target/wasm32-unknown-unknown/release/deepface.wasm
if [ "${DEEPFACE_WASM_OPT:-1}" != 0 ] && command -v wasm-opt >/dev/null; then
  echo "== wasm-opt -O2"
  wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals pkg/deepface_bg.wasm -o pkg/deepface_bg.opt.wasm
  mv pkg/deepface_bg.opt.wasm pkg/deepface_bg.wasm
fi
# The page downloads the backbone only as deep as the models read (conv5_1): 20 of 29 MB.
python3 scripts/trim_backbone.py model/vgg16_conv.safetensors pkg/vgg16_conv5_1.safetensors --upto conv5_1
ls -l pkg/deepface_bg.wasm
[ -f model/default.bundle ] || { echo "model/default.bundle is missing: run deepface fit (see README)"; exit 1; }
