"""The ``fastinterp`` command line."""

from __future__ import annotations

import argparse
import platform
import sys

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    resolutions = tuple(args.resolutions)
    for n in resolutions:
        if n < 4 or n % 2:
            raise SystemExit(f"fastinterp demo: --resolutions must be even integers >= 4, got {n}")
    run_demo(
        out=None if args.no_plot else args.out,
        mixture_samples=args.mixture_samples,
        field_samples=args.field_samples,
        resolutions=resolutions,
        seed=args.seed,
        device=args.device,
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import __version__

    print(f"fastinterp {__version__}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    try:
        from ._core import build_info

        info = build_info()
        print("native core: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    except ImportError as exc:
        print(f"native core: not available ({exc})")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastinterp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="reproduce the Lipschitz paper's headline results with exact drifts")
    demo.add_argument("--out", default=".", help="folder for fastinterp_demo.png (default: current folder)")
    demo.add_argument("--no-plot", action="store_true", help="print the tables only")
    demo.add_argument("--mixture-samples", type=_positive_int, default=4000)
    demo.add_argument("--field-samples", type=_positive_int, default=64)
    demo.add_argument("--resolutions", type=_positive_int, nargs="+", default=[32, 64, 128])
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser("info", help="versions and native build information")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
