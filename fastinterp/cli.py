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


def _load_array(path: str):
    import numpy as np
    import torch

    if path.endswith(".npy"):
        data = torch.from_numpy(np.load(path))
    elif path.endswith(".pt"):
        data = torch.load(path, weights_only=True)
        if not isinstance(data, torch.Tensor):
            raise SystemExit(f"fastinterp train: {path} must hold one tensor, got {type(data).__name__}")
    else:
        raise SystemExit(f"fastinterp train: --data must be a .npy or .pt array file, got {path}")
    return data.float()


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .models import build_model
    from .training import train

    data = _load_array(args.data)
    if args.flatten_time and data.ndim >= 3:
        data = data.reshape(-1, *data.shape[2:])  # (trajectory, time, ...) -> snapshots
    torch.manual_seed(args.seed)
    model = build_model(args.model)
    result = train(model, data, steps=args.steps, out=args.out, batch_size=args.batch_size, lr=args.lr,
                   prediction=args.prediction, resume=args.resume, seed=args.seed,
                   checkpoint_every=args.checkpoint_every)  # fmt: skip
    print(f"trained {result.step} steps, final loss {result.losses[-1]:.4g}; checkpoint {result.checkpoint}")
    return 0


def _cmd_experiment(args: argparse.Namespace) -> int:
    from .experiment import run_experiment

    report = run_experiment(args.dataset, preset=args.preset, out=args.out, seed=args.seed)
    print(report.table())
    print(f"report, checkpoint and spectra.png in {args.out}")
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

    tr = sub.add_parser("train", help="train a model with the linear schedule on an array of samples")
    tr.add_argument("--data", required=True, help=".npy or .pt array shaped (n, ...) or (trajectory, time, ...)")
    tr.add_argument("--model", required=True, help="tiny-1d, tiny-2d, small-2d, 1d-1m, 2d-2m or mlp:<dim>")
    tr.add_argument("--steps", type=_positive_int, required=True)
    tr.add_argument("--out", required=True, help="checkpoint path")
    tr.add_argument("--batch-size", type=_positive_int, default=64)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--prediction", default="velocity", choices=["velocity", "x1", "noise", "score"])
    tr.add_argument("--checkpoint-every", type=_positive_int, default=500)
    tr.add_argument("--flatten-time", action="store_true", help="treat (trajectory, time, ...) as snapshots")
    tr.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    tr.add_argument("--seed", type=int, default=0)
    tr.set_defaults(func=_cmd_train)

    ex = sub.add_parser("experiment", help="train once (linear), sample with Linear and LipschitzOptimal, compare")
    ex.add_argument("dataset", choices=["grf"])
    ex.add_argument("--preset", default="cpu", choices=["tiny", "cpu", "paper"])
    ex.add_argument("--out", default="experiment")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=_cmd_experiment)

    info = sub.add_parser("info", help="versions and native build information")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
