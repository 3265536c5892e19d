"""benchmarks/bench_pde.py runs end to end in its tiny mode and prints every engine table; FFTW through pyfftw is a
contender of the FFT pair when pyfftw imports and a printed skip line when it does not. No speed is asserted: that
is what the benchmark itself reports."""

import re
import sys

import pytest


def _have_pyfftw() -> bool:
    try:
        import pyfftw  # noqa: F401
    except ImportError:
        return False
    return True


SKIP_LINE = re.compile(r"^pyfftw: skipped \(not installed; `pip install pyfftw`", re.M)
PYFFTW_ROW = re.compile(r"^\| FFTW via pyfftw, planned `FFTW\.execute\(\)` \(no copies\) \| \d+\.\d \(\d", re.M)
MEDIAN_IQR = r"[\d,.]+x? \([\d,.]+-[\d,.]+\)"  # "median (q1-q3)"


def test_tiny_engine_run_prints_every_table_with_medians_and_quartiles(tmp_path, capsys, load_benchmark):
    out = tmp_path / "pde.md"
    assert load_benchmark("bench_pde").main(["--tiny", "--only", "engine", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "- command: `python benchmarks/bench_pde.py --tiny --only engine --out" in text
    assert re.search(r"load average at start: \d+\.\d\d", text) and re.search(r"load average at the end: \d", text)
    for scheme in ("em_imex", "if_heun"):  # C++ and both numpy forms, with their spreads
        assert re.search(rf"^\| {scheme} \| [\d.e-]+ \| {MEDIAN_IQR} \| {MEDIAN_IQR} \| {MEDIAN_IQR} \| ", text, re.M)
    for label in ("fastinterp builtin, timed in C++", "numpy.fft (from Python)"):
        assert re.search(rf"^\| {re.escape(label)} \| {MEDIAN_IQR} \| {MEDIAN_IQR} \|$", text, re.M), label
    if _have_pyfftw():
        assert PYFFTW_ROW.search(text) and "builtin timed in C++ / pyfftw `execute()`: float64 " in text
        assert not SKIP_LINE.search(text)
    else:
        assert SKIP_LINE.search(text) and not PYFFTW_ROW.search(text)
    assert re.search(rf"speed-up {MEDIAN_IQR}, median \(quartiles\)", text)
    assert re.search(rf"^- C\+\+, 1 thread\(s\): {MEDIAN_IQR} fields/s$", text, re.M)
    assert out.read_text().splitlines() == text.splitlines()[:-1]  # the file is the report ("written to" aside)


def test_fft_pair_without_pyfftw_prints_a_skip_line(monkeypatch, capsys, load_benchmark):
    monkeypatch.setitem(sys.modules, "pyfftw", None)  # `import pyfftw` now raises ImportError
    assert load_benchmark("bench_pde").main(["--tiny", "--only", "fft"]) == 0
    text = capsys.readouterr().out
    assert SKIP_LINE.search(text) and "; no pyfftw; " in text
    assert "pyfftw" not in "".join(line for line in text.splitlines() if line.startswith("| "))
    assert re.search(rf"^- builtin from Python / scipy\.fft .*: float64 {MEDIAN_IQR}, float32 ", text, re.M)
    assert "written to" not in text  # --tiny writes a file only where --out says


def test_rounds_below_two_are_refused(capsys, load_benchmark):
    with pytest.raises(SystemExit):
        load_benchmark("bench_pde").main(["--tiny", "--rounds", "1"])
    assert "--rounds must be >= 2 (a spread needs two rounds), got 1" in capsys.readouterr().err
