"""Datasets on disk: schema, crash safety (SIGKILL + resume), ranks, damage detection, loading."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")
pytest.importorskip("fastinterp._core")
import h5py  # noqa: E402

from fastinterp import cli  # noqa: E402
from fastinterp.datasets import (  # noqa: E402
    DatasetConfig,
    PDEDataset,
    ShardError,
    dataset_status,
    generate,
    read_shard,
    verify_shard,
)
from fastinterp.datasets.format import shard_name  # noqa: E402

NS_FAST = {"t_burn": 1.0, "t_snap": 0.5, "snapshots": 3}


def _config(**kw):
    base = dict(equation="navier-stokes", num=6, res=32, shard_size=4, params=NS_FAST)
    return DatasetConfig(**{**base, **kw})


def _all(root, config):
    return np.concatenate([read_shard(root / shard_name(k), config) for k, _, _ in config.shards])


def test_schema_follows_the_well_layout(tmp_path):
    config = _config()
    manifest = generate(tmp_path / "d", config, progress=False)
    assert manifest["complete"] and manifest["fingerprint"] == config.fingerprint
    with h5py.File(tmp_path / "d" / shard_name(0), "r") as f:
        u = f["t0_fields/vorticity"]
        assert u.shape == (4, 3, 32, 32) and u.dtype == np.float32
        assert set(f) == {"t0_fields", "t1_fields", "t2_fields", "dimensions", "boundary_conditions", "scalars",
                          "fastinterp"}  # fmt: skip
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        np.testing.assert_allclose(f["dimensions/time"][...], [1.0, 1.5, 2.0])
        assert f["boundary_conditions/x_periodic"].attrs["bc_type"] == "PERIODIC"
        assert f.attrs["n_spatial_dims"] == 2 and f.attrs["nu"] == 1e-3 and f.attrs["scheme"] == "if_heun"
        assert f["fastinterp/completed"][...].all()
        np.testing.assert_array_equal(f["fastinterp/trajectory"][...], np.arange(4))
        assert json.loads(f["fastinterp"].attrs["config"])["equation"] == "navier-stokes"
    # trajectories equal the engine's own output for (seed, index)
    from fastinterp.pde import NavierStokes2D

    direct = NavierStokes2D(32).sample(2, seed=0, first=4, **NS_FAST).astype(np.float32)
    np.testing.assert_array_equal(read_shard(tmp_path / "d" / shard_name(1), config), direct)


def _run_cli(args, cwd):
    # cwd away from the checkout: `python -m` puts the working directory first on sys.path, and the checkout's
    # fastinterp/ has no compiled core; the installed package must be the one imported
    return subprocess.Popen([sys.executable, "-m", "fastinterp.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=cwd)  # fmt: skip


def _shard_files(root):
    """Shard files written under ``root`` so far (``.npy`` anywhere, ``.h5`` at the top), counted while the generator
    runs: it removes each finished shard's work folder, which may vanish under the listing; list again then."""
    for _ in range(50):
        try:
            return len(list(root.rglob("*.npy"))) + len(list(root.glob("*.h5")))
        except FileNotFoundError:
            time.sleep(0.001)
    return len(list(root.rglob("*.npy"))) + len(list(root.glob("*.h5")))


def test_sigkill_and_resume_give_a_bit_identical_dataset(tmp_path):
    params = {"t_burn": 15.0, "t_snap": 0.5, "snapshots": 2}
    config = _config(num=24, shard_size=4, params=params)
    generate(tmp_path / "ref", config, progress=False)
    args = ["pde", "generate", "navier-stokes", "--num", "24", "--res", "32", "--shard-size", "4", "--out",
            str(tmp_path / "run"), "--quiet"] + [f"--set={k}={v}" for k, v in params.items()]  # fmt: skip
    kills = 0
    for attempt in range(4):
        proc = _run_cli(args + (["--resume"] if attempt else []), cwd=tmp_path)
        deadline = time.time() + 60
        start_files = _shard_files(tmp_path / "run")
        while time.time() < deadline and proc.poll() is None:
            if _shard_files(tmp_path / "run") >= start_files + 3:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # nothing partial ever looks complete: every shard file present verifies
        status = dataset_status(tmp_path / "run")
        assert not status["damaged"], status["damaged"]
    assert kills >= 2
    assert cli.main(args + ["--resume"]) == 0
    np.testing.assert_array_equal(_all(tmp_path / "run", config), _all(tmp_path / "ref", config))
    assert not (tmp_path / "run" / ".work").exists()


def test_two_ranks_give_the_same_dataset(tmp_path):
    config = _config(num=6, shard_size=2)
    generate(tmp_path / "one", config, progress=False)
    # "--" ends torchrun's own options (its parser would take "--num" for an abbreviation of "--numa-binding")
    args = [
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "--",
        "fastinterp.cli",
        "pde",
        "generate",
        "navier-stokes",
        "--num",
        "6",
        "--res",
        "32",
        "--shard-size",
        "2",
        "--out",
        str(tmp_path / "two"),
        "--quiet",
    ]
    args += [f"--set={k}={v}" for k, v in NS_FAST.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", *args], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    np.testing.assert_array_equal(_all(tmp_path / "two", config), _all(tmp_path / "one", config))
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert one == two


def test_damaged_shards_are_named_and_only_they_are_regenerated(tmp_path):
    config = _config(num=12, shard_size=4)
    root = tmp_path / "d"
    generate(root, config, progress=False)
    reference = _all(root, config)
    # flip bytes inside shard 1's data, truncate shard 2
    path1, path2 = root / shard_name(1), root / shard_name(2)
    with h5py.File(path1, "r") as f:
        offset = f["t0_fields/vorticity"].id.get_chunk_info(2).byte_offset  # inside the data, not metadata
    with open(path1, "r+b") as fh:
        fh.seek(offset + 1000)
        fh.write(b"\x00\x01\x02\x03")
    path2.write_bytes(path2.read_bytes()[:5000])
    with pytest.raises(ShardError, match=r"shard_00001\.h5: checksum mismatch"):
        verify_shard(path1, config, 4, 4)
    with pytest.raises(ShardError, match=r"shard_00002\.h5: unreadable"):
        verify_shard(path2, config, 8, 4)
    status = dataset_status(root)
    assert status["complete"] == [0] and [k for k, _ in status["damaged"]] == [1, 2]
    untouched = (root / shard_name(0)).stat().st_mtime_ns
    generate(root, config, resume=True, progress=False, log=lambda msg: None)
    assert (root / shard_name(0)).stat().st_mtime_ns == untouched
    np.testing.assert_array_equal(_all(root, config), reference)
    assert len(list(root.glob("*.damaged-*"))) == 2  # kept aside, never deleted


def test_refuses_to_mix_or_overwrite(tmp_path):
    root = tmp_path / "d"
    generate(root, _config(), progress=False)
    with pytest.raises(ValueError, match="holds another configuration"):
        generate(root, _config(seed=1), progress=False)
    with pytest.raises(ValueError, match="already holds this dataset"):
        generate(root, _config(), progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        generate(tmp_path / "other", _config(), progress=False)
    with pytest.raises(ValueError, match="unknown navier-stokes parameter"):
        _config(params={"viscosity": 1.0})


def test_loader_with_workers_and_normalisation(tmp_path):
    root = tmp_path / "d"
    generate(root, _config(equation="grf", num=10, res=16, shard_size=4, params={}), progress=False)
    ds = PDEDataset(root, normalize=True)
    assert len(ds) == 10 and ds[0].shape == (16, 16)
    raw = PDEDataset(root)
    torch.testing.assert_close(ds.from_normalized(ds[3]), raw[3])
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    batches = list(loader)
    assert sum(b.shape[0] for b in batches) == 10
    everything = torch.cat(batches)
    assert abs(float(everything.mean())) < 1e-5 and abs(float(everything.std(unbiased=False)) - 1) < 1e-4


def test_cli_info_plot_export(tmp_path, capsys):
    root = tmp_path / "d"
    assert cli.main(["pde", "generate", "grf", "--num", "5", "--res", "16", "--shard-size", "2", "--out", str(root),
                     "--quiet"]) == 0  # fmt: skip
    assert cli.main(["pde", "info", str(root)]) == 0
    assert "3 complete, 0 missing, 0 damaged" in capsys.readouterr().out
    assert cli.main(["pde", "plot", str(root), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 5000
    assert cli.main(["pde", "export", str(root), "--format", "pt", "--out", str(tmp_path / "pt")]) == 0
    assert torch.load(tmp_path / "pt" / "grf_00000.pt", weights_only=True).shape == (2, 1, 16, 16)
    with pytest.raises(SystemExit, match="give --num"):
        cli.main(["pde", "generate", "grf", "--res", "16", "--out", str(tmp_path / "x")])


def test_allen_cahn_chains_and_npy_export(tmp_path, capsys):
    root = tmp_path / "ac"
    config = DatasetConfig(equation="allen-cahn", num=3, res=32, shard_size=2,
                           params={"samples": 20, "burn_in": 50, "thin": 2})  # fmt: skip
    generate(root, config, progress=False)
    with h5py.File(root / shard_name(0), "r") as f:
        assert f["t0_fields/u"].shape == (2, 20, 33)
        assert f["boundary_conditions/x_neumann"].attrs["bc_type"] == "WALL"  # The Well's word; condition NEUMANN
        assert f["boundary_conditions/x_neumann"].attrs["condition"] == "NEUMANN"
        np.testing.assert_allclose(f["dimensions/x"][[0, -1]], [0.0, 1.0])
    from fastinterp.pde import AllenCahn1D

    direct = AllenCahn1D(32).sample(1, 20, seed=0, first=2, burn_in=50, thin=2).astype(np.float32)
    np.testing.assert_array_equal(read_shard(root / shard_name(1), config), direct)
    assert cli.main(["pde", "export", str(root), "--format", "npy", "--out", str(tmp_path / "npy")]) == 0
    assert np.load(tmp_path / "npy" / "allen-cahn_00000.npy").shape == (2, 20, 33)  # (chains, samples, N + 1)
