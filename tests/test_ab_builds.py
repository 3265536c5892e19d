"""benchmarks/ab_builds.py, the tool that compares two builds of the extension, works end to end."""

import os
import subprocess
import sys
from pathlib import Path

from fastinterp import _core

TOOL = Path(__file__).resolve().parents[1] / "benchmarks" / "ab_builds.py"


def run(*args):
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=300)


def test_a_build_against_itself_is_bit_identical(tmp_path):
    here = os.path.dirname(_core.__file__)
    r = run(here, here, "--workload", "fields", "--pairs", "3")
    assert r.returncode == 0, r.stderr
    assert "outputs bit-identical: True" in r.stdout
    assert "median of 3 pairs" in r.stdout


def test_a_folder_without_a_build_is_a_clear_error(tmp_path):
    here = os.path.dirname(_core.__file__)
    r = run(here, str(tmp_path), "--pairs", "1")
    assert r.returncode != 0
    assert "expected one _core extension, found 0" in r.stderr
