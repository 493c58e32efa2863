#!/bin/sh
# python3 of @python3_13 (tools/rules/debian debian_tree): Debian trixie's python3.13, the build the
# py_service image ships, run by the same locked glibc's own dynamic loader with the tree's
# libraries, so neither the machine's python nor its libc takes part. sys.executable is this
# launcher (--argv0), so a test's `sys.executable` subprocess runs the same way.
set -eu
here="$(dirname "$(readlink -f "$0")")"
root="${here%/usr/bin}"
libs="$root/usr/lib/x86_64-linux-gnu"
exec "$libs/ld-linux-x86-64.so.2" --library-path "$libs" --argv0 "$here/python3" "$here/python3.13" "$@"
