#!/bin/sh
# The example command: installs what is missing, builds, and runs the main example job.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
dir=$(sh scripts/build.sh release | tail -n 1)
exec "$dir/luashm" scripts/examples/hello_python.lua "$@"
