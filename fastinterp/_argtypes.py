"""argparse types and options shared by the command line and the geodesic demo (standard library only: ``--help``
and argument errors answer without importing torch).

Each type returns the parsed value or raises ``argparse.ArgumentTypeError`` naming the value; argparse prefixes the
option's name, so a mistake reads ``argument --seed: must be an integer >= 0, got -1``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["SEED_MAX", "add_geodesic_arguments", "int_at_least", "nonnegative_float", "seed"]

#: The largest seed torch's generators take (64 bits).
SEED_MAX = 2**64 - 1


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"int_at_least_{low}"
    return parse


def seed(text: str) -> int:
    """An argparse type: a seed, an integer in ``[0, 2**64 - 1]``."""
    value = int_at_least(0)(text)
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**64 - 1] (a 64-bit seed), got {value}")
    return value


def nonnegative_float(text: str) -> float:
    """An argparse type: a finite number ``>= 0``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_geodesic_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the options of ``fastinterp geodesic`` to ``parser`` and return it (the command line and
    :func:`fastinterp.geometry.demo.main` share them; :func:`fastinterp.geometry.demo.run` takes what they parse)."""
    p = parser
    p.add_argument(
        "--out", default=".", help="folder for fastinterp_geodesic.png (default: %(default)s, the current folder)"
    )
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.add_argument("--pairs", type=int_at_least(1), default=6, help="number of pairs of points")
    p.add_argument(
        "--lam", type=nonnegative_float, nargs="+", default=[2.0, 20.0], help="potential weights, one panel each"
    )
    p.add_argument("--n-grid", type=int_at_least(2), default=100, help="steps per curve")
    p.add_argument("--max-iter", type=int_at_least(0), default=1000, help="ProbGEORCE iterations at most")
    p.add_argument("--plain", action="store_true", help="the paper's plain iteration, not conjugate directions")
    p.add_argument("--seed", type=seed, default=0, help="seed of the points")
    return p
