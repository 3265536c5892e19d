"""The command line: startup without torch, --help with defaults, one-line errors, the figures of `pde plot`."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fastinterp as fi
from fastinterp import cli

COMMANDS = [
    [],
    ["demo"],
    ["train"],
    ["experiment"],
    ["pde"],
    ["pde", "generate"],
    ["pde", "info"],
    ["pde", "plot"],
    ["pde", "export"],
    ["geodesic"],
    ["info"],
]
HEAVY = ("torch", "triton", "numpy", "matplotlib", "h5py")


def _error(argv: list[str], capsys) -> str:
    """The one-line message a user mistake ends with (argparse's errors: exit status 2, the last stderr line)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    code = exc.value.code
    if isinstance(code, str):
        assert "\n" not in code, code
        return code
    assert code == 2, code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


# ---------------------------------------------------------------------------------------------------- startup


def test_the_command_line_starts_without_torch(tmp_path):
    code = (
        "import sys\n"
        "from fastinterp import cli\n"
        "for argv in (['--help'], ['pde', 'generate', '--help'], ['demo', '--help'], ['demo', '--seed', '-1'],\n"
        "             ['pde', 'plot', 'x', '--out', 'x.png', '--bogus'], ['geodesic', '--help'],\n"
        "             ['geodesic', '--pairs', '0'], ['geodesic', '--lam', 'x']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr


def test_the_package_imports_lazily_and_keeps_every_public_name(tmp_path):
    code = (
        "import sys\n"
        "import fastinterp as fi\n"
        "assert 'torch' not in sys.modules and fi.__version__\n"
        "import fastinterp.transfer  # the module named like the function, loaded before fi.transfer is asked for\n"
        "assert fi.transfer is sys.modules['fastinterp.transfer'].transfer, fi.transfer\n"
        "from fastinterp import Linear, transfer\n"
        "assert fi.transfer is transfer and fi.Linear is Linear is sys.modules['fastinterp.schedules'].Linear\n"
        "assert fi.schedules.Trig is fi.Trig and 'fastinterp.datasets' not in sys.modules\n"
        "assert fi.datasets is sys.modules['fastinterp.datasets']\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_every_public_name_resolves_to_its_home_and_is_listed():
    import importlib

    names = {}
    exec("from fastinterp import *", names)
    assert set(fi.__all__) <= set(names) and set(fi.__all__) <= set(dir(fi))
    for name in fi.__all__:
        home = fi._HOMES.get(name)
        expected = importlib.import_module(f"fastinterp.{name}" if home is None else f"fastinterp.{home}")
        assert getattr(fi, name) is (expected if home is None else getattr(expected, name)), name
    assert sorted(fi.__all__) == sorted([*fi._SUBPACKAGES, *fi._HOMES])
    # the imports for type checkers name the same things
    tree = ast.parse(Path(fi.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    typed = {a.name for node in block.body for a in node.names}
    assert typed == set(fi.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        fi.nonexistent  # noqa: B018


# ------------------------------------------------------------------------------------------------------ --help


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fastinterp")
def test_help_of_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fastinterp {' '.join(command)}".rstrip())
    assert "(default: None)" not in out and "(default: False)" not in out and "(default: True)" not in out


def test_help_shows_the_defaults(capsys):
    expected = {
        "demo": ["(default: 4000)", "(default: 32 64 128)", "(default: cpu)", "(default: the current folder)"],
        "experiment": ["(default: cpu)", "(default: experiment)", "(default: 0)"],
        "geodesic": ["(default: 6)", "(default: 2.0 20.0)", "(default: 1000)", "(default: ., the current folder)"],
    }
    for command, texts in expected.items():
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
        for text in texts:
            assert text in out, (command, text)


def test_every_option_of_these_commands_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    pde = next(a for a in sub.choices["pde"]._actions if a.dest == "pde_command")
    parsers = {name: sub.choices[name] for name in ("demo", "experiment", "geodesic", "info")}
    parsers.update({f"pde {name}": pde.choices[name] for name in ("info", "plot", "export")})
    for name, p in parsers.items():
        for action in p._actions:
            assert action.help, (name, action.dest)


def test_formatter_shows_only_informative_defaults():
    import argparse

    p = argparse.ArgumentParser(prog="t", formatter_class=cli._Formatter)
    p.add_argument("--bare", type=int, default=7)
    p.add_argument("--listed", nargs="+", default=[1, 2])
    p.add_argument("--flag", action="store_true", help="a flag")
    p.add_argument("--must", required=True, default="x", help="required")
    p.add_argument("--none", help="no default")
    p.add_argument("--said", default=3, help="three (default 3)")
    p.add_argument("--percent", default="50%", help="a share")
    text = " ".join(p.format_help().split())
    assert "--bare BARE (default: 7)" in text and "(default: 1 2)" in text and "a share (default: 50%)" in text
    assert "a flag (default" not in text and "required (default" not in text and "no default (default" not in text
    assert "(default 3) (default" not in text


# ----------------------------------------------------------------------------------------------- one-line errors


def test_argument_errors_name_the_option_and_the_value(tmp_path, capsys):
    cases = {
        ("demo", "--resolutions", "5"): "argument --resolutions: must be an even integer >= 4, got 5",
        ("demo", "--seed", "-1"): "argument --seed: must be an integer >= 0, got -1",
        ("demo", "--mixture-samples", "abc"): "argument --mixture-samples: must be an integer >= 1, got 'abc'",
        ("experiment", "xx"): "argument dataset: invalid choice: 'xx'",
        ("experiment", "grf", "--preset", "huge"): "argument --preset: invalid choice: 'huge'",
        ("geodesic", "--pairs", "0"): "argument --pairs: must be an integer >= 1, got 0",
        ("geodesic", "--n-grid", "1"): "argument --n-grid: must be an integer >= 2, got 1",
        ("geodesic", "--lam", "2", "nan"): "argument --lam: must be a finite number >= 0, got nan",
        ("geodesic", "--lam", "x"): "argument --lam: must be a number >= 0, got 'x'",
        ("info", "extra"): "unrecognized arguments: extra",
        ("pde", "plot", "d"): "the following arguments are required: --out",
    }
    for argv, message in cases.items():
        assert message in _error(list(argv), capsys), argv


def test_demo_and_experiment_check_device_and_out_before_the_work(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    msg = _error(["demo", "--device", "nonsense"], capsys)
    assert msg.startswith("fastinterp demo: --device 'nonsense' cannot be used here: ")
    assert _error(["demo", "--out", str(afile / "sub")], capsys) == (
        f"fastinterp demo: --out {afile / 'sub'} is not a writable folder: Not a directory"
    )
    assert _error(["experiment", "grf", "--out", str(afile)], capsys) == (
        f"fastinterp experiment: --out {afile} is a file, not a folder"
    )
    assert _error(["geodesic", "--out", str(afile)], capsys) == (
        f"fastinterp geodesic: --out {afile} is a file, not a folder"
    )
    assert cli._check_device("demo", "cpu").type == "cpu"


def test_interrupt_ends_in_one_line(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_info", interrupted)
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "fastinterp info: interrupted"


# ----------------------------------------------------------------------------------------------------- pde plot


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from fastinterp.datasets import DatasetConfig, generate

    root = tmp_path_factory.mktemp("cli_datasets")
    configs = {
        "grf": DatasetConfig(equation="grf", num=3, res=16, shard_size=2),
        "navier-stokes": DatasetConfig(
            equation="navier-stokes", num=3, res=32, shard_size=2, params={"snapshots": 3, "t_burn": 0.5, "t_snap": 0.5}
        ),  # fmt: skip
        "allen-cahn": DatasetConfig(
            equation="allen-cahn", num=3, res=32, shard_size=2, params={"samples": 20, "burn_in": 10, "thin": 2}
        ),  # fmt: skip
    }
    for name, config in configs.items():
        generate(root / name, config, progress=False)
    return root


@pytest.mark.parametrize(
    ("equation", "first", "last"),
    [
        ("navier-stokes", "trajectory 0, t = 0.5", "trajectory 2, t = 1.5"),
        ("grf", "field 0", "field 2"),
        ("allen-cahn", "chain 0, sample 0 (pCN step 12)", "chain 2, sample 19 (pCN step 50)"),
    ],
)
def test_pde_plot_figure_says_what_it_shows(datasets, equation, first, last):
    from fastinterp.datasets import PDEDataset

    fig = cli._dataset_figure(PDEDataset(datasets / equation))
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    panels = [ax for ax in fig.axes if ax not in bars]
    data, spectrum = panels[:-1], panels[-1]
    assert data[0].get_title() == first and data[-1].get_title() == last
    for ax in panels:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    assert "spectrum" in spectrum.get_title() and "wavenumber" in spectrum.get_xlabel()
    if equation == "allen-cahn":
        assert not bars and data[0].get_xlabel() == "x" and data[0].get_ylabel() == "u"
    else:  # one colour bar per image, labelled with the field, on one shared scale
        assert len(bars) == len(data) and all(b.get_ylabel() for b in bars)
        assert "vorticity" in bars[0].get_ylabel() if equation == "navier-stokes" else bars[0].get_ylabel() == "u"
        assert len({im.get_clim() for ax in data for im in ax.get_images()}) == 1


def test_pde_plot_writes_the_picture(datasets, tmp_path, capsys):
    out = tmp_path / "grf.png"
    assert cli.main(["pde", "plot", str(datasets / "grf"), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == f"saved {out}"


def test_pde_plot_errors_are_one_line(datasets, tmp_path, capsys):
    import shutil

    h5py = pytest.importorskip("h5py")
    grf = datasets / "grf"
    png = str(tmp_path / "p.png")
    missing = tmp_path / "missing"
    assert _error(["pde", "plot", str(missing), "--out", png], capsys) == (
        f"fastinterp pde plot: the dataset directory {missing} does not exist"
    )
    (tmp_path / "empty").mkdir()
    assert "not a fastinterp dataset manifest" in _error(["pde", "plot", str(tmp_path / "empty"), "--out", png], capsys)
    assert "--out must end in a picture type (" in _error(["pde", "plot", str(grf), "--out", "p.xyz"], capsys)
    assert _error(["pde", "plot", str(grf), "--out", str(tmp_path / "no" / "p.png")], capsys) == (
        f"fastinterp pde plot: --out {tmp_path / 'no' / 'p.png'}: the folder {tmp_path / 'no'} does not exist"
    )

    incomplete = tmp_path / "incomplete"
    shutil.copytree(grf, incomplete)
    manifest = json.loads((incomplete / "manifest.json").read_text())
    (incomplete / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    assert "the dataset is incomplete" in _error(["pde", "plot", str(incomplete), "--out", png], capsys)

    damaged = tmp_path / "damaged"
    shutil.copytree(grf, damaged)
    shard = damaged / "shard_00001.h5"
    with h5py.File(shard, "r") as f:
        offset = f["t0_fields/u"].id.get_chunk_info(0).byte_offset
    with open(shard, "r+b") as fh:
        fh.seek(offset + 40)
        fh.write(b"\xff" * 8)
    msg = _error(["pde", "plot", str(damaged), "--out", png], capsys)
    assert msg.startswith(f"fastinterp pde plot: {shard}: "), msg
    assert not Path(png).exists()
