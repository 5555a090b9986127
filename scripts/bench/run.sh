#!/bin/sh
# Runs every benchmark (luashm against its peers in the same run) and rewrites BENCHMARKS.md.
# Usage: run.sh [pattern]   (a pattern runs only matching bench files and rewrites nothing)
set -e
cd "$(dirname "$0")/../.."
sh scripts/deps.sh
dir=$(sh scripts/build.sh release | tail -n 1)
export LUASHM_TOP="$PWD" LUASHM_HOST="$PWD/$dir/luashm"
export LUA_PATH="$PWD/scripts/bench/?.lua;;" LUA_CPATH="$PWD/$dir/?.so;;"
before=$(ls /dev/shm | grep -c '^luashm_' || true)
"$LUASHM_HOST" scripts/bench/run.lua "$@"
after=$(ls /dev/shm | grep -c '^luashm_' || true)
if [ "$after" -gt "$before" ]; then echo "LEAK: benchmarks left blocks in /dev/shm" >&2; exit 1; fi
