#!/bin/sh
# data.sh (`make data`): puts data/title_conference.csv (the tutorial's 2,507 paper titles) and
# data/vocab.txt (bert-base-uncased WordPiece vocabulary) in place, copied from the shared folder
# ($BERTLAB_SHARED, default ../shared) when it has them, else downloaded with curl; md5 always checked.
# Does nothing for a file already present with the right checksum. POSIX sh.
set -u
cd "$(dirname "$0")/.." || exit 1
SHARED="${BERTLAB_SHARED:-../shared}"
DATA_DIR="${BERTLAB_DATA_DIR:-data}"

CSV_MD5=597be09f12c11bf48ec1ed7c4c6ebbc7
CSV_URL=https://raw.githubusercontent.com/susanli2016/NLP-with-Python/master/data/title_conference.csv
VOCAB_MD5=64800d5d8528ce344256daf115d4965e
VOCAB_URL=https://huggingface.co/bert-base-uncased/resolve/main/vocab.txt

md5_of() {
  if command -v md5sum >/dev/null 2>&1; then md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then md5 -q "$1"
  else echo "data.sh: neither md5sum nor md5 is installed" >&2; echo none
  fi
}

# by_hand: where to put the file when neither the shared folder nor the network supplies it.
by_hand() {
  case "$dest" in /*) abs=$dest;; *) abs=$(pwd)/$dest;; esac
  echo "data.sh: put the file there by hand: $abs (md5 $want, from $url)," \
       "or $SHARED/data/$shared_name (BERTLAB_SHARED names another shared folder); then run make again" >&2
}

# fetch NAME SHARED_NAME MD5 URL: data/NAME from $SHARED/data/SHARED_NAME or URL, checked against MD5.
fetch() {
  name=$1; shared_name=$2; want=$3; url=$4
  dest="$DATA_DIR/$name"
  if [ -f "$dest" ] && [ "$(md5_of "$dest")" = "$want" ]; then
    return 0
  fi
  mkdir -p "$DATA_DIR" || return 1
  tmp="$dest.tmp.$$"
  src="$SHARED/data/$shared_name"
  if [ -f "$src" ]; then
    if cp "$src" "$tmp" && chmod 644 "$tmp" && [ "$(md5_of "$tmp")" = "$want" ]; then
      mv -f "$tmp" "$dest" && echo "data: $dest (copied from $src)" && return 0
    fi
    echo "data.sh: $src has md5 $(md5_of "$src"), expected $want; trying $url" >&2
    rm -f "$tmp"
  fi
  if ! command -v curl >/dev/null 2>&1; then
    echo "data.sh: cannot get $dest: $src is missing and curl is not installed" >&2
    by_hand; return 1
  fi
  if ! curl -fsSL --retry 2 --connect-timeout 20 -o "$tmp" "$url"; then
    rm -f "$tmp"
    echo "data.sh: cannot get $dest: $src is missing and downloading $url failed" >&2
    by_hand; return 1
  fi
  got=$(md5_of "$tmp")
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    echo "data.sh: $url has md5 $got, expected $want; not installing $dest" >&2
    return 1
  fi
  mv -f "$tmp" "$dest" && echo "data: $dest (downloaded from $url)"
}

status=0
fetch title_conference.csv title_conference.csv "$CSV_MD5" "$CSV_URL" || status=1
fetch vocab.txt bert-base-uncased-vocab.txt "$VOCAB_MD5" "$VOCAB_URL" || status=1
exit $status
