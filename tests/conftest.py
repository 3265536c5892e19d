import functools
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

# Without a GPU, run the Triton kernels in Triton's CPU interpreter (must be set before fastinterp is imported).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _float64_default():
    """Tests check the math in float64 unless they say otherwise."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test (restored after): small networks and the torch twins run many tiny ops,
    and on a shared 2-core machine a second thread only waits for the first (6-10x slower). Modules that need it say
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


@functools.cache
def _benchmark(name: str):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up; sibling benchmarks import it by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_benchmark():
    """``load_benchmark("bench_x")``: the script ``benchmarks/bench_x.py`` as a module, loaded once per session."""
    return _benchmark
