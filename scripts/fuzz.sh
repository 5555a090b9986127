#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and runs each for a bounded
# time from its seed corpus. Usage: fuzz.sh [seconds-per-target]
set -e
cd "$(dirname "$0")/.."
secs=${1:-30}
sh scripts/deps.sh
dir=$(sh scripts/build.sh fuzz | tail -n 1)
for t in "$dir"/fuzz_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  seeds="tests/fuzz/seeds/${name#fuzz_}"
  work="$dir/corpus/${name#fuzz_}"
  mkdir -p "$work"
  echo "fuzz: $name for ${secs}s" >&2
  if [ -d "$seeds" ]; then
    "$t" -max_total_time="$secs" -print_final_stats=1 "$work" "$seeds" 2>&1 | tail -n 12
  else
    "$t" -max_total_time="$secs" -print_final_stats=1 "$work" 2>&1 | tail -n 12
  fi
done
