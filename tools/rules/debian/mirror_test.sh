#!/usr/bin/env bash
# mirror.sh against made-up apt directories: DEBIAN_MIRROR wins; deb822 files before one-line ones;
# stanzas of other types or disabled ones, deb-src lines, [ options ] and URIs not ending in
# /debian are passed over; no mirror is one line on stderr and exit 1. Usage: mirror_test.sh MIRROR_SH
set -euo pipefail
mirror_sh="$1"
tmp="$(mktemp -d "${TEST_TMPDIR:-/tmp}/mirror_test.XXXXXX")"
failures=0

# check NAME WANT_STATUS WANT_STDOUT WANT_STDERR ETC_APT [ENV...]
check() {
  local name="$1" want_status="$2" want_out="$3" want_err="$4" etc_apt="$5" status=0
  shift 5
  env -u DEBIAN_MIRROR "$@" sh "$mirror_sh" "$etc_apt" >"$tmp/out" 2>"$tmp/err" || status=$?
  if [[ "$status" != "$want_status" || "$(<"$tmp/out")" != "$want_out" || "$(<"$tmp/err")" != "$want_err" ]]; then
    echo "FAIL $name: status $status, stdout '$(<"$tmp/out")', stderr '$(<"$tmp/err")';" \
      "want $want_status, '$want_out', '$want_err'" >&2
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

# A one-line sources.list: comments, deb-src, an Ubuntu archive, [ options ] in both spellings.
one_line="$tmp/one-line"
mkdir -p "$one_line/sources.list.d"
cat >"$one_line/sources.list" <<'EOF'
# deb http://127.0.0.9/debian sid main
deb-src http://127.0.0.8/debian sid main
deb http://127.0.0.7/ubuntu noble main
deb [ arch=amd64 signed-by=/k.gpg ] http://127.0.0.6/debian-security trixie-security main
	deb [signed-by=/k.gpg] http://127.0.0.1/debian/ sid main # the one
EOF
echo "deb http://127.0.0.2/debian sid main" >"$one_line/sources.list.d/z.list"
lists="$tmp/lists" # sources.list.d/*.list only
mkdir -p "$lists/sources.list.d"
cp "$one_line/sources.list.d/z.list" "$lists/sources.list.d/"

# deb822 files: a deb-src stanza, a disabled one, a comment, two URIs on one line; they come
# before the one-line files, and a.sources before b.sources.
deb822="$tmp/deb822"
mkdir -p "$deb822/sources.list.d"
cp "$one_line/sources.list" "$deb822/sources.list"
cat >"$deb822/sources.list.d/a.sources" <<'EOF'
Types: deb-src
URIs: http://127.0.0.3/debian

Types: deb
Enabled: no
URIs: http://127.0.0.4/debian

# a comment
Types: deb deb-src
URIs: http://127.0.0.5/x http://127.0.0.10/debian
Suites: sid
EOF
echo "URIs: http://127.0.0.11/debian" >"$deb822/sources.list.d/b.sources"

# No Debian mirror: an Ubuntu machine's sources, and an empty directory.
ubuntu="$tmp/ubuntu"
mkdir -p "$ubuntu" "$tmp/empty"
echo "deb http://127.0.0.7/ubuntu noble main universe" >"$ubuntu/sources.list"

none="found no Debian mirror in $ubuntu/sources.list{,.d/}: set DEBIAN_MIRROR to one (a URL ending in /debian)"
check "DEBIAN_MIRROR wins, trimmed" 0 "http://127.0.0.12/debian" "" "$deb822" "DEBIAN_MIRROR= http://127.0.0.12/debian/ "
check "an empty DEBIAN_MIRROR counts as unset" 0 "http://127.0.0.10/debian" "" "$deb822" "DEBIAN_MIRROR="
check "deb822 first" 0 "http://127.0.0.10/debian" "" "$deb822"
check "one-line sources.list before sources.list.d" 0 "http://127.0.0.1/debian" "" "$one_line"
check "one-line sources.list.d/*.list" 0 "http://127.0.0.2/debian" "" "$lists"
check "none: one line, exit 1" 1 "" "$none" "$ubuntu"
check "none: empty directory" 1 "" "${none//$ubuntu/$tmp/empty}" "$tmp/empty"

rm -rf "$tmp"
((failures == 0)) || exit 1
