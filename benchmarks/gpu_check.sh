#!/usr/bin/env bash
# One-call GPU check for issue 7 (fits in one <= 9-minute device call on one H200). Installs nothing.
#
#   bash benchmarks/gpu_check.sh            # from the repository root; results in $OUT (or ./gpu-check-out)
#
# 1. environment: nvidia-smi, torch/CUDA versions, which optional imports exist        -> env.json
# 2. throughput: RealNVP FashionMNIST preset, eager-fp32 vs fast-nocompile vs fast, batch 256 then 512
#    (rows are printed to throughput.log as each batch size finishes)              -> throughput.json
# 3. time to result + exactness: RealNVP FashionMNIST preset (14.7M params), 60 s of fast-path
#    training on the embedded FashionMNIST bundle, test bits/dim and AUROC vs MNIST (fast and exact
#    scoring), then fast-path (eager and compiled) vs exact bits/dim on 1024 fixed test images of the
#    trained model; step 2 has warmed Inductor's cache for the compiled check     -> gpu_check.json
# Every step has its own timeout and writes its JSON as it goes, so a slow step loses only itself.
# Budget (s): env 20 + throughput 250 + time-to-result 230 = 500 < 540.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Inductor's compiled-kernel cache is shared by steps 2 and 3.
export TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/flowood-inductor-cache}"
SECONDS_TTR="${SECONDS_TTR:-60}"
# Compilation time would count against the 60 s of training, so the time-to-result run is eager
# (bf16 + channels-last + fused Adam) unless TTR_COMPILE=auto|on.
TTR_COMPILE="${TTR_COMPILE:-off}"
DATASET="${DATASET:-fashionmnist-mini}"

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
timeout 20 "$PY" - > "$OUT/env.json" 2> "$OUT/env.err" <<'PYEOF'
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
cat "$OUT/env.json"

echo "== throughput"
timeout 250 "$PY" benchmarks/throughput.py --device cuda --presets realnvp-fashionmnist \
    --batch-sizes 256 512 --modes eager-fp32 fast-nocompile fast --out "$OUT/throughput.json" \
    > "$OUT/throughput.log" 2>&1
echo "exit $?"; cat "$OUT/throughput.log" | grep '^{' | cut -c1-400
echo "== time to result + exactness (${SECONDS_TTR}s training)"
timeout 230 "$PY" benchmarks/gpu_check.py all --out "$OUT/gpu_check.json" --seconds "$SECONDS_TTR" \
    --dataset "$DATASET" --batch-size 256 --compile "$TTR_COMPILE" --check-compiled \
    > "$OUT/gpu_check.log" 2>&1
echo "exit $?"; tail -c 3000 "$OUT/gpu_check.log"

rm -rf "$OUT/ttr_run/checkpoints"   # 170 MB of optimiser state is not worth bringing back
ls -la "$OUT"
