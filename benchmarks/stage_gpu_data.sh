#!/usr/bin/env bash
# Stage the full FashionMNIST (60k/10k idx .gz files, 31 MB) for a GPU check, into .gpu-data/ (git-ignored),
# from Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist).
# The device tool then carries it along:  run(command="bash benchmarks/gpu_check.sh", carry=[".gpu-data"]).
# gpu_check.sh uses .gpu-data/ when it is there and the embedded 10k-image bundle otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${1:-/usr/share/datasets/fashion-mnist}"
DST=.gpu-data/FashionMNIST/raw
mkdir -p "$DST"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ ! -f "$SRC/$f.gz" ]; then
        echo "missing $SRC/$f.gz: install Debian's dataset-fashion-mnist or pass the folder holding the .gz files" >&2
        exit 1
    fi
    cp "$SRC/$f.gz" "$DST/"
done
du -sh .gpu-data
