#!/bin/sh
# deps.sh (`make deps`, and the first step of `make`, `make test`, `make demo`, `make bench`): installs
# the Debian packages bertlab builds and runs with, where any is missing (apt-get, as root or through
# sudo). Where they cannot be installed it prints one message naming them and the command that
# installs them, and exits 1, so make stops before compiling anything. POSIX sh.
set -u
# gcc's libc headers (libc6-dev) are only a Recommends of gcc, hence named; python3-pip is how
# scripts/model.sh downloads the default model; lua5.4 runs the stock-Lua test of build/bertlab.so;
# libopenblas-openmp-dev is OpenBLAS on OpenMP's threads (the Makefile links it where installed).
pkgs="gcc libc6-dev make pkg-config liblua5.4-dev libcsv-dev libutf8proc-dev libopenblas-dev libopenblas-openmp-dev libjansson-dev
lua5.4 python3 python3-pip unzip ca-certificates curl"

fail() { # reason: the one message, then exit 1
  echo "deps: $1. bertlab needs these Debian packages, not installed:$missing" >&2
  echo "deps: install them as root with:  apt-get install$missing   (or: sudo apt-get install ...), then run make again" >&2
  exit 1
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  # Not Debian: the build needs these pkg-config modules and tools; name them when one is missing.
  if pkg-config --exists lua5.4 openblas jansson libutf8proc 2>/dev/null &&
     command -v cc >/dev/null && command -v python3 >/dev/null && command -v unzip >/dev/null; then
    exit 0
  fi
  echo "deps: no dpkg-query (not Debian): install by hand a C compiler with OpenMP, make, pkg-config," \
       "Lua 5.4 (headers), OpenBLAS, jansson, utf8proc, libcsv, python3 with pip, unzip and curl" >&2
  exit 1
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "not root and sudo is not installed"
  SUDO="sudo"
fi
echo "deps: installing$missing"
# Lock::Timeout: wait for another apt/dpkg run (unattended upgrades, a second build) instead of failing.
apt() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt update -qq || fail "apt-get update failed (no network, or no permission)"
apt install -y -qq --no-install-recommends $missing >/dev/null || fail "apt-get install failed"
