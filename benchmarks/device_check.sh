#!/usr/bin/env bash
# The checks a session with a lent GPU runs, as one command from the repository root:
#   bash benchmarks/device_check.sh            (reports under $OUT, else /tmp/device_check)
# One run of at most 8 minutes (BUDGET_S, default 470 s, counts from the start, the build included) that measures
# every GPU goal: it builds the extension in place (the GPU image has scikit-build-core, pybind11, ninja), then runs
#   1. bench_sampling (the GPU goals: graph vs flow_matching and vs compile at N = 1e6, fused bandwidth against a copy
#      at N >= 1.6e7, no host sync in the graph/fused loops; at most 330 s, mostly the cold compiles),
#   2. bench_pde's torch twins at batch 64,
#   3. the test suite (the CUDA-only tests skip elsewhere) with whatever time is left.
# Each step runs under `timeout`, so the whole check ends inside the budget; a step that runs out says so.
# The goals need flow_matching (the bench extra), and the device machine reaches no index: if it is missing, put the
# wheels in a folder that travels with the working tree (pip download --no-deps -d wheels flow-matching torchdiffeq
# tqdm) and pass WHEELS=wheels; without it the graph vs flow_matching goal reads NOT MEASURED.
# DEVICE=cpu TESTS=tests/test_pde_navier_stokes.py smoke-runs it without a GPU (bench_sampling then runs --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/device_check}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
budget=${BUDGET_S:-470}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
left() { echo $((budget - SECONDS)); }
step() { # step NAME CAP_SECONDS TAIL_LINES CMD...: run under a time limit, keep the log, remember a failure, go on
  local name=$1 cap=$2 lines=$3
  shift 3
  local limit
  limit=$(left)
  if [ "$limit" -lt 20 ]; then
    echo "== $name skipped: $(left) s of the ${budget} s budget left"
    status=1
    return
  fi
  [ "$cap" -lt "$limit" ] && limit=$cap
  echo "== $name (limit ${limit} s, $(left) s left): $*"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.log" | tail -n "$lines"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then echo "== $name ran out of its ${limit} s"; fi
  [ "$rc" -eq 0 ] || status=1
}
"$py" -m pip install -q --no-build-isolation --no-deps -e . || exit 1
echo "== built in $SECONDS s"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; fi
"$py" -c "import torch, fastinterp._core as c; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'fft', c.fft_backends(), 'normals', c.rng_kernel())"
if ! "$py" -c "import flow_matching.solver" 2>/dev/null && [ -n "${WHEELS:-}" ]; then
  "$py" -m pip install -q --no-index --no-deps --find-links "$WHEELS" flow-matching torchdiffeq tqdm ||
    echo "== flow_matching: installing from $WHEELS failed"
fi
if [ "$device" = cuda ]; then
  # trivial model at N = 1e6 only (one cold compile per compiled contender; a second size would recompile them all)
  step bench_sampling 330 60 "$py" benchmarks/bench_sampling.py --models trivial --sizes 1e6 \
    --bandwidth-sizes 1e6 1.6e7 6.4e7 --rounds 7 --budget 4 --out "$out/sampling_$device.md"
else
  step bench_sampling 300 30 "$py" benchmarks/bench_sampling.py --quick --models trivial --sizes 1e3 \
    --contenders plain flow_matching eager fused --bandwidth-sizes 1e5 --out "$out/sampling_$device.md"
fi
step bench_pde 120 25 "$py" benchmarks/bench_pde.py --only torch --torch-device "$device" \
  --out "$out/pde_torch_$device.md"
step pytest 100000 25 "$py" -m pytest -q -x -p no:cacheprovider ${TESTS:-tests}
echo "== device check done in $SECONDS s (budget ${budget} s), status $status"
exit $status
