"""GPU readiness without a GPU: the Triton stage-update kernel compiled ahead of time for sm_80 and sm_90, with its PTX
checked for 128-bit global loads and stores, and its register allocation (the cubin's resource usage) for spills.

The layouts are the sampler's: (3, 2) an Euler-like step, (5, 3) an RK4 middle stage, (8, 4) a guided stage; all
float32, float32 state with a bf16 model's input and output, and float64. ``n`` carries no divisibility hint (the
sampler's sizes need not be multiples of 16), so the full blocks' unmasked path must vectorise on its own.
"""

import json
import os
import re
import subprocess
import sys

import pytest

triton = pytest.importorskip("triton")

ARCHS = (80, 90)
LAYOUTS = [(3, 2), (5, 3), (8, 4)]
BLOCK, NUM_WARPS = 1024, 4  # the launcher's defaults
PER_THREAD = BLOCK // (32 * NUM_WARPS)  # consecutive elements per thread
SIZE = {"fp64": 8, "fp32": 4, "bf16": 2}
# (input dtypes, output dtypes) per layout; bf16: inputs 0, 1 (the model's xin, y) and output 1 (the next xin)
DTYPES = {
    "fp32": lambda ni, no: (["fp32"] * ni, ["fp32"] * no),
    "bf16_model": lambda ni, no: (
        ["bf16" if i < 2 else "fp32" for i in range(ni)],
        ["bf16" if o == 1 else "fp32" for o in range(no)],
    ),
    "fp64": lambda ni, no: (["fp64"] * ni, ["fp64"] * no),
}

# The compiler runs in a child process: the tests' conftest turns on TRITON_INTERPRET=1 on CPU-only machines, under
# which triton.jit makes interpreted functions that cannot be compiled. One child per architecture, in parallel.
_COMPILE = r"""
import json, os, subprocess, sys, tempfile
from pathlib import Path
import triton
import triton.backends.nvidia
from triton.backends.compiler import GPUTarget
from fastinterp.kernels.lincomb import MAX_INPUTS, MAX_OUTPUTS, _lincomb_kernel

cuobjdump = os.path.join(os.path.dirname(triton.backends.nvidia.__file__), "bin", "cuobjdump")

arch, out, block, warps = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = _lincomb_kernel.arg_names
for case in json.loads(sys.argv[5]):
    ni, no, ins, outs = case["ni"], case["no"], case["ins"], case["outs"]
    pad_in = ins + [ins[0]] * (MAX_INPUTS - ni)  # the launcher passes input 0 / output 0 for unused slots
    pad_out = outs + [outs[0]] * (MAX_OUTPUTS - no)
    signature = {f"i{k}": "*" + t for k, t in enumerate(pad_in)}
    signature |= {f"o{k}": "*" + t for k, t in enumerate(pad_out)}
    signature |= {"coef_ptr": "*fp64", "n": "i32"}  # n without a divisibility hint
    constexprs = {"NI": ni, "NO": no, "LD": MAX_INPUTS, "BLOCK": block, "F64": "fp64" in ins}
    signature |= {k: "constexpr" for k in constexprs}
    # torch's allocations are 16-byte aligned, and Triton's launcher tells the compiler so (tt.divisibility)
    attrs = {(names.index(k),): [["tt.divisibility", 16]] for k, t in signature.items() if t.startswith("*")}
    src = triton.compiler.ASTSource(fn=_lincomb_kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps})
    (out / (case["name"] + ".ptx")).write_text(kernel.asm["ptx"])
    # the cubin's resource usage (ptxas's register allocation): spills show as LOCAL / STACK bytes
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", f.name], capture_output=True, text=True, check=True)
    (out / (case["name"] + ".res")).write_text(usage.stdout)
"""


def _name(ni, no, dtypes, arch):
    return f"{ni}-{no}-{dtypes}-sm{arch}"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    try:
        from triton.backends.compiler import GPUTarget

        triton.compiler.make_backend(GPUTarget("cuda", 80, 32))
    except Exception as exc:  # pragma: no cover - depends on the triton build
        pytest.skip(f"triton cannot target CUDA here: {exc!r}")
    out = tmp_path_factory.mktemp("ptx")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the launcher's default; silences Triton 3.9's warning
    procs = []
    for arch in ARCHS:
        cases = []
        for (ni, no), d in ((layout, d) for layout in LAYOUTS for d in DTYPES):
            ins, outs = DTYPES[d](ni, no)
            cases.append({"ni": ni, "no": no, "ins": ins, "outs": outs, "name": _name(ni, no, d, arch)})
        cmd = [sys.executable, "-c", _COMPILE, str(arch), str(out), str(BLOCK), str(NUM_WARPS), json.dumps(cases)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            if "No module named 'triton.backends.nvidia" in err or "ptxas" in err or "cuobjdump" in err:
                pytest.skip(f"triton cannot target CUDA here: {err.strip().splitlines()[-1]}")
            raise AssertionError(f"ahead-of-time compilation failed:\n{err}")
    return out


def _vector_ops(ptx, op):
    """Counts of 128-bit global accesses: v4 of 32-bit words (fp32, or bf16 pairs) and v2 of 64-bit words (fp64)."""
    return len(re.findall(rf"\b{op}\.global(?:\.\w+)*\.v4\.(?:b32|f32|u32)\b", ptx)), len(
        re.findall(rf"\b{op}\.global(?:\.\w+)*\.v2\.(?:b64|f64|u64)\b", ptx)
    )


def _vectors_needed(dtypes):
    """(v4.b32, v2.b64) accesses the unmasked path needs: each thread's PER_THREAD elements in 16-byte pieces."""
    v4 = sum(PER_THREAD * SIZE[t] // 16 for t in dtypes if t != "fp64")
    v2 = sum(PER_THREAD * SIZE[t] // 16 for t in dtypes if t == "fp64")
    return v4, v2


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtypes", list(DTYPES))
@pytest.mark.parametrize("ni,no", LAYOUTS)
def test_ptx_vector_accesses_and_no_spills(compiled, ni, no, dtypes, arch):
    ptx = (compiled / (_name(ni, no, dtypes, arch) + ".ptx")).read_text()
    ins, outs = DTYPES[dtypes](ni, no)
    target = re.search(r"^\.target (sm_\w+)", ptx, re.M).group(1)  # sm_80, sm_90a
    assert target.startswith(f"sm_{arch}")
    loads, stores = _vector_ops(ptx, "ld"), _vector_ops(ptx, "st")
    need_loads, need_stores = _vectors_needed(ins), _vectors_needed(outs)
    assert all(got >= need for got, need in zip(loads, need_loads, strict=True)), (loads, need_loads)
    assert all(got >= need for got, need in zip(stores, need_stores, strict=True)), (stores, need_stores)
    assert ".local" not in ptx  # no local-memory arrays in the PTX itself
    # nor after register allocation (ptxas): no spills to local memory, no stack frame
    usage = (compiled / (_name(ni, no, dtypes, arch) + ".res")).read_text()
    regs = re.search(r"REG:(\d+) STACK:(\d+) SHARED:\d+ LOCAL:(\d+)", usage)
    assert regs is not None, usage
    assert int(regs.group(2)) == 0 and int(regs.group(3)) == 0, usage
    assert int(regs.group(1)) <= 255
