#!/bin/sh
# Configures and builds luashm into a build directory. Usage: build.sh [release|sanitize|fuzz]
# [target...] (only those targets when given). Prints the build directory on the last line.
set -e
cd "$(dirname "$0")/.."
case "${1:-release}" in
  release) dir=build; args="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUASHM_WERROR=ON" ;;
  sanitize) dir=build-sanitize; args="-DCMAKE_BUILD_TYPE=Debug -DLUASHM_SANITIZE=ON -DLUASHM_WERROR=ON" ;;
  fuzz) dir=build-fuzz; args="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUASHM_FUZZ=ON -DLUASHM_WERROR=ON -DCMAKE_C_COMPILER=clang" ;;
  *) echo "usage: build.sh [release|sanitize|fuzz] [target...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
dir=${LUASHM_BUILD_DIR:-$dir}
cmake -S . -B "$dir" $args >/dev/null
if [ $# -gt 0 ]; then
  for t in "$@"; do cmake --build "$dir" -j "$(nproc)" --target "$t" >&2; done
else
  cmake --build "$dir" -j "$(nproc)" >&2
fi
echo "$dir"
