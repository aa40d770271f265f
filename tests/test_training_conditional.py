"""Training with labels (--conditional), --init from an unconditional model, --eval-limit,
--checkpoint-activations, and eval of a conditional model."""
import json

import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.data import load_dataset

FAST = ["--arch", "pixelcnn", "--hidden", "6", "--layers", "1", "--threads", "1", "--no-progress",
        "--batch-size", "8"]


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_conditional_training_on_the_labels(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--conditional", "--steps", "12", "--eval-limit", "50",
                 "--eval-every", "6", "--out", str(run), *FAST]) == 0
    model = pixelrnn.load(run / "best.safetensors")
    train = load_dataset("digits", "train")
    assert model.classes == 10 and model.class_names == train.class_names
    counts = torch.bincount(train.labels, minlength=10).double()
    torch.testing.assert_close(model.prior.double(), counts / counts.sum())
    evals = [r for r in records(run) if "test_nll" in r]
    assert len(evals) >= 2 and all(r["test_images"] == 50 and r["test_given_labels"] for r in evals)
    # the recorded NLL is -log p(x | y) of the first 50 test digits
    test = load_dataset("digits", "test")
    last = pixelrnn.load(run / "last.safetensors")
    with torch.no_grad():
        nll = -last.log_prob(test.batch(slice(0, 50)), test.labels_of(slice(0, 50))).double().mean().item()
    assert abs(evals[-1]["test_nll"] - nll) < 1e-3
    capsys.readouterr()
    assert main(["eval", str(run / "last.safetensors"), "--data", "digits", "--limit", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 50 and abs(out["given_labels"]["nll_nats"] - nll) < 1e-3
    with torch.no_grad():
        marginal = -last.log_prob(test.batch(slice(0, 50))).double().mean().item()
    assert abs(out["nll_nats"] - marginal) < 1e-3 and out["nll_nats"] > out["given_labels"]["nll_nats"] - 2.31
    # resuming goes on with the labels
    assert main(["train", "--resume", str(run), "--steps", "16"]) == 0
    assert pixelrnn.load(run / "last.safetensors").classes == 10


def test_conditional_needs_labels(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((20, 1, 4, 4), dtype=np.uint8))
    assert main(["train", "--data", f"npy:{tmp_path / 'x.npy'}", "--conditional", "--steps", "2",
                 "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "--conditional needs a dataset with labels" in capsys.readouterr().err


def test_init_an_unconditional_model_as_a_conditional_one(tmp_path, capsys):
    """--init of an unconditional checkpoint with --conditional: the label vectors start at
    zero, so the new model gives the checkpoint's likelihood for every label."""
    first = tmp_path / "first"
    assert main(["train", "--data", "digits", "--steps", "4", "--out", str(first), *FAST]) == 0
    base = pixelrnn.load(first / "last.safetensors")
    from pixelrnn.training.config import TrainConfig, init_model
    cfg = TrainConfig(data="digits", init=str(first / "last.safetensors"), steps=1, conditional=True)
    model = init_model(cfg, 1, 17, classes=10)
    x = load_dataset("digits", "test").batch(slice(0, 5))
    with torch.no_grad():
        for y in (0, 7):
            torch.testing.assert_close(model.log_prob(x, y), base.log_prob(x))
    run = tmp_path / "cond"
    assert main(["train", "--data", "digits", "--conditional", "--init", str(first / "last.safetensors"),
                 "--steps", "3", "--out", str(run), "--threads", "1", "--no-progress"]) == 0
    assert pixelrnn.load(run / "last.safetensors").classes == 10
    capsys.readouterr()
    assert main(["train", "--data", "digits", "--init", str(run / "last.safetensors"), "--steps", "1",
                 "--out", str(tmp_path / "back"), "--no-progress"]) == 2
    assert "10 label(s) but the run is unconditional" in capsys.readouterr().err


def test_checkpoint_activations_train_the_same_weights(tmp_path, capsys):
    """The same run with --checkpoint-activations (bands of rows recomputed) ends with the same
    weights up to float rounding; with dropout it runs too (other draws, one per band)."""
    assert main(["train", "--data", "digits", "--checkpoint-activations", "--checkpoint-bands", "0",
                 "--out", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "--checkpoint-bands must be an integer >= 1" in capsys.readouterr().err
    runs = []
    for extra in ([], ["--checkpoint-activations", "--checkpoint-bands", "3"],
                  ["--checkpoint-activations", "--dropout", "0.2"]):
        run = tmp_path / f"r{len(runs)}"
        assert main(["train", "--data", "digits", "--arch", "row_lstm", "--hidden", "6", "--layers", "2",
                     "--steps", "5", "--out", str(run), "--threads", "1", "--no-progress", "--deterministic",
                     *extra]) == 0
        runs.append(pixelrnn.load(run / "last.safetensors").state_dict())
    for k in runs[0]:
        torch.testing.assert_close(runs[1][k], runs[0][k], rtol=1e-4, atol=1e-5, msg=k)
    assert any(not torch.allclose(runs[2][k], runs[0][k]) for k in runs[0])


def test_init_takes_a_pretrained_name(tmp_path):
    """--init mnist: the shipped model's architecture and weights (a conditional model: the run
    must be --conditional too, else a clear error)."""
    from pixelrnn.training.config import TrainConfig, init_model
    with pytest.raises(ValueError, match="--init mnist models 10 label.* the run is unconditional"):
        init_model(TrainConfig(data="mnist", init="mnist", steps=1), 1, 256)
    cfg = TrainConfig(data="mnist", init="mnist", conditional=True, steps=1)
    model = init_model(cfg, 1, 256, classes=10)
    shipped = pixelrnn.pretrained("mnist")
    assert model.config.to_dict() == shipped.config.to_dict()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))


def test_label_lr_gives_the_label_vectors_their_own_learning_rate(tmp_path, capsys):
    from pixelrnn.training.config import TrainConfig
    from pixelrnn.training.optim import make_optimizer, param_groups, set_lr
    model = pixelrnn.create_model("row_lstm", channels=1, levels=4, hidden=4, layers=1, classes=3)
    cfg = TrainConfig(conditional=True, lr=1e-3, label_lr=2e-2, steps=1)
    opt = make_optimizer(cfg, param_groups(cfg, model, []))
    set_lr(opt, 5e-4)  # the schedule scales both
    assert [g["lr"] for g in opt.param_groups] == [5e-4, 1e-2]
    assert opt.param_groups[1]["params"] == [model.labels.weight]
    # the parameters keep their order (and so a saved optimizer state its meaning)
    assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(p) for p in model.parameters()]
    run = tmp_path / "run"
    assert main(["train", "--data", "digits", "--conditional", "--label-lr", "1e-2", "--steps", "4",
                 "--out", str(run), *FAST]) == 0
    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0
    assert main(["train", "--data", "digits", "--label-lr", "1e-2", "--steps", "1",
                 "--out", str(tmp_path / "x"), *FAST]) == 2
    assert "--label-lr applies to --conditional" in capsys.readouterr().err
