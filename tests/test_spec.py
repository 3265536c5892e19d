"""One home per PDE parameter (fastinterp/pde/spec.py): every check, default and help line comes from the spec."""

import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastinterp.datasets import DEFAULTS, DatasetConfig
from fastinterp.pde import AllenCahn1D, GaussianField, NavierStokes2D
from fastinterp.pde.spec import COMMON, SPECS, Param

ALL_PARAMS = [(eq, p) for eq, spec in SPECS.items() for p in spec.params.values()]


def _bad_values(p: Param) -> list:
    """Values of the wrong type or out of range for ``p``."""
    bad = [True, [1], {"a": 1}] if p.kind is not bool else [1, "true", None]
    if p.choices:
        bad += ["bogus", 999]
    elif p.kind in (int, float):
        bad += ["1", float("nan"), float("inf")]
        if p.kind is int:
            bad.append(1.5)
        if p.lo is not None:
            bad.append(p.lo if p.lo_open else p.lo - 1)
        if p.hi is not None:
            bad.append(p.hi if p.hi_open else p.hi * 2 + 1)
    elif p.kind is str:
        bad.append(3)
    if p.default is not None:
        bad.append(None)
    return bad


@pytest.mark.parametrize("eq,p", ALL_PARAMS, ids=[f"{eq}.{p.name}" for eq, p in ALL_PARAMS])
def test_every_parameter_rejects_wrong_types_and_out_of_range_values_naming_both(eq, p):
    spec = SPECS[eq]
    for value in _bad_values(p):
        with pytest.raises(ValueError) as info:
            spec.validate({p.name: value}, dataset=p.dataset, partial=not p.dataset)
        msg = str(info.value)
        assert p.name in msg and repr(value) in msg and p.allowed() in msg, msg
        if p.dataset:  # the same through the dataset configuration, which names the equation too
            with pytest.raises(ValueError, match=rf"^{eq} {p.name} must be .*, got {re_escape(repr(value))}$"):
                DatasetConfig(eq, 2, 32, params={p.name: value})


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


# (equation, res, params, what the message must name, the value it must show): the settings a new user tries, each
# of which the engine (or the generator) would refuse after the manifest was written -- refused before, here.
BAD_SETTINGS = [
    ("navier-stokes", 48, {}, "res", "48"),  # not a power of two
    ("navier-stokes", 16, {}, "res", "16"),  # too small for the forcing's wavenumber 8 under the 2/3 rule
    ("navier-stokes", 4096, {}, "res", "4096"),
    ("navier-stokes", 32, {"dt": 0.0}, "dt", "0.0"),
    ("navier-stokes", 32, {"dt": -1e-3}, "dt", "-0.001"),
    ("navier-stokes", 32, {"dt": 1.0}, "t_snap", "0.5"),  # dt larger than the snapshot spacing
    ("navier-stokes", 32, {"dt": 0.003}, "t_burn", "50.0"),  # t_burn not a multiple of dt
    ("navier-stokes", 32, {"t_burn": 0.0123}, "t_burn", "0.0123"),
    ("navier-stokes", 32, {"t_snap": 0.0}, "t_snap", "0.0"),
    ("navier-stokes", 32, {"t_burn": -1.0}, "t_burn", "-1.0"),
    ("navier-stokes", 32, {"t_burn": 1e12}, "2^32", "200000000000900"),  # beyond the engine's step counter
    ("navier-stokes", 32, {"nu": -1e-3}, "nu", "-0.001"),
    ("navier-stokes", 32, {"alpha": float("nan")}, "alpha", "nan"),
    ("navier-stokes", 32, {"eps": "1"}, "eps", "'1'"),
    ("navier-stokes", 32, {"modes": 6}, "modes", "6"),
    ("navier-stokes", 32, {"scheme": "rk4"}, "scheme", "'rk4'"),
    ("navier-stokes", 32, {"snapshots": 0}, "snapshots", "0"),
    ("navier-stokes", 32, {"snapshots": 2.5}, "snapshots", "2.5"),
    ("navier-stokes", 32, {"viscosity": 1e-3}, "viscosity", "valid: alpha, dt"),
    ("grf", 48, {}, "res", "48"),
    ("grf", 2, {}, "res", "2"),
    ("grf", 16384, {}, "res", "16384"),
    ("grf", 32, {"dim": 3}, "dim", "3"),
    ("grf", 32, {"s": -1.0}, "s", "-1.0"),
    ("grf", 32, {"tau": -1.0}, "tau", "-1.0"),
    ("grf", 32, {"tau": 1e7}, "tau", "10000000.0"),  # tau^2 would overflow the engine's spectrum
    ("grf", 32, {"s": 1000.0}, "sigma2", "s = 1000"),  # the default amplitude overflows
    ("grf", 32, {"normalization": "forward"}, "normalization", "'forward'"),
    ("allen-cahn", 1, {}, "res", "1"),
    ("allen-cahn", 2**21, {}, "res", "2097152"),
    ("allen-cahn", 32, {"samples": 0}, "samples", "0"),
    ("allen-cahn", 32, {"thin": 0}, "thin", "0"),
    ("allen-cahn", 32, {"burn_in": -1}, "burn_in", "-1"),
    ("allen-cahn", 32, {"boundary": "periodic"}, "boundary", "'periodic'"),
    ("allen-cahn", 32, {"potential": "quartic"}, "potential", "'quartic'"),
    ("allen-cahn", 32, {"potential": "none"}, "potential='none'", "boundary='free'"),  # no normalisable law
    ("allen-cahn", 32, {"samples": 2**31, "thin": 3}, "2^32", "6442452944"),
]


@pytest.mark.parametrize("eq,res,params,name,value", BAD_SETTINGS)
def test_dataset_config_refuses_what_the_engine_would(eq, res, params, name, value):
    with pytest.raises(ValueError) as info:
        DatasetConfig(eq, 2, res, params=params)
    msg = str(info.value)
    assert name in msg and value in msg, msg


@pytest.mark.parametrize(
    "fields,name",
    [
        (dict(num=0), "num"), (dict(num=2**32 + 1), "num"), (dict(num=2.5), "num"), (dict(num="4"), "num"),
        (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(shard_size=0), "shard_size"),
        (dict(equation="burgers"), "equation"), (dict(params=[("dt", 1)]), "params"),
    ],
)  # fmt: skip
def test_dataset_fields_are_checked(fields, name):
    with pytest.raises(ValueError, match=name):
        DatasetConfig(**{"equation": "grf", "num": 4, "res": 32, **fields})


def test_the_cli_writes_nothing_for_a_rejected_setting(tmp_path):
    from fastinterp.cli import main

    for k, (eq, res, params, name, _) in enumerate(BAD_SETTINGS):
        if params == {"eps": "1"}:
            continue  # on the command line "1" is the number 1
        out = tmp_path / f"d{k}"
        sets = [a for key, v in params.items() for a in ("--set", f"{key}={v}")]
        argv = ["pde", "generate", eq, "--num", "2", "--res", str(res), "--out", str(out), "--quiet", *sets]
        with pytest.raises(SystemExit) as info:
            main(argv)
        msg = str(info.value.code)
        assert msg.startswith("fastinterp pde generate: ") and "\n" not in msg and name in msg, msg
        assert not out.exists(), argv
    # and the corrected command then works on the same --out
    out = tmp_path / "d0"
    main(["pde", "generate", "grf", "--num", "2", "--res", "32", "--out", str(out), "--quiet"])
    assert (out / "manifest.json").exists()


def test_edge_settings_the_config_accepts_the_engine_runs():
    from fastinterp.datasets.generate import trajectory_function

    for eq, res, params in [
        ("navier-stokes", 32, {"t_burn": 0, "t_snap": 0.005, "snapshots": 1, "nu": 0, "alpha": 0, "eps": 0}),
        ("navier-stokes", 32, {"t_burn": 0.01, "t_snap": 0.01, "snapshots": 2, "dt": 0.01, "modes": 4}),
        ("grf", 4, {"dim": 1, "s": 0, "tau": 0}),
        ("grf", 8192, {"dim": 1, "tau": 1e6, "s": 0.5, "normalization": "paper"}),
        ("allen-cahn", 2, {"samples": 1, "burn_in": 0, "thin": 1, "boundary": "pinned", "potential": "none"}),
    ]:
        fn, _ = trajectory_function(DatasetConfig(eq, 1, res, params=params))
        out = fn(0, 1, 1)
        assert out.shape[0] == 1 and bool((out == out).all()), (eq, params)


def test_equal_numbers_are_one_configuration():
    a = DatasetConfig("navier-stokes", 10, 64, params={"t_burn": 200, "modes": 8.0, "nu": 0})
    b = DatasetConfig("navier-stokes", 10.0, 64.0, params={"t_burn": 200.0, "modes": 8, "nu": 0.0})
    assert a == b and a.fingerprint == b.fingerprint
    assert type(a.params["t_burn"]) is float and type(a.params["modes"]) is int and type(b.num) is int
    assert a.differences(b) == []
    c = DatasetConfig("navier-stokes", 10, 64, params={"t_burn": 100})
    assert a.differences(c) == [("params.nu", 0.0, 0.001), ("params.t_burn", 200.0, 100.0)]
    # a manifest's JSON round trip gives the same configuration
    assert DatasetConfig.from_dict(json.loads(json.dumps(a.to_dict()))).fingerprint == a.fingerprint


# fingerprints of configurations as the previous DatasetConfig computed them: existing datasets keep resuming
OLD_FINGERPRINTS = [
    (("navier-stokes", 4, 32, 0, 50, {}), "34c8622147757fa4"),
    (("grf", 4, 32, 0, 50, {}), "3d5cf3a5fc75ea83"),
    (("allen-cahn", 4, 32, 0, 50, {}), "28641ee3e8c33f09"),
    (("navier-stokes", 10, 64, 3, 5, {"t_burn": 200.0, "dt": 0.01, "scheme": "em_imex", "modes": 4}),
     "170de82d39601918"),
    (("grf", 7, 64, 1, 2, {"dim": 1, "s": 2.5, "tau": 7.0, "normalization": "paper"}), "3476b418ed8f2408"),
    (("allen-cahn", 3, 16, 2, 2, {"samples": 50, "burn_in": 100, "thin": 5, "boundary": "pinned",
                                  "potential": "none"}), "3ecdbdaedf63e87c"),
    (("navier-stokes", 100, 128, 0, 50, {"nu": 1e-4, "alpha": 0.0, "eps": 0.5}), "f0d03d3c1c18870a"),
]  # fmt: skip


@pytest.mark.parametrize("args,fingerprint", OLD_FINGERPRINTS)
def test_fingerprints_of_existing_configurations_are_unchanged(args, fingerprint):
    assert DatasetConfig(*args).fingerprint == fingerprint


def test_defaults_have_one_home():
    assert DEFAULTS == {eq: spec.defaults() for eq, spec in SPECS.items()}
    assert DEFAULTS["navier-stokes"]["t_burn"] == 50.0 and DEFAULTS["allen-cahn"]["thin"] == 2

    def defaults(fn):
        return {k: v.default for k, v in inspect.signature(fn).parameters.items() if v.default is not v.empty}

    fronts = [
        ("navier-stokes", NavierStokes2D.__init__, {"n": "res"}),
        ("navier-stokes", NavierStokes2D.sample, {}),
        ("grf", GaussianField.__init__, {}),
        ("allen-cahn", AllenCahn1D.__init__, {"n": "res"}),
        ("allen-cahn", AllenCahn1D.sample, {}),
    ]
    seen = set()
    for eq, fn, rename in fronts:
        spec = SPECS[eq]
        for arg, value in defaults(fn).items():
            key = rename.get(arg, arg)
            p = spec.res if key == "res" else spec.params.get(key)
            if p is None:
                continue  # run options (seed, backend, threads, ...): not equation parameters
            assert value == p.default and type(value) is type(p.default), (eq, arg, value, p.default)
            seen.add((eq, key))
    # every spec parameter is some front's argument with the spec's default
    # (allen-cahn's samples is sample()'s required samples_per_chain; grf's res is GaussianField's required n)
    assert seen == {(eq, p.name) for eq, p in ALL_PARAMS} - {("allen-cahn", "samples")} | {
        ("navier-stokes", "res"),
        ("allen-cahn", "res"),
    }


def test_fronts_take_their_checks_from_the_spec():
    for make, match in [
        (lambda: NavierStokes2D(48), r"^n must be an int in \[32, 2048\], a power of two, got 48$"),
        (lambda: NavierStokes2D(32, dt=True), r"^dt must be a float > 0, got True$"),
        (lambda: NavierStokes2D(32).sample(1, snapshots=0), r"^snapshots must be an int >= 1, got 0$"),
        (lambda: GaussianField(8, s=1000.0), "sigma2 = "),
        (lambda: GaussianField(16384), r"^n must be an int in \[4, 8192\]"),
        (lambda: AllenCahn1D(8, boundary="pinned", mass=-1.0), r"^mass must be a float >= 0, got -1.0$"),
        (lambda: AllenCahn1D(8, mass=0.0), "mass must be > 0 with boundary='free'"),
        (lambda: AllenCahn1D(8).sample(1, 2, beta=1.0), r"^beta must be a float in \(0, 1\), got 1.0$"),
    ]:
        with pytest.raises(ValueError, match=match):
            make()
    ns = NavierStokes2D(32, nu=0, modes=8.0, dt=1)  # numbers coerced as in a dataset
    assert (type(ns.nu), type(ns.modes), type(ns.dt)) == (float, int, float)


def test_divergence_advice_lives_once_in_python():
    csrc = Path(__file__).resolve().parents[1] / "csrc"
    for f in csrc.iterdir():
        text = f.read_text()
        assert "Courant" not in text.replace("// ", "") or "reduce dt" not in text, f
        assert "reduce dt" not in text, f"{f.name} gives user advice; it belongs to fastinterp/pde"


def test_generate_help_lists_every_set_key_with_default_range_and_units(capsys):
    from fastinterp.cli import main

    with pytest.raises(SystemExit) as info:
        main(["pde", "generate", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for spec in SPECS.values():
        assert spec.res.allowed() in text
        for p in spec.settable.values():
            assert f"{p.name}=" in text and p.allowed() in text and p.doc in text, p.name
            assert not p.units or p.units in text
        for p in spec.params.values():
            if not p.dataset:
                assert f"  {p.name}=" not in text, f"{p.name} is not a --set key"


def test_set_values_are_read_by_the_spec_types():
    from fastinterp.cli import _dataset_config, build_parser

    argv = ["pde", "generate", "navier-stokes", "--num", "2", "--res", "32", "--out", "x"]
    args = build_parser().parse_args([*argv, "--set", "t_burn=200", "--set", "modes=4", "--set", "scheme=em_imex",
                                      "--set", "dt=1e-3"])  # fmt: skip
    config = _dataset_config(args)
    assert config.params["t_burn"] == 200.0 and type(config.params["t_burn"]) is float
    assert config.params["modes"] == 4 and config.params["scheme"] == "em_imex"
    same = DatasetConfig("navier-stokes", 2, 32, params={"t_burn": 200.0, "modes": 4, "scheme": "em_imex", "dt": 1e-3})
    assert config.fingerprint == same.fingerprint
    for item, match in [
        ("dt=fast", r"--set dt=fast: navier-stokes dt must be a float > 0, got 'fast'"),
        ("visc=1", r"unknown navier-stokes parameter 'visc'; valid: alpha, dt, eps"),
        ("modes=4.5", r"modes must be one of 4, 8, got 4.5"),
        ("snapshots", r"--set takes KEY=VALUE, got 'snapshots'"),
    ]:
        with pytest.raises(SystemExit, match=match):
            _dataset_config(build_parser().parse_args([*argv, "--set", item]))


def test_config_file_mistakes_are_one_line(tmp_path):
    from fastinterp.cli import main

    argv = ["pde", "generate", "grf", "--out", str(tmp_path / "out"), "--config"]
    for content, match in [
        ('{"num": 2, "res": 32, "resolution": 64}', "unknown keys resolution; valid: equation, num, res"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"num": 2, "res": 32, "params": {"s": -1}}', r"grf s must be a float >= 0, got -1$"),
        ("{oops", r"--config .*c\.json is not a JSON file"),
    ]:
        cfg = tmp_path / "c.json"
        cfg.write_text(content)
        with pytest.raises(SystemExit, match=match):
            main([*argv, str(cfg)])
    assert not (tmp_path / "out").exists()


def test_spec_and_generate_help_import_no_torch():
    code = (
        "import sys, fastinterp.pde.spec, fastinterp.pde\n"
        "from fastinterp.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('torch', 'numpy', 'fastinterp._core') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_lazy_pde_package_keeps_its_names():
    import fastinterp.pde as pde

    for name in pde.__all__:
        assert getattr(pde, name) is not None
        assert name in dir(pde)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pde.nope  # noqa: B018


def test_common_fields_and_math():
    assert COMMON["num"].check(4.0) == 4 and COMMON["seed"].check(2**64 - 1) == 2**64 - 1
    assert SPECS["grf"].validate({"s": 3, "tau": 1})["s"] == 3.0
    assert math.isclose(GaussianField(8).sigma2, ((2 * math.pi) ** 2 + 1) ** 3)


def test_the_allen_cahn_engine_takes_one_struct():
    from fastinterp import _core

    ac = AllenCahn1D(16, boundary="pinned", potential="none", mass=0.5, target_accept=0.4)
    cfg = ac._config()
    assert type(cfg) is _core.ACConfig
    assert (cfg.n, cfg.boundary, cfg.potential, cfg.mass, cfg.target_accept, cfg.dof) == (
        16, "pinned", "none", 0.5, 0.4, ac.dof
    )  # fmt: skip
    assert repr(cfg) == "ACConfig(n=16, boundary='pinned', potential='none', mass=0.5, target_accept=0.4)"
    with pytest.raises(AttributeError):
        cfg.mass = 1.0  # read-only: a struct that passed its checks stays valid
    # every engine entry point of the chain takes the struct, not the parameters one by one
    for fn in (_core.ac_mcmc_run, _core.ac_mcmc_init, _core.ac_mcmc_factor):
        sig = fn.__doc__.splitlines()[0]
        assert "config: fastinterp._core.ACConfig" in sig, sig
        args = set(re.findall(r"(\w+): ", sig))
        assert not args & {"n", "pinned", "boundary", "vscale", "potential", "mass", "target_accept"}, sig
    # the struct guards the sampler's invariants only (short messages); the user-facing checks are the spec's
    good = dict(n=16, boundary="free", potential="double_well", mass=1.0, target_accept=0.25)
    for bad, match in [
        (dict(n=1), "n must be in"), (dict(mass=0.0), "mass must be finite and > 0 with free ends"),
        (dict(mass=float("nan")), "mass must be finite"),
        (dict(target_accept=1.0), r"target_accept must be in \(0, 1\)"),
        (dict(boundary="periodic"), "boundary must be"), (dict(potential="quartic"), "potential must be"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=f"^ACConfig: {match}"):
            _core.ACConfig(**{**good, **bad})
    assert _core.ACConfig(**{**good, "boundary": "pinned", "mass": 0.0}).mass == 0.0
    with pytest.raises(ValueError, match=r"^target_accept must be a float in \(0, 1\), got 1.0$"):
        AllenCahn1D(16, target_accept=1.0)  # the spec's message reaches the user, before the engine


def test_grf_parameter_checks_have_one_home():
    from fastinterp.targets import GaussianRandomField

    spec = SPECS["grf"]
    for bad in [dict(dim=3), dict(s=-1.0), dict(s="3"), dict(tau=float("nan")), dict(tau=True), dict(tau=2e6),
                dict(sigma2=0.0), dict(sigma2=float("inf")), dict(s=1000.0)]:  # fmt: skip
        messages = set()
        for make in (
            lambda b: spec.validate(b, dataset=False, partial=False),
            lambda b: GaussianField(8, **b),
            lambda b: GaussianRandomField(8, **b),
        ):
            with pytest.raises(ValueError) as info:
                make(bad)
            messages.add(str(info.value))
        assert len(messages) == 1, (bad, messages)
        (msg,) = messages
        assert next(iter(bad)) in msg, msg
    defaults = {k: v.default for k, v in inspect.signature(GaussianRandomField.__init__).parameters.items()}
    for key in ("dim", "s", "tau", "sigma2"):
        assert defaults[key] == spec.params[key].default, key
    f = GaussianRandomField(8, dim=1.0, s=2, tau=7)  # numbers coerced as in a dataset
    assert (type(f.dim), type(f.s), type(f.tau)) == (int, float, float)
    assert f.sigma2 == GaussianField(8, 1, s=2, tau=7).sigma2 == ((2 * math.pi) ** 2 + 49.0) ** 2.0
