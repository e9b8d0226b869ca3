#!/usr/bin/env bash
# All benchmarks in one command, written to docs/benchmarks.md: `deepface bench` (native, burn
# flex) next to the same step in JAX (XLA CPU, installed from PyPI into .cache/bench-venv), then
# deepface's wasm API next to TensorFlow.js (wasm and WebGPU backends) in headless Chromium,
# and the page itself: load to first face, sizes. Run it on an otherwise idle
# machine: the two peers run one after the other, never at the same time.
# Needs what the test command needs (scripts/test.sh builds pkg/ and the CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-conv3_1}
SIZES=${SIZES:-64,128,224}
STEPS=${STEPS:-10}
RUNS=${RUNS:-5}
out=docs/benchmarks.md
venv=.cache/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import jax' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "jax[cpu]" numpy
fi
cargo build --release --quiet
[ -f pkg/deepface_bg.wasm ] || DEEPFACE_WASM_OPT=0 scripts/build_web.sh
finished=$(bash scripts/bench_generate.sh)
ours=$(target/release/deepface bench --layers "$LAYERS" --sizes "$SIZES" --steps "$STEPS" --runs "$RUNS")
peer=$("$venv/bin/python" scripts/bench_peer_jax.py --layers "$LAYERS" --sizes "$SIZES" --steps "$STEPS" --runs "$RUNS")
browser=$(node scripts/bench_browser.mjs "${CPU_STEPS:-default}" "${WEBGPU_STEPS:-3}")
tfjs=$(node scripts/bench_tfjs.mjs 64 "$STEPS" 2 "$RUNS")
ratio=$(paste <(echo "$ours" | grep -E '^\| [0-9]') <(echo "$peer" | grep -E '^\| [0-9]') | awk -F'|' '{printf "| %s | %.1f | %.1f | %.2f | %.2f |\n", $2, $3, $11, $3/$11, $5/$13}')
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d), machine: $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) memory, no GPU."
  echo
  echo "## Native: one inversion step (forward + backward + Adam), layers $LAYERS"
  echo
  echo "Ours (\`deepface bench\`):"
  echo
  echo "$ours"
  echo
  echo "Peer, same weights, layers, loss, optimiser and step count (\`scripts/bench_peer_jax.py\`):"
  echo
  echo "$peer"
  echo
  echo "| size | ours ms/step | JAX ms/step | ours/JAX step | ours/JAX forward |"
  echo "|---|---|---|---|---|"
  echo "$ratio"
  echo
  echo "## Native: a finished face per image prior (\`scripts/bench_generate.sh\`)"
  echo
  echo "The CLI's default run for each prior, model loading included, 3 requests x 3 seeds; the old route (pixels, the paper's) first."
  echo
  echo "$finished"
  echo
  echo "## In the browser against TensorFlow.js (headless Chromium, \`scripts/bench_tfjs.mjs\`)"
  echo
  echo "$tfjs"
  echo
  echo "## The page (headless Chromium, \`scripts/bench_browser.mjs\`): a Male,Smiling face from a cold cache, and an edit"
  echo
  echo "$browser"
} > "$out"
cat "$out"
