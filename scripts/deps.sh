#!/bin/sh
# Installs the Debian packages luashm needs to build, test and benchmark, when missing.
# Usage: deps.sh [extra-package ...]
pkgs="cmake make gcc pkg-config lua5.4 liblua5.4-dev lua-unit python3 python3-numpy
libreadline-dev clang libclang-rt-14-dev tmux util-linux procps mpich libmpich-dev luarocks
man-db $*"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "luashm: installing$missing" >&2
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -qq >/dev/null &&
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
