import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pixelrnn
from pixelrnn.cli import main

TINY = ["--data", "digits", "--arch", "pixelcnn", "--hidden", "6", "--layers", "1",
        "--batch-size", "8", "--no-progress", "--threads", "1"]


def cli(*args):
    return main([str(a) for a in args])


def test_train_then_eval_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--steps", "12", "--log-every", "4", "--eval-every", "6",
               "--out", out, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 12 and summary["stopped_by"] == "steps"
    for name in ("config.json", "metrics.jsonl", "last.safetensors", "best.safetensors", "state.safetensors"):
        assert (out / name).exists(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["train"]["arch"] == "pixelcnn" and cfg["model"]["levels"] == 17
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "train_nll" in r] == [4, 8, 12]
    assert [r["step"] for r in records if "test_nll" in r] == [6, 12]
    assert records[-1]["final"] and records[-1]["step"] == 12
    r = [x for x in records if "train_nll" in x][-1]
    for key in ("step", "train_nll", "train_bpd", "images_per_s", "lr", "time", "test_nll", "test_bpd"):
        assert key in r
    model = pixelrnn.load(out / "last.safetensors")
    assert model.config.arch == "pixelcnn"
    assert cli("eval", out / "last.safetensors", "--data", "digits", "--json") == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["images"] == 359 and ev["nll_nats"] == pytest.approx(summary["test"]["nll_nats"], rel=1e-6)
    assert ev["bits_per_dim"] == pytest.approx(ev["nll_nats"] / (64 * 0.6931471805599453))
    bad = ["bogus", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda"])
    for command in (["eval", out / "last.safetensors", "--data", "digits"],
                    ["score", out / "last.safetensors", "--data", "digits"]):
        for device in bad:  # a one-line error, not a traceback from deep inside torch
            assert cli(*command, "--device", device) == 2
            err = capsys.readouterr().err
            assert "--device" in err and err.count("\n") == 1


def test_progress_bar_shows_loss_bits_speed_and_time_left(tmp_path, capsys):
    args = [a for a in TINY if a != "--no-progress"]
    assert cli("train", *args, "--max-minutes", "0.05", "--log-every", "2", "--eval-every", "0",
               "--out", tmp_path / "run") == 0
    err = capsys.readouterr().err
    for key in ("nll=", "bpd=", "img/s=", "left=0:0"):
        assert key in err, (key, err[-500:])


def test_progress_bar_keeps_the_training_figures_across_an_evaluation(tmp_path, capsys):
    # an evaluation step that is not a logging step must not blank the bar's loss (it showed nll=nan)
    args = [a for a in TINY if a != "--no-progress"]
    assert cli("train", *args, "--steps", "9", "--log-every", "2", "--eval-every", "5",
               "--out", tmp_path / "run") == 0
    err = capsys.readouterr().err
    assert "test=" in err and "nll=" in err
    assert "nan" not in err, err[-500:]


def test_eval_counts_every_image_once(tmp_path):
    """Batch size that does not divide the split: the last partial batch is scored, nothing twice."""
    from pixelrnn.data import load_dataset
    from pixelrnn.evaluate import evaluate
    model = pixelrnn.create_model("pixelcnn", levels=17, hidden=6, layers=1)
    ds = load_dataset("digits", "test")
    full = evaluate(model, ds.images, batch_size=1000)
    odd = evaluate(model, ds.images, batch_size=7)
    assert odd.images == full.images == 359
    assert odd.nll == pytest.approx(full.nll, rel=1e-6)
    with torch.no_grad():
        direct = -model.log_prob(ds.images.long()).double().mean().item()
    assert full.nll == pytest.approx(direct, rel=1e-6)


def test_refuses_to_overwrite_a_run_and_reports_bad_run_dirs(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--steps", "2", "--out", out) == 0
    capsys.readouterr()
    assert cli("train", *TINY, "--steps", "2", "--out", out) == 2
    assert "--resume" in capsys.readouterr().err
    assert cli("train", "--resume", tmp_path / "missing") == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli("train", "--resume", tmp_path / "empty") == 2
    assert "not a pixelrnn run" in capsys.readouterr().err
    assert cli("train", "--resume", out, "--hidden", "9") == 2
    assert "cannot change --hidden" in capsys.readouterr().err
    state = out / "state.safetensors"
    state.write_bytes(state.read_bytes()[:50])
    assert cli("train", "--resume", out, "--steps", "4") == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and err.count("\n") == 1
    (out / "config.json").write_text("{not json")
    assert cli("train", "--resume", out) == 2
    assert "corrupt" in capsys.readouterr().err
    assert cli("train", *TINY, "--steps", "2", "--out", tmp_path / "r2", "--data", "nope") == 2
    assert "unknown dataset" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--shift", "2", "--hflip", "--dropout", "0.3"],
                                   ["--dihedral", "0.5", "--shift", "1"]])
def test_resume_continues_exactly(tmp_path, extra):
    args = [*TINY, "--deterministic", "--save-every", "5", "--eval-every", "0", *extra]
    assert cli("train", *args, "--steps", "30", "--out", tmp_path / "full") == 0
    assert cli("train", *args, "--steps", "13", "--out", tmp_path / "part") == 0
    assert cli("train", "--resume", tmp_path / "part", "--steps", "30") == 0
    a = load_file(tmp_path / "full" / "last.safetensors")
    b = load_file(tmp_path / "part" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _spawn(args, env=None):
    return subprocess.Popen([sys.executable, "-m", "pixelrnn", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _wait_for_step(state: Path, proc, min_step: int, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if state.exists():
            try:
                from pixelrnn.train import load_state
                _, meta = load_state(state)
                if meta["step"] >= min_step:
                    return meta["step"]
            except Exception:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"training ended before it could be interrupted: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a checkpoint")


@pytest.mark.slow
def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    args = [*TINY, "--arch", "row_lstm", "--hidden", "8", "--layers", "2", "--deterministic",
            "--save-every", "10", "--eval-every", "0", "--steps", "150", "--log-every", "7"]
    proc = _spawn(["train", *args, "--out", tmp_path / "killed"])
    saved = _wait_for_step(tmp_path / "killed" / "state.safetensors", proc, 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert saved < 150
    (tmp_path / "killed" / ".state.safetensors.abc123.tmp").write_bytes(b"half a save")
    (tmp_path / "killed" / ".notes.txt.tmp").write_text("not ours")
    assert cli("train", "--resume", tmp_path / "killed") == 0
    assert sorted(p.name for p in (tmp_path / "killed").glob(".*")) == [".notes.txt.tmp"]
    assert cli("train", *args, "--out", tmp_path / "straight") == 0
    a = load_file(tmp_path / "killed" / "last.safetensors")
    b = load_file(tmp_path / "straight" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the metrics too: no step twice, and the log window cut by the kill is carried over
    def records(run):
        return [(r["step"], r.get("train_nll"), r.get("final", False)) for r in
                map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())]
    assert records("killed") == records("straight")
    assert records("killed")[-1][0] == 150


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint(tmp_path, sig):
    out = tmp_path / "run"
    proc = _spawn(["train", *TINY, "--arch", "row_lstm", "--hidden", "8", "--layers", "2",
                   "--save-every", "10", "--steps", "100000", "--out", out])
    _wait_for_step(out / "state.safetensors", proc, 10)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    from pixelrnn.train import load_state
    _, meta = load_state(out / "state.safetensors")
    model_step = pixelrnn.checkpoint.describe(out / "last.safetensors")["metadata"]["step"]
    assert int(model_step) == meta["step"] and meta["step"] >= 10
    assert "Traceback" not in err


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real = pixelrnn.PixelModel.log_prob
    calls = {"n": 0}

    def flaky(self, x, y=None):
        calls["n"] += 1
        lp = real(self, x, y)
        return lp * float("nan") if calls["n"] > 7 and torch.is_grad_enabled() else lp
    monkeypatch.setattr(pixelrnn.PixelModel, "log_prob", flaky)
    assert cli("train", *TINY, "--steps", "20", "--save-every", "5", "--eval-every", "100",
               "--out", out) == 1
    err = capsys.readouterr().err
    assert "nan" in err and "step 8" in err and "last.safetensors (step 5)" in err
    assert pixelrnn.checkpoint.describe(out / "last.safetensors")["metadata"]["step"] == "5"
    pixelrnn.load(out / "last.safetensors")
    calls["n"] = 100  # from the first step: nothing to point to
    assert cli("train", *TINY, "--steps", "20", "--out", tmp_path / "r2") == 1
    err = capsys.readouterr().err
    assert "step 1; stopped. No checkpoint was saved yet." in err and err.count("\n") == 1


def test_non_finite_weights_are_never_saved(tmp_path, monkeypatch, capsys):
    """A finite loss with an inf gradient would put NaN into the weights: the run stops before
    a checkpoint holds them."""
    out = tmp_path / "run"
    real = torch.optim.Adam.step

    def poisoned(self, *a, **k):
        result = real(self, *a, **k)
        self.__dict__.setdefault("_n", 0)
        self._n += 1
        if self._n == 10:  # the step of a checkpoint (--save-every 5)
            with torch.no_grad():
                next(iter(self.param_groups[0]["params"])).fill_(float("nan"))
        return result
    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    assert cli("train", *TINY, "--steps", "20", "--save-every", "5", "--grad-clip", "0",
               "--out", out) == 1
    err = capsys.readouterr().err
    assert "weights became non-finite" in err and "last.safetensors (step 5)" in err
    model = pixelrnn.load(out / "last.safetensors")
    assert all(p.isfinite().all() for p in model.parameters())


def test_options_rmsprop_cosine_ema_bf16_dynamic_binarization(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("train", "--data", "binarized-mnist", "--arch", "diagonal_bilstm", "--hidden", "4",
               "--layers", "1", "--batch-size", "4", "--steps", "4", "--optimizer", "rmsprop",
               "--lr-schedule", "cosine", "--warmup", "2", "--ema", "0.9", "--precision", "bf16",
               "--dynamic-binarization", "--eval-batch-size", "500", "--no-progress",
               "--out", out, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and summary["test"]["images"] == 1000
    lrs = [json.loads(x).get("lr") for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lrs[0] is not None
    cfg = json.loads((out / "config.json").read_text())["train"]
    assert cfg["ema"] == 0.9 and cfg["optimizer"] == "rmsprop"


def test_lr_schedule():
    from pixelrnn.train import TrainConfig, lr_factor
    c = TrainConfig(lr_schedule="cosine", warmup=10, steps=110)
    assert lr_factor(c, 0, 110) == pytest.approx(0.1)
    assert lr_factor(c, 9, 110) == pytest.approx(1.0)
    assert lr_factor(c, 60, 110) == pytest.approx(0.5)
    assert lr_factor(c, 110, 110) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(TrainConfig(steps=5), 3, 5) == 1.0
    # with only a time budget the schedule follows the fraction of the budget used
    t = TrainConfig(lr_schedule="linear", max_minutes=1)
    assert lr_factor(t, 50, None, 0.25) == pytest.approx(0.75)
    assert lr_factor(t, 50, None, 1.5) == 0.0
    assert lr_factor(TrainConfig(lr_schedule="cosine", steps=100), 10, 100, 0.5) == pytest.approx(0.5)


def test_bad_train_arguments(tmp_path, capsys):
    for extra, msg in [(["--steps", "5", "--lr", "-1"], "--lr"),
                       ([], "--steps, --epochs, --max-minutes"),
                       (["--steps", "5", "--crop", "axb"], "HxW"),
                       (["--steps", "5", "--dropout", "1"], "--dropout"),
                       (["--steps", "5", "--shift", "-1"], "--shift"),
                       (["--steps", "5", "--dihedral", "1"], "--dihedral must be in [0, 1)"),
                       (["--steps", "5", "--dihedral", "0.5", "--crop", "8x6"], "--dihedral needs square images"),
                       (["--steps", "5", "--dihedral", "0.5", "--arch", "multiscale"],
                        "--dihedral is not available for --arch multiscale"),
                       (["--steps", "5", "--shift", "8"], "smaller than the images (8x8)"),
                       (["--steps", "5", "--threads", "0"], "--threads must be >= 1"),
                       (["--steps", "5", "--threads", "-1"], "--threads must be >= 1"),
                       (["--steps", "5", "--lr", "inf"], "--lr must be a finite number"),
                       (["--max-minutes", "nan"], "--max-minutes must be a finite number"),
                       (["--steps", "5", "--grad-clip", "nan"], "--grad-clip must be a finite number"),
                       (["--steps", "5", "--seed", str(10 ** 16)], "--seed must be in [0, 2**32)"),
                       (["--steps", "5", "--seed", "-1"], "--seed must be in"),
                       (["--steps", "5", "--weight-decay", "-0.1"], "--weight-decay must be >= 0")]:
        assert cli("train", *TINY, *extra, "--out", tmp_path / "x") == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
        assert not (tmp_path / "x").exists()
    assert cli("train", *TINY, "--steps", "1", "--out", "") == 2
    assert "--out must name a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("kept", ["best.safetensors", "config.json", "metrics.jsonl"])
def test_a_new_run_never_replaces_files_of_an_earlier_one(tmp_path, capsys, kept):
    out = tmp_path / "keep"
    out.mkdir()
    (out / kept).write_bytes(b"precious")
    assert cli("train", *TINY, "--steps", "2", "--out", out) == 2
    err = capsys.readouterr().err
    assert f"already holds {kept}" in err and err.count("\n") == 1
    assert (out / kept).read_bytes() == b"precious" and sorted(p.name for p in out.iterdir()) == [kept]


def test_resume_refuses_changed_data_and_has_nothing_to_do_at_its_limit(tmp_path, capsys):
    import numpy as np
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (4, 6, 6), dtype=np.uint8))
    out = tmp_path / "run"
    assert cli("train", *TINY, "--data", f"npz:{data}", "--steps", "3", "--out", out) == 0
    capsys.readouterr()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert cli("train", "--resume", out) == 2  # a finished run, same limit
    err = capsys.readouterr().err
    assert "already at step 3, its limit of 3 steps: nothing to do" in err and err.count("\n") == 1
    assert cli("train", "--resume", out, "--steps", "2") == 2
    assert "nothing to do" in capsys.readouterr().err
    # a signal at the last step: the final evaluation is still to do, and a resume does it
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(out / "state.safetensors"), framework="pt") as f:
        md, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    md["meta"] = json.dumps({**json.loads(md["meta"]), "finished": False})
    save_file(tensors, str(out / "state.safetensors"), metadata=md)
    assert cli("train", "--resume", out) == 0
    assert "step 3 (steps): test NLL" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert cli("train", "--resume", out) == 2 and "nothing to do" in capsys.readouterr().err
    np.savez(data, x_train=rng.integers(0, 256, (25, 6, 6), dtype=np.uint8),
             x_test=rng.integers(0, 256, (4, 6, 6), dtype=np.uint8))
    assert cli("train", "--resume", out, "--steps", "6") == 2
    err = capsys.readouterr().err
    assert "its data changed since the run started (train images 20 -> 25)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_train_and_test_splits_of_different_shapes_are_refused(tmp_path, capsys):
    """x_train 8x8 with x_test 4x4 (or gray with RGB) would train on one size and report the NLL of
    another: a one-line error before anything is written."""
    import numpy as np
    rng = np.random.default_rng(0)
    for name, test_shape, msg in [("size", (5, 4, 4, 3), "train images are 3x8x8 but test images are 3x4x4"),
                                  ("channels", (5, 8, 8), "train images are 3x8x8 but test images are 1x8x8")]:
        data = tmp_path / f"{name}.npz"
        np.savez(data, x_train=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
                 x_test=rng.integers(0, 256, test_shape, dtype=np.uint8))
        out = tmp_path / f"run-{name}"
        assert cli("train", *TINY, "--data", f"npz:{data}", "--steps", "1", "--out", out) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
        assert not out.exists()


def test_skip_bad_warns_once_per_file_in_one_line(tmp_path, capsys):
    import numpy as np
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"ok{i}.png")
    (folder / "broken.png").write_text("not a picture")
    out = tmp_path / "run"
    assert cli("train", *TINY, "--data", f"folder:{folder}", "--skip-bad", "--steps", "1", "--out", out) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "broken.png" in line]
    assert len(warned) == 1 and warned[0].startswith("pixelrnn train: warning: skipping")
    assert json.loads((out / "config.json").read_text())["data"]["skipped"] == [str(folder / "broken.png")]


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    assert cli("train", *TINY, "--steps", "6", "--log-every", "2", "--eval-every", "3", "--out", out) == 0
    acc = EventAccumulator(str(out / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train_nll", "test_nll", "lr", "images_per_s"} <= set(tags)
    assert [e.step for e in acc.Scalars("train_nll")] == [2, 4, 6]


def test_init_fine_tunes_from_a_checkpoint(tmp_path, capsys):
    data = ["--data", "digits", "--batch-size", "8", "--no-progress", "--threads", "1"]
    src = tmp_path / "src"
    assert cli("train", *data, "--arch", "row_lstm", "--hidden", "6", "--layers", "2", "--head", "10",
               "--steps", "6", "--eval-every", "0", "--out", src) == 0
    ckpt = src / "last.safetensors"
    # no model flags: architecture and weights come from the checkpoint (not the defaults)
    ft = tmp_path / "ft"
    assert cli("train", *data, "--init", ckpt, "--lr", "1e-9", "--steps", "2", "--eval-every", "0",
               "--out", ft, "--json") == 0
    capsys.readouterr()
    cfg = json.loads((ft / "config.json").read_text())
    assert cfg["model"] == json.loads((src / "config.json").read_text())["model"]
    assert (cfg["train"]["arch"], cfg["train"]["hidden"], cfg["train"]["head"]) == ("row_lstm", 6, 10)
    a, b = load_file(ckpt), load_file(ft / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    fresh = pixelrnn.create_model("row_lstm", channels=1, levels=17, hidden=6, layers=2, head=10)
    assert not all(torch.allclose(v, b[k], atol=1e-3) for k, v in fresh.state_dict().items())
    # a fine-tuned run resumes like any other
    assert cli("train", "--resume", ft, "--steps", "4") == 0
    assert pixelrnn.load(ft / "last.safetensors").config.hidden == 6
    capsys.readouterr()
    # errors: a model flag with --init, other data, a bad file, a conflicting Python config
    for extra, msg in [(["--hidden", "6"], "drop --hidden"),
                       (["--data", "binarized-mnist"], "2 levels"),
                       (["--init", tmp_path / "nope.safetensors"], "not found")]:
        assert cli("train", *data, "--init", ckpt, "--steps", "1", *extra, "--out", tmp_path / "x") == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    from pixelrnn.train import TrainConfig, train
    with pytest.raises(ValueError, match="conflicts with the --init"):
        train(TrainConfig(data="digits", init=str(ckpt), layers=3, steps=1, out=str(tmp_path / "y"),
                          progress=False))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "last.safetensors").exists()


def test_a_fine_tuned_run_resumes_with_the_checkpoints_exact_model(tmp_path):
    """Settings that are not train flags (here first_kernel) survive a resume of an --init run."""
    model = pixelrnn.create_model("row_lstm", channels=1, levels=17, hidden=6, layers=1, first_kernel=5)
    pixelrnn.save(model, tmp_path / "m.safetensors")
    ft = tmp_path / "ft"
    assert cli("train", "--data", "digits", "--init", tmp_path / "m.safetensors", "--steps", "2",
               "--eval-every", "0", "--no-progress", "--threads", "1", "--out", ft) == 0
    assert cli("train", "--resume", ft, "--steps", "3") == 0
    assert pixelrnn.load(ft / "last.safetensors").config.first_kernel == 5


def test_regularisation_is_recorded_and_changes_training_only(tmp_path):
    """--shift/--hflip/--dropout are training settings: config.json records them, the batches
    and the updates differ from a plain run, the model config and the checkpoint keys do not."""
    base = [*TINY, "--deterministic", "--steps", "6", "--eval-every", "0"]
    assert cli("train", *base, "--out", tmp_path / "plain") == 0
    for name, extra in [("shift", ["--shift", "1"]), ("flip", ["--hflip"]), ("drop", ["--dropout", "0.5"])]:
        assert cli("train", *base, *extra, "--out", tmp_path / name) == 0
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    a = load_file(tmp_path / "plain" / "last.safetensors")
    for name, key, value in [("shift", "shift", 1), ("flip", "hflip", True), ("drop", "dropout", 0.5)]:
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        assert cfg["train"][key] == value and plain["train"][key] in (0, False)
        assert cfg["model"] == plain["model"]
        b = load_file(tmp_path / name / "last.safetensors")
        assert a.keys() == b.keys()
        assert any(not torch.equal(a[k], b[k]) for k in a), f"--{key} did not change training"


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_the_symmetry_bias_conditions_every_architecture_and_leaves_the_identity_alone(arch):
    from pixelrnn.train import LogProb, SymmetryBias
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=4, hidden=6, layers=2).double()
    bias = SymmetryBias(model.term_width).double()
    torch.nn.init.normal_(bias.table)
    net = LogProb(model, bias)
    x = torch.randint(0, 4, (3, 3, 5, 5))
    assert torch.equal(net(x, torch.zeros(3, dtype=torch.long)), model.log_prob(x))
    assert torch.equal(net(x), model.log_prob(x))
    which = torch.tensor([0, 2, 7])
    lp = net(x, which)
    plain = model.log_prob(x)
    assert lp[0] == plain[0] and bool((lp[1:] != plain[1:]).all())
    # a proper distribution under every symmetry: on a 1x1 image the 4**3 values sum to 1
    grid = torch.cartesian_prod(*[torch.arange(4)] * 3).reshape(64, 3, 1, 1)
    for t in range(8):
        with torch.no_grad():
            total = net(grid, torch.full((64,), t)).exp().sum()
        assert abs(float(total) - 1) < 1e-9
    # (its causality: tests/test_causality.py)


def test_dihedral_training_keeps_the_model_plain_and_its_symmetry_biases_in_the_state(tmp_path):
    base = [*TINY, "--arch", "row_lstm", "--deterministic", "--steps", "8", "--eval-every", "0"]
    assert cli("train", *base, "--out", tmp_path / "plain") == 0
    assert cli("train", *base, "--dihedral", "0.6", "--out", tmp_path / "dih") == 0
    cfg = json.loads((tmp_path / "dih" / "config.json").read_text())
    plain = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert cfg["train"]["dihedral"] == 0.6 and plain["train"]["dihedral"] == 0
    assert cfg["model"] == plain["model"]
    a, b = (load_file(tmp_path / r / "last.safetensors") for r in ("plain", "dih"))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    model = pixelrnn.load(tmp_path / "dih" / "last.safetensors")  # an ordinary model
    assert model.net.context_channels == 0 and model.classes == 0
    state = load_file(tmp_path / "dih" / "state.safetensors")
    table = state["symmetry.table"]
    assert table.shape == (7, 4 * 6) and bool((table != 0).any())  # 1 layer of 4h, h = 6
    assert not any(k.startswith("symmetry.") for k in load_file(tmp_path / "plain" / "state.safetensors"))


def test_demo_checks_its_arguments_before_moving_an_earlier_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "report.html").write_text("earlier")
    for extra, msg in [(["--minutes", "0"], "--minutes must be a finite number > 0"),
                       (["--samples", "-1"], "--samples must be >= 0"),
                       (["--threads", "0"], "--threads must be >= 1")]:
        assert cli("demo", "--out", out, *extra) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["demo"] and (out / "report.html").read_text() == "earlier"


def test_an_interrupted_demo_writes_no_report(tmp_path, capsys, monkeypatch):
    import pixelrnn.training as tr

    def stopped(cfg, resume=False):
        return tr.TrainResult(step=5, epoch=0, test=None, best_nll=None, stopped_by="signal",
                              run_dir=cfg.out)
    monkeypatch.setattr(tr, "train", stopped)
    assert cli("demo", "--out", tmp_path / "demo", "--no-progress") == 130
    assert "interrupted at step 5; no report written" in capsys.readouterr().out
    assert not (tmp_path / "demo" / "report.html").exists()


def test_a_run_on_relative_paths_resumes_from_another_directory(tmp_path, monkeypatch, capsys):
    import numpy as np
    (tmp_path / "proj").mkdir()
    np.savez(tmp_path / "proj" / "d.npz", x=np.random.default_rng(0).integers(0, 256, (20, 6, 6), dtype=np.uint8))
    monkeypatch.chdir(tmp_path / "proj")
    assert cli("train", *TINY, "--data", "npz:d.npz", "--steps", "2", "--out", "run") == 0
    saved = json.loads((tmp_path / "proj" / "run" / "config.json").read_text())["train"]["data"]
    assert saved == f"npz:{tmp_path / 'proj' / 'd.npz'}"
    monkeypatch.chdir(tmp_path)
    assert cli("train", "--resume", "proj/run", "--steps", "4") == 0
    assert "step 4 (steps)" in capsys.readouterr().out


def test_the_training_curve_of_a_run(tmp_path):
    from PIL import Image
    from pixelrnn.report import plot_curves
    out = tmp_path / "run"
    assert cli("train", *TINY, "--steps", "12", "--log-every", "3", "--eval-every", "6", "--out", out) == 0
    assert plot_curves(out / "metrics.jsonl", out / "curve.png", 64)
    with Image.open(out / "curve.png") as im:
        assert im.format == "PNG" and min(im.size) > 100
    assert not list(out.glob(".curve.png.*"))  # written through a temporary file, nothing left


def test_a_signal_during_the_final_evaluation_stops_it_and_a_resume_does_it(tmp_path, monkeypatch, capsys):
    import pixelrnn.training.checkpoints as tr
    real = tr.evaluate

    def sigterm_then_evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the test split is evaluated
        return real(*args, **kwargs)
    monkeypatch.setattr(tr, "evaluate", sigterm_then_evaluate)
    out = tmp_path / "run"
    assert cli("train", *TINY, "--steps", "6", "--eval-every", "100", "--eval-batch-size", "8",
               "--out", out) == 130
    assert "step 6 (signal)" in capsys.readouterr().out
    assert not (out / "best.safetensors").exists()  # no evaluation finished
    monkeypatch.setattr(tr, "evaluate", real)
    assert cli("train", "--resume", out) == 0
    assert "step 6 (steps): test NLL" in capsys.readouterr().out
    assert (out / "best.safetensors").exists()
    finals = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r.get("final")]
    assert len(finals) == 1 and "test_nll" in finals[0]
