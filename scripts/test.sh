#!/bin/sh
# The test command: installs what is missing, builds, runs every suite with ctest, and fails
# if the run leaves a luashm_* name in /dev/shm. Usage: test.sh [--sanitize] [ctest args...]
set -e
cd "$(dirname "$0")/.."
mode=release
if [ "${1:-}" = "--sanitize" ]; then
  mode=sanitize
  shift
  # Python and stock lua5.4 are not built with ASan; leaks are the tracker's business, not LSan's
  # (workers _exit on purpose).
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
  export LUASHM_SANITIZE=1
fi
sh scripts/deps.sh
dir=$(sh scripts/build.sh "$mode" | tail -n 1)
before=$(mktemp)
ls /dev/shm | grep '^luashm_' | sort > "$before" || true
set +e
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@"
rc=$?
set -e
leaked=$(ls /dev/shm | grep '^luashm_' | sort | comm -13 "$before" -)
rm -f "$before"
if [ -n "$leaked" ]; then
  echo "LEAK: the test run left these blocks in /dev/shm:" $leaked >&2
  rc=1
fi
exit $rc
