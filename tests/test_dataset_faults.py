"""Datasets under damage and faults: readers that refuse damaged, foreign or swapped shards; checksummed trajectory
files; full disks and failed writes (a real tmpfs, a file-size limit); the lock; configuration changes; size checks.
"""

import fcntl
import hashlib
import importlib
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("h5py")
pytest.importorskip("fastinterp._core")
import h5py  # noqa: E402

import fastinterp.datasets.format as fmt  # noqa: E402
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
from fastinterp.datasets.generate import config_differences  # noqa: E402

# the module, not the function `fastinterp.datasets.generate` that the package exports under the same name
gen = importlib.import_module("fastinterp.datasets.generate")


def _config(**kw):
    return DatasetConfig(**{"equation": "grf", "num": 6, "res": 16, "shard_size": 2, **kw})


def _all(root, config):
    return np.concatenate([read_shard(root / shard_name(k), config) for k, _, _ in config.shards])


def _quiet(msg):
    pass


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A complete small dataset (3 shards of 2 Gaussian fields at 16^2) and its data."""
    root = tmp_path_factory.mktemp("clean") / "d"
    generate(root, _config(), progress=False)
    return root, _all(root, _config())


@pytest.fixture
def copy(clean, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(clean[0], root)
    return root


def _flip(path, n=4):
    """Overwrite bytes inside the field data of a shard (not its metadata)."""
    with h5py.File(path, "r") as f:
        offset = f["t0_fields/u"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as fh:
        fh.seek(offset + 100)
        old = fh.read(n)
        fh.seek(offset + 100)
        fh.write(bytes(b ^ 0xFF for b in old))


def test_streaming_digest_is_the_digest_of_the_whole_array(clean):
    root, _ = clean
    config = _config()
    with h5py.File(root / shard_name(1), "r") as f:
        stored = f["fastinterp"].attrs["sha256/u"]
        whole = hashlib.sha256(np.ascontiguousarray(f["t0_fields/u"][...]).tobytes()).hexdigest()
    assert stored == whole  # shards written before the streaming digest stay comparable
    assert verify_shard(root / shard_name(1), config, 2, 2)["n_values"] == 2 * 16 * 16


def test_shards_stored_before_numbers_were_normalised_still_verify(copy):
    # a shard written when `--set tau=1` was stored as the int 1: another fingerprint, the same configuration
    legacy = {**_config().to_dict(), "params": {**_config().params, "tau": 1}}
    text = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    old = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert old != _config().fingerprint
    with h5py.File(copy / shard_name(1), "r+") as f:
        f["fastinterp"].attrs["fingerprint"] = old
        f["fastinterp"].attrs["config"] = json.dumps(legacy, sort_keys=True)
    assert verify_shard(copy / shard_name(1), _config(), 2, 2)["n_values"] == 2 * 16 * 16
    with h5py.File(copy / shard_name(1), "r+") as f:  # another dataset's is still refused
        f["fastinterp"].attrs["config"] = json.dumps({**legacy, "params": {**legacy["params"], "tau": 2}})
    with pytest.raises(ShardError, match="a shard of another dataset"):
        verify_shard(copy / shard_name(1), _config(), 2, 2)


def test_every_reader_refuses_a_damaged_shard_and_names_it(copy, tmp_path, capsys):
    _flip(copy / shard_name(1))
    config = _config()
    bad = r"shard_00001\.h5: checksum mismatch"
    with pytest.raises(ShardError, match=bad):
        verify_shard(copy / shard_name(1), config, 2, 2)
    with pytest.raises(ShardError, match=bad):
        read_shard(copy / shard_name(1), config)
    with pytest.raises(ShardError, match=bad):
        PDEDataset(copy)
    assert cli.main(["pde", "info", str(copy)]) == 1
    assert "checksum mismatch" in capsys.readouterr().out
    with pytest.raises(SystemExit, match=bad + ".*nothing exported"):
        cli.main(["pde", "export", str(copy), "--out", str(tmp_path / "exp")])
    assert not (tmp_path / "exp").exists()
    with pytest.raises(SystemExit, match=bad):
        cli.main(["pde", "plot", str(copy), "--out", str(tmp_path / "p.png")])
    assert not (tmp_path / "p.png").exists()
    with pytest.raises(SystemExit, match=bad):
        cli.main(["train", "--data", str(copy), "--model", "tiny-2d", "--steps", "1", "--out", str(tmp_path / "c.pt")])


def test_swapped_and_foreign_shards_are_refused(copy, tmp_path):
    config = _config()
    a, b = copy / shard_name(0), copy / shard_name(1)
    a.rename(tmp_path / "x")
    b.rename(a)
    (tmp_path / "x").rename(b)
    with pytest.raises(ShardError, match=r"shard_00000\.h5: holds trajectories 2\.\.3, expected 0\.\.1"):
        PDEDataset(copy)
    other = tmp_path / "other"
    generate(other, _config(seed=7), progress=False)
    shutil.copyfile(other / shard_name(0), a)
    with pytest.raises(ShardError, match=r"shard_00000\.h5: a shard of another dataset .*seed 7"):
        read_shard(a, config)


def test_verified_once_per_file_and_again_when_it_changes(copy, monkeypatch):
    config = _config()
    calls = []
    real = fmt._verify
    monkeypatch.setattr(fmt, "_verify", lambda *a: calls.append(a[0].name) or real(*a))
    PDEDataset(copy)
    PDEDataset(copy)
    dataset_status(copy)
    assert sorted(calls) == [shard_name(k) for k in range(3)]  # once each
    # a spawned DataLoader worker: a fresh process (empty cache) unpickling the dataset trusts the same files
    ds = pickle.dumps(PDEDataset(copy))
    monkeypatch.setattr(fmt, "_VERIFIED", {})
    assert pickle.loads(ds)[5].shape == (16, 16) and len(calls) == 3
    _flip(copy / shard_name(2))  # rewritten in place: another modification time
    with pytest.raises(ShardError, match=r"shard_00002\.h5: checksum mismatch"):
        verify_shard(copy / shard_name(2), config, 4, 2)


def _interrupt_after(monkeypatch, calls_allowed):
    """Make the engine raise KeyboardInterrupt (a stand-in for kill -9 before the next write) after n chunks."""
    real = gen.trajectory_function
    made = []

    def patched(config):
        fn, steps = real(config)

        def wrapped(first, count, threads):
            if len(made) >= calls_allowed:
                raise KeyboardInterrupt
            made.append((first, count))
            return fn(first, count, threads)

        return wrapped, steps

    monkeypatch.setattr(gen, "trajectory_function", patched)
    return made


def test_damaged_trajectory_files_are_named_and_regenerated(clean, tmp_path, monkeypatch):
    config = _config(shard_size=6)  # one shard: its trajectories stay in .work until all six exist
    ref = tmp_path / "ref"
    generate(ref, config, progress=False)
    root = tmp_path / "d"
    made = _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        generate(root, config, progress=False)
    work = root / ".work" / "shard_00000"
    files = sorted(work.glob("traj_*.npy"))
    assert len(files) == 4 and all(len(p.name.split(".")[1]) == 64 for p in files)  # sha256 in the name
    flipped, truncated = files[1], files[2]
    data = bytearray(flipped.read_bytes())
    data[-3] ^= 0x10
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:200])
    (work / "traj_0000005.npy").write_bytes(b"from an older version")  # no checksum in its name
    (work / "traj_0000004.npy.tmp").write_bytes(b"interrupted")
    logs = []
    monkeypatch.undo()
    made = _interrupt_after(monkeypatch, 100)  # counts the chunks the resume generates
    generate(root, config, resume=True, progress=False, log=logs.append)
    assert any(flipped.name in m and "checksum mismatch" in m and "regenerating trajectory 1" in m for m in logs)
    assert any(truncated.name in m and "checksum mismatch" in m and "regenerating trajectory 2" in m for m in logs)
    assert any("traj_0000005.npy" in m and "not a checksummed trajectory file" in m for m in logs)
    assert sorted(f for f, _ in made) == [1, 2, 4, 5]  # exactly the damaged and the missing ones
    np.testing.assert_array_equal(_all(root, config), _all(ref, config))
    assert not (root / ".work").exists()


def test_a_rejected_configuration_leaves_nothing_and_the_corrected_one_runs(tmp_path, monkeypatch):
    root = tmp_path / "a" / "b"
    real = gen.trajectory_function

    def rejecting(config):
        if config.seed == 5:
            raise ValueError("seed 5 rejected by the engine")
        return real(config)

    monkeypatch.setattr(gen, "trajectory_function", rejecting)
    with pytest.raises(ValueError, match="seed 5 rejected"):
        generate(root, _config(seed=5), progress=False)
    assert not (tmp_path / "a").exists()
    generate(root, _config(seed=6), progress=False)
    # the command line: a setting out of range, then the corrected command on the same --out
    out = str(tmp_path / "cli")
    with pytest.raises(SystemExit, match="tau"):
        cli.main(["pde", "generate", "grf", "--num", "2", "--res", "8", "--out", out, "--quiet", "--set", "tau=-1"])
    assert not os.path.exists(out)
    assert cli.main(["pde", "generate", "grf", "--num", "2", "--res", "8", "--out", out, "--quiet"]) == 0


def test_a_manifest_without_data_takes_a_new_configuration(tmp_path, monkeypatch):
    root = tmp_path / "d"
    _interrupt_after(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        generate(root, _config(res=16), progress=False)
    monkeypatch.undo()
    assert (root / "manifest.json").exists() and not list(root.glob("shard_*"))
    logs = []
    manifest = generate(root, _config(res=8), progress=False, log=logs.append)
    assert manifest["config"]["res"] == 8
    assert any("replacing the manifest" in m and "res: 16 in the directory, 8 given" in m for m in logs)


def test_mismatches_name_each_setting_and_numbers_compare_as_numbers(clean):
    root, _ = clean
    with pytest.raises(ValueError, match=r"res: 16 in the directory, 8 given; seed: 0 in the directory, 3 given"):
        generate(root, _config(res=8, seed=3), resume=True, progress=False)
    with pytest.raises(ValueError, match=r"tau: 1\.0 in the directory, 2\.0 given"):
        generate(root, _config(params={"tau": 2.0}), resume=True, progress=False)
    assert config_differences(_config(params={"tau": 1.0, "s": 3.0}), _config(params={"tau": 1, "s": 3})) == []
    assert generate(root, _config(params={"tau": 1, "s": 3}), resume=True, progress=False)["complete"]


def test_cli_resume_takes_the_directorys_configuration_for_what_it_does_not_give(clean, copy):
    shard = copy / shard_name(1)
    shard.unlink()  # an interrupted dataset: resume with nothing but the directory
    assert cli.main(["pde", "generate", "grf", "--out", str(copy), "--resume", "--quiet"]) == 0
    assert np.array_equal(_all(copy, _config()), clean[1])  # the regenerated shard is bit-identical
    with pytest.raises(SystemExit, match=r"res: 16 in the directory, 32 given\. A dataset's configuration"):
        cli.main(["pde", "generate", "grf", "--out", str(copy), "--resume", "--res", "32", "--quiet"])


def test_a_second_generator_on_the_directory_is_refused(clean, tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, b"4242\n")
    try:
        with pytest.raises(ValueError, match=r"d is being written by another generator \(process 4242"):
            generate(root, _config(), progress=False)
        with pytest.raises(SystemExit, match="being written by another generator"):
            cli.main(["pde", "generate", "grf", "--num", "6", "--res", "16", "--shard-size", "2", "--out", str(root),
                      "--quiet"])  # fmt: skip
    finally:
        os.close(fd)
    assert generate(root, _config(), progress=False)["complete"]
    assert not (root / ".lock").exists()


def test_memory_and_disk_are_checked_before_anything_is_written(tmp_path, monkeypatch):
    root = tmp_path / "d"
    huge = _config(num=10**9, res=128, shard_size=10**7)  # 65 TB of float32
    with pytest.raises(ValueError, match=r"needs 6\d\.\d TB more disk space, .* free there"):
        generate(root, huge, progress=False)
    assert not root.exists()
    monkeypatch.setattr(gen, "_available_memory", lambda: 1000)
    with pytest.raises(
        ValueError,
        match=r"one generation chunk \(4 trajectories of 1x16x16 values at once\) needs about .* kB of memory, "
        r"1\.0 kB available",
    ):
        generate(root, _config(), threads=4, progress=False)
    assert not root.exists()


def test_a_file_size_limit_ends_in_one_line_and_resume_finishes(tmp_path):
    # EFBIG at the shard write: trajectory files of 16 kB fit under the limit, a shard of 64 kB does not. The limit
    # is this process's own soft limit, raised again at once (SIGXFSZ is ignored by Python: writes fail instead)
    root = tmp_path / "d"
    args = ["pde", "generate", "grf", "--num", "6", "--res", "64", "--shard-size", "4", "--out", str(root), "--quiet"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, hard))
    try:
        with pytest.raises(SystemExit) as info:
            cli.main(args)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(info.value.code)
    assert "\n" not in message and "shard_00000.h5: cannot write: File too large (EFBIG)" in message, message
    assert not list(root.rglob("*.tmp")) and not list(root.glob("shard_*"))
    assert len(list(root.glob(".work/shard_00000/traj_*.npy"))) == 4
    assert cli.main(args + ["--resume"]) == 0
    config = DatasetConfig(equation="grf", num=6, res=64, shard_size=4)
    generate(tmp_path / "ref", config, progress=False)
    np.testing.assert_array_equal(_all(root, config), _all(tmp_path / "ref", config))


_TMPFS_DRIVER = textwrap.dedent(
    """
    import json, os, shutil, sys
    import importlib
    g = importlib.import_module("fastinterp.datasets.generate")
    from fastinterp.cli import main

    mnt, out = sys.argv[1], sys.argv[2]
    filler = os.path.join(mnt, "filler")
    real, plan = g.trajectory_function, {}

    def fill(leave):  # take every free byte of the tmpfs, then give back `leave`
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, bytes(65536))
        except OSError:
            pass
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError:
            pass
        os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
        os.close(fd)

    def patched(config):
        fn, steps = real(config)
        calls = [0]

        def wrapped(first, count, threads):
            calls[0] += 1
            if calls[0] == plan.get("at"):
                fill(plan["leave"])
            return fn(first, count, threads)

        return wrapped, steps

    g.trajectory_function = patched

    def cli(*args):
        try:
            return main(["pde", "generate", "grf", "--res", "64", "--quiet", *args])
        except SystemExit as exc:
            return exc.code

    results = {}
    # too big for the 2 MB disk: refused before anything is written
    results["refused"] = cli("--num", "200", "--out", mnt + "/big")
    results["big_exists"] = os.path.exists(mnt + "/big")
    # the disk fills while trajectory files are written (at the 2nd chunk), then while the shard is (4th)
    for name, at, leave in (("traj", 2, 0), ("shard", 4, 5 * 4096)):
        plan.update(at=at, leave=leave)
        d = f"{mnt}/{name}"
        results[name] = cli("--num", "4", "--shard-size", "4", "--out", d)
        results[name + "_files"] = sorted(os.path.relpath(os.path.join(p, f), d)
                                          for p, _, fs in os.walk(d) for f in fs)
        plan.clear()
        os.remove(filler)
        results[name + "_resume"] = cli("--num", "4", "--shard-size", "4", "--out", d, "--resume")
        shutil.copytree(d, f"{out}/{name}")
    with open(f"{out}/results.json", "w") as fh:
        json.dump(results, fh)
    """
)


def test_a_full_disk_ends_in_one_line_and_resume_finishes(tmp_path):
    """On a real 2 MB tmpfs (a private mount namespace; skipped where unshare or mount is refused)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=2m tmpfs {mnt}"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.strip()}")
    (tmp_path / "driver.py").write_text(_TMPFS_DRIVER)
    script = f"mount -t tmpfs -o size=2m tmpfs {mnt} && exec {sys.executable} {tmp_path / 'driver.py'} {mnt} {out}"
    run = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]  # no crash at exit (h5py segfaulted on a full disk)
    res = json.loads((out / "results.json").read_text())
    assert "more disk space" in res["refused"] and "free there" in res["refused"] and not res["big_exists"]
    assert "traj_0000001.npy: cannot write: No space left on device (ENOSPC)" in res["traj"], res["traj"]
    assert "shard_00000.h5: cannot write: No space left on device (ENOSPC)" in res["shard"], res["shard"]
    for name in ("traj", "shard"):
        assert "\n" not in res[name]
        # nothing that could pass for finished work: no temporaries, no shard, only checksummed trajectory files
        left = [f for f in res[name + "_files"] if f not in (".lock", "manifest.json")]
        assert left and all(f.startswith(".work/shard_00000/traj_") and len(f.split(".")) == 4 for f in left), left
        assert res[name + "_resume"] == 0
    config = DatasetConfig(equation="grf", num=4, res=64, shard_size=4)
    generate(tmp_path / "ref", config, progress=False)
    for name in ("traj", "shard"):
        np.testing.assert_array_equal(_all(out / name, config), _all(tmp_path / "ref", config))


def test_export_checks_its_out_and_writes_nothing_partial(clean, tmp_path):
    root, data = clean
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit, match="--out .*file exists and is not a directory"):
        cli.main(["pde", "export", str(root), "--out", str(tmp_path / "file")])
    with pytest.raises(SystemExit, match="--out .* is not empty"):
        cli.main(["pde", "export", str(root), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="inside the dataset directory"):
        cli.main(["pde", "export", str(root), "--out", str(root / "exp")])
    with pytest.raises(SystemExit, match=r"pde export: the dataset directory .*nothing does not exist$"):
        cli.main(["pde", "export", str(tmp_path / "nothing"), "--out", str(tmp_path / "e")])
    with pytest.raises(SystemExit, match=r"pde info: the dataset directory .*file is not a directory$"):
        cli.main(["pde", "info", str(tmp_path / "file")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"pde info: .*empty.manifest\.json: not a fastinterp dataset manifest"):
        cli.main(["pde", "info", str(tmp_path / "empty")])
    assert cli.main(["pde", "export", str(root), "--format", "npy", "--out", str(tmp_path / "npy")]) == 0
    exported = np.concatenate([np.load(tmp_path / "npy" / f"grf_{k:05d}.npy") for k in range(3)])
    np.testing.assert_array_equal(exported, data)
    assert sorted(p.name for p in (tmp_path / "npy").iterdir()) == [f"grf_{k:05d}.npy" for k in range(3)]


def test_progress_is_a_tqdm_bar_with_rates(tmp_path, capsys):
    generate(tmp_path / "a", _config(), progress=True, log=_quiet)
    err = capsys.readouterr().err
    assert "grf: 100%" in err and "6/6 trajectories" in err and "traj/s" in err and "steps/s" in err
    generate(tmp_path / "b", _config(), progress=False)
    assert capsys.readouterr().err == ""
