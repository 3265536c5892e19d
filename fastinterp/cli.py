"""The ``fastinterp`` command line."""

from __future__ import annotations

import argparse
import platform
import sys

__all__ = ["main"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every option's default and keeps descriptions' line breaks (every parser uses it)."""


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

    from ._version import __version__

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
    import os

    import numpy as np
    import torch

    if os.path.isdir(path):  # a dataset directory of `fastinterp pde generate`: every snapshot, in memory
        from .datasets import PDEDataset

        try:
            ds = PDEDataset(path)
        except ValueError as exc:
            raise SystemExit(f"fastinterp train: {exc}") from None
        return torch.stack([ds[i] for i in range(len(ds))])
    if path.endswith(".npy"):
        data = torch.from_numpy(np.load(path))
    elif path.endswith(".pt"):
        data = torch.load(path, weights_only=True)
        if not isinstance(data, torch.Tensor):
            raise SystemExit(f"fastinterp train: {path} must hold one tensor, got {type(data).__name__}")
    else:
        raise SystemExit(f"fastinterp train: --data must be a dataset directory or a .npy/.pt array, got {path}")
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


def _dataset_config(args: argparse.Namespace):
    import json

    from .datasets import DatasetConfig

    fields: dict = {}
    if args.config:
        try:
            fields = json.loads(open(args.config).read())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"fastinterp pde generate: cannot read --config {args.config}: {exc}") from None
    for name in ("num", "res", "seed", "shard_size"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    fields["equation"] = args.equation
    params = dict(fields.get("params", {}))
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"fastinterp pde generate: --set takes key=value, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    fields["params"] = params
    missing = [n for n in ("num", "res") if n not in fields]
    if missing:
        raise SystemExit(f"fastinterp pde generate: give --{' and --'.join(missing)} (or a --config file)")
    try:
        return DatasetConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"fastinterp pde generate: {exc}") from None


def _cmd_pde_generate(args: argparse.Namespace) -> int:
    from .datasets.generate import distributed_context, generate
    from .pde import DivergedError

    config = _dataset_config(args)
    rank, world, barrier = distributed_context()
    try:
        manifest = generate(args.out, config, threads=args.threads, resume=args.resume, progress=not args.quiet,
                            rank=rank, world=world, barrier=barrier)  # fmt: skip
    except ValueError as exc:
        raise SystemExit(f"fastinterp pde generate: {exc}") from None
    except DivergedError as exc:
        raise SystemExit(
            f"fastinterp pde generate: {exc}. The finished trajectories of {args.out} are kept, but a dataset "
            "cannot change its parameters: generate the new configuration into another --out."
        ) from None
    if rank == 0:
        print(
            f"{args.out}: {config.num} trajectories of {config.equation} at {config.res}, "
            f"{len(config.shards)} shards, mean {manifest['stats']['mean']:.4g}, std {manifest['stats']['std']:.4g}"
        )
    return 0


def _cmd_pde_info(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .datasets import dataset_status, load_manifest

    try:
        config, manifest = load_manifest(args.dir)
        status = dataset_status(args.dir)
    except ValueError as exc:
        raise SystemExit(f"fastinterp pde info: {exc}") from None
    size = sum(p.stat().st_size for p in Path(args.dir).glob("shard_*.h5"))
    print(
        f"{args.dir}: {config.equation}, {config.num} trajectories at {config.res}, seed {config.seed}, "
        f"fingerprint {config.fingerprint}"
    )
    print("parameters: " + json.dumps(config.params, sort_keys=True))
    print(
        f"shards: {len(status['complete'])} complete, {len(status['missing'])} missing, "
        f"{len(status['damaged'])} damaged; {size / 1e6:.1f} MB"
    )
    for k, reason in status["damaged"]:
        print(f"  damaged shard {k}: {reason}")
    if manifest.get("complete"):
        st = manifest["stats"]
        print(f"statistics: mean {st['mean']:.6g}, std {st['std']:.6g}, rms {st['rms']:.6g} over {st['values']} values")
    else:
        print("incomplete: finish with `fastinterp pde generate ... --resume`")
    return 0 if not status["missing"] and not status["damaged"] else 1


def _cmd_pde_plot(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .datasets import PDEDataset
    from .diagnostics import radial_spectrum

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("fastinterp pde plot needs matplotlib: pip install matplotlib") from None
    try:
        ds = PDEDataset(args.dir)
    except ValueError as exc:
        raise SystemExit(f"fastinterp pde plot: {exc}") from None
    picks = np.linspace(0, len(ds) - 1, 4).astype(int)
    fields = torch.stack([ds[int(i)] for i in picks])
    dim = len(ds.grid)
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.4))
    for ax, f, i in zip(axes[:4], fields, picks, strict=True):
        if dim == 2:
            ax.imshow(f.numpy(), cmap="RdBu_r")
        else:
            ax.plot(f.numpy())
        ax.set_title(f"snapshot {i}")
    sample = torch.stack([ds[int(i)] for i in np.linspace(0, len(ds) - 1, min(len(ds), 64)).astype(int)])
    E = radial_spectrum(sample.double(), dim=dim)
    axes[4].loglog(np.arange(1, E.numel()), E[1:].numpy())
    axes[4].set_title("energy spectrum (radial, mean)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"saved {args.out}")
    return 0


def _cmd_pde_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from .datasets import load_manifest, read_shard
    from .datasets.format import shard_name

    config, manifest = load_manifest(args.dir)
    if not manifest.get("complete"):
        raise SystemExit(f"fastinterp pde export: {args.dir} is incomplete; finish it with --resume first")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, _, _ in config.shards:
        data = read_shard(Path(args.dir) / shard_name(k), config)
        target = out / f"{config.equation}_{k:05d}.{args.format}"
        if args.format == "pt":
            torch.save(torch.from_numpy(data), target)
        else:
            np.save(target, data)
        print(f"wrote {target} {data.shape}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastinterp", description=__doc__, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="reproduce the Lipschitz paper's headline results with exact drifts", formatter_class=_Formatter
    )
    demo.add_argument("--out", default=".", help="folder for fastinterp_demo.png (default: current folder)")
    demo.add_argument("--no-plot", action="store_true", help="print the tables only")
    demo.add_argument("--mixture-samples", type=_positive_int, default=4000)
    demo.add_argument("--field-samples", type=_positive_int, default=64)
    demo.add_argument("--resolutions", type=_positive_int, nargs="+", default=[32, 64, 128])
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser(
        "train", help="train a model with the linear schedule on an array of samples", formatter_class=_Formatter
    )
    tr.add_argument("--data", required=True,
                    help="a dataset directory (fastinterp pde generate), or a .npy/.pt array (n, ...)")  # fmt: skip
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

    ex = sub.add_parser(
        "experiment",
        help="train once (linear), sample with Linear and LipschitzOptimal, compare",
        formatter_class=_Formatter,
    )
    ex.add_argument("dataset", choices=["grf", "ns", "ac"])
    ex.add_argument("--preset", default="cpu", choices=["tiny", "cpu", "paper"])
    ex.add_argument("--out", default="experiment")
    ex.add_argument("--seed", type=int, default=0)
    ex.set_defaults(func=_cmd_experiment)

    pde = sub.add_parser(
        "pde", help="PDE datasets: generate, info, plot, export", formatter_class=_Formatter
    ).add_subparsers(dest="pde_command", required=True)
    gen = pde.add_parser(
        "generate", help="generate a dataset (resumable; torchrun splits it across ranks)", formatter_class=_Formatter
    )
    gen.add_argument("equation", choices=["navier-stokes", "grf", "allen-cahn"])
    gen.add_argument("--num", type=_positive_int, help="number of trajectories")
    gen.add_argument("--res", type=_positive_int, help="grid points per side (Allen-Cahn: N, for N + 1 nodes)")
    gen.add_argument("--out", required=True, help="dataset directory")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--shard-size", type=_positive_int, help="trajectories per shard file (default 50)")
    gen.add_argument("--threads", type=_positive_int, default=1)
    gen.add_argument("--config", help="JSON file with the configuration (flags override it)")
    gen.add_argument("--set", action="append", metavar="KEY=VALUE", help="an equation parameter, e.g. dt=0.005")
    gen.add_argument("--resume", action="store_true", help="finish an interrupted dataset in --out")
    gen.add_argument("--quiet", action="store_true", help="no progress line")
    gen.set_defaults(func=_cmd_pde_generate)
    inf = pde.add_parser("info", help="contents, integrity and statistics of a dataset", formatter_class=_Formatter)
    inf.add_argument("dir")
    inf.set_defaults(func=_cmd_pde_info)
    plo = pde.add_parser("plot", help="snapshots and energy spectrum as a PNG", formatter_class=_Formatter)
    plo.add_argument("dir")
    plo.add_argument("--out", required=True)
    plo.set_defaults(func=_cmd_pde_plot)
    exp = pde.add_parser(
        "export",
        help="export shards as .pt tensors or .npy arrays (trajectory, time, *grid)",
        formatter_class=_Formatter,
    )
    exp.add_argument("dir")
    exp.add_argument("--format", choices=["pt", "npy"], default="pt")
    exp.add_argument("--out", required=True)
    exp.set_defaults(func=_cmd_pde_export)

    # listed for --help; main() hands `geodesic ...` straight to the demo's own parser
    sub.add_parser(
        "geodesic",
        help="likely paths between points of a 2-D mixture vs straight lines (PNG)",
        formatter_class=_Formatter,
    )

    info = sub.add_parser("info", help="versions and native build information", formatter_class=_Formatter)
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["geodesic"]:  # the demo parses its own options
        from .geometry.demo import main as geodesic_main

        return geodesic_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
