#!/bin/sh
# Prints the Debian mirror this machine fetches Debian packages from, without a trailing slash:
# $DEBIAN_MIRROR when set, else the first URI of the machine's apt sources whose path ends in
# /debian, looked for in this order:
#   1. deb822 files, ETC_APT/sources.list.d/*.sources: the URIs of each stanza whose Types include
#      deb and that is not Enabled: no;
#   2. one-line files, ETC_APT/sources.list then ETC_APT/sources.list.d/*.list: each `deb` line's
#      URI (after its [ options ], if any).
# Without one it prints one line saying what to set on stderr and exits 1.
#
#   mirror.sh [ETC_APT]     ETC_APT: default /etc/apt (tests give another)
#
# The one implementation: tools/bazel (the chroot's mirror), the debian_package_set and debian_tree
# repository rules (repositories.bzl), lock.py and the foreign-machine test all run it, so that
# none of them names a mirror in the repo and all of them agree on which one the machine has.
set -eu
etc_apt="${1:-/etc/apt}"
LC_ALL=C # glob order: byte order, whatever the caller's locale
export LC_ALL

files=""
for f in "$etc_apt"/sources.list.d/*.sources "$etc_apt"/sources.list "$etc_apt"/sources.list.d/*.list; do
  [ -f "$f" ] && files="$files
$f"
done

# The file names go to awk one a line (names with a newline are not apt sources). awk exits 0 once
# it has printed the mirror, 1 if it found none.
printf '%s\n' "$files" | awk '
  function trim(s) { sub(/^[ \t\r\n]+/, "", s); sub(/[ \t\r\n]+$/, "", s); return s }
  function offer(uri) {
    sub(/\/+$/, "", uri)
    if (uri ~ /^[a-z+]+:\/\// && uri ~ /\/debian$/) { print uri; found = 1; exit }
  }
  # One deb822 stanza ends: offer its URIs if it is an enabled "deb" stanza.
  function end_stanza(   n, i, words) {
    if (uris != "" && tolower(enabled) != "no" && (" " types " ") ~ /[ \t]deb[ \t]/) {
      n = split(uris, words, /[ \t]+/)
      for (i = 1; i <= n; i++) if (words[i] != "") offer(words[i])
    }
    uris = ""; types = "deb"; enabled = "yes"
  }
  function read_deb822(path,   line, key, value) {
    end_stanza()
    while ((getline line < path) > 0) {
      if (line ~ /^[ \t\r]*$/) { end_stanza(); continue }
      # Comments, continuation lines and lines without a field are not read.
      if (line ~ /^#/ || line ~ /^[ \t]/ || index(line, ":") == 0) continue
      key = tolower(trim(substr(line, 1, index(line, ":") - 1)))
      value = trim(substr(line, index(line, ":") + 1))
      if (key == "uris") uris = value
      else if (key == "types") types = value
      else if (key == "enabled") enabled = value
    }
    close(path)
    end_stanza()
  }
  function read_one_line(path,   line, n, i, words) {
    while ((getline line < path) > 0) {
      sub(/#.*/, "", line)
      n = split(line, words, /[ \t\r]+/)
      i = 1
      if (i <= n && words[i] == "") i++
      if (i > n || words[i] != "deb") continue
      i++
      if (i <= n && words[i] ~ /^\[/) {
        while (i <= n && words[i] !~ /\]$/) i++
        i++
      }
      if (i <= n && words[i] != "") offer(words[i])
    }
    close(path)
  }
  BEGIN {
    env = trim(ENVIRON["DEBIAN_MIRROR"])
    if (env != "") { sub(/\/+$/, "", env); print env; found = 1; exit }
  }
  $0 == "" { next }
  /\.sources$/ { read_deb822($0); next }
  { read_one_line($0) }
  END { exit !found }
' || {
  echo "found no Debian mirror in $etc_apt/sources.list{,.d/}: set DEBIAN_MIRROR to one (a URL ending in /debian)" >&2
  exit 1
}
