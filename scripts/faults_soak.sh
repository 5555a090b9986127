#!/bin/sh
# Soak of the fault-injection harness (tests/test_faults.lua): many more SIGKILL trials than the
# test suite runs, in a private /dev/shm when run as root. Prints the trial and leak counts and
# the channel jobs' message counts (sent, received, lost, duplicated); fails on any leaked
# block or any lost or duplicated message.
# Usage: scripts/faults_soak.sh [TRIALS [CONCURRENT]]   (default 5000 trials, 8 at a time)
# LUASHM_BUILD_DIR picks the build (default build); LUASHM_FAULT_SEED replays a run.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=${LUASHM_BUILD_DIR:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
export LUASHM_FAULT_TRIALS="${1:-5000}" LUASHM_FAULT_CONCURRENT="${2:-8}"
exec sh "$top/tests/run_suite.sh" "$build/luashm" "$build" "$top/tests/test_faults.lua"
