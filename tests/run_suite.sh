#!/bin/sh
# Runs one LuaUnit suite with the luashm host and fails if it leaves a luashm_* name in
# /dev/shm. As root, each suite gets a private /dev/shm (a tmpfs in its own mount namespace)
# so that suites running side by side cannot see each other's blocks; the leak check then
# runs inside it. Usage: run_suite.sh HOST MODULE_DIR SUITE.lua
host=$1 moddir=$2 suite=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

if [ "${LUASHM_ISOLATED:-}" != 1 ] && [ "$(id -u)" = 0 ] && [ -z "${LUASHM_NO_ISOLATE:-}" ] &&
  unshare -m true 2>/dev/null; then
  LUASHM_ISOLATED=1 exec unshare -m sh -c \
    'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec sh "$0" "$@"' "$0" "$@"
fi

export LUASHM_HOST="$host" LUASHM_TOP="$top" LUASHM_MODDIR="$moddir"
export LUA_CPATH="$moddir/?.so;;"
export LUA_PATH="$here/?.lua;$top/scripts/?.lua;;"
export PYTHONDONTWRITEBYTECODE=1

names() { ls /dev/shm 2>/dev/null | grep '^luashm_' | sort; }
before=$(mktemp)
names > "$before"
cd "$top" || exit 1
"$host" "$suite" -v
rc=$?
# A tracker may still be unlinking what a killed process tree left: give it a moment.
i=0
while [ $i -lt 30 ]; do
  leaked=$(names | comm -13 "$before" -)
  [ -z "$leaked" ] && break
  sleep 0.1
  i=$((i + 1))
done
rm -f "$before"
if [ -n "$leaked" ]; then
  echo "LEAK: $(basename "$suite") left these blocks in /dev/shm:" $leaked >&2
  for n in $leaked; do rm -f "/dev/shm/$n"; done
  rc=1
fi
exit $rc
