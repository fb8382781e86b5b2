#!/usr/bin/env bash
# GPU readiness check (docs/cluster-and-gpu.md, "GPU check"): on a CUDA machine, from a fresh copy of the repository,
# install what is missing, print the device's facts, run the CUDA tests, benchmark the models on the GPU and time a
# few minutes of the paper protocol's TEDS-Net training, then project the cost of the whole protocol. Each stage has
# its own time limit and the whole check stays inside GPU_CHECK_BUDGET_S; a summary ends the output.
#
#   bash tools/gpu_check.sh                       the check (exit 0: every stage passed, 1: a stage failed,
#                                                 2: no CUDA device, nothing run)
#   bash tools/gpu_check.sh --fetch-wheels [DIR] [PYTHON_VERSION]
#                                                 on a machine with network access: download the wheels a
#                                                 stock PyTorch CUDA image lacks into DIR (default .whl), for a
#                                                 target without network access
#
# Environment: PYTHON (default python3), GPU_CHECK_OUT (folder for the logs, the benchmark CSV and the summary;
# default a new temporary folder), GPU_CHECK_WHEELS (folder of wheels to install from without network; default
# .whl), GPU_CHECK_BUDGET_S (whole check, default 450), GPU_CHECK_TRAIN_S (training budget, default 150).
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
PYTHON=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-$REPO/.whl}
# Packages a stock PyTorch CUDA image lacks; the check installs them from a wheel folder where nothing can be fetched.
IMAGE_LACKS=(nibabel gudhi segmentation-models-pytorch voxelmorph neurite pystrum)

pin_of() { # the name==version line of envs/requirements.txt for a package
  grep -i -m1 "^$1==" envs/requirements.txt
}

fetch_wheels() {
  local dir=${1:-.whl} version=${2:-3.12}
  mkdir -p "$dir"
  local name pin
  for name in "${IMAGE_LACKS[@]}"; do
    pin=$(pin_of "$name") || { echo "no pin for $name in envs/requirements.txt" >&2; return 1; }
    # compiled packages: the target's Python and platform; pure-Python ones (some only as sdists): a built wheel
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" "$pin" 2>/dev/null ||
      "$PYTHON" -m pip wheel --quiet --no-deps -w "$dir" "$pin" || return 1
  done
  echo "wheels for Python $version in $dir:"
  ls -1 "$dir"
}

install_missing() {
  local missing
  missing=$("$PYTHON" tools/gpu_check.py missing) || return 1
  if [ -n "$missing" ]; then
    echo "missing: $(echo "$missing" | tr '\n' ' ')"
    # shellcheck disable=SC2086  # one argument per requirement
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
      echo "installing from $WHEELS (no index)"
      "$PYTHON" -m pip install --quiet --no-index --find-links "$WHEELS" $missing || return 1
    else
      "$PYTHON" -m pip install --quiet $missing || {
        echo "pip could not install them; on a machine without network access, fetch wheels elsewhere with"
        echo "  bash tools/gpu_check.sh --fetch-wheels .whl <target python version>, and copy .whl here"
        return 1
      }
    fi
  else
    echo "every pinned package the check needs is installed"
  fi
  if ! "$PYTHON" -c 'import importlib.metadata as m; m.version("tedsnet-bench")' 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --no-build-isolation --no-deps -e . ||
      echo "editable install failed; the check imports the checkout through PYTHONPATH"
  fi
}

facts() {
  nvidia-smi || echo "(nvidia-smi not available)"
  "$PYTHON" tools/gpu_check.py facts
}

case "${1:-}" in
  --fetch-wheels)
    fetch_wheels "${2:-.whl}" "${3:-3.12}"
    exit $?
    ;;
  --install-stage) # internal: the install stage, run under its time limit
    install_missing
    exit $?
    ;;
  --facts-stage) # internal: the facts stage
    facts
    exit $?
    ;;
esac

# ---------------------------------------------------------------------------------- CUDA or stop at once
torch_cuda=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()), torch.__version__, torch.version.cuda)' 2>/dev/null)
if [ "${torch_cuda%% *}" != 1 ]; then
  if [ -z "$torch_cuda" ] && nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: nvidia-smi sees a GPU and $PYTHON has no torch: the install stage installs it."
  else
    {
      echo "gpu_check: no CUDA device, so nothing was run or installed."
      if [ -z "$torch_cuda" ]; then
        echo "  $PYTHON cannot import torch, and nvidia-smi finds no GPU."
      else
        read -r _ version cuda <<<"$torch_cuda"
        echo "  torch $version (built for CUDA $cuda) reports torch.cuda.is_available() = False."
      fi
      echo "  Run this check on a machine with an NVIDIA GPU, its driver and a CUDA build of PyTorch"
      echo "  (docs/cluster-and-gpu.md, \"GPU check\"). Without a GPU: python3 -m pytest tests/test_cuda.py skips cleanly."
    } >&2
    exit 2
  fi
fi

# ------------------------------------------------------------------------------------------------ stages
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}
TRAIN_S=${GPU_CHECK_TRAIN_S:-150}
OUT_DIR=${GPU_CHECK_OUT:-$(mktemp -d -t gpu_check.XXXXXX)}
WORK=$(mktemp -d -t gpu_check_work.XXXXXX)
mkdir -p "$OUT_DIR"
trap 'rm -rf "$WORK"' EXIT
# the repository's packages import from the checkout even before (or without) the editable install
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
START=$SECONDS
FAILED=0
SUMMARY=()

# stage NAME LIMIT_S COMMAND...: run COMMAND under min(LIMIT_S, what is left of the budget), log to OUT_DIR/NAME.log
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - (SECONDS - START)))
  ((limit > left)) && limit=$left
  if ((limit < 15)); then
    SUMMARY+=("$(printf '%-9s %s' "$name" "skipped: the check's ${BUDGET_S} s are spent")")
    FAILED=1
    return
  fi
  echo
  echo "=== $name (limit ${limit} s) ==="
  local t0=$SECONDS status
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  case $rc in
    0) status="ok" ;;
    124 | 137) status="TIMED OUT at ${limit} s" FAILED=1 ;;
    *) status="FAILED (exit $rc)" FAILED=1 ;;
  esac
  SUMMARY+=("$(printf '%-9s %-24s %4d s' "$name" "$status" $((SECONDS - t0)))")
}

skip() { # skip NAME REASON
  SUMMARY+=("$(printf '%-9s %s' "$1" "skipped: $2")")
  echo
  echo "=== $1: skipped ($2) ==="
}

importable() { "$PYTHON" -c "import $1" 2>/dev/null; }

stage install 120 bash "$0" --install-stage
stage facts 45 bash "$0" --facts-stage
stage pytest 150 "$PYTHON" -m pytest tests/test_cuda.py -m cuda -q -rs -p no:cacheprovider

bench_models=(tedsnet unet)
importable segmentation_models_pytorch && bench_models+=(unet_smp)
importable voxelmorph && bench_models+=(voxelmorph)
if importable gudhi; then
  stage bench 150 "$PYTHON" -m tedsnet.speed.bench --device cuda --models "${bench_models[@]}" \
    --modes eager fp32 fast --warmup 3 --repeats 9 --burst 4 --threads 4 --out "$OUT_DIR/bench.csv"
else
  skip bench "gudhi is not installed (the benchmark also times the per-case evaluation)"
fi

if importable nibabel; then
  left=$((BUDGET_S - (SECONDS - START)))
  train_s=$((TRAIN_S < left - 75 ? TRAIN_S : left - 75))
  if ((train_s >= 30)); then
    stage train $((train_s + 70)) "$PYTHON" tools/gpu_check.py train --work "$WORK" --budget "$train_s" \
      --bench "$OUT_DIR/bench.csv" --json "$OUT_DIR/train.json"
  else
    skip train "under 30 s of the budget left"
    FAILED=1
  fi
else
  skip train "nibabel is not installed (the phantom cohort is written as NIfTI)"
fi

# ------------------------------------------------------------------------------------------------ summary
{
  echo
  echo "=== summary: $((SECONDS - START)) s in all, logs in $OUT_DIR ==="
  printf '%s\n' "${SUMMARY[@]}"
  grep -h '^RESULT' "$OUT_DIR/train.log" 2>/dev/null | sed 's/^RESULT /  /'
  grep -h "passed\|failed\|skipped" "$OUT_DIR/pytest.log" 2>/dev/null | tail -1 | sed 's/^/  tests: /'
} | tee "$OUT_DIR/summary.txt"
exit "$FAILED"
