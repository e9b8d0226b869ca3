#!/usr/bin/env bash
# The independent quality scoreboard: generates faces for a list of requests and seeds with
# every model and image prior, renders the training faces for the same requests (the ceiling
# the data allows), edits the real photos of data/real_faces, and judges all of it with networks
# deepface never optimises against (scripts/scoreboard.py); writes docs/quality.md and contact
# sheets in docs/. SEEDS=1-12 by default; QUALITY_DIR holds the images (.cache/quality).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
seeds=${SEEDS:-1-12}
dir=${QUALITY_DIR:-.cache/quality}
scripts/fetch_models.sh >/dev/null
py=$(bash scripts/scoreboard_env.sh | tail -n 1)
cargo build --release --quiet
bin=target/release/deepface
rm -rf "$dir" && mkdir -p "$dir"
start=$(date +%s)
$bin quality-set generated --out "$dir/generated" --seeds "$seeds"
$bin quality-set training --out "$dir/training" --seeds "$seeds"
$bin quality-set edits --photos data/real_faces --out "$dir/edits" --requests "Smiling;-Smiling;Male;-Male;Senior;Child"
for set in generated training edits; do
  "$py" scripts/scoreboard.py score "$dir/$set/manifest.json" --out "$dir/$set/scores.json" --deepface "$bin"
done
"$py" scripts/scoreboard.py report "$dir/generated/scores.json" "$dir/training/scores.json" "$dir/edits/scores.json" \
  --labels data/real_faces/faces.csv \
  --out docs/quality.md --commit "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo '+changes')" --seconds $(( $(date +%s) - start ))
"$py" scripts/scoreboard.py sheets "$dir" --out docs
