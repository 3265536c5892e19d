"""The one home of every PDE parameter: type, default, valid range or choices, units, documentation, provenance.

A spec per equation (``SPECS["navier-stokes"]``, ``SPECS["grf"]``, ``SPECS["allen-cahn"]``) lists its parameters
(:class:`Param`), the constraint on the grid (``res``) and the rules that tie parameters together (:class:`Rule`:
times that must be multiples of ``dt``, counter ranges of the engine, combinations without a law). Everything that
takes these parameters -- :class:`~fastinterp.datasets.DatasetConfig`, the Python fronts
(:class:`~fastinterp.pde.NavierStokes2D`, :class:`~fastinterp.pde.GaussianField`,
:class:`~fastinterp.pde.AllenCahn1D`), ``fastinterp pde generate --set`` and its ``--help`` -- reads its defaults from
here and checks values with :meth:`Param.check` / :meth:`EquationSpec.validate`, so anything the engine would refuse
is refused once, before any work or file is written, with one line naming the parameter, the value and the range.

Import-light on purpose (standard library only): the command line builds its ``--help`` from it.

Coercion (:meth:`Param.check`): an int given for a float parameter becomes a float, an integral float given for an
int parameter becomes an int (so ``200`` and ``200.0`` are one configuration); bools are not numbers; numbers must be
finite. Parameters with ``dataset=False`` belong to the Python fronts only (not ``--set`` keys).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMMON",
    "EQUATIONS",
    "SPECS",
    "EquationSpec",
    "Param",
    "Rule",
    "grf_sigma2",
    "help_text",
    "steps_for",
]

MAX_INDEX = 2**32  # the engine's counter-based noise keeps 32-bit trajectory and step counters


@dataclass(frozen=True)
class Param:
    """One parameter: its type (``int``, ``float``, ``str`` or ``bool``), default, range or choices, and documentation.

    ``lo``/``hi`` bound numbers (``lo_open``/``hi_open``: strict); ``choices`` lists the allowed values; ``pow2``
    requires a power of two; ``default=None`` on a float parameter means "derived from the others" (see ``doc``).
    """

    name: str
    kind: type
    default: Any
    doc: str
    units: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    pow2: bool = False
    dataset: bool = True
    provenance: str = ""

    def allowed(self) -> str:
        """The valid values in words, e.g. ``"a float > 0"``, ``"one of 'em_imex', 'if_heun'"``."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = {int: "an int", float: "a float", str: "a string", bool: "true or false"}[self.kind]
        lo, hi = _num(self.lo), _num(self.hi)
        if self.lo is not None and self.hi is not None:
            text += f" in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        elif self.lo is not None:
            text += f" {'>' if self.lo_open else '>='} {lo}"
        elif self.hi is not None:
            text += f" {'<' if self.hi_open else '<='} {hi}"
        if self.pow2:
            text += ", a power of two"
        if self.kind is float and self.default is None:
            text += " (or None: derived)"
        return text

    def check(self, value: Any, *, name: str | None = None, where: str = "") -> Any:
        """``value`` coerced to the parameter's type, or ``ValueError`` naming ``where + name``, the value and the
        allowed range (``name`` overrides the parameter's name, e.g. the front's ``n`` for ``res``)."""
        label = f"{where}{name or self.name}"
        v = value
        if self.kind is float:
            if v is None and self.default is None:
                return None
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            v = float(v) if ok else v
        elif self.kind is int:
            ok = isinstance(v, numbers.Integral) and not isinstance(v, bool)
            if not ok and isinstance(v, float) and v.is_integer():
                ok = True
            v = int(v) if ok else v
        elif self.kind is bool:
            ok = isinstance(v, bool)
        else:
            ok = isinstance(v, str)
        if ok and self.choices:
            ok = v in self.choices
        if ok and self.kind in (int, float) and not self.choices:
            ok = not (
                (self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)))
                or (self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)))
                or (self.pow2 and (v < 1 or int(v) & (int(v) - 1)))
            )
        if not ok:
            raise ValueError(f"{label} must be {self.allowed()}, got {value!r}")
        return v

    def parse(self, text: str, *, where: str = "") -> Any:
        """A command-line string read by the parameter's type, then checked (:meth:`check`)."""
        value: Any = text
        if self.kind in (int, float) and not isinstance(text, bool):
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{where}{self.name} must be {self.allowed()}, got {text!r}") from None
        elif self.kind is bool:
            value = {"true": True, "false": False, "1": True, "0": False}.get(str(text).lower(), text)
        return self.check(value, where=where)

    def describe(self) -> str:
        """Two lines for ``--help``: ``name=default``, the allowed values and units; then the documentation."""
        units = f", {self.units}" if self.units else ""
        return f"{self.name}={_num(self.default)}  ({self.allowed()}{units})\n      {self.doc}"


def _num(x: Any) -> str:
    return (repr(x) if abs(x) < 1e5 else f"{x:g}") if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Rule:
    """A constraint between the parameters ``names``: ``check(values)`` returns an error message, or None when it
    holds. It applies when all of ``names`` are known (always for a dataset, whose defaults fill the gaps)."""

    doc: str
    names: tuple[str, ...]
    check: Callable[[dict[str, Any]], str | None]


@dataclass(frozen=True)
class EquationSpec:
    """The parameters of one equation, the constraint on its grid ``res`` and the rules between parameters."""

    name: str
    doc: str
    res: Param
    params: dict[str, Param]
    rules: tuple[Rule, ...] = field(default=())

    @property
    def settable(self) -> dict[str, Param]:
        """The dataset parameters (``--set`` keys, :class:`~fastinterp.datasets.DatasetConfig` ``params``)."""
        return {k: p for k, p in self.params.items() if p.dataset}

    def defaults(self, *, dataset: bool = True) -> dict[str, Any]:
        """Default values of the dataset parameters (``dataset=False``: of all parameters)."""
        return {k: p.default for k, p in (self.settable if dataset else self.params).items()}

    def param(self, key: str) -> Param:
        """The dataset parameter ``key``; an unknown key raises ``ValueError`` naming the valid ones."""
        if key not in self.settable:
            raise ValueError(f"unknown {self.name} parameter {key!r}; valid: {', '.join(sorted(self.settable))}")
        return self.params[key]

    def validate(
        self, params: Mapping[str, Any], *, res: Any = None, dataset: bool = True, partial: bool = False
    ) -> dict[str, Any]:
        """Check ``params`` (unknown keys, each value, then the rules) and return them coerced
        (:meth:`Param.check`) and merged with the defaults; ``res``, when given, is checked as the grid.

        ``dataset=True`` (:class:`~fastinterp.datasets.DatasetConfig`): the dataset parameters only, messages
        prefixed with the equation. ``dataset=False, partial=True`` (the Python fronts): any parameters, no defaults
        merged in, and only the rules whose parameters are all given."""
        if not isinstance(params, Mapping):
            raise ValueError(f"{self.name} params must be a mapping of parameter names to values, got {params!r}")
        known = self.settable if dataset else self.params
        for key in params:
            if key not in known:
                raise ValueError(f"unknown {self.name} parameter {key!r}; valid: {', '.join(sorted(known))}")
        where = f"{self.name} " if dataset else ""
        out = {k: p.check(params[k], where=where) for k, p in known.items() if k in params}
        if not partial:
            out = {k: out[k] if k in out else p.default for k, p in known.items()}
        values = dict(out) if partial else {**self.defaults(dataset=False), **out}
        if res is not None:
            values["res"] = self.res.check(res, where=where)
        for rule in self.rules:
            msg = rule.check(values) if all(n in values for n in rule.names) else None
            if msg:
                raise ValueError(f"{where}{msg}")
        return out

    def help_text(self) -> str:
        """The ``--help`` section of this equation: every ``--set`` key, the grid and the rules."""
        lines = [f"{self.name}: {self.doc}", f"  --res  ({self.res.allowed()})\n      {self.res.doc}"]
        lines += [f"  {p.describe()}" for p in self.settable.values()]
        lines += [f"  rule: {r.doc}" for r in self.rules]
        return "\n".join(lines)


def steps_for(t: float, dt: float, name: str, minimum: int) -> int:
    """Number of steps of size ``dt`` in the time ``t``, which must be a non-negative multiple of ``dt`` (within
    ``1e-9`` relative) giving at least ``minimum`` steps; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t) or t < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {t!r}")
    k = round(t / dt)
    if abs(k * dt - t) > 1e-9 * max(t, dt) or k < minimum:
        raise ValueError(f"{name} must be a multiple of dt={dt:g} (>= {minimum} steps), got {t!r}")
    return k


def _error(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], str | None]:
    """A rule check from a function that raises ``ValueError``."""

    def check(values: dict[str, Any]) -> str | None:
        try:
            fn(values)
        except ValueError as exc:
            return str(exc)
        return None

    return check


def _ns_steps(v: dict[str, Any]) -> int:
    burn = steps_for(v["t_burn"], v["dt"], "t_burn", 0)
    every = steps_for(v["t_snap"], v["dt"], "t_snap", 1)
    total = burn + (v["snapshots"] - 1) * every
    if total > MAX_INDEX:
        raise ValueError(f"t_burn / dt + (snapshots - 1) * t_snap / dt must be <= 2^32 steps, got {total}")
    return total


def _ac_steps(v: dict[str, Any]) -> None:
    total = v["burn_in"] + v["samples"] * v["thin"]
    if total > MAX_INDEX:
        raise ValueError(f"burn_in + samples * thin must be <= 2^32 pCN steps, got {total}")


def _ac_law(v: dict[str, Any]) -> None:
    if v["potential"] == "none" and v["boundary"] == "free":
        raise ValueError("potential='none' with boundary='free' has no normalisable law (the mean is flat)")
    if v["boundary"] == "free" and v["mass"] == 0:
        raise ValueError("mass must be > 0 with boundary='free' (the reference's zero mode), got 0.0")


def grf_sigma2(s: float, tau: float) -> float:
    """The default amplitude ``sigma2 = ((2 pi)^2 + tau^2)^s`` (``S = 1`` at ``|k| = 2 pi``); ``ValueError`` when it
    overflows a float."""
    log_sigma2 = 2 * s * math.log(math.hypot(2 * math.pi, tau))
    if log_sigma2 >= 709.0:
        raise ValueError(
            f"sigma2 = ((2 pi)^2 + tau^2)^s overflows a float (s = {s:g}, tau = {tau:g}): "
            f"need s * ln((2 pi)^2 + tau^2) < 709"
        )
    return ((2 * math.pi) ** 2 + tau**2) ** s  # the one formula (targets.GaussianRandomField uses it too)


def _grf_sigma2(v: dict[str, Any]) -> None:
    if v.get("sigma2") is None:
        grf_sigma2(v["s"], v["tau"])


NAVIER_STOKES = EquationSpec(
    "navier-stokes",
    "stochastic 2-D Navier-Stokes, vorticity form on [0, 2 pi]^2 (docs/pde.md)",
    Param("res", int, 128, "grid points per side (the forcing reaches wavenumber 8, the 2/3 rule needs n >= 32)",
          "points", lo=32, hi=2048, pow2=True, provenance="the paper uses 128"),
    {
        "nu": Param("nu", float, 1e-3, "viscosity", "length^2/time", lo=0,
                    provenance="the paper's script (REFERENCE section 6)"),
        "alpha": Param("alpha", float, 0.1, "linear damping rate", "1/time", lo=0,
                       provenance="the paper's script with the damping sign corrected (REFERENCE section 6)"),
        "eps": Param("eps", float, 1.0, "noise amplitude", "vorticity/sqrt(time)", lo=0,
                     provenance="the paper's script (REFERENCE section 6)"),
        "modes": Param("modes", int, 8, "Brownian forcing modes (sin and cos of 6x, 7x, 5(x+y), 8(x+y))",
                       choices=(4, 8), provenance="8 gives the paper's RMS vorticity ~3.1 (REFERENCE section 6)"),
        "dt": Param("dt", float, 5e-3, "time step (if_heun is stable up to ~0.3 / kmax, kmax = (res - 1) // 3)",
                    "time", lo=0, lo_open=True,
                    provenance="ours: if_heun at 5e-3, 50x fewer steps than the paper's em_imex at 1e-4"),
        "scheme": Param("scheme", str, "if_heun", "time stepper (em_imex: the paper's, needs dt ~1e-4)",
                        choices=("if_heun", "em_imex"), provenance="ours (docs/pde.md)"),
        "t_burn": Param("t_burn", float, 50.0, "burn-in before the first snapshot", "time", lo=0,
                        provenance=">= 5 / alpha (REFERENCE section 6)"),
        "t_snap": Param("t_snap", float, 0.5, "time between snapshots", "time", lo=0, lo_open=True,
                        provenance="the paper's spacing (REFERENCE section 6)"),
        "snapshots": Param("snapshots", int, 10, "snapshots per trajectory", "count", lo=1, provenance="ours"),
        "advection": Param("advection", bool, True, "False drops the nonlinear term (tests)", dataset=False),
        "k0": Param("k0", float, 2.0, "peak wavenumber of the random initial field", "1/length", lo=0,
                    lo_open=True, dataset=False, provenance="the paper's initial field"),
        "w_rms0": Param("w_rms0", float, 3.0, "expected RMS of the initial vorticity", "vorticity", lo=0,
                        dataset=False),
    },
    (Rule("t_burn and t_snap are multiples of dt (t_snap >= dt); at most 2^32 steps in all",
          ("dt", "t_burn", "t_snap", "snapshots"), _error(_ns_steps)),),
)  # fmt: skip

GRF = EquationSpec(
    "grf",
    "Gaussian random fields N(0, sigma2 (-Lap + tau^2)^(-s)) on [0, 1]^dim (docs/pde.md)",
    Param("res", int, None, "grid points per side", "points", lo=4, hi=8192, pow2=True),
    {
        "dim": Param("dim", int, 2, "dimension of the box", choices=(1, 2), provenance="the paper's fields"),
        "s": Param("s", float, 3.0, "smoothness exponent", lo=0, provenance="the paper (FNO: 2.5)"),
        "tau": Param("tau", float, 1.0, "inverse length scale", "1/length", lo=0, hi=1e6,
                     provenance="the paper (FNO: 7)"),
        "normalization": Param("normalization", str, "ortho",
                               "ortho: S is the covariance eigenvalue in the orthonormal DFT basis; paper: the "
                               "script's, N^(dim/2) times larger", choices=("ortho", "paper"),
                               provenance="the core library's GaussianRandomField"),
        "sigma2": Param("sigma2", float, None, "amplitude; None: ((2 pi)^2 + tau^2)^s, i.e. S = 1 at |k| = 2 pi",
                        lo=0, lo_open=True, dataset=False),
    },
    (Rule("the default amplitude ((2 pi)^2 + tau^2)^s is a finite float", ("s", "tau", "sigma2"),
          _error(_grf_sigma2)),),
)  # fmt: skip

ALLEN_CAHN = EquationSpec(
    "allen-cahn",
    "the paper's 1-D Allen-Cahn Gibbs measure on N + 1 nodes, sampled exactly by pCN (docs/allen_cahn.md)",
    Param("res", int, 32, "intervals N (N + 1 nodes)", "intervals", lo=2, hi=2**20,
          provenance="the paper uses 32, 64, 128"),
    {
        "samples": Param("samples", int, 1000, "recorded samples per chain (the time axis)", "count", lo=1,
                         provenance="ours; the paper keeps 10^5 per chain"),
        "burn_in": Param("burn_in", int, 2000, "pCN steps before the first sample (beta adapts)", "steps", lo=0,
                         provenance="ours (docs/allen_cahn.md)"),
        "thin": Param("thin", int, 2, "pCN steps between samples", "steps", lo=1,
                      provenance="integrated autocorrelation ~1.9 steps (docs/allen_cahn.md)"),
        "boundary": Param("boundary", str, "free", "free ends (the paper's) or pinned u_0 = u_N = 0",
                          choices=("free", "pinned"), provenance="the paper's density exp(-U)"),
        "potential": Param("potential", str, "double_well", "V = (1 - u^2)^2, or none (V = 0)",
                           choices=("double_well", "none"), provenance="the paper's density exp(-U)"),
        "mass": Param("mass", float, 1.0, "mass of the pCN reference's zero mode (changes mixing, not the law)",
                      lo=0, dataset=False),
        "target_accept": Param("target_accept", float, 0.25, "acceptance rate the burn-in adaptation aims at",
                               lo=0, hi=1, lo_open=True, hi_open=True, dataset=False),
        "beta": Param("beta", float, 0.5, "initial pCN step", lo=0, hi=1, lo_open=True, hi_open=True,
                      dataset=False),
    },
    (
        Rule("potential 'none' needs boundary 'pinned' (free ends have no normalisable law); mass > 0 with free "
             "ends", ("boundary", "potential", "mass"), _error(_ac_law)),
        Rule("burn_in + samples * thin <= 2^32 pCN steps", ("burn_in", "samples", "thin"), _error(_ac_steps)),
    ),
)  # fmt: skip

#: The specs by equation name (the names of ``fastinterp pde generate``).
SPECS: dict[str, EquationSpec] = {s.name: s for s in (NAVIER_STOKES, GRF, ALLEN_CAHN)}
EQUATIONS = tuple(SPECS)

#: The fields of a dataset common to every equation (``res`` is per equation: ``SPECS[eq].res``).
COMMON: dict[str, Param] = {
    "num": Param("num", int, None, "number of trajectories", "count", lo=1, hi=MAX_INDEX),
    "seed": Param("seed", int, 0, "seed of the counter-based noise", lo=0, hi=2**64 - 1),
    "shard_size": Param("shard_size", int, 50, "trajectories per shard file", "count", lo=1, hi=MAX_INDEX),
}


def help_text() -> str:
    """Every equation's ``--set`` keys with default, range, units and documentation (``pde generate --help``)."""
    head = "equation parameters (--set KEY=VALUE; defaults shown as KEY=DEFAULT):"
    return "\n\n".join([head, *(s.help_text() for s in SPECS.values())])
