"""benchmarks/bench_sampling.py runs end to end on tiny sizes and prints its tables and its Goals block; the grading
of the goals is checked on synthetic timings. No speed is asserted: that is what the benchmark itself reports."""

import re

import pytest
import torch


def _goal_rows(text):
    block = text.split("### Goals", 1)[1]
    return [line for line in block.splitlines() if re.search(r"\| (PASS|FAIL|NOT MEASURED) \|$", line)]


@pytest.fixture
def bench(monkeypatch, load_benchmark):
    # the conftest runs Triton kernels in the CPU interpreter; the benchmark times what a CPU user gets
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    return load_benchmark("bench_sampling")


def test_quick_run_prints_every_table_and_the_goals(bench, tmp_path, capsys):
    out = tmp_path / "sampling.md"
    argv = ["--quick", "--models", "trivial", "mlp", "conv", "--sizes", "1e3", "--threads", "1", "--rounds", "2"]
    argv += ["--budget", "0", "--contenders", "plain", "flow_matching", "eager", "fused", "--bandwidth-sizes", "1e4"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# fastinterp sampling benchmark")
    assert re.search(r"machine: .*torch threads.*torch \S+.*fp32; \d{4}-\d\d-\d\d", text)
    for model, n, batch in (("trivial", "1e+03", 1000), ("mlp", "1e+03", 4), ("conv", "4e+03", 1)):
        assert f"### {model}\n" in text
        # every requested contender has a row (timed, or an error row), and so has the model alone
        for name in ("plain", "eager", "fused", bench.MODEL_ALONE):
            row = rf"^\| {model} \| {re.escape(n)} \| {batch} \| {re.escape(name)}"
            assert re.search(row, text, re.M), (model, name)
    plain = re.search(r"^\| trivial \| 1e\+03 \| 1000 \| plain \| (.*)$", text, re.M).group(1).split(" | ")
    assert plain[1].endswith("ms") and plain[4] == "1.00x" and plain[7].startswith("0.0e+00")
    assert "### Fused update" in text and re.search(r"^\| 1\.0e\+04 \| ", text, re.M)
    rows = _goal_rows(text)
    assert any("3. fused vs plain" in r for r in rows) and any("per-step overhead" in r for r in rows)
    assert len(rows) >= 13, rows  # 4 + 3 + 2 + 3 + 1 CPU goals and the GPU line (or the GPU goals)
    assert out.read_text() == text  # the markdown file is the printed report


@pytest.mark.slow
def test_quick_run_with_the_compiled_contenders(bench, capsys):
    assert bench.main(["--quick", "--sizes", "1e3", "--threads", "1", "--rounds", "2", "--budget", "0"]) == 0
    text = capsys.readouterr().out
    for name in ("plain+compile(model)", "user-compiled", "compile"):
        row = re.search(rf"^\| trivial \| 1e\+03 \| 1000 \| {re.escape(name)}[ (].*$", text, re.M).group(0)
        assert "(compile) |" in row or "| error: " in row, row
    rows = _goal_rows(text)
    for goal in ("compile time vs user-compiled's, trivial", "per-step overhead, trivial N=1e3"):
        (row,) = [r for r in rows if goal in r]
        assert not row.endswith("| NOT MEASURED |"), row


def _config(bench, model, n, seconds, first=None):
    """A measured configuration from per-round seconds per call, {name: [s, s, ...]}, and first-call seconds."""
    cfg = bench.Config(model, n, n)
    for name, values in seconds.items():
        cfg.entries[name] = bench.Entry(first=(first or {}).get(name), times=dict(enumerate(values)))
    return cfg


def _graded(bench, configs, bandwidth=(), device="cpu"):
    return {
        goal: (measured, verdict)
        for goal, _, measured, verdict in bench.goals(configs, list(bandwidth), 10, torch.device(device))
    }


def test_cpu_goals_grade_the_median_of_per_round_ratios(bench):
    alone = {"model alone (1 NFE)": [1e-6] * 3}
    configs = [
        # per step 100 us / 10 steps = 10 us, minus 4 x 1 us of model: 6 us of overhead
        _config(
            bench,
            "trivial",
            1000,
            {"user-compiled": [1.0] * 3, "compile": [1e-4] * 3} | alone,
            first={"compile": 2.0, "user-compiled": 3.0},
        ),
        # per-round fused speed-ups 2, 0.25, 3: median 2 (the ratio of the medians, 2 / 3, would fail)
        _config(
            bench,
            "trivial",
            10_000,
            {"plain": [1, 2, 9], "fused": [0.5, 8, 3], "user-compiled": [1.0] * 3, "compile": [0.5] * 3},
            first={"compile": 2.0, "user-compiled": 0.5},
        ),
        _config(
            bench,
            "mlp",
            1000,
            {"user-compiled": [1.0] * 3, "compile": [1.1] * 3},
            first={"compile": 5.0, "user-compiled": 4.0},
        ),
    ]
    rows = _graded(bench, configs)
    assert rows["3. fused vs plain, trivial N=1e+04"][1] == "PASS"
    assert rows["3. fused vs plain, trivial N=1e+04"][0].startswith("2.00x")
    assert rows["3. fused vs plain, trivial N=1e+05"][1] == "NOT MEASURED"
    assert rows["4. compile vs user-compiled, trivial N=1e+04"][1] == "PASS"
    assert rows["4. compile vs user-compiled, mlp (every N)"][1] == "FAIL"  # 0.91x
    assert rows["4. compile vs user-compiled, conv (every N)"][1] == "NOT MEASURED"
    assert rows["4. compile time vs user-compiled's, trivial"][1] == "FAIL"  # 4.0 s against 3.5 s in all
    assert rows["4. compile time vs user-compiled's, mlp"][1] == "FAIL"
    measured, verdict = rows["4. compile per-step overhead, trivial N=1e3"]
    assert verdict == "PASS" and measured.startswith("6.0 us"), measured
    assert rows["GPU goals (graph, bandwidth, host syncs)"][1] == "NOT MEASURED"
    configs[1].entries["fused"].error = "RuntimeError: broken"  # a failed contender fails its goals
    assert _graded(bench, configs)["3. fused vs plain, trivial N=1e+04"][1] == "FAIL"


def test_gpu_goals_are_graded_on_cuda(bench):
    cfg = _config(bench, "trivial", 1_000_000, {"flow_matching": [30.0] * 3, "compile": [2.0] * 3, "graph": [1.0] * 3})
    cfg.entries["graph"].sync_check = "ok"
    cfg.entries["fused"] = bench.Entry(times={0: 1.0}, sync_check="RuntimeError: called a synchronizing operation")
    bandwidth = [bench.Bandwidth(16_000_000, fused_gbs=3500.0, copy_gbs=4000.0, fraction=(0.875, 0.85, 0.9))]
    rows = _graded(bench, [cfg], bandwidth, "cuda")
    assert rows["GPU: graph vs flow_matching, trivial N=1e6"][1] == "PASS"  # 30x
    assert rows["GPU: graph vs compile, trivial N=1e6"][1] == "PASS"  # 2x
    assert rows["GPU: fused bandwidth / copy, N=1.6e+07"][1] == "PASS"
    assert rows["GPU: no host sync in the graph loop"][1] == "PASS"
    assert rows["GPU: no host sync in the fused loop"][1] == "FAIL"
