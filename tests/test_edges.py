"""Numerics at the edges (issue 14, item 5), against a 60-digit mpmath reference.

- Every built-in schedule over its whole accurate range (``lam_range``, ``M_range``): values, derivatives and
  ``invert_ratio`` to 1e-12 relative for t in [1e-12, 1 - 1e-12]; the range is enforced.
- The exact drift of a Gaussian and of a mixture (default: a velocity model from both denoisers) to 1e-10.
- Transfers between built-in schedules: ``transfer_time`` to 1e-10; it raises exactly where the source cannot
  represent the target's noise-to-signal ratio in float64 (mismatch > ``RATIO_RTOL``); elsewhere the transferred
  drift's error is bounded by the two floors no coefficient form can remove, the mismatch ``delta`` (the float64
  rounding of the source time) and ``eps * kappa`` (``kappa``: the condition number of ``cx x + cy y``, i.e. of the
  source's prediction type), plus 1e-11; with both floors negligible, within 1e-10.

The fast tests use a modest grid; ``test_full_transfer_sweep`` (slow) runs every pair, prediction and target.
"""

from __future__ import annotations

import math

import pytest
import torch

import fastinterp as fi
from fastinterp.transfer import RATIO_RTOL, ratio_mismatch

mp = pytest.importorskip("mpmath")
mp.mp.dps = 60
EPS = torch.finfo(torch.float64).eps

# ------------------------------------------------------------------------------------------ 60-digit reference


def _spec(s: fi.Schedule) -> tuple[str, float | None]:
    name = type(s).__name__
    return name, {"LipschitzOptimal": getattr(s, "lam", None), "MixtureOptimal": getattr(s, "M", None)}.get(name)


def sched_mp(s: fi.Schedule, t) -> tuple:
    """``(alpha, beta, alpha', beta')`` at the mp time ``t``, from the textbook formulas."""
    kind, p = _spec(s)
    t = mp.mpf(t)
    if kind == "Linear":
        return 1 - t, t, mp.mpf(-1), mp.mpf(1)
    if kind == "Trig":
        h = mp.pi / 2
        return mp.cos(h * t), mp.sin(h * t), -h * mp.sin(h * t), h * mp.cos(h * t)
    if kind == "LipschitzOptimal":
        L = mp.log(mp.mpf(p))
        if L == 0:
            a2, b2, db2 = 1 - t, t, mp.mpf(1)
        else:  # (lam^t - 1) / (lam - 1) and (lam - lam^t) / (lam - 1)
            b2 = mp.expm1(t * L) / mp.expm1(L)
            a2 = mp.expm1((t - 1) * L) / mp.expm1(-L)
            db2 = L * mp.exp(t * L) / mp.expm1(L)
    else:  # MixtureOptimal: beta^2 = -log(1 + expm1(-M^2) t) / M^2
        M2 = mp.mpf(p) ** 2
        c = mp.expm1(-M2)
        b2 = -mp.log1p(c * t) / M2
        a2 = (M2 + mp.log1p(c * t)) / M2 if b2 < 0.5 else mp.log1p((1 - t) * mp.expm1(M2)) / M2
        db2 = -c / (M2 * (1 + c * t))
    a, b = mp.sqrt(a2), mp.sqrt(b2)
    return a, b, -db2 / (2 * a), db2 / (2 * b)


def invert_mp(s: fi.Schedule, r):
    """The time at which ``s`` has ``alpha / beta = r`` (mp), with ``q = beta^2 = 1 / (1 + r^2)``, ``p = 1 - q``."""
    kind, p = _spec(s)
    r = mp.mpf(r)
    q = 1 / (1 + r * r)
    if kind == "Linear":
        return 1 / (1 + r)
    if kind == "Trig":
        return mp.atan2(1, r) * 2 / mp.pi
    if kind == "LipschitzOptimal":
        L = mp.log(mp.mpf(p))
        if L == 0:
            return q
        # lam^t = p + q lam: log1p(q expm1(L)) unless it cancels (q -> 1), then log(p + q lam) with p = r^2 q
        return (mp.log1p(q * mp.expm1(L)) if q < 0.5 else mp.log(r * r * q + q * mp.exp(L))) / L
    M2 = mp.mpf(p) ** 2
    return mp.expm1(-M2 * q) / mp.expm1(-M2)


def rel(x: float, ref) -> float:
    ref = mp.mpf(ref)
    return float(abs(mp.mpf(x) - ref) / abs(ref)) if ref != 0 else abs(x)


def mixture_velocity_mp(target: fi.targets.GaussianMixture, x: torch.Tensor, s) -> list:
    """``a' z^ + b' x1^`` of the mixture at one point ``x`` (1-D), schedule values ``s`` (mp)."""
    a, b, da, db = s
    d = x.numel()
    xs = [mp.mpf(v) for v in x.tolist()]
    logs, zs, x1s = [], [], []
    for m, p, s2 in zip(target.means.tolist(), target.weights.tolist(), target.var.tolist(), strict=True):
        m, s2 = [mp.mpf(v) for v in m], mp.mpf(s2)
        v = a * a + b * b * s2
        r = [xi - b * mi for xi, mi in zip(xs, m, strict=True)]
        logs.append(mp.log(mp.mpf(p)) - sum(ri * ri for ri in r) / (2 * v) - d * mp.log(2 * mp.pi * v) / 2)
        zs.append([a * ri / v for ri in r])
        x1s.append([mi + b * s2 * ri / v for mi, ri in zip(m, r, strict=True)])
    top = max(logs)
    w = [mp.exp(lg - top) for lg in logs]
    w = [wi / sum(w) for wi in w]
    z = [sum(wk * zk[i] for wk, zk in zip(w, zs, strict=True)) for i in range(d)]
    x1 = [sum(wk * xk[i] for wk, xk in zip(w, x1s, strict=True)) for i in range(d)]
    return [da * zi + db * xi for zi, xi in zip(z, x1, strict=True)]


def gaussian_velocity_mp(target: fi.targets.Gaussian, x: torch.Tensor, s) -> list:
    a, b, da, db = s
    out = []
    for xi, mi, vi in zip(x.tolist(), target.mean.tolist(), target.var.tolist(), strict=True):
        xi, mi, vi = mp.mpf(xi), mp.mpf(mi), mp.mpf(vi)
        r = (xi - b * mi) / (a * a + b * b * vi)
        out.append(da * a * r + db * (mi + b * vi * r))
    return out


# ----------------------------------------------------------------------------------------------- schedules

LAM_LO, LAM_HI = fi.LipschitzOptimal.lam_range
M_HI = fi.MixtureOptimal.M_range[1]
RANGE_SCHEDULES = [
    fi.Linear(),
    fi.Trig(),
    *(fi.LipschitzOptimal(v) for v in (LAM_LO, 1e-100, 1e-12, 0.5, 1 - 1e-12, 1.0, 1 + 1e-12, 1e6, 1e100, LAM_HI)),
    *(fi.MixtureOptimal(v) for v in (1e-300, 1e-155, 1e-15, 1e-8, 0.99, 1.0, 1.01, 5.0, 30.0, 1e50, M_HI)),
]
T_WIDE = [1e-12, 1e-9, 1e-6, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-3, 1 - 1e-6, 1 - 1e-9, 1 - 1e-12]


@pytest.mark.parametrize("sched", RANGE_SCHEDULES, ids=repr)
def test_schedule_matches_60_digits_over_its_range(sched):
    t = torch.tensor(T_WIDE, dtype=torch.float64)
    out = sched(t)
    inv = sched.invert_ratio(out.alpha, out.beta)
    for i, ti in enumerate(T_WIDE):
        ref = sched_mp(sched, ti)
        for name, value, r in zip(("alpha", "beta", "dalpha", "dbeta"), out, ref, strict=True):
            assert rel(float(value[i]), r) < 1e-12, (name, ti, float(value[i]), float(r))
        assert float(out.alpha[i]) ** 2 > 1e-300 and float(out.beta[i]) ** 2 > 1e-300, ti  # normal floats
        r = mp.mpf(float(out.alpha[i])) / mp.mpf(float(out.beta[i]))
        assert rel(float(inv[i]), invert_mp(sched, r)) < 1e-12, ("invert_ratio", ti)


@pytest.mark.parametrize(
    "make, name, value, needle",
    [
        (fi.LipschitzOptimal, "lam", 1e-300, "1e-300"),
        (fi.LipschitzOptimal, "lam", 1e300, "1e+300"),
        (fi.LipschitzOptimal, "lam", LAM_LO * 0.99, "9.9e-281"),
        (fi.LipschitzOptimal, "lam", 0.0, "0.0"),
        (fi.LipschitzOptimal, "lam", -1.0, "-1.0"),
        (fi.LipschitzOptimal, "lam", math.nan, "nan"),
        (fi.LipschitzOptimal, "lam", math.inf, "inf"),
        (fi.MixtureOptimal, "M", 0.0, "0.0"),
        (fi.MixtureOptimal, "M", -2.0, "-2.0"),
        (fi.MixtureOptimal, "M", 1e141, "1e+141"),
        (fi.MixtureOptimal, "M", 1e300, "1e+300"),
        (fi.MixtureOptimal, "M", math.nan, "nan"),
    ],
)
def test_range_is_enforced(make, name, value, needle):
    with pytest.raises(ValueError) as info:
        make(value)
    msg = str(info.value)
    lo, hi = make.lam_range if name == "lam" else make.M_range
    for part in (make.__name__, f"{name} must lie in", needle, f"{lo:g}", f"{hi:g}"):
        assert part in msg, (part, msg)


def test_range_ends_are_accepted_and_types_checked():
    assert fi.LipschitzOptimal(LAM_LO).lam == LAM_LO and fi.LipschitzOptimal(LAM_HI).lam == LAM_HI
    assert fi.MixtureOptimal(M_HI).M == M_HI and fi.MixtureOptimal(5e-324).M == 5e-324
    for bad in ("1e-5", True, None):
        with pytest.raises(TypeError, match="LipschitzOptimal: lam must be a real number"):
            fi.LipschitzOptimal(bad)
        with pytest.raises(TypeError, match="MixtureOptimal: M must be a real number"):
            fi.MixtureOptimal(bad)


@pytest.mark.parametrize(
    "sched",
    [*(fi.LipschitzOptimal(v) for v in (1e-30, 1e-12, 1e12, 1e30)), *(fi.MixtureOptimal(v) for v in (1e-20, 5, 1e10))],
    ids=repr,
)
def test_float32_evaluation_is_finite_and_close(sched):
    """The overflow-free forms: no intermediate leaves [-1, 1], so float32 loses only its own precision."""
    t = torch.tensor([1e-3, 0.1, 0.5, 0.9, 1 - 1e-3], dtype=torch.float32)
    out32, out64 = sched(t), sched(t.double())
    for a, b in zip(out32, out64, strict=True):
        assert torch.isfinite(a).all()
        assert float(((a.double() - b) / b).abs().max()) < 1e-5


# ------------------------------------------------------------------------------------------- exact drifts

T_GOAL = [1e-3, 0.02, 0.3, 0.7, 0.98, 1 - 1e-3]
DRIFT_SCHEDULES = [
    fi.Linear(),
    fi.Trig(),
    *(fi.LipschitzOptimal(v) for v in (LAM_LO, 1e-12, 1e-3, 1.0, 50.0, 1e6, LAM_HI)),
    *(fi.MixtureOptimal(v) for v in (1e-300, 0.5, 5.0, 20.0, M_HI)),
]


def _mixture() -> fi.targets.GaussianMixture:
    g = torch.Generator().manual_seed(1)
    means = torch.randn(3, 4, generator=g, dtype=torch.float64)
    return fi.targets.GaussianMixture(
        means, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64), torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    )


def _gaussian() -> fi.targets.Gaussian:
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(4, generator=g, dtype=torch.float64)
    return fi.targets.Gaussian(mean, torch.tensor([1e-3, 0.1, 1.0, 10.0], dtype=torch.float64))


TARGETS = {"mixture": (_mixture, mixture_velocity_mp), "gaussian": (_gaussian, gaussian_velocity_mp)}


class Reference:
    """States ``x = a z + b x1`` under a schedule at a time, and their exact velocities (mp, rounded to float64)."""

    def __init__(self, kind: str, n: int = 3) -> None:
        make, self.velocity_mp = TARGETS[kind]
        self.target = make()
        self.gen = torch.Generator().manual_seed(3)
        self.n = n
        self.cache: dict = {}

    def __call__(self, sched: fi.Schedule, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        key = (repr(sched), t)
        if key not in self.cache:
            s = sched(torch.tensor(t, dtype=torch.float64))
            z = torch.randn(self.n, 4, generator=self.gen, dtype=torch.float64)
            x = s.alpha * z + s.beta * self.target.sample(self.n, generator=self.gen)
            sm = sched_mp(sched, t)
            v = torch.tensor([[float(c) for c in self.velocity_mp(self.target, xi, sm)] for xi in x])
            self.cache[key] = (x, v)
        return self.cache[key]


def _norm(a: torch.Tensor) -> torch.Tensor:
    """``|a|``, scaled first: the velocities of extreme schedules are ~1e-194, whose squares underflow."""
    m = a.abs().max()
    return m * (a / m).norm() if m > 0 else m


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(_norm(a - b) / _norm(b))


@pytest.fixture(scope="module")
def references():
    return {kind: Reference(kind) for kind in TARGETS}


@pytest.mark.parametrize("kind", list(TARGETS))
def test_exact_drift_within_1e_10(kind, references):
    """The default exact drift predicts a' z^ + b' x1^ from both denoisers: no conversion, no cancellation."""
    ref = references[kind]
    worst = 0.0
    for sched in DRIFT_SCHEDULES:
        drift = ref.target.drift(sched)
        assert drift.prediction == "velocity"
        for t in T_GOAL:
            x, v = ref(sched, t)
            worst = max(worst, _rel(drift.velocity(x, t), v))
    assert worst < 1e-10, worst


def test_issue_case_mixture_under_lipschitz_1e_12_near_one(references):
    """Issue 14: off by 2.5e-5 through the x1 form (a'/a) x + (b' - a' b / a) x1^; exact with the velocity form."""
    ref = references["mixture"]
    sched = fi.LipschitzOptimal(1e-12)
    for t in (1 - 1e-3, 1 - 1e-6, 1 - 1e-9):
        x, v = ref(sched, t)
        assert _rel(ref.target.drift(sched).velocity(x, t), v) < 1e-12, t


# ------------------------------------------------------------------------------------------------ transfers

PAIR_SCHEDULES = [
    fi.Linear(),
    fi.Trig(),
    fi.LipschitzOptimal(1e-12),
    fi.LipschitzOptimal(1e6),
    fi.LipschitzOptimal(LAM_HI),
    fi.MixtureOptimal(1e-300),
    fi.MixtureOptimal(5.0),
    fi.MixtureOptimal(20.0),
]
PAIRS = [(s, g) for s in PAIR_SCHEDULES for g in PAIR_SCHEDULES]


def _mismatch_mp(source: fi.Schedule, target: fi.Schedule, t: float, tp: float) -> float:
    a, b, _, _ = sched_mp(target, t)
    a_s, b_s, _, _ = sched_mp(source, tp) if 0 < tp < 1 else ((mp.mpf(1), mp.mpf(0)) if tp == 0 else (0, 1)) + (0, 0)
    num, den = abs(a_s * b - a * b_s), a * b_s
    return 0.0 if num == 0 else (float(num / den) if den else math.inf)


@pytest.mark.parametrize("source, target", PAIRS, ids=lambda s: repr(s))
def test_transfer_time_within_1e_10_or_raises(source, target):
    t = torch.tensor(T_GOAL, dtype=torch.float64)
    tp, scale = fi.transfer_time(source, target, t, check=False)
    delta = ratio_mismatch(source, target, t)
    for i, ti in enumerate(T_GOAL):
        a, b, _, _ = sched_mp(target, ti)
        tp_ref = invert_mp(source, a / b)
        exact = _mismatch_mp(source, target, ti, float(tp[i]))
        if not RATIO_RTOL / 2 < exact < 2 * RATIO_RTOL:  # outside the band where rounding decides
            unrepresentable = exact > RATIO_RTOL
            if unrepresentable:
                with pytest.raises(ValueError, match="cannot represent"):
                    fi.transfer_time(source, target, t[i])
            else:
                fi.transfer_time(source, target, t[i])
        assert float(delta[i]) == pytest.approx(exact, rel=1e-3, abs=1e-12)  # float64 schedule rounding
        if exact > RATIO_RTOL:
            continue
        assert rel(float(tp[i]), tp_ref) < 1e-10, (ti, float(tp[i]), float(tp_ref))
        _, b_s, _, _ = sched_mp(source, tp_ref)
        assert rel(float(scale[i]), b_s / b) < 1e-10 + 2 * exact, ti


def _transfer_errors(ref: Reference, source, target, prediction):
    """``(t, err, delta, kappa)`` of the transferred drift's velocity at each goal time where it does not raise.

    All goal times in one call (a time per sample); where any is unrepresentable the checked call must raise, and
    the others are evaluated unchecked.
    """
    drift = ref.target.drift(source, prediction).transfer(target)
    xs, vs = zip(*(ref(target, t) for t in T_GOAL), strict=True)
    x, v, n = torch.cat(xs), torch.cat(vs), ref.n
    tt = torch.tensor(T_GOAL, dtype=torch.float64).repeat_interleave(n)
    delta = ratio_mismatch(source, target, tt)
    bad = delta > RATIO_RTOL
    if bad.any():
        with pytest.raises(ValueError, match="cannot represent"):
            drift.coefficients(tt, ("velocity",))
    model, tp, scale, [(cx, cy)] = drift.coefficients(tt, ("velocity",), check=not bad.any())
    cx, cy, scale = (c.unsqueeze(1) for c in (cx, cy, scale))
    y = model(scale * x, tp)
    out = drift.convert(x, tt, ("velocity",), check=False)[0]
    torch.testing.assert_close(out, cx * x + cy * y, rtol=0, atol=0, equal_nan=True)
    rows = []
    for i, t in enumerate(T_GOAL):
        k = slice(i * n, (i + 1) * n)
        if bad[k].any():
            continue
        kappa = float((_norm(cx[k].abs() * x[k]) + _norm(cy[k].abs() * y[k])) / _norm(v[k]))
        rows.append((t, _rel(out[k], v[k]), float(delta[k].max()), kappa))
    return rows


def _check_bound(rows, what):
    for t, err, delta, kappa in rows:
        assert err <= 1e-11 + 4 * delta + 16 * EPS * kappa, (what, t, err, delta, kappa)
        if delta < 1e-12 and kappa < 100:
            assert err < 1e-10, (what, t, err)


@pytest.mark.parametrize("prediction", fi.PREDICTIONS)
@pytest.mark.parametrize("kind", list(TARGETS))
def test_transferred_exact_drift(kind, prediction, references):
    ref = references[kind]
    for source, target in PAIRS:
        _check_bound(_transfer_errors(ref, source, target, prediction), (kind, prediction, source, target))


@pytest.mark.slow
def test_full_transfer_sweep(references):
    """Every built-in schedule pair of DRIFT_SCHEDULES, every prediction, both targets (about a minute)."""
    for kind, ref in references.items():
        for prediction in fi.PREDICTIONS:
            for source in DRIFT_SCHEDULES:
                for target in DRIFT_SCHEDULES:
                    rows = _transfer_errors(ref, source, target, prediction)
                    _check_bound(rows, (kind, prediction, source, target))


def test_unrepresentable_transfer_raises_everywhere_it_is_used():
    """Issue 14: from MixtureOptimal(20) the drift was wrong by 120% where 1 - t' < 1e-16 was needed."""
    src, dst = fi.MixtureOptimal(20.0), fi.Linear()
    target = _mixture()
    drift = target.drift(src).transfer(dst)
    needles = ("MixtureOptimal(M=20)", "Linear()", "t = 0.5", "alpha/beta = 1", "relative mismatch")
    for call in (
        lambda: fi.transfer_time(src, dst, torch.tensor(0.5, dtype=torch.float64)),
        lambda: fi.transfer_time(src, dst, torch.tensor([0.01, 0.5], dtype=torch.float64)),
        lambda: fi.transfer_time(src, dst, torch.tensor(0.5, dtype=torch.float32)),  # checked in float64
        lambda: drift.velocity(torch.zeros(2, 4, dtype=torch.float64), 0.5),
        lambda: drift.model(torch.zeros(2, 4, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)),
        lambda: fi.build_table(drift, "euler", torch.tensor([0.5, 0.6, 0.7], dtype=torch.float64)),
    ):
        with pytest.raises(ValueError) as info:
            call()
        msg = str(info.value)
        assert all(n in msg for n in needles), msg
    # at small t the mixture schedule's ratios are representable: no error, and the drift is right
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(drift.velocity(x, 0.01), target.drift(dst).velocity(x, 0.01), rtol=1e-9, atol=0)


def test_float32_rounding_of_the_source_time_is_not_an_error():
    """In float32 the source time alone mismatches the ratio by ~eps32 / (1 - t'): the check looks at float64."""
    src, dst = fi.Linear(), fi.LipschitzOptimal(1.96e-12)  # train linear, sample a 128^2 field's schedule
    t = torch.tensor([0.5, 1 - 1e-4], dtype=torch.float32)
    assert float(ratio_mismatch(src, dst, t)[1]) > 1e-2
    assert float(ratio_mismatch(src, dst, t.double())[1]) < 1e-8
    fi.transfer_time(src, dst, t)


def test_check_is_skipped_while_compiling(monkeypatch):
    src, dst = fi.MixtureOptimal(20.0), fi.Linear()
    t = torch.tensor(0.5, dtype=torch.float64)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    fi.transfer_time(src, dst, t)
    monkeypatch.undo()
    with pytest.raises(ValueError):
        fi.transfer_time(src, dst, t)
    fi.transfer_time(src, dst, t, check=False)
