#!/usr/bin/env bash
# Reconstruction quality table: every committed face crop rebuilt from its own activations at
# each layer, from noise, at 128 px and 300 steps. Prints a markdown table (mean over crops).
#   scripts/recon_table.sh [DEEPFACE_BINARY] [LAYERS] [SIZE] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/deepface}
layers=${2:-conv2_2 conv3_1 conv4_1 conv5_1}
size=${3:-128}
steps=${4:-300}
out=$(mktemp -d)
echo "| layer | PSNR dB (mean, min-max) | SSIM (mean) | ms/step |"
echo "|---|---|---|---|"
for layer in $layers; do
  for f in tests/fixtures/faces/*.png; do
    "$bin" invert --image "$f" --layers "$layer" --size "$size" --steps "$steps" --out "$out/$(basename "$f")" 2>/dev/null
  done | awk -v layer="$layer" '{
      for (i = 1; i <= NF; i++) { if ($i == "PSNR") p = $(i+1); if ($i == "SSIM") s = $(i+1); if ($i == "ms/step") m = $(i-1) }
      n++; ps += p; ss += s; ms += m; if (n == 1 || p < lo) lo = p; if (n == 1 || p > hi) hi = p }
    END { printf "| %s | %.1f (%.1f-%.1f) | %.3f | %.0f |\n", layer, ps / n, lo, hi, ss / n, ms / n }'
done
