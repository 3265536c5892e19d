import inspect
import subprocess
import sys

import fastinterp as fi
from fastinterp import cli


def test_every_public_name_resolves_and_is_documented():
    for name in fi.__all__:
        obj = getattr(fi, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert inspect.getdoc(obj), name
    for name in fi.targets.__all__:
        assert inspect.getdoc(getattr(fi.targets, name)), name


def test_public_functions_have_keyword_only_options_and_no_kwargs():
    for fn in (fi.sample, fi.sample_sde, fi.jacobian_sq_norm, fi.averaged_lipschitz, fi.estimate_lam):
        params = inspect.signature(fn).parameters.values()
        assert not any(p.kind is p.VAR_KEYWORD for p in params), fn.__name__


def test_native_core_reports_its_build():
    from fastinterp._core import build_info

    info = build_info()
    assert info["version"] == fi.__version__ and info["cplusplus"] >= 201703


def test_demo_command_prints_both_tables(tmp_path, capsys):
    argv = [
        "demo",
        "--out",
        str(tmp_path),
        "--mixture-samples",
        "1000",
        "--field-samples",
        "8",
        "--resolutions",
        "16",
        "32",
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "minority weight" in out and "MixtureOptimal" in out and "LipschitzOptimal" in out
    assert (tmp_path / "fastinterp_demo.png").stat().st_size > 10_000


def test_console_script_info(tmp_path):
    # run away from the checkout so that the installed package (with its compiled core) is the one imported
    out = subprocess.run([sys.executable, "-m", "fastinterp.cli", "info"], capture_output=True, text=True, check=True,
                         cwd=tmp_path)  # fmt: skip
    assert "fastinterp" in out.stdout and "native core: version=" in out.stdout
