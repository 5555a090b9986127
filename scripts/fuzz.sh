#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and runs each for a bounded
# time from its seed corpus. Usage: fuzz.sh [seconds-per-target]
set -e
cd "$(dirname "$0")/.."
secs=${1:-30}
sh scripts/deps.sh
# Each target is built on its own, so that one that does not build fails the run without
# keeping the others from running.
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  if ! dir=$(sh scripts/build.sh fuzz "$name" 2>/tmp/luashm-fuzz-build.$$); then
    tail -n 20 /tmp/luashm-fuzz-build.$$
    echo "fuzz: $name does not build" >&2
    status=1
    continue
  fi
  t="$dir/$name"
  seeds="tests/fuzz/seeds/${name#fuzz_}"
  work="$dir/corpus/${name#fuzz_}"
  mkdir -p "$work"
  [ -d "$seeds" ] || seeds=""
  echo "fuzz: $name for ${secs}s" >&2
  log="$dir/$name.log"
  # A crash leaves its input in $dir (crash-*) and fails the run: keep it as a regression seed.
  if ! "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$dir/" \
      "$work" $seeds > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $name FAILED (input saved under $dir/)" >&2
    status=1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$log" | tail -n 2
done
rm -f /tmp/luashm-fuzz-build.$$
exit ${status:-0}
