"""The Well's own loader (PyPI ``the-well``) on the datasets ``pde generate`` writes: same numbers as ours, normalised
by the statistics the dataset carries, and The Well's ``data/<split>/`` layout from ``pde export --format well``."""

import json
import math
import os

import numpy as np
import pytest
import torch

pytest.importorskip("h5py")
pytest.importorskip("fastinterp._core")
pytest.importorskip("the_well")
import h5py  # noqa: E402
import yaml  # noqa: E402  (a dependency of the-well)
from the_well.data import DeltaWellDataset, WellDataset  # noqa: E402
from the_well.data.normalization import RMSNormalization, ZScoreNormalization  # noqa: E402

from fastinterp import cli  # noqa: E402
from fastinterp.datasets import DatasetConfig, PDEDataset, ShardError, generate, read_shard, verify_shard  # noqa: E402
from fastinterp.datasets.export import export_well, parse_split, split_shards  # noqa: E402
from fastinterp.datasets.format import shard_moments, shard_name  # noqa: E402
from fastinterp.datasets.well import write_stats_yaml  # noqa: E402

# every equation `pde generate` knows, tiny; Navier-Stokes needs a power of two >= 32
CONFIGS = {
    "navier-stokes": dict(equation="navier-stokes", num=3, res=32, shard_size=2,
                          params={"t_burn": 0.05, "t_snap": 0.05, "snapshots": 3}),
    "grf-1d": dict(equation="grf", num=3, res=16, shard_size=2, params={"dim": 1}),
    "grf-2d": dict(equation="grf", num=3, res=8, shard_size=2),
    "allen-cahn-free": dict(equation="allen-cahn", num=3, res=8, shard_size=2,
                            params={"samples": 4, "burn_in": 5, "thin": 2}),
    "allen-cahn-pinned": dict(equation="allen-cahn", num=3, res=8, shard_size=2,
                              params={"samples": 4, "burn_in": 5, "thin": 2, "boundary": "pinned"}),
}  # fmt: skip
PERIODIC, WALL = 2.0, 0.0  # the_well.data.datasets.BoundaryCondition values


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("well")
    out = {}
    for name, kw in CONFIGS.items():
        config = DatasetConfig(**kw)
        generate(base / name, config, progress=False)
        out[name] = (base / name, config)
    return out


def _data(root, config):
    """Every trajectory, (trajectory, time, *grid) float32, through our own reader."""
    return np.concatenate([read_shard(root / shard_name(k), config) for k, _, _ in config.shards])


def _stats(path):
    with open(path) as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize("name", CONFIGS)
def test_the_well_reads_every_snapshot_as_we_do(datasets, name):
    root, config = datasets[name]
    data = _data(root, config)
    T, grid = data.shape[1], data.shape[2:]
    well = WellDataset(path=str(root), n_steps_input=1, n_steps_output=0, normalize_time_grid=False)
    ours = PDEDataset(root)
    assert len(well) == len(ours) == config.num * T
    for i in range(len(well)):
        item = well[i]
        u = item["input_fields"]
        assert u.shape == (1, *grid, 1) and u.dtype == torch.float32
        assert torch.equal(u[0, ..., 0], ours[i])
        assert torch.equal(u[0, ..., 0], torch.from_numpy(data[i // T, i % T]))
    p = config.params
    time = {"navier-stokes": lambda t: p["t_burn"] + p["t_snap"] * t, "grf": lambda t: 0.0,
            "allen-cahn": lambda t: p["burn_in"] + p["thin"] * (t + 1)}[config.equation]  # fmt: skip
    assert [well[i]["input_time_grid"].item() for i in range(T)] == [time(t) for t in range(T)]
    # grid, boundaries and parameters as The Well hands them to a model
    ac = config.equation == "allen-cahn"
    box = 2 * np.pi if config.equation == "navier-stokes" else 1.0
    x = np.linspace(0.0, 1.0, grid[0]) if ac else (np.arange(grid[0]) + 0.5) * box / grid[0]
    item = well[0]
    np.testing.assert_allclose(item["space_grid"][(..., *([0] * (len(grid) - 1)), 0)].numpy(), x, rtol=1e-15)
    assert item["boundary_conditions"].tolist() == [[WALL if ac else PERIODIC] * 2] * len(grid)
    numeric = sorted(k for k, v in p.items() if isinstance(v, (int, float)))
    assert well.metadata.constant_scalar_names == numeric
    assert item["constant_scalars"].tolist() == [float(p[k]) for k in numeric]
    assert well.metadata.field_names[0] == ["vorticity" if config.equation == "navier-stokes" else "u"]


@pytest.mark.parametrize("name", ["navier-stokes", "allen-cahn-free"])
def test_the_well_windows_pair_consecutive_snapshots(datasets, name):
    root, config = datasets[name]
    data = _data(root, config)
    T = data.shape[1]
    well = WellDataset(path=str(root))  # The Well's defaults: one input step, one output step
    assert len(well) == config.num * (T - 1)
    for j in range(len(well)):
        traj, t = divmod(j, T - 1)
        item = well[j]
        assert torch.equal(item["input_fields"][0, ..., 0], torch.from_numpy(data[traj, t]))
        assert torch.equal(item["output_fields"][0, ..., 0], torch.from_numpy(data[traj, t + 1]))


@pytest.mark.parametrize("name", CONFIGS)
def test_normalised_items_use_the_statistics_the_dataset_carries(datasets, name):
    root, config = datasets[name]
    data = _data(root, config).astype(np.float64)
    field = "vorticity" if config.equation == "navier-stokes" else "u"
    stats = _stats(root / "stats.yaml")
    assert set(stats) >= {"mean", "std", "rms", "mean_delta", "std_delta", "rms_delta"}
    for key, value in (("mean", data.mean()), ("std", data.std()), ("rms", np.sqrt((data**2).mean()))):
        assert isinstance(stats[key][field], float)
        assert stats[key][field] == pytest.approx(value, rel=1e-12, abs=1e-15)
    diff = np.diff(data, axis=1)
    if diff.size:
        delta = {"mean_delta": diff.mean(), "std_delta": diff.std(), "rms_delta": np.sqrt((diff**2).mean())}
    else:  # single snapshots (grf): no time differences, 0 over 0 values
        delta = {"mean_delta": 0.0, "std_delta": 0.0, "rms_delta": 0.0}
    for key, value in delta.items():
        assert stats[key][field] == pytest.approx(value, rel=1e-12, abs=1e-15)
    assert stats["n_values"][field] == data.size and stats["n_deltas"][field] == diff.size
    manifest = json.loads((root / "manifest.json").read_text())
    assert {k: manifest["stats"][k] for k in ("mean", "std", "rms")} == {
        k: stats[k][field] for k in ("mean", "std", "rms")
    }

    ours = PDEDataset(root, normalize=True)
    zscore = WellDataset(path=str(root), n_steps_input=1, n_steps_output=0, use_normalization=True,
                         normalization_type=ZScoreNormalization)  # fmt: skip
    rms = WellDataset(path=str(root), n_steps_input=1, n_steps_output=0, use_normalization=True,
                      normalization_type=RMSNormalization)  # fmt: skip
    T = data.shape[1]
    for i in range(len(ours)):
        u = torch.from_numpy(data[i // T, i % T]).float()
        z = zscore[i]["input_fields"][0, ..., 0]
        torch.testing.assert_close(z, ours[i], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(z, (u - ours.stats["mean"]) / ours.stats["std"], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rms[i]["input_fields"][0, ..., 0], u / stats["rms"][field], rtol=1e-6, atol=1e-6)
    if T > 1:  # The Well's delta targets: (u[t + 1] - u[t] - mean_delta) / std_delta
        deltas = DeltaWellDataset(path=str(root), use_normalization=True, normalization_type=ZScoreNormalization)
        d = torch.from_numpy(data[0, 1] - data[0, 0]).float()
        expected = (d - stats["mean_delta"][field]) / stats["std_delta"][field]
        torch.testing.assert_close(deltas[0]["output_fields"][0, ..., 0], expected, rtol=1e-5, atol=1e-5)


def _grf10(tmp_path):
    root = tmp_path / "grf"
    config = DatasetConfig(equation="grf", num=10, res=8, shard_size=1)
    generate(root, config, progress=False)
    return root, config


def test_split_layout_by_whole_shards(tmp_path, capsys):
    root, config = _grf10(tmp_path)
    out = tmp_path / "well"
    assert cli.main(["pde", "export", str(root), "--format", "well", "--out", str(out),
                     "--split", "train=0.6,valid=0.2,test=0.2"]) == 0  # fmt: skip
    assert "10 shards hard-linked, 0 copied" in capsys.readouterr().out
    expected = {"train": range(0, 6), "valid": range(6, 8), "test": range(8, 10)}
    assert sorted(os.listdir(out)) == ["data", "split.json", "stats.yaml"]
    assert sorted(os.listdir(out / "data")) == sorted(expected)
    data = _data(root, config)
    for split, ks in expected.items():
        folder = out / "data" / split
        assert sorted(os.listdir(folder)) == [shard_name(k) for k in ks]
        for k in ks:  # whole shards, the very same files, still verified by our reader
            assert os.path.samefile(folder / shard_name(k), root / shard_name(k))
            verify_shard(folder / shard_name(k), config, k, 1)
        well = WellDataset(path=str(out), well_split_name=split, n_steps_input=1, n_steps_output=0)
        assert len(well) == len(ks)
        for i, k in enumerate(ks):
            assert torch.equal(well[i]["input_fields"][0, ..., 0], torch.from_numpy(data[k, 0]))
    # stats.yaml holds the training split's statistics, as The Well's own; every split is normalised with them
    train = data[:6].astype(np.float64)
    stats = _stats(out / "stats.yaml")
    assert stats["mean"]["u"] == pytest.approx(train.mean(), rel=1e-12, abs=1e-15)
    assert stats["std"]["u"] == pytest.approx(train.std(), rel=1e-12)
    assert stats["std"]["u"] != pytest.approx(data.astype(np.float64).std(), rel=1e-9)
    valid = WellDataset(path=str(out), well_split_name="valid", n_steps_input=1, n_steps_output=0,
                        use_normalization=True, normalization_type=ZScoreNormalization)  # fmt: skip
    u = torch.from_numpy(data[6, 0])
    expected_valid = (u - stats["mean"]["u"]) / stats["std"]["u"]
    torch.testing.assert_close(valid[0]["input_fields"][0, ..., 0], expected_valid, rtol=1e-6, atol=1e-6)
    split = json.loads((out / "split.json").read_text())
    assert split["fingerprint"] == config.fingerprint and split["stats"] == "train"
    assert split["splits"]["valid"] == {"shards": [shard_name(6), shard_name(7)], "trajectories": 2}


def test_split_layout_copies_and_checks_when_it_cannot_link(tmp_path, monkeypatch):
    root, config = _grf10(tmp_path)

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link", str(src))

    monkeypatch.setattr(os, "link", no_link)
    (tmp_path / "well").mkdir()  # an empty --out is taken
    result = export_well(root, tmp_path / "well", {"train": 0.8, "test": 0.2}, log=lambda line: None)
    assert (result["linked"], result["copied"]) == (0, 10)
    assert {s: v["trajectories"] for s, v in result["splits"].items()} == {"train": 8, "test": 2}
    copy = tmp_path / "well" / "data" / "test" / shard_name(9)
    assert not os.path.samefile(copy, root / shard_name(9))
    verify_shard(copy, config, 9, 1)
    np.testing.assert_array_equal(read_shard(copy, config), read_shard(root / shard_name(9), config))


def test_split_layout_refuses_damage_and_bad_requests(tmp_path):
    root, config = _grf10(tmp_path)
    out = tmp_path / "well"

    def export(*extra):
        return cli.main(["pde", "export", str(root), "--format", "well", "--out", str(out), *extra])

    for split, message in [
        ("train=0.8,valid=0.3", "must sum to 1, got 1.1"),
        ("train=0.8,val=0.2", "must be among train, valid, test, got val"),
        ("valid=0.5,test=0.5", "needs a train fraction"),
        ("train=0.8,valid=x", "fraction of 'valid' must be a number, got 'x'"),
        ("train:1", "takes name=fraction"),
        ("train=0.5,train=0.5", "names 'train' twice"),
        ("train=1.5,valid=-0.5", "fraction of train must be in (0, 1], got 1.5"),
        ("train=0.95,valid=0.04,test=0.01", "over 10 shards leaves valid, test without a shard (10/0/0"),
    ]:
        with pytest.raises(SystemExit, match=f"^fastinterp pde export: .*{_re(message)}"):
            export("--split", split)
    with pytest.raises(SystemExit, match="--split applies to --format well only, got --format pt"):
        cli.main(["pde", "export", str(root), "--format", "pt", "--out", str(out), "--split", "train=1"])
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match=f"--out {_re(str(out))} exists and is not an empty directory"):
        export()
    assert os.listdir(out) == ["keep.txt"]
    os.remove(out / "keep.txt")
    # a damaged shard is named, and nothing is left behind (an empty --out stays empty, no temporary folder)
    with h5py.File(root / shard_name(3), "r+") as f:
        f["t0_fields/u"][0, 0, 0, 0] += 1.0
    with pytest.raises(SystemExit, match=f"{_re(str(root / shard_name(3)))}: checksum mismatch"):
        export()
    assert os.listdir(out) == [] and sorted(os.listdir(tmp_path)) == ["grf", "well"]
    with pytest.raises(ShardError, match="checksum mismatch"):
        export_well(root, tmp_path / "other", {"train": 1.0}, log=lambda line: None)
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(SystemExit, match="the dataset is incomplete"):
        export()


def _re(text):
    import re

    return re.escape(text)


def test_split_shards_whole_files_by_largest_remainder():
    assert split_shards(20, {"train": 0.8, "valid": 0.1, "test": 0.1}) == {
        "train": list(range(16)), "valid": [16, 17], "test": [18, 19]}  # fmt: skip
    assert split_shards(3, {"test": 0.25, "train": 0.5, "valid": 0.25}) == {"train": [0], "valid": [1], "test": [2]}
    assert split_shards(10, {"train": 0.7, "valid": 0.3}) == {"train": list(range(7)), "valid": [7, 8, 9]}
    assert split_shards(1, {"train": 1.0}) == {"train": [0]}
    assert parse_split("train=0.8, valid=0.2") == {"train": 0.8, "valid": 0.2}


def test_stats_yaml_floats_round_trip_through_the_wells_yaml_reader(tmp_path):
    values = {"mean": 1e-05, "std": 1.5e10, "rms": 0.1, "mean_delta": -2.5e-300, "std_delta": 0.0,
              "rms_delta": math.pi, "values": 7, "deltas": 0}  # fmt: skip
    write_stats_yaml(tmp_path / "stats.yaml", "u", values, source="a test")
    stats = _stats(tmp_path / "stats.yaml")
    for key in ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta"):
        assert type(stats[key]["u"]) is float and stats[key]["u"] == values[key]
    assert stats["n_values"] == {"u": 7} and stats["n_deltas"] == {"u": 0}
    with pytest.raises(ValueError, match="statistics must be finite, got nan"):
        write_stats_yaml(tmp_path / "bad.yaml", "u", {**values, "std": math.nan}, source="a test")
    assert not (tmp_path / "bad.yaml").exists()


def test_shards_without_stored_sums_get_the_same_moments_from_their_data(datasets):
    root, config = datasets["allen-cahn-free"]
    path = root / shard_name(0)
    stored = shard_moments(path, "u")
    assert stored["n_deltas"] == 2 * 3 * 9 and stored["n_values"] == 2 * 4 * 9
    copy = path.with_name("old.h5")
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "r+") as f:
        for key in ("sum", "sum_sq", "n_values", "sum_delta", "sum_sq_delta", "n_deltas"):
            del f["fastinterp"].attrs[key]
    recomputed = shard_moments(copy, "u")
    copy.unlink()
    assert recomputed.keys() == stored.keys()
    for key, value in stored.items():
        assert recomputed[key] == pytest.approx(value, rel=1e-12, abs=1e-300)
