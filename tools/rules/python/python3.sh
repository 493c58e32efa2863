#!/bin/sh
# python3 of a debian_tree holding one Debian CPython (tools/rules/debian): @python3_13, Debian
# trixie's python3.13, the build the py_service image ships; @python3_11, Debian 12's, the oldest
# Python the host-run scripts support. It runs the one python3.N beside it with the tree's own glibc
# loader and libraries, so neither the machine's python nor its libc takes part. Debian 12's
# packages still install libraries under /lib, trixie's under /usr/lib: both are searched.
# sys.executable is this launcher (--argv0), so a test's `sys.executable` subprocess runs the same way.
set -eu
here="$(dirname "$(readlink -f "$0")")"
root="${here%/usr/bin}"
libs="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
loader="$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -e "$loader" ] || loader="$root/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
python=""
for candidate in "$here"/python3.[0-9] "$here"/python3.[0-9][0-9]; do
  [ -f "$candidate" ] || continue # a pattern that matches nothing stays as it is
  if [ -n "$python" ]; then
    echo "python3.sh: more than one interpreter in $here: $python, $candidate" >&2
    exit 2
  fi
  python="$candidate"
done
if [ -z "$python" ]; then
  echo "python3.sh: no python3.N interpreter in $here" >&2
  exit 2
fi
exec "$loader" --library-path "$libs" --argv0 "$here/python3" "$python" "$@"
