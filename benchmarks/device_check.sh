#!/usr/bin/env bash
# The checks a session with a lent GPU runs, as one command from the repository root:
#   bash benchmarks/device_check.sh            (reports under $OUT, else /tmp/device_check)
# It builds the extension in place (the GPU image has scikit-build-core, pybind11, ninja), runs the test suite (the
# CUDA-only tests skip elsewhere) and the GPU benchmarks: the PDE torch twins at batch 64 and the sampling backends.
# DEVICE=cpu TESTS=tests/test_pde_navier_stokes.py smoke-runs it without a GPU. Sized to end well inside 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/device_check}
device=${DEVICE:-cuda}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME CMD...: run, keep the log, remember a failure, go on
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$out/$name.log" | tail -n 25
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "== $name failed (exit $rc)"; status=1; }
}
"$py" -m pip install -q --no-build-isolation --no-deps -e . || exit 1
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; fi
"$py" -c "import torch, fastinterp._core as c; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'fft', c.fft_backends(), 'normals', c.rng_kernel())"
step pytest "$py" -m pytest -q -x -p no:cacheprovider ${TESTS:-tests}
step bench_pde "$py" benchmarks/bench_pde.py --only torch --torch-device "$device" --out "$out/pde_torch_$device.md"
if [ "$device" = cuda ]; then
  step bench_sampling "$py" benchmarks/bench_sampling.py --sizes 1e4 1e6 --out "$out/sampling_$device.md"
fi
exit $status
