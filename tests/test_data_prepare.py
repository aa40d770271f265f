"""pixelrnn prepare (issue 24 item 1): any source once into a memory-mappable .npy that gives the
same splits, images, labels and levels as the source."""
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.data.prepare import prepare


def _cifar(root, seed=0):
    rng = np.random.default_rng(seed)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = 3 if name == "test_batch" else 2
        with open(root / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": [int(v) for v in rng.integers(0, 10, n)]}, f)


def _same(a, b):
    assert len(a) == len(b) and torch.equal(a.images, b.images) and a.levels == b.levels
    assert (a.labels is None and b.labels is None) or torch.equal(a.labels, b.labels)
    assert a.class_names == b.class_names


@pytest.mark.parametrize("kind", ["cifar10", "digits"])
def test_a_prepared_npy_gives_the_sources_splits_labels_and_levels(tmp_path, kind):
    spec = "digits"
    if kind == "cifar10":
        (tmp_path / "c").mkdir()
        _cifar(tmp_path / "c")
        spec = f"cifar10:{tmp_path / 'c'}"
    seen = []
    done = prepare(spec, tmp_path / "out.npy", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] == done.shape[0]
    assert (tmp_path / "out.labels.npy").is_file() and done.labels_path == tmp_path / "out.labels.npy"
    meta = json.loads((tmp_path / "out.meta.json").read_text())
    assert meta["source"] == spec and meta["train"] == done.train
    for split in ("train", "test", "all"):
        prepared = load_dataset(f"npy:{tmp_path / 'out.npy'}", split)
        assert prepared.store is not None  # memory-mapped
        _same(prepared, load_dataset(spec, split))
    assert np.load(tmp_path / "out.npy").dtype == np.uint8


def test_prepare_applies_levels_and_crop(tmp_path):
    prepare("digits", tmp_path / "d.npy", levels=4, crop=(6, 6))
    _same(load_dataset(f"npy:{tmp_path / 'd.npy'}", "test"), load_dataset("digits", "test", levels=4, crop=(6, 6)))


def test_prepare_unlabelled_removes_a_stale_labels_file(tmp_path):
    for i in range(4):
        Image.fromarray(np.full((5, 4), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    np.save(tmp_path / "o.labels.npy", np.arange(4))
    done = prepare(f"folder:{tmp_path}", tmp_path / "o.npy")
    assert done.labels_path is None and not (tmp_path / "o.labels.npy").exists()
    _same(load_dataset(f"npy:{tmp_path / 'o.npy'}", "train"), load_dataset(f"folder:{tmp_path}", "train"))


def test_cli_prepare_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "p.npy"
    assert main(["prepare", "digits", str(out), "--progress"]) == 0
    captured = capsys.readouterr()
    assert "wrote" in captured.out and "1438 train, 359 test" in captured.out and "10 classes" in captured.out
    assert "prepare" in captured.err  # the bar
    assert main(["prepare", "digits", str(out)]) == 2
    assert "exists (use --force to overwrite)" in capsys.readouterr().err
    out.unlink()
    assert main(["prepare", "digits", str(out)]) == 2  # the labels beside it would be replaced
    assert "p.labels.npy exists" in capsys.readouterr().err
    assert main(["prepare", "digits", str(out), "--force", "--levels", "4"]) == 0
    assert load_dataset(f"npy:{out}", "train").levels == 4
    assert main(["prepare", "digits", str(tmp_path / "p.npz")]) == 2
    assert "OUT must be a .npy file" in capsys.readouterr().err
    assert main(["prepare", "nonsense", str(tmp_path / "q.npy")]) == 2
    assert "unknown dataset 'nonsense'" in capsys.readouterr().err and not (tmp_path / "q.npy").exists()
