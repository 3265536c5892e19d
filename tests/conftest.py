import os

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
def gen():
    return torch.Generator().manual_seed(1234)
