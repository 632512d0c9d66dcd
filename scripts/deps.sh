#!/bin/sh
# deps.sh: installs the Debian packages bertlab builds with, where any is missing.
set -e
pkgs="gcc make pkg-config liblua5.4-dev libcsv-dev libutf8proc-dev libopenblas-dev libjansson-dev python3 unzip ca-certificates curl"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
