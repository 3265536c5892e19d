"""Training refuses what would go wrong silently: changed settings on resume, overwrites, bad paths and ranges."""

import inspect
import math

import numpy as np
import pytest
import torch

import fastinterp as fi
from fastinterp import cli
from fastinterp.checkpoint import load_checkpoint, save_checkpoint
from fastinterp.models import MLP, PRESETS
from fastinterp.training import CHANGEABLE, data_digest, train

KW = dict(steps=6, batch_size=4, lr=1e-3, checkpoint_every=3, progress=False, seed=1)


@pytest.fixture(autouse=True)
def _float32():
    torch.set_default_dtype(torch.float32)


def _data(seed=0, n=16):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def _net(hidden=8):
    torch.manual_seed(0)
    return MLP(4, hidden=hidden, depth=1, time_dim=4)


@pytest.fixture
def ckpt(tmp_path):
    """A finished 6-step run at tmp_path / "c.pt"."""
    train(_net(), _data(), out=tmp_path / "c.pt", **KW)
    return tmp_path / "c.pt"


# -- resume refuses changes, naming the setting and both values -------------------------------------------------


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(prediction="x1"), ["prediction (was 'velocity', now 'x1')"]),
        (dict(schedule=fi.LipschitzOptimal(0.01)), ["schedule (was Linear(), now LipschitzOptimal(lam=0.01))"]),
        (
            dict(model=MLP(4, hidden=16, depth=1, time_dim=4)),
            ["model (was mlp(dim=4, hidden=8,", "now mlp(dim=4, hidden=16,", "model cannot change on resume"],
        ),
        (dict(data=_data(seed=5)), ["data (was sha256 ", "shape (16, 4) float32, now sha256 "]),
        (dict(lr=2e-3), ["lr (was 0.001, now 0.002)", "allow_changes", "--allow-changed lr"]),
        (dict(batch_size=8), ["batch_size (was 4, now 8)"]),
        (dict(weight_decay=0.1), ["weight_decay (was 0.0, now 0.1)"]),
        (dict(grad_clip=0.5), ["grad_clip (was 1.0, now 0.5)"]),
        (dict(ema_decay=0.9), ["ema_decay (was 0.999, now 0.9)"]),
        (dict(antithetic=False), ["antithetic (was True, now False)"]),
        (dict(seed=2), ["seed (was 1, now 2)", "seed cannot change on resume: train into another out"]),
        (dict(scale=0.5), ["scale (was None, now 0.5)", "scale cannot change on resume: train into another out"]),
        (dict(steps=5), ["the checkpoint is at step 6, beyond steps=5"]),
    ],
)
def test_resume_refuses_each_changed_setting(ckpt, change, expected):
    args = {**KW, "model": _net(), "data": _data(), **change}
    model, data = args.pop("model"), args.pop("data")
    with pytest.raises(ValueError, match="cannot resume: ") as info:
        train(model, data, out=ckpt, resume=True, **args)
    message = str(info.value)
    assert str(ckpt) in message and "\n" not in message
    for part in expected:
        assert part in message


def test_resume_names_every_difference_in_one_message(ckpt):
    with pytest.raises(ValueError) as info:
        train(_net(), _data(seed=3), out=ckpt, resume=True, **{**KW, "lr": 5e-4, "prediction": "noise"})
    message = str(info.value)
    for part in ("data (was", "prediction (was 'velocity', now 'noise')", "lr (was 0.001, now 0.0005)"):
        assert part in message
    assert "data and prediction cannot change on resume" in message and "--allow-changed lr" in message
    # numbers compare as numbers: an int learning rate equal to the stored float is no change
    train(_net(), _data(), out=ckpt, resume=True, **{**KW, "grad_clip": 1})


def test_allowed_changes_apply_and_are_recorded(tmp_path):
    class Stop(Exception):
        pass

    def stop_at(k):
        def callback(step, loss):
            if step == k:
                raise Stop

        return callback

    out = tmp_path / "c.pt"
    with pytest.raises(Stop):
        train(_net(), _data(), out=out, callback=stop_at(3), **KW)
    resumed = train(_net(), _data(), out=out, resume=True, allow_changes=("lr", "batch_size"),
                    **{**KW, "lr": 4e-3, "batch_size": 8})  # fmt: skip
    assert resumed.step == 6 and len(resumed.losses) == 6
    state = load_checkpoint(out)["training"]
    assert state["settings"]["lr"] == 4e-3 and state["settings"]["batch_size"] == 8
    assert state["optimizer"]["param_groups"][0]["initial_lr"] == 4e-3
    # the changed run is recorded: resuming it again with the new values needs no override
    train(_net(), _data(), out=out, resume=True, **{**KW, "lr": 4e-3, "batch_size": 8})
    with pytest.raises(ValueError, match="allow_changes must name settings among"):
        train(_net(), _data(), out=out, resume=True, allow_changes=("prediction",), **KW)
    with pytest.raises(ValueError, match=r"allow_changes=\['lr'\] applies only with resume=True"):
        train(_net(), _data(), out=tmp_path / "new.pt", allow_changes=("lr",), **KW)


def test_steps_may_grow_and_the_cosine_is_replanned(ckpt):
    class Stop(Exception):
        pass

    def stop_at_9(step, loss):
        if step == 9:
            raise Stop

    with pytest.raises(Stop):
        train(_net(), _data(), out=ckpt, resume=True, callback=stop_at_9, **{**KW, "steps": 12})
    state = load_checkpoint(ckpt)["training"]
    assert state["step"] == 9 and state["settings"]["steps"] == 12 and len(state["losses"]) == 9
    lr_at_9 = state["optimizer"]["param_groups"][0]["lr"]
    assert math.isclose(lr_at_9, 1e-3 * 0.5 * (1 + math.cos(math.pi * 9 / 12)), rel_tol=1e-12)
    with pytest.raises(ValueError, match=r"steps \(was 12, now 10\); to change steps, name it in allow_changes"):
        train(_net(), _data(), out=ckpt, resume=True, **{**KW, "steps": 10})
    done = train(_net(), _data(), out=ckpt, resume=True, **{**KW, "steps": 12})
    assert done.step == 12 and len(done.losses) == 12
    with pytest.raises(ValueError, match="at step 12, beyond steps=8"):
        train(_net(), _data(), out=ckpt, resume=True, allow_changes="steps", **{**KW, "steps": 8})


def test_old_checkpoints_and_checkpoints_without_training_state_are_refused(tmp_path):
    net = _net()
    save_checkpoint(tmp_path / "old.pt", net, schedule=fi.Linear(), prediction="velocity",
                    training={"step": 3, "n_data": 16, "losses": [1.0, 1.0, 1.0]})  # fmt: skip
    with pytest.raises(ValueError, match="older fastinterp that did not record its data and settings"):
        train(_net(), _data(), out=tmp_path / "old.pt", resume=True, **KW)
    save_checkpoint(tmp_path / "bare.pt", net, schedule=fi.Linear(), prediction="velocity")
    with pytest.raises(ValueError, match="bare.pt: cannot resume: the checkpoint has no training state"):
        train(_net(), _data(), out=tmp_path / "bare.pt", resume=True, **KW)


def test_data_digest_sees_values_shape_and_dtype():
    x = _data()
    assert data_digest(x) == data_digest(x.clone())
    y = x.clone()
    y[3, 2] = torch.nextafter(y[3, 2], torch.tensor(math.inf))
    assert data_digest(y)["sha256"] != data_digest(x)["sha256"]
    assert data_digest(x.reshape(8, 8))["sha256"] != data_digest(x)["sha256"]
    assert data_digest(x.double())["sha256"] != data_digest(x)["sha256"]
    assert data_digest(x.t().contiguous().t()) == data_digest(x)  # memory layout does not matter
    assert data_digest(x)["shape"] == [16, 4] and data_digest(x.half())["dtype"] == "float32"


# -- overwrite, writability --------------------------------------------------------------------------------------


def test_no_overwrite_without_resume_or_force(ckpt):
    before = ckpt.read_bytes()
    with pytest.raises(FileExistsError, match=f"out {ckpt} exists: continue it with resume=True"):
        train(_net(), _data(), out=ckpt, **KW)
    assert ckpt.read_bytes() == before
    forced = train(_net(), _data(seed=4), out=ckpt, force=True, **{**KW, "steps": 3})
    assert forced.step == 3 and load_checkpoint(ckpt)["training"]["step"] == 3
    with pytest.raises(ValueError, match="resume=True and force=True contradict"):
        train(_net(), _data(), out=ckpt, resume=True, force=True, **KW)
    with pytest.raises(ValueError, match="resume=True needs out"):
        train(_net(), _data(), resume=True, **KW)


def test_unwritable_out_fails_before_the_first_step(tmp_path):
    (tmp_path / "file").write_text("a regular file")
    steps = []
    bad = tmp_path / "file" / "sub" / "c.pt"
    with pytest.raises(OSError, match=f"out {bad}: cannot write a checkpoint there: ") as info:
        train(_net(), _data(), out=bad, callback=lambda s, v: steps.append(s), **KW)
    assert steps == [] and "\n" not in str(info.value)
    assert f"{tmp_path / 'file'} is a file, not a folder" in str(info.value)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        train(_net(), _data(), out=tmp_path, **KW)
    # the folder is created, and no probe file is left behind
    train(_net(), _data(), out=tmp_path / "new" / "deep" / "c.pt", **KW)
    assert sorted(p.name for p in (tmp_path / "new" / "deep").iterdir()) == ["c.pt"]
    with pytest.raises(TypeError, match="cannot save a Custom schedule"):
        train(_net(), _data(), out=tmp_path / "x.pt", schedule=fi.Custom(lambda t: 1 - t, lambda t: t), **KW)
    assert not (tmp_path / "x.pt").exists()


# -- ranges ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, exc, message",
    [
        (dict(grad_clip=-1.0), ValueError, "grad_clip must be finite and > 0 (the maximum gradient norm), got -1.0"),
        (dict(grad_clip=0), ValueError, "grad_clip must be finite and > 0 (the maximum gradient norm), got 0.0"),
        (dict(grad_clip=math.inf), ValueError, "grad_clip must be finite and > 0 (the maximum gradient norm), got inf"),
        (dict(weight_decay=-0.1), ValueError, "weight_decay must be finite and >= 0, got -0.1"),
        (dict(ema_decay=1.0), ValueError, "ema_decay must be in [0, 1), got 1.0"),
        (dict(ema_decay=-0.5), ValueError, "ema_decay must be in [0, 1), got -0.5"),
        (dict(lr=0.0), ValueError, "lr must be finite and > 0, got 0.0"),
        (dict(lr=math.nan), ValueError, "lr must be finite and > 0, got nan"),
        (dict(lr="0.1"), TypeError, "lr must be a real number, got str"),
        (dict(lr=True), TypeError, "lr must be a real number, got bool"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1, got 0"),
        (dict(batch_size=2.0), TypeError, "batch_size must be an int, got float"),
        (dict(batch_size=17), ValueError, "batch_size must be <= the number of training samples 16, got 17"),
        (dict(steps=0), ValueError, "steps must be >= 1, got 0"),
        (dict(checkpoint_every=0), ValueError, "checkpoint_every must be >= 1, got 0"),
        (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
        (dict(seed=1.5), TypeError, "seed must be an int, got float"),
        (dict(seed=2**64), ValueError, "seed must be < 2**64 (a torch.Generator seed), got 18446744073709551616"),
        (dict(antithetic=1), TypeError, "antithetic must be a bool, got int"),
        (dict(scale=0.0), ValueError, "scale must be finite and > 0, or None, got 0.0"),
        (dict(scale=math.inf), ValueError, "scale must be finite and > 0, or None, got inf"),
        (dict(scale="1"), TypeError, "scale must be a real number, got str"),
        (dict(prediction="velocty"), ValueError, "prediction must be one of"),
        (dict(schedule="linear"), TypeError, "schedule must be a fastinterp Schedule, got str"),
    ],
)
def test_every_option_is_range_checked(change, exc, message):
    with pytest.raises(exc) as info:
        train(_net(), _data(), **{**KW, **change})
    assert message in str(info.value)


@pytest.mark.parametrize(
    "data, exc, message",
    [
        (np.zeros((4, 4)), TypeError, "data must be a torch.Tensor shaped (n, ...), got ndarray"),
        (torch.zeros(8, 4, dtype=torch.int64), ValueError, "floating tensor shaped (n >= 2, ...), got torch.int64"),
        (torch.randn(16), ValueError, "got torch.float32 (16,)"),
        (torch.ones(8, 4), ValueError, "data are constant (every value 1.0)"),
        (torch.tensor([[1.0, math.inf], [0.0, 2.0]]), ValueError, "data contains 1 non-finite values"),
    ],
)
def test_bad_data_is_refused(data, exc, message):
    with pytest.raises(exc) as info:
        train(_net(), data, **{**KW, "batch_size": 1})
    assert message in str(info.value)


def test_a_model_that_does_not_fit_the_data_fails_before_out_is_touched(tmp_path):
    from fastinterp.models import build_model

    with pytest.raises(ValueError, match=r"model UNet does not take data shaped \(16, 4\): UNet\(dim=2"):
        train(build_model("tiny-2d"), _data(), out=tmp_path / "sub" / "c.pt", **KW)
    assert not (tmp_path / "sub").exists()

    class Flatten(torch.nn.Module):
        def forward(self, x, t):
            return x.sum(1)

    with pytest.raises(ValueError, match=r"model Flatten must return its input's shape \(2, 4\), got \(2,\)"):
        train(Flatten(), _data(), **KW)


def test_progress_bar_is_tqdm_with_loss_and_rate(capsys):
    train(_net(), _data(), **{**KW, "progress": True})
    err = capsys.readouterr().err
    assert "6/6" in err and "loss " in err and "step/s" in err
    train(_net(), _data(), **KW)
    assert capsys.readouterr().err == ""


# -- command line --------------------------------------------------------------------------------------------------


def _cli_error(argv):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    message = info.value.code
    assert isinstance(message, str) and "\n" not in message and message.startswith("fastinterp train: ")
    return message


@pytest.fixture
def npy(tmp_path):
    np.save(tmp_path / "x.npy", _data().numpy())
    return str(tmp_path / "x.npy")


def test_cli_train_errors_are_one_line(tmp_path, npy):
    base = ["train", "--data", npy, "--steps", "2", "--batch-size", "4", "--out", str(tmp_path / "m.pt")]
    message = _cli_error(
        [
            *base,
            "--model",
            "tiny-1",
        ]
    )
    assert "--model must be one of tiny-1d, tiny-2d" in message and "got 'tiny-1'" in message
    assert "--model 'mlp:<dim>' needs an integer dim >= 1, got 'mlp:x'" in _cli_error([*base, "--model", "mlp:x"])
    missing = str(tmp_path / "nope.npy")
    assert _cli_error(["train", "--data", missing, "--model", "mlp:4", "--steps", "1", "--out", "m.pt"]) == (
        f"fastinterp train: --data {missing}: no such file or directory"
    )
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    message = _cli_error(["train", "--data", str(tmp_path / "bad.npy"), "--model", "mlp:4", "--steps", "1",
                          "--out", "m.pt"])  # fmt: skip
    assert f"--data {tmp_path / 'bad.npy'}: cannot be read (" in message
    (tmp_path / "x.csv").write_text("1,2")
    assert "must be a dataset directory" in _cli_error([*base[:2], str(tmp_path / "x.csv"), *base[3:], "--model", "x"])
    assert (
        _cli_error([*base, "--model", "mlp:4", "--lr", "-1"])
        == "fastinterp train: --lr must be finite and > 0, got -1.0"
    )
    assert "--grad-clip must be finite and > 0" in _cli_error([*base, "--model", "mlp:4", "--grad-clip", "-1"])
    assert "--steps must be >= 1, got 0" in _cli_error([*base[:4], "0", *base[5:], "--model", "mlp:4"])
    assert "--seed must be >= 0, got -2" in _cli_error([*base, "--model", "mlp:4", "--seed", "-2"])
    assert "model UNet does not take data shaped (16, 4)" in _cli_error([*base, "--model", "tiny-2d"])
    assert "--allow-changed=['lr'] applies only with resume=True" in _cli_error(
        [*base, "--model", "mlp:4", "--allow-changed", "lr"]
    )
    blocked = tmp_path / "file"
    blocked.write_text("")
    message = _cli_error([*base[:-1], str(blocked / "m.pt"), "--model", "mlp:4"])
    assert f"out {blocked / 'm.pt'}: cannot write a checkpoint there" in message


def test_cli_train_force_resume_and_allow_changed(tmp_path, npy, capsys):
    base = ["train", "--data", npy, "--model", "mlp:4", "--steps", "2", "--batch-size", "4", "--out",
            str(tmp_path / "m.pt")]  # fmt: skip
    assert cli.main(base) == 0
    assert "--resume" in _cli_error(base) and "--force" in _cli_error(base)
    assert cli.main([*base, "--force"]) == 0
    message = _cli_error([*base, "--resume", "--lr", "0.01", "--prediction", "x1"])
    assert "lr (was 0.002, now 0.01)" in message and "prediction (was 'velocity', now 'x1')" in message
    assert "lr (was 0.002, now 0.01)" in _cli_error([*base[:6], "3", *base[7:], "--resume", "--lr", "0.01"])
    assert cli.main([*base[:6], "3", *base[7:], "--resume", "--lr", "0.01", "--allow-changed", "lr"]) == 0
    state = load_checkpoint(tmp_path / "m.pt")["training"]
    assert state["step"] == 3 and state["settings"]["lr"] == 0.01
    assert "trained 3 steps" in capsys.readouterr().out


def test_cli_train_help_shows_defaults_models_and_matches_train(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in PRESETS:
        assert name in text
    assert "(default: 0.002)" in text and "(default: 64)" in text and "(default: 0.999)" in text
    assert "lr,weight_decay,batch_size,grad_clip,ema_decay,antithetic,steps" in text.replace(" ", "")
    assert ",".join(CHANGEABLE) in text.replace(" ", "")
    # the command line's defaults are train()'s
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--data", "d", "--model", "m", "--steps", "1", "--out", "o"])
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()}
    for name in (
        "batch_size",
        "lr",
        "weight_decay",
        "grad_clip",
        "ema_decay",
        "checkpoint_every",
        "seed",
        "prediction",
        "scale",
    ):
        assert getattr(args, name) == defaults[name], name
    assert (not args.no_antithetic) == defaults["antithetic"]


def test_scale_sets_the_units_the_model_sees_and_is_recorded(tmp_path):
    """``scale``: the model is trained on ``(data - mean) / scale`` (the run on data pre-divided by ``scale`` with
    ``scale=1`` is the same to rounding; the default, std units, is another run), and the checkpoint records it."""
    data = _data() * 3 + 1
    mean, std = float(data.mean()), float(data.std())
    given = train(_net(), data, out=tmp_path / "s.pt", **{**KW, "scale": 2 * std})
    divided = train(_net(), (data - mean) / (2 * std), **{**KW, "scale": 1.0})
    default = train(_net(), data, **KW)
    torch.testing.assert_close(torch.tensor(given.losses), torch.tensor(divided.losses), rtol=1e-5, atol=0)
    assert not np.allclose(given.losses, default.losses, rtol=1e-2)
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert ckpt["normalization"] == {"mean": mean, "std": 2 * std}
    assert ckpt["training"]["settings"]["scale"] == 2 * std
