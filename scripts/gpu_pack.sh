#!/bin/sh
# gpu_pack.sh: fills .gpu/ (ignored by git) with what `make gpu-check` needs on the GPU machine,
# which has gcc, nvcc, PyTorch and transformers but no Debian packages and no network:
#   .gpu/debs/   the runtime and -dev .debs of bertlab's libraries (apt-get download; gpu_check.sh
#                unpacks them with dpkg -x and builds there, so the CUDA objects match its CUDA)
#   .gpu/model/  all-MiniLM-L6-v2 with its weights in float16 (87 MB of float32 would not fit the
#                device tool's 64 MiB), config.json, vocab.txt
#   .gpu/title_conference.csv  the tutorial's data
# Then prints the size that travels (tracked files + .gpu/) and fails above 64 MiB.
# Run here, from anywhere: sh scripts/gpu_pack.sh; then on the GPU machine, carrying .gpu:
#   make gpu-check
set -eu
cd "$(dirname "$0")/.."
P=.gpu
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
# the libraries `ldd bin/bertlab` names (besides libc, libgomp and CUDA's), their headers, and the
# libraries those need: OpenBLAS needs libgfortran5, which needs libquadmath0
PKGS="liblua5.4-0 liblua5.4-dev libcsv3 libcsv-dev libutf8proc2 libutf8proc-dev libjansson4
libjansson-dev libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libquadmath0"

[ -f "$MODEL/model.safetensors" ] || { echo "gpu_pack: $MODEL/model.safetensors is missing (make model)" >&2; exit 1; }
CSV=data/title_conference.csv
[ -f "$CSV" ] || CSV=../shared/data/title_conference.csv
[ -f "$CSV" ] || { echo "gpu_pack: title_conference.csv is missing (make data)" >&2; exit 1; }

rm -rf "$P.tmp"
mkdir -p "$P.tmp/debs" "$P.tmp/model"
# shellcheck disable=SC2086
(cd "$P.tmp/debs" && apt-get download $PKGS 2>&1 | grep -v "^W: Download is performed unsandboxed") || {
  echo "gpu_pack: apt-get download failed" >&2; exit 1; }
# libopenblas-openmp-dev is mostly its 58 MB static library (5 MB packed), which bertlab never links:
# rebuilt without it, the headers and the .so links stay
dev=$(ls "$P.tmp"/debs/libopenblas-openmp-dev_*.deb)
rm -rf "$P.tmp/x"
dpkg-deb -R "$dev" "$P.tmp/x"
find "$P.tmp/x" -name '*.a' -delete
dpkg-deb -b -Zxz "$P.tmp/x" "$dev" >/dev/null
rm -rf "$P.tmp/x"
python3 tests/cuda/gpu_pack_model.py "$MODEL" "$P.tmp/model"
cp "$CSV" "$P.tmp/title_conference.csv"
rm -rf "$P"
mv "$P.tmp" "$P"

limit=$((64 * 1024 * 1024))
repo=$(git ls-files -z | du --files0-from=- -cb | tail -1 | cut -f1)
pack=$(du -sb "$P" | cut -f1)
total=$((repo + pack))
echo "gpu_pack: $P: $(ls "$P/debs" | wc -l) debs ($(du -sh "$P/debs" | cut -f1)), model $(du -sh "$P/model" | cut -f1), data $(du -sh "$P/title_conference.csv" | cut -f1)"
echo "gpu_pack: travels: tracked files $repo + $P $pack = $total bytes ($((total * 100 / limit))% of 64 MiB)"
if [ "$total" -gt "$limit" ]; then
  echo "gpu_pack: over the device tool's 64 MiB" >&2
  exit 1
fi
echo "gpu_pack: on the GPU machine, with carry [\"$P\"]: make gpu-check"
