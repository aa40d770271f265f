"""The command line with conditional models: classify, sample --label, complete --label."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn.cli import main


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory):
    """A tiny conditional model of the 17-level 8×8 digits, with names and a prior."""
    torch.manual_seed(0)
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=6, layers=1, classes=10)
    with torch.no_grad():
        model.labels.weight.normal_(0, 1.0)
    model.class_names = [f"d{k}" for k in range(10)]
    model.set_prior(torch.arange(1, 11))
    path = tmp_path_factory.mktemp("cond") / "m.safetensors"
    pixelrnn.save(model, path, metadata={"image_size": "8x8"})
    return path


def test_classify_prints_a_report_and_json(cond_ckpt, capsys):
    assert main(["classify", str(cond_ckpt), "--data", "digits", "--limit", "12", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"accuracy", "nll_nats", "ece", "predictions", "confusion"}
    assert report["images"] == 12 and report["split"] == "test" and len(report["predictions"]) == 12
    p = report["predictions"][0]
    assert set(p) == {"image", "label", "predicted", "probs"} and len(p["probs"]) == 10
    assert abs(sum(p["probs"]) - 1) < 1e-4 and p["predicted"] == int(np.argmax(p["probs"]))
    assert 0 <= report["accuracy"] <= 1 and report["nll_nats"] > 0
    assert main(["classify", str(cond_ckpt), "--data", "digits", "--limit", "12"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "ECE" in out and "d9" in out


def test_classify_refuses_what_it_cannot_do(cond_ckpt, tmp_path, capsys):
    plain = tmp_path / "plain.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=4, layers=1), plain)
    assert main(["classify", str(plain), "--data", "digits"]) == 2
    assert "not a conditional model" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 8, 8), dtype=np.uint8))
    assert main(["classify", str(cond_ckpt), "--data", f"npy:{tmp_path / 'x.npy'}"]) == 2
    assert "no labels" in capsys.readouterr().err


def test_sample_with_labels_one_row_per_label(cond_ckpt, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(cond_ckpt), "-n", "3", "--label", "2", "d7", "--out", str(out),
                 "--npz", str(tmp_path / "s.npz"), "--no-progress"]) == 0
    assert np.asarray(Image.open(out)).shape[:2] == (2 * 8 + 1, 3 * 8 + 2)  # 2 rows of 3
    assert len(np.load(tmp_path / "s.npz")["images"]) == 6
    # the same images as the library draws for those labels with the same seed
    model = pixelrnn.load(cond_ckpt)
    expect = model.sample(6, 8, 8, y=torch.tensor([2, 2, 2, 7, 7, 7]), generator=torch.Generator().manual_seed(0))
    assert np.array_equal(np.load(tmp_path / "s.npz")["images"], expect.numpy())
    assert main(["sample", str(cond_ckpt), "-n", "2", "--label", "12", "--out", str(tmp_path / "b.png")]) == 2
    assert "--label '12'" in capsys.readouterr().err


def test_complete_with_and_without_a_label(cond_ckpt, tmp_path, capsys):
    for extra in ([], ["--label", "d3"]):
        out = tmp_path / f"c{len(extra)}.png"
        assert main(["complete", str(cond_ckpt), "--data", "digits", "--n", "4", "--mask", "bottom-half",
                     "--particles", "3", "--out", str(out), "--no-progress", *extra]) == 0
        assert out.exists()
    plain = tmp_path / "plain.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=4, layers=1), plain)
    assert main(["complete", str(plain), "--data", "digits", "--mask", "bottom-half", "--label", "3",
                 "--out", str(tmp_path / "p.png")]) == 2
    assert "needs a conditional model" in capsys.readouterr().err


def test_score_uses_the_marginal_likelihood(cond_ckpt, tmp_path, capsys):
    """score of a conditional model: -log p(x) under the marginal, per image, and heat maps of
    the marginal's per-value conditionals."""
    from pixelrnn.data import load_dataset
    assert main(["score", str(cond_ckpt), "--data", "digits", "--method", "nll", "--json",
                 "--heatmap", str(tmp_path / "h.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    model = pixelrnn.load(cond_ckpt)
    x = load_dataset("digits", "test").batch(slice(0, 3))
    with torch.no_grad():
        expect = (-model.log_prob(x)).tolist()
    got = [r["nll_nats"] for r in out["scores"][:3]]
    assert np.allclose(got, expect, rtol=1e-5)
    assert (tmp_path / "h.png").exists()
