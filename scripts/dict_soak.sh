#!/bin/sh
# Crash-consistency soak of the Dict (tests/test_dict.lua's random-kill test, many more trials):
# in each trial two workers run random operations on a dict; one kills itself with SIGKILL at
# a random crash point inside an operation, the other is SIGKILLed from outside at a random
# moment; then the dict's invariants are checked (d:_check()) and no completed increment may be
# lost. Prints the trial, kill and inconsistent-state counts; fails on any inconsistent state.
# Usage: scripts/dict_soak.sh [TRIALS]   (default 1000)
# LUASHM_BUILD_DIR picks the build (default build); LUASHM_DICT_SOAK_SEED replays a run.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
build=${LUASHM_BUILD_DIR:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
export LUASHM_DICT_SOAK_TRIALS="${1:-1000}"
exec sh "$top/tests/run_suite.sh" "$build/luashm" "$build" "$top/tests/test_dict.lua"
