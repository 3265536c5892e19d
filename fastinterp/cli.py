"""The ``fastinterp`` command line.

Every command imports what it needs when it runs (torch, h5py, matplotlib), so that ``--help`` and argument errors
answer at once; a user mistake ends with one line that names the option and the value (exit status 1, or 2 for
argparse's own errors).
"""

from __future__ import annotations

import argparse
import copy
import sys

from ._argtypes import add_geodesic_arguments, int_at_least, seed

__all__ = ["main"]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """--help shows the defaults worth reading and keeps descriptions' line breaks (every parser uses it).

    ``(default: ...)`` follows an option's help unless the option is required or a flag (``store_true``), has no
    default (``None``) or its help already speaks of its default; an option without help text shows its default
    alone. Lists show as typed (``32 64 128``).
    """

    def _format_action(self, action: argparse.Action) -> str:
        default = self._default_text(action)
        if default is not None:
            action = copy.copy(action)
            action.help = f"{action.help} ({default})" if action.help else f"({default})"
        return super()._format_action(action)

    @staticmethod
    def _default_text(action: argparse.Action) -> str | None:
        value = action.default
        if value is None or value is argparse.SUPPRESS or action.help is argparse.SUPPRESS or action.required:
            return None
        if action.nargs == 0 or (not action.option_strings and action.nargs not in ("?", "*")):
            return None  # flags (their default is "off") and required positionals
        if action.help and "default" in action.help:
            return None
        text = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return "default: " + text.replace("%", "%%")  # the help text is %-formatted next


def _writable_folder(command: str, path: str) -> None:
    """Create the folder ``--out`` names (with parents) and check that a file can be written in it, before the work."""
    import tempfile
    from pathlib import Path

    if Path(path).exists() and not Path(path).is_dir():
        raise SystemExit(f"fastinterp {command}: --out {path} is a file, not a folder")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SystemExit(f"fastinterp {command}: --out {path} is not a writable folder: {reason}") from None


def _not_under_a_file(command: str, path: str) -> None:
    """Refuse an ``--out`` folder that is a file or lies under one, before any work (nothing is created)."""
    from pathlib import Path

    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            if not folder.is_dir():
                where = "" if folder == Path(path) else f": {folder}"
                raise SystemExit(f"fastinterp {command}: --out {path}{where} is a file, not a folder")
            return


def _check_device(command: str, text: str):
    """The torch device ``--device`` names, once a tensor could be made on it."""
    import torch

    try:
        device = torch.device(text)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as exc:  # a bad name; CUDA missing; no such device index
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"fastinterp {command}: --device {text!r} cannot be used here: {reason}") from None
    return device


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    device = _check_device("demo", args.device)
    if not args.no_plot:
        _writable_folder("demo", args.out)
    run_demo(
        out=None if args.no_plot else args.out,
        mixture_samples=args.mixture_samples,
        field_samples=args.field_samples,
        resolutions=tuple(args.resolutions),
        seed=args.seed,
        device=str(device),
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import platform

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
    """The samples ``--data`` names as a float32 tensor ``(n, ...)``; one line naming the path if it cannot be read."""
    import os
    import pickle

    def fail(reason: str):
        raise SystemExit(f"fastinterp train: --data {path}: {reason}")

    if not os.path.exists(path):
        fail("no such file or directory")
    if not (os.path.isdir(path) or path.endswith((".npy", ".pt"))):
        fail("must be a dataset directory (fastinterp pde generate) or a .npy/.pt array")
    import numpy as np
    import torch

    if os.path.isdir(path):  # a dataset directory of `fastinterp pde generate`: every snapshot, in memory
        try:
            from .datasets import PDEDataset

            ds = PDEDataset(path)
            if len(ds) == 0:
                fail("the dataset holds no snapshots")
            return torch.stack([ds[i] for i in range(len(ds))])
        except (ValueError, OSError, ImportError) as exc:  # damaged or foreign shards name their file
            raise SystemExit(f"fastinterp train: --data {path}: {exc}") from None
    try:
        if path.endswith(".npy"):
            data = torch.from_numpy(np.load(path))
        else:
            data = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:  # torch.load(weights_only=True): its long advice would mislead here
        fail("cannot be read: not a tensor saved by torch.save (an unreadable file, or pickled Python objects, "
             "which are never loaded)")  # fmt: skip
    except Exception as exc:  # unreadable, truncated, unsupported dtypes...
        fail(f"cannot be read ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})")
    if not isinstance(data, torch.Tensor):
        fail(f"must hold one tensor, got {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        fail(f"must hold real numbers, got dtype {data.dtype}")
    return data.float()


#: train()'s option names as the command line spells them, for its one-line errors.
_TRAIN_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in (
        "batch_size",
        "checkpoint_every",
        "ema_decay",
        "grad_clip",
        "lr",
        "out",
        "scale",
        "seed",
        "steps",
        "weight_decay",
    )
}
_TRAIN_FLAGS["allow_changes"] = "--allow-changed"


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .models import build_model
    from .training import train

    data = _load_array(args.data)
    if args.flatten_time and data.ndim >= 3:
        data = data.reshape(-1, *data.shape[2:])  # (trajectory, time, ...) -> snapshots
    allow = [name.strip().replace("-", "_") for name in (args.allow_changed or "").split(",") if name.strip()]
    try:
        torch.manual_seed(args.seed)  # the initial weights; train() checks the seed's lower bound
    except (RuntimeError, ValueError):  # torch's seeds are 64-bit: "Overflow when unpacking long long"
        raise SystemExit(f"fastinterp train: --seed must be an integer in [0, 2**64 - 1], got {args.seed}") from None
    try:
        model = build_model(args.model)
    except ValueError as exc:
        raise SystemExit(f"fastinterp train: --{exc}") from None  # "model must be one of ..., got 'x'"
    try:
        result = train(model, data, steps=args.steps, out=args.out, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
                       antithetic=not args.no_antithetic, prediction=args.prediction, resume=args.resume,
                       force=args.force, allow_changes=allow,
                       seed=args.seed, checkpoint_every=args.checkpoint_every, compile=args.compile,
                       scale=args.scale)  # fmt: skip
    except (TypeError, ValueError, OSError, FloatingPointError) as exc:
        message = str(exc)
        for name, flag in _TRAIN_FLAGS.items():  # "lr must be ..." -> "--lr must be ..."
            if message.startswith((name + " ", name + "=")):
                message = flag + message[len(name) :]
        raise SystemExit(f"fastinterp train: {message}") from None
    print(f"trained {result.step} steps, final loss {result.losses[-1]:.4g}; checkpoint {result.checkpoint}")
    return 0


def _cmd_geodesic(args: argparse.Namespace) -> int:
    from .geometry.demo import run

    return run(args)


def _cmd_experiment(args: argparse.Namespace) -> int:
    from .experiment import run_experiment

    _writable_folder("experiment", args.out)
    try:
        report = run_experiment(args.dataset, preset=args.preset, res=args.res, normalise=args.normalise,
                                out=args.out, seed=args.seed)  # fmt: skip
    except ImportError as exc:  # the native core (ns, ac) or h5py missing from this installation
        raise SystemExit(f"fastinterp experiment {args.dataset}: {exc}") from None
    print(report.table())
    print(f"report.json, report.txt, model.pt and spectra.png in {args.out}")
    return 0


def _dataset_config(args: argparse.Namespace):
    """The checked configuration of ``pde generate`` (``--config`` file, then flags, then ``--set`` values read by
    the equation's spec; with ``--resume``, the directory's configuration for whatever is not given); every mistake
    ends with one line naming the option, the value and what is allowed."""
    import json
    import os

    from .pde.spec import SPECS

    def fail(msg: str):
        raise SystemExit(f"fastinterp pde generate: {msg}")

    keys = ("equation", "num", "res", "seed", "shard_size", "params")
    fields: dict = {}
    if args.resume and os.path.exists(os.path.join(args.out, "manifest.json")):
        # resuming: what the command line leaves out is the directory's own configuration (what it gives is compared)
        from .datasets.generate import load_manifest

        try:
            stored, _ = load_manifest(args.out)
        except ValueError:
            stored = None  # generate() names what is wrong with the directory
        if stored is not None and stored.equation == args.equation:
            fields = stored.to_dict()
    if args.config:
        try:
            with open(args.config) as f:
                fields = json.load(f)
        except OSError as exc:
            fail(f"cannot read --config {args.config}: {exc.strerror or exc}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"--config {args.config} is not a JSON file: {exc}")
        if not isinstance(fields, dict) or not isinstance(fields.get("params", {}), dict):
            fail(f"--config {args.config} must hold a JSON object with keys among {', '.join(keys)} "
                 "(params: an object)")  # fmt: skip
        unknown = sorted(set(fields) - set(keys))
        if unknown:
            fail(f"--config {args.config}: unknown keys {', '.join(unknown)}; valid: {', '.join(keys)}")
    for name in ("num", "res", "seed", "shard_size"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    fields["equation"] = args.equation
    spec = SPECS[args.equation]
    params = dict(fields.get("params", {}))
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--set takes KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = spec.param(key.strip()).parse(value.strip(), where=f"{args.equation} ")
        except ValueError as exc:
            fail(f"--set {item}: {exc}")
    fields["params"] = params
    missing = [n for n in ("num", "res") if n not in fields]
    if missing:
        fail(f"give --{' and --'.join(missing)} (or a --config file)")
    from .datasets.config import DatasetConfig

    try:
        return DatasetConfig(**fields)
    except ValueError as exc:
        fail(str(exc))


def _cmd_pde_generate(args: argparse.Namespace) -> int:
    from .datasets.generate import distributed_context, generate
    from .pde import DivergedError

    _not_under_a_file("pde generate", args.out)
    config = _dataset_config(args)
    rank, world, barrier = distributed_context()
    try:
        manifest = generate(args.out, config, threads=args.threads, resume=args.resume, progress=not args.quiet,
                            rank=rank, world=world, barrier=barrier)  # fmt: skip
    except ValueError as exc:  # a refused configuration, directory, size; ShardError (a damaged file) is one too
        raise SystemExit(f"fastinterp pde generate: {exc}") from None
    except OSError as exc:  # a write the file system refused (WriteError names the file and the cause)
        import os

        from .datasets.format import os_error_message

        started = os.path.exists(os.path.join(args.out, "manifest.json"))
        hint = "; `--resume` finishes the dataset once that is fixed" if started else ""
        raise SystemExit(f"fastinterp pde generate: {os_error_message(exc)}{hint}") from None
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
    from .datasets.format import os_error_message

    try:  # every shard verified: checksum, fingerprint, trajectory range, shape
        config, manifest = load_manifest(args.dir)
        status = dataset_status(args.dir)
        size = sum(p.stat().st_size for p in Path(args.dir).glob("shard_*.h5"))
    except ValueError as exc:
        raise SystemExit(f"fastinterp pde info: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"fastinterp pde info: {os_error_message(exc)}") from None
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
        work = len(list(Path(args.dir).glob(".work/shard_*/traj_*.npy")))
        print(f"incomplete ({work} trajectory files of unfinished shards in .work): finish with "
              "`fastinterp pde generate ... --resume`")  # fmt: skip
    return 0 if not status["missing"] and not status["damaged"] else 1


#: What `pde plot` calls things, per equation: the figure (``str.format`` of ``num``, ``snapshots``, ``grid``), a
#: panel (of trajectory ``i``, time index ``j``, time value ``t``), what the spectrum averages, the field, its
#: spectrum.
_PLOT_TEXT = {
    "navier-stokes": {
        "figure": "{num} trajectories x {snapshots} snapshots at {grid}",
        "panel": "trajectory {i}, t = {t:g}",
        "items": "snapshots",
        "field": r"vorticity $\omega$",
        "spectrum": r"enstrophy spectrum: shell sum of $|\hat\omega_k|^2$",
    },
    "grf": {
        "figure": "{num} independent fields at {grid}",
        "panel": "field {i}",
        "items": "fields",
        "field": "u",
        "spectrum": r"energy spectrum: shell sum of $|\hat u_k|^2$",
    },
    "allen-cahn": {
        "figure": "{num} MCMC chains x {snapshots} samples, {grid} nodes",
        "panel": "chain {i}, sample {j} (pCN step {t:g})",
        "items": "samples",
        "field": "u",
        "spectrum": r"shell sum of $|\hat u_k|^2$ (not periodic: a diagnostic)",
    },
}


def _dataset_figure(ds, panels: int = 4):
    """The figure of ``fastinterp pde plot``: ``panels`` snapshots spread over the dataset ``ds`` (a ``PDEDataset``)
    with axis labels, colour bars on one shared symmetric scale and titles saying what each panel is, plus the
    radial spectrum averaged over up to 64 snapshots. Returns a ``matplotlib.figure.Figure`` (no pyplot state).

    Raises:
        ValueError: a shard is damaged or lacks its ``dimensions`` group (naming the file).
    """
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from .datasets.format import import_h5py, shard_name
    from .diagnostics import radial_spectrum

    equation = ds.config.equation
    text = _PLOT_TEXT[equation]
    first = ds.root / shard_name(0)
    try:
        with import_h5py().File(first, "r") as f:
            times = f["dimensions/time"][...]
            coords = [f["dimensions"][ax][...] for ax in f["dimensions"].attrs["spatial_dims"]]
    except (KeyError, OSError) as exc:
        raise ValueError(f"{first}: cannot read its dimensions group ({type(exc).__name__}: {exc})") from None
    picks = np.unique(np.linspace(0, len(ds) - 1, min(panels, len(ds))).round().astype(int))
    fields = torch.stack([ds[int(i)] for i in picks]).numpy()
    dim = len(ds.grid)
    fig = Figure(figsize=(4.1 * (len(picks) + 1), 3.6), layout="constrained")
    axes = fig.subplots(1, len(picks) + 1, squeeze=False)[0]
    vmax = float(np.abs(fields).max()) or 1.0
    for ax, f, i in zip(axes, fields, picks, strict=False):
        traj, snap = divmod(int(i), ds.snapshots)
        ax.set_title(text["panel"].format(i=traj, j=snap, t=float(times[snap])), fontsize=10)
        if dim == 2:
            half = [(c[1] - c[0]) / 2 if len(c) > 1 else 0.5 for c in coords]
            extent = (coords[0][0] - half[0], coords[0][-1] + half[0], coords[1][0] - half[1], coords[1][-1] + half[1])
            im = ax.imshow(f.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            fig.colorbar(im, ax=ax, label=text["field"], shrink=0.9)
            ax.set_ylabel("y")
        else:
            ax.plot(coords[0], f, lw=1)
            ax.set_ylim(-1.05 * vmax, 1.05 * vmax)
            ax.set_ylabel(text["field"])
        ax.set_xlabel("x")
    n_spec = min(len(ds), 64)
    sample = torch.stack([ds[int(i)] for i in np.linspace(0, len(ds) - 1, n_spec).round().astype(int)])
    E = radial_spectrum(sample.double(), dim=dim)
    ax = axes[-1]
    ax.loglog(np.arange(1, E.numel()), E[1:].numpy())
    ax.set_title(f"radial spectrum, mean of {n_spec} {text['items']}", fontsize=10)
    ax.set_xlabel("wavenumber n (cycles per domain)")
    ax.set_ylabel(text["spectrum"], fontsize=9)
    grid = " x ".join(map(str, ds.grid))
    fig.suptitle(f"{ds.root} ({equation}): " + text["figure"].format(num=ds.config.num, snapshots=ds.snapshots,
                 grid=grid), fontsize=10)  # fmt: skip
    return fig


def _cmd_pde_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    out = Path(args.out)
    if not Path(args.dir).is_dir():
        what = "is not a directory" if Path(args.dir).exists() else "does not exist"
        raise SystemExit(f"fastinterp pde plot: the dataset directory {args.dir} {what}")
    if not out.parent.is_dir():
        raise SystemExit(f"fastinterp pde plot: --out {args.out}: the folder {out.parent} does not exist")
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise SystemExit("fastinterp pde plot needs matplotlib: pip install matplotlib") from None
    kinds = Figure().canvas.get_supported_filetypes()
    if out.suffix[1:].lower() not in kinds:
        raise SystemExit(f"fastinterp pde plot: --out must end in a picture type ({', '.join(sorted(kinds))}), "
                         f"got {args.out}")  # fmt: skip
    from .datasets import PDEDataset

    try:
        fig = _dataset_figure(PDEDataset(args.dir))
    except ImportError as exc:  # h5py
        raise SystemExit(f"fastinterp pde plot: {exc}") from None
    except (ValueError, OSError) as exc:  # not a dataset, incomplete, a damaged shard (ShardError)
        raise SystemExit(f"fastinterp pde plot: {exc}") from None
    try:
        fig.savefig(out, dpi=100)
    except OSError as exc:
        raise SystemExit(f"fastinterp pde plot: cannot write --out {args.out}: {exc.strerror or exc}") from None
    print(f"saved {args.out}")
    return 0


def _export_well(args: argparse.Namespace) -> int:
    """``pde export DIR --format well --out WELLDIR [--split ...]``: The Well layout (datasets/export.py)."""
    from .datasets.export import DEFAULT_SPLIT, export_well, parse_split

    if args.format != "well":
        raise SystemExit(f"fastinterp pde export: --split applies to --format well only, got --format {args.format}")
    try:
        result = export_well(args.dir, args.out, parse_split(getattr(args, "split", DEFAULT_SPLIT)))
    except (ValueError, OSError) as exc:
        raise SystemExit(f"fastinterp pde export: {exc}") from None
    print(f"{args.out}: {result['linked']} shards hard-linked, {result['copied']} copied; stats.yaml of the train "
          f"split (mean {result['stats']['mean']:.4g}, std {result['stats']['std']:.4g})")  # fmt: skip
    return 0


def _cmd_pde_export(args: argparse.Namespace) -> int:
    if args.format == "well" or hasattr(args, "split"):  # --split has no default value (argparse.SUPPRESS)
        return _export_well(args)
    from pathlib import Path

    import numpy as np

    from .datasets import load_manifest, read_shard, verify_shard
    from .datasets.format import FIELD_NAMES, ShardError, import_h5py, os_error_message, shard_name

    def fail(message) -> None:
        raise SystemExit(f"fastinterp pde export: {message}")

    try:
        config, manifest = load_manifest(args.dir)
    except ValueError as exc:
        fail(exc)
    if not manifest.get("complete"):
        fail(f"{args.dir} is incomplete; finish it with `fastinterp pde generate ... --resume` first")
    src, out = Path(args.dir), Path(args.out)
    if out.exists() and not out.is_dir():
        fail(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        fail(f"--out {out} is not empty: give a new or empty directory (an export is never mixed with other files)")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        fail(f"--out {out} is inside the dataset directory {src}: give a directory outside it")
    try:  # every shard before the first file is written: a damaged dataset exports nothing
        for k, first, count in config.shards:
            verify_shard(src / shard_name(k), config, first, count)
    except ShardError as exc:
        fail(f"{exc}; nothing exported (`fastinterp pde generate ... --resume` regenerates a damaged shard)")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create --out {out}: {exc.strerror or exc}")
    field, written, target = FIELD_NAMES[config.equation], [], out
    try:
        for k, _, count in config.shards:
            target = out / f"{config.equation}_{k:05d}.{args.format}"
            tmp = target.with_name(target.name + ".tmp")
            written += [tmp, target]
            if args.format == "pt":  # one tensor per shard: the shard in memory
                import torch

                data = read_shard(src / shard_name(k), config, k)
                torch.save(torch.from_numpy(data), tmp)
                shape = data.shape
            else:  # .npy streamed trajectory by trajectory (no memory map: a full disk would be a SIGBUS)
                with import_h5py().File(src / shard_name(k), "r") as f, open(tmp, "wb") as fh:
                    dset = f["t0_fields"][field]
                    shape = dset.shape
                    np.lib.format.write_array_header_1_0(
                        fh,
                        {
                            "descr": np.lib.format.dtype_to_descr(np.dtype("<f4")),
                            "fortran_order": False,
                            "shape": shape,
                        },  # fmt: skip
                    )
                    for i in range(count):
                        fh.write(np.ascontiguousarray(dset[i], dtype="<f4").tobytes())
            tmp.replace(target)
            print(f"wrote {target} {tuple(shape)}")
    except (OSError, RuntimeError, ShardError) as exc:  # torch.save reports a failed write as a RuntimeError
        for path in written:
            path.unlink(missing_ok=True)
        if created:
            try:
                out.rmdir()
            except OSError:
                pass
        if isinstance(exc, ShardError):  # a shard changed since it was verified
            fail(f"{exc}; the files of this export were removed")
        reason = os_error_message(exc) if isinstance(exc, OSError) else str(exc).strip().splitlines()[0]
        fail(f"cannot write {target}: {reason}; the files of this export were removed")
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse prefixes the option's name to the message)."""
    return int_at_least(1)(text)


def _nonnegative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (seeds)."""
    return int_at_least(0)(text)


def _resolution(text: str) -> int:
    """An argparse type: an even grid size >= 4 (the demo's Gaussian random fields)."""
    value = int_at_least(4)(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"must be an even integer >= 4, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (standard library only: building it imports neither torch nor numpy)."""
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="fastinterp",
        description="Fast, exact samplers for flow-matching and stochastic-interpolant models, and PDE datasets.\n"
        "`fastinterp COMMAND --help` shows a command's options and their defaults.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"fastinterp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="reproduce the Lipschitz paper's headline results with exact drifts",
        description="Reproduce the Lipschitz paper's two headline results with exact drifts (no network): a 1000-D\n"
        "two-mode mixture at 1, 2 and 4 RK4 steps (classical and the 3/8 rule) under Linear, MixtureOptimal and\n"
        "LipschitzOptimal, and the spectra of Gaussian random fields at several resolutions.",
        formatter_class=_Formatter,
    )
    demo.add_argument("--out", default=".", help="folder for fastinterp_demo.png (default: the current folder)")
    demo.add_argument("--no-plot", action="store_true", help="print the tables only")
    demo.add_argument("--mixture-samples", type=_positive_int, default=4000, help="samples of the 1000-D mixture")
    demo.add_argument("--field-samples", type=_positive_int, default=64, help="random fields per resolution")
    demo.add_argument("--resolutions", type=_resolution, nargs="+", default=[32, 64, 128], metavar="N",
                      help="grid sizes of the random fields (even, >= 4)")  # fmt: skip
    demo.add_argument("--seed", type=seed, default=0, help="seed of the noise")
    demo.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda or cuda:1")
    demo.set_defaults(func=_cmd_demo)

    tr = sub.add_parser(
        "train",
        help="train a model with the linear schedule on an array of samples",
        description="Train a model with the linear schedule; AdamW with a cosine decay of the learning rate to 0.\n\n"
        "--resume continues --out exactly, and refuses other data, --prediction, --model or settings, naming each\n"
        "with both values; --allow-changed lets the named settings change. A larger --steps extends a run (the\n"
        "cosine is re-planned over the new total). Without --resume or --force an existing --out is refused.",
        formatter_class=_Formatter,
    )
    tr.add_argument("--data", required=True,
                    help="a dataset directory (fastinterp pde generate), or a .npy/.pt array (n, ...)")  # fmt: skip
    tr.add_argument("--model", required=True, help="one of tiny-1d, tiny-2d, small-2d, 1d-1m, 2d-2m, or mlp:<dim>")
    tr.add_argument("--steps", type=int, required=True, help="total optimisation steps (>= 1)")
    tr.add_argument("--out", required=True, help="checkpoint path (checked writable before the first step)")
    tr.add_argument("--batch-size", type=int, default=64, help="samples per step, 1 to n")
    tr.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (> 0)")
    tr.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (>= 0)")
    tr.add_argument("--grad-clip", type=float, default=1.0, help="maximum gradient norm (> 0)")
    tr.add_argument("--ema-decay", type=float, default=0.999, help="decay of the weights' moving average, in [0, 1)")
    tr.add_argument("--prediction", default="velocity", choices=["velocity", "x1", "noise", "score"])
    tr.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    tr.add_argument("--no-antithetic", action="store_true", help="independent noise in the loss, not antithetic pairs")
    tr.add_argument("--flatten-time", action="store_true", help="treat (trajectory, time, ...) as snapshots")
    tr.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    tr.add_argument("--force", action="store_true", help="overwrite an existing --out")
    tr.add_argument("--allow-changed", metavar="NAMES",
                    help="with --resume: settings that may differ from the checkpoint, comma-separated, among "
                    "lr,weight_decay,batch_size,grad_clip,ema_decay,antithetic,steps")  # fmt: skip
    tr.add_argument("--seed", type=int, default=0, help="seed of the weights and of every random draw (>= 0)")
    tr.add_argument("--compile", action="store_true",
                    help="run the network under torch.compile (the first step compiles; on a small CPU that costs "
                    "minutes and may not pay: benchmarks/bench_training.py)")  # fmt: skip
    tr.add_argument("--scale", type=float, default=None,
                    help="divide the centred data by this (> 0) instead of their std (docs/training.md)")  # fmt: skip
    tr.set_defaults(func=_cmd_train)

    ex = sub.add_parser(
        "experiment",
        help="train once (linear), sample with Linear and LipschitzOptimal, compare",
        formatter_class=_Formatter,
    )
    ex.add_argument("dataset", choices=["grf", "ns", "ac"],
                    help="grf: Gaussian random fields; ns: Navier-Stokes vorticity; ac: Allen-Cahn")  # fmt: skip
    ex.add_argument("--preset", default="cpu", choices=["tiny", "cpu", "paper"],
                    help="tiny: a smoke test; cpu: under 30 CPU minutes on 2 cores; paper: the GPU scale")  # fmt: skip
    ex.add_argument("--res", type=int, choices=[32, 64, 128], default=None,
                    help="ac only: N (default: the preset's, 32 for tiny and cpu)")  # fmt: skip
    ex.add_argument("--normalise", choices=["top", "std"], default="top",
                    help="the network's units: top, the largest mode at the base's variance (the schedule's "
                    "convention); std, the pixel std (docs/experiment.md)")  # fmt: skip
    ex.add_argument("--out", default="experiment", help="folder for report.json, report.txt, model.pt, spectra.png")
    ex.add_argument("--seed", type=seed, default=0, help="seed of the data, the weights and the noise")
    ex.set_defaults(func=_cmd_experiment)

    pde = sub.add_parser(
        "pde", help="PDE datasets: generate, info, plot, export", formatter_class=_Formatter
    ).add_subparsers(dest="pde_command", required=True)
    from .pde import spec as pde_spec  # standard library only: --help stays fast

    gen = pde.add_parser(
        "generate",
        help="generate a dataset (resumable; torchrun splits it across ranks)",
        description="Generate a dataset (resumable; torchrun splits it across ranks). Every value is checked before "
        "anything is written.",
        epilog=pde_spec.help_text(),
        formatter_class=_Formatter,
    )
    gen.add_argument("equation", choices=pde_spec.EQUATIONS, help="the equation (its --set keys are listed below)")
    gen.add_argument("--num", type=_positive_int, help="number of trajectories")
    gen.add_argument("--res", type=_positive_int,
                     help="grid points per side (allen-cahn: N, for N + 1 nodes); ranges below")  # fmt: skip
    gen.add_argument("--out", required=True, help="dataset directory")
    common = pde_spec.COMMON
    gen.add_argument("--seed", type=_nonnegative_int, help=f"{common['seed'].doc} (default {common['seed'].default})")
    gen.add_argument("--shard-size", type=_positive_int,
                     help=f"{common['shard_size'].doc} (default {common['shard_size'].default})")  # fmt: skip
    gen.add_argument("--threads", type=_positive_int, default=1, help="engine threads")
    gen.add_argument("--config", help="JSON file with equation, num, res, seed, shard_size, params (flags override)")
    gen.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="an equation parameter, e.g. dt=0.005 (repeatable; keys and ranges below)")  # fmt: skip
    gen.add_argument("--resume", action="store_true", help="finish an interrupted dataset in --out")
    gen.add_argument("--quiet", action="store_true", help="no progress line")
    gen.set_defaults(func=_cmd_pde_generate)
    inf = pde.add_parser("info", help="contents, integrity and statistics of a dataset", formatter_class=_Formatter)
    inf.add_argument("dir", help="dataset directory")
    inf.set_defaults(func=_cmd_pde_info)
    plo = pde.add_parser("plot", help="four snapshots and the radial spectrum as a picture", formatter_class=_Formatter)
    plo.add_argument("dir", help="dataset directory (complete)")
    plo.add_argument("--out", required=True, help="picture file; its type from the suffix: .png, .pdf, .svg, ...")
    plo.set_defaults(func=_cmd_pde_plot)
    exp = pde.add_parser(
        "export",
        help="export shards as .pt tensors or .npy arrays (trajectory, time, *grid), or in The Well's layout",
        formatter_class=_Formatter,
    )
    exp.add_argument("dir", help="dataset directory (complete)")
    exp.add_argument("--format", choices=["pt", "npy", "well"], default="pt",
                     help="well: OUT/data/{train,valid,test}/ (whole shards, hard-linked where possible) and "
                          "OUT/stats.yaml of the train split, for the_well.data.WellDataset")  # fmt: skip
    exp.add_argument("--out", required=True, help="output folder")
    exp.add_argument("--split", metavar="NAME=FRACTION,...", default=argparse.SUPPRESS,
                     help="--format well: the shards' fractions per split, train required "
                          "(default: train=0.8,valid=0.1,test=0.1)")  # fmt: skip
    exp.set_defaults(func=_cmd_pde_export)

    geo = sub.add_parser(
        "geodesic",
        help="likely paths between points of a 2-D mixture vs straight lines (PNG)",
        description="Likely paths (ProbGEORCE) between points of a 2-D Gaussian mixture against straight lines.",
        formatter_class=_Formatter,
    )
    add_geodesic_arguments(geo).set_defaults(func=_cmd_geodesic)  # shared with fastinterp/geometry/demo.py

    info = sub.add_parser("info", help="versions and native build information", formatter_class=_Formatter)
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (``None``: ``sys.argv[1:]``); returns the exit status.

    User mistakes end in ``SystemExit`` with one line naming the option and the value; Ctrl-C in one line too
    (status 130).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        command = " ".join(c for c in (args.command, getattr(args, "pde_command", None)) if c)
        print(f"fastinterp {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
