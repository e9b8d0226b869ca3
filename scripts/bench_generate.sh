#!/usr/bin/env bash
# A finished face, native CLI (burn flex, this machine's cores): each image prior's default run
# from the command line (model load included, as a user waits for it), per request and seed.
# Prints a markdown table; scripts/bench.sh puts it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DEEPFACE:-target/release/deepface}
requests=${REQUESTS:-"Male,Smiling;-Male,Senior;Child"}
seeds=${BENCH_SEEDS:-"1 2 3"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| image prior | default steps | runs | mean s per face | min s | max s | mean against pixels |"
echo "|---|---|---|---|---|---|---|"
declare -A mean
# A step count as src/make/generate.rs defines it.
const() { sed -nE "s/^pub const $1: \w+ = ([0-9.]+);/\1/p" src/make/generate.rs; }
IFS=';' read -ra reqs <<< "$requests"
for prior in pixels generator latent; do
  times=()
  for r in "${reqs[@]}"; do
    for s in $seeds; do
      t0=$(date +%s%N)
      "$bin" generate --prior "$prior" --attrs "$r" --seed "$s" --out "$tmp/f.png" >/dev/null
      times+=("$(( $(date +%s%N) - t0 ))")
    done
  done
  stats=$(printf '%s\n' "${times[@]}" | awk '{$1/=1e9; s+=$1; if(NR==1||$1<mn)mn=$1; if($1>mx)mx=$1} END {printf "%d %.2f %.2f %.2f", NR, s/NR, mn, mx}')
  read -r n m mn mx <<< "$stats"
  mean[$prior]=$m
  steps=$(case $prior in pixels) const DEFAULT_STEPS;; generator) const PRIOR_STEPS;; latent) echo "0 (one generator pass)";; esac)
  ratio=$(awk -v a="${mean[pixels]}" -v b="$m" 'BEGIN {printf "%.1fx sooner", a/b}')
  [ "$prior" = pixels ] && ratio="—"
  echo "| $prior | $steps | $n | $m | $mn | $mx | $ratio |"
done
