#!/bin/sh
# fresh_check.sh (`make fresh-check`, run by CI as root): proves README's two commands work the first
# time on a machine with nothing installed. It builds a minimal Debian bookworm root with
# `debootstrap --variant=minbase --include=make` (make is README's one prerequisite), caches it as a
# tarball outside the work tree (reused by later runs), unpacks a copy, puts a clean `git archive HEAD`
# at /src/bertlab and the shared folder at /src/shared, and runs inside it with chroot, in a clean
# environment: `make test`, `make demo` (short run), `make install PREFIX=/usr/local`, `bertlab -e` from
# another folder, a launch as 2 MPI tasks of this build without MPI (a clear error), and README's
# tensor example under stock lua5.4. It prints each command's result and
# time and exits 1 if any failed. Needs root (debootstrap, mount, chroot) and the network (the Debian
# mirror, PyPI). Inside, the build is CPU-only: the CUDA toolkit is not a Debian package.
# Environment: BERTLAB_FRESH_CACHE (default /var/cache/bertlab-fresh), BERTLAB_SHARED (../shared),
# BERTLAB_FRESH_MIRROR (default: the host's apt sources), BERTLAB_FRESH_KEEP=1 (keep the root),
# BERTLAB_FRESH_TAIL=N (print only the last N lines of each command's output; the whole logs are kept
# in $BERTLAB_FRESH_CACHE/last-run/), DEMO_ARGS (default "--epochs 1 --limit 90 --val-limit 60").
# Delete the tarball to rebuild the root (a new Debian point release, say).
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
SUITE=bookworm
CACHE=${BERTLAB_FRESH_CACHE:-/var/cache/bertlab-fresh}
SHARED=${BERTLAB_SHARED:-../shared}
DEMO_ARGS=${DEMO_ARGS:---epochs 1 --limit 90 --val-limit 60}

say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: $*" >&2; exit 1; }
now() { date +%s; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, mount and chroot); CI runs it as root"
command -v git >/dev/null 2>&1 || die "git not found (the check copies git archive HEAD)"
git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || die "$REPO: not a git checkout with a HEAD commit"
[ -d "$SHARED" ] || die "$SHARED: no shared folder (set BERTLAB_SHARED)"
SHARED=$(cd "$SHARED" && pwd)

# The mirror: the first deb source of the host that serves a main suite (no -security/-updates).
mirror_from_host() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { uri = ""; suite = 0; deb = 0; off = 0
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^#/) continue
          n = split($i, w, /[ \t]+/)
          if (w[1] == "Types:") for (j = 2; j <= n; j++) if (w[j] == "deb") deb = 1
          if (w[1] == "URIs:" && uri == "") uri = w[2]
          if (w[1] == "Suites:") for (j = 2; j <= n; j++) if (w[j] ~ /^[a-z]+$/) suite = 1
          if (w[1] == "Enabled:" && w[2] == "no") off = 1
        }
        if (deb && suite && !off && uri != "") { print uri; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && $3 ~ /^[a-z]+$/ { print $2; exit }'
  done
}
MIRROR=${BERTLAB_FRESH_MIRROR:-$(mirror_from_host | head -n 1)}
[ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}; set BERTLAB_FRESH_MIRROR"

ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
TARBALL="$CACHE/$SUITE-minbase-make-$ARCH.tar.gz"
WORK=""
ROOT=""

# Unmounts everything below $ROOT (deepest first), then removes the work folder, never crossing
# into a mount that is still there.
cleanup() {
  [ -n "$ROOT" ] || return 0
  for m in $(awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || umount -f "$m" 2>/dev/null
  done
  if awk -v r="$ROOT" 'index($2, r "/") == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "fresh-check: mounts are left under $ROOT; not removing $WORK" >&2
  elif [ "${BERTLAB_FRESH_KEEP:-0}" = 1 ]; then
    say "kept the root at $ROOT"
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

t_all=$(now)
mkdir -p "$CACHE" || die "cannot create $CACHE"
rm -rf "$CACHE/last-run"
if [ -s "$TARBALL" ]; then
  say "cached root: $TARBALL"
  t_boot=0
else
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null ||
      die "cannot install debootstrap (apt-get install debootstrap)"
  }
  say "debootstrap --variant=minbase --include=make $SUITE from $MIRROR (first run; cached afterwards)"
  t=$(now)
  boot=$(mktemp -d "$CACHE/boot.XXXXXX") || die "cannot create a folder in $CACHE"
  ROOT=$boot; WORK=$boot
  debootstrap --variant=minbase --include=make "$SUITE" "$boot/root" "$MIRROR" >"$boot/debootstrap.log" 2>&1 || {
    tail -n 20 "$boot/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  rm -rf "$boot/root/var/cache/apt/archives/"*.deb
  tar -C "$boot/root" --numeric-owner -czf "$TARBALL.tmp.$$" . && mv -f "$TARBALL.tmp.$$" "$TARBALL" ||
    { rm -f "$TARBALL.tmp.$$"; die "cannot write $TARBALL"; }
  cleanup; ROOT=""; WORK=""
  t_boot=$(( $(now) - t ))
  say "debootstrap + cache: ${t_boot}s -> $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi

t=$(now)
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/bertlab-fresh.XXXXXX") || die "cannot create a work folder"
ROOT="$WORK/root"
mkdir -p "$ROOT" && tar -C "$ROOT" --numeric-owner -xzf "$TARBALL" || die "cannot unpack $TARBALL"
mkdir -p "$ROOT/src/bertlab" "$ROOT/src/shared"
git -C "$REPO" archive HEAD | tar -C "$ROOT/src/bertlab" -xf - || die "git archive HEAD failed"
cp -R "$SHARED/." "$ROOT/src/shared/" || die "cannot copy $SHARED"
# The host's network settings, as a user's machine has its own: DNS, and the site's extra TLS trust
# anchors (a TLS-inspecting proxy), which ca-certificates picks up when deps.sh installs it.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
mount -t proc proc "$ROOT/proc" &&
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys" &&
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" || die "cannot mount /proc, /sys, /dev in $ROOT"
say "root ready in $(( $(now) - t ))s: $ROOT ($(git -C "$REPO" rev-parse --short HEAD))"

# run NAME DIR CMD: runs CMD with sh in DIR inside the root, in a clean environment; logs, times and
# records the result.
results=""
failed=0
ENV_PROXY=""
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  eval "val=\${$v:-}"
  [ -n "$val" ] && ENV_PROXY="$ENV_PROXY $v=$val"
done
run() {
  name=$1; dir=$2; cmd=$3
  echo
  say "== $name: (cd $dir && $cmd)"
  t=$(now)
  # shellcheck disable=SC2086
  chroot "$ROOT" /usr/bin/env -i HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    $ENV_PROXY /bin/sh -c "cd $dir && $cmd" >"$WORK/$name.log" 2>&1
  rc=$?
  dt=$(( $(now) - t ))
  if [ -n "${BERTLAB_FRESH_TAIL:-}" ]; then tail -n "$BERTLAB_FRESH_TAIL" "$WORK/$name.log"; else cat "$WORK/$name.log"; fi
  mkdir -p "$CACHE/last-run" && cp "$WORK/$name.log" "$CACHE/last-run/$name.log"
  if [ $rc -eq 0 ]; then r="ok  "; else r="FAIL"; failed=1; fi
  say "== $name: $r (exit $rc, ${dt}s)"
  results="$results$(printf '%s %-14s %5ss  %s' "$r" "$name" "$dt" "$cmd")
"
}

run make-test /src/bertlab "make test"
run make-demo /src/bertlab "make demo DEMO_ARGS='$DEMO_ARGS'"
run make-install /src/bertlab "make install PREFIX=/usr/local"
run bertlab-e /tmp "bertlab -e 'local bl = require(\"bertlab\"); print(bl.version, bl.zeros({2, 3}))'"
# a build without MPI (none in the root) launched as 2 tasks: a clear error, exit non-zero
run no-mpi /src/bertlab "! OMPI_COMM_WORLD_SIZE=2 bin/bertlab -e 'require(\"bertlab\").dist_init()' 2>err.txt && grep 'built without MPI' err.txt"
run stock-lua /tmp "lua5.4 -e 'local bl = require(\"bertlab\"); local x = bl.tensor({ { 1.5, 2.0 }, { 3.0, 4.0 } }); print(x * 2); print(x:argmax(2))'"

echo
say "summary (root $SUITE minbase + make; debootstrap ${t_boot}s, 0 = cached; total $(( $(now) - t_all ))s):"
printf '%s' "$results"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$WORK/make-test.log" | tail -n 1)
say "make test inside the root: ${summary:-no summary line}"
[ $failed -eq 0 ] || { say "FAILED"; exit 1; }
say "all passed"
