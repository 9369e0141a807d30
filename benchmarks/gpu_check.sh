#!/usr/bin/env bash
# One-call GPU check for issue 7 (fits in one <= 9-minute device call on one H200). Installs nothing.
#
#   bash benchmarks/stage_gpu_data.sh       # optional, on the CPU machine: full FashionMNIST into .gpu-data/
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or ./gpu-check-out)
#   SMOKE=1 bash benchmarks/gpu_check.sh    # the same steps on the CPU with a small model (a dry run)
#
# 1. environment: nvidia-smi, torch/CUDA versions, which optional imports exist              -> env.json
# 2. throughput, eager: RealNVP FashionMNIST preset (14.7M parameters), eager-fp32 vs fast-nocompile
#    (bf16 + channels-last + fused Adam + cuDNN autotuning), batch 256 then 1024   -> throughput_eager.log
# 3. time to result + exactness: the same preset trained for 60 s with the fast path (eager), test
#    bits/dim and AUROC vs MNIST (fast and exact scoring), then fast path (eager and compiled) vs exact
#    bits/dim on 1,024 fixed test images of the trained model                          -> gpu_check.json, ttr_metrics.csv
#    Uses the full FashionMNIST from .gpu-data/ when staged (carry it), else the embedded 10k bundle.
# 4. throughput, compiled: eager-fp32 vs fast (torch.compile) at batch 1024       -> throughput_compile.log
# Each step has its own timeout and writes its JSON as it goes, so a slow step loses only itself; the
# cheap steps come first. Budget (s): 20 + 80 + 210 + 180 = 490 < 540.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Inductor's compiled-kernel cache is shared by steps 3 and 4.
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/flowood-inductor-cache}"
SECONDS_TTR="${SECONDS_TTR:-60}"
# Compilation time would count against the 60 s of training, so the time-to-result run is eager
# (bf16 + channels-last + fused Adam + cuDNN autotuning) unless TTR_COMPILE=auto|on.
TTR_COMPILE="${TTR_COMPILE:-off}"
if [ -z "${DATASET:-}" ]; then
    if [ -f .gpu-data/FashionMNIST/raw/train-images-idx3-ubyte.gz ] || [ -f .gpu-data/FashionMNIST/raw/train-images-idx3-ubyte ]; then
        DATASET=fashionmnist
    else
        DATASET=fashionmnist-mini
    fi
fi
# SMOKE=1: the same steps on the CPU with a small preset and a few steps (checks the script, not the GPU).
if [ "${SMOKE:-0}" = 1 ]; then
    DEVICE=cpu PRESET=realnvp-fashionmnist-small SMALL=8 LARGE=16 SECONDS_TTR=3 TTR_BATCH=16
    STEPS=(--warmup 1 --steps 1 --score-steps 1 --score-batch 16 --threads 1)
    TTR_EXTRA=(--score-limit 128 --exact-batch 32)
else
    DEVICE=cuda PRESET=realnvp-fashionmnist SMALL=256 LARGE=1024 TTR_BATCH=256
    STEPS=(--score-batch 1024)
    TTR_EXTRA=(--check-compiled)
fi
# The device tool brings back at most 8 files from $OUT: only logs and summaries go there (7 files).
WORK="${WORK:-/tmp/flowood-gpu-check}"
rm -rf "$WORK"; mkdir -p "$WORK"
BENCH=(benchmarks/throughput.py --device "$DEVICE" --presets "$PRESET" "${STEPS[@]}")

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
timeout 20 "$PY" - > "$OUT/env.json" 2> "$WORK/env.err" <<'PYEOF'
import importlib, json, platform, torch
mods = {}
for m in ["typer", "rich", "tqdm", "yaml", "safetensors", "tensorboard", "sklearn", "scipy", "matplotlib",
          "torchvision", "flowood", "flowood.train.trainer", "flowood.cli.app"]:
    try:
        importlib.import_module(m)
        mods[m] = True
    except Exception as err:
        mods[m] = f"{type(err).__name__}: {err}"
print(json.dumps({
    "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(), "imports": mods,
}, indent=2))
PYEOF
cat "$OUT/env.json" "$WORK/env.err"

echo "== throughput, eager (batch $SMALL, $LARGE)"
timeout 80 "$PY" "${BENCH[@]}" --batch-sizes "$SMALL" "$LARGE" --modes eager-fp32 fast-nocompile \
    --out "$WORK/throughput_eager.json" > "$OUT/throughput_eager.log" 2>&1
echo "exit $?"; grep -E '^(\{|# measured)' "$OUT/throughput_eager.log" | cut -c1-300

echo "== time to result + exactness (${SECONDS_TTR}s training on $DATASET)"
timeout 210 "$PY" benchmarks/gpu_check.py all --out "$OUT/gpu_check.json" --seconds "$SECONDS_TTR" \
    --dataset "$DATASET" --data-root .gpu-data --batch-size "$TTR_BATCH" --compile "$TTR_COMPILE" \
    --preset "$PRESET" --run-dir "$WORK/ttr_run" "${TTR_EXTRA[@]}" \
    > "$OUT/gpu_check.log" 2>&1
echo "exit $?"; tail -c 3000 "$OUT/gpu_check.log"

echo "== throughput, compiled (batch $LARGE)"
timeout 180 "$PY" "${BENCH[@]}" --batch-sizes "$LARGE" --modes eager-fp32 fast \
    --out "$WORK/throughput_compile.json" > "$OUT/throughput_compile.log" 2>&1
echo "exit $?"; grep -E '^(\{|# measured)' "$OUT/throughput_compile.log" | cut -c1-300

cp "$WORK/ttr_run/metrics.csv" "$OUT/ttr_metrics.csv" 2>/dev/null
ls -la "$OUT"
