#!/usr/bin/env bash
# Builds the browser app into pkg/: the library for wasm32 (WebGPU + CPU fallback, release),
# then wasm-bindgen --target web at exactly the version Cargo.lock pins, then wasm-opt when
# it is installed (skipped when DEEPFACE_WASM_OPT=0: it costs minutes on 2 cores). The
# function-name section goes (6.8 MB of the WebGPU build, 1.1 MB of its gzip download): a
# panic still reports its message, stack traces show offsets instead of names.
# Then pkg/threads/: the CPU-only build with a rayon pool over Web Workers, which needs nightly
# Rust (std rebuilt with atomics); skipped with a warning where nightly cannot be had, and the
# page then runs the CPU backend on one thread (DEEPFACE_THREADS=0 skips it on purpose).
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
wasm-bindgen --target web --no-typescript --remove-name-section --out-dir pkg target/wasm32-unknown-unknown/release/deepface.wasm
if [ "${DEEPFACE_WASM_OPT:-1}" != 0 ] && command -v wasm-opt >/dev/null; then
  echo "== wasm-opt -O2"
  wasm-opt -O2 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals pkg/deepface_bg.wasm -o pkg/deepface_bg.opt.wasm
  mv pkg/deepface_bg.opt.wasm pkg/deepface_bg.wasm
fi
threads_flags=(-C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base)
rm -rf pkg/threads
if [ "${DEEPFACE_THREADS:-1}" = 0 ]; then
  echo "== threaded CPU build skipped (DEEPFACE_THREADS=0)"
elif rustup run nightly rustc -V >/dev/null 2>&1 && { rustup component list --toolchain nightly --installed | grep -q '^rust-src' || rustup component add rust-src --toolchain nightly; }; then
  echo "== wasm32 threaded CPU build ($(rustup run nightly rustc -V))"
  # Link flags go to the final crate only, so they do not rebuild the dependencies.
  RUSTFLAGS="-C target-feature=+atomics,+bulk-memory,+simd128" cargo +nightly rustc --lib --crate-type cdylib --release \
    --target wasm32-unknown-unknown --no-default-features --features threads -Z build-std=panic_abort,std \
    --target-dir target/threads -- "${threads_flags[@]}"
  wasm-bindgen --target web --no-typescript --remove-name-section --out-dir pkg/threads target/threads/wasm32-unknown-unknown/release/deepface.wasm
  ls -l pkg/threads/deepface_bg.wasm
else
  echo "warning: no nightly Rust with rust-src here: the threaded CPU build is skipped; the page's CPU backend runs on one thread" >&2
fi
# The page downloads the backbone only as deep as the models read (conv5_1): 20 of 29 MB.
python3 scripts/trim_backbone.py model/vgg16_conv.safetensors pkg/vgg16_conv5_1.safetensors --upto conv5_1
ls -l pkg/deepface_bg.wasm
[ -f model/default.bundle ] || { echo "model/default.bundle is missing: run deepface fit (see README)"; exit 1; }
