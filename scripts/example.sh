#!/bin/sh
# The example command: installs what is missing, builds, and runs the main example job: the
# Mandelbrot set rendered by parallel workers into a shared array (a progress bar on a
# terminal, an ASCII preview), written to ./mandelbrot.png in the directory it is run from.
# Usage: example.sh [WIDTHxHEIGHT [ITERATIONS [OUT.png [pool|counter]]]]
set -e
out="$PWD/mandelbrot.png"
cd "$(dirname "$0")/.."
sh scripts/deps.sh
dir=$(sh scripts/build.sh release | tail -n 1)
if [ $# -ge 3 ]; then
  exec "$dir/luashm" scripts/examples/mandelbrot.lua "$@"
fi
exec "$dir/luashm" scripts/examples/mandelbrot.lua "${1:-1200x800}" "${2:-256}" "$out"
