"""Which images score, eval and compress read of a dataset spec (issue 23 item 4): the user's own
data (PREFIX:PATH) whole by default, a built-in dataset its test split, --split when given; and
each command says which split and how many images it used."""
import json

import numpy as np
import pytest

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.commands.common import data_note, default_split


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_default_split_rule():
    for spec in ("npy:my.npy", "npz:/d/x.npz", "folder:imgs", "mnist-idx:raw", "cifar10:c", "other:x"):
        assert default_split(spec, None) == "all"
        assert default_split(spec, "test") == "test" and default_split(spec, "train") == "train"
    for spec in ("mnist", "binarized-mnist", "digits", "photos32"):
        assert default_split(spec, None) == "test" and default_split(spec, "all") == "all"
    assert data_note("mnist", "test", 1000) == "mnist, test split: 1000 images"
    assert data_note("npy:a.npy", "all", 5, 20) == "npy:a.npy, every image: the first 5 of 20 images"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=4, hidden=4, layers=1)
    pixelrnn.save(model, root / "m.safetensors")
    images = np.random.default_rng(0).integers(0, 256, (20, 8, 8), dtype=np.uint8)
    np.save(root / "my.npy", images)
    return root


def test_score_eval_and_compress_take_every_image_of_user_data(files, capsys):
    ckpt, data = files / "m.safetensors", f"npy:{files / 'my.npy'}"
    rc, out, err = cli(capsys, "score", ckpt, "--data", data, "--levels", 4, "--json")
    assert rc == 0 and len(json.loads(out)["scores"]) == 20
    assert f"scoring {data}, every image: 20 images" in err
    rc, out, _ = cli(capsys, "score", ckpt, "--data", data, "--levels", 4)
    assert rc == 0 and f"of {data}, every image: 20 images" in out
    rc, out, err = cli(capsys, "score", ckpt, "--data", data, "--levels", 4, "--split", "test", "--json")
    assert rc == 0 and len(json.loads(out)["scores"]) == 2 and "test split: 2 images" in err
    rc, out, _ = cli(capsys, "eval", ckpt, "--data", data, "--levels", 4, "--json")
    assert rc == 0 and json.loads(out)["images"] == 20 and json.loads(out)["split"] == "all"
    rc, out, _ = cli(capsys, "eval", ckpt, "--data", data, "--levels", 4, "--split", "train")
    assert rc == 0 and "train split: 18 images" in out
    rc, out, _ = cli(capsys, "compress", ckpt, "--data", data, "--levels", 4, "-o", files / "a.prnn",
                     "--no-progress")
    assert rc == 0 and "every image: 20 images" in out
    rc, out, _ = cli(capsys, "compress", ckpt, "--data", data, "--levels", 4, "--split", "test",
                     "-o", files / "t.prnn", "--no-progress", "--json")
    assert rc == 0 and json.loads(out)["images"] == 2
    rc, _, err = cli(capsys, "compress", ckpt, "--data", data, "-o", files / "b.prnn")
    assert rc == 2 and "pass --levels 4" in err
    rc, _, err = cli(capsys, "compress", ckpt, "--npz", files / "my.npy", "--split", "test", "-o", files / "c.prnn")
    assert rc == 2 and "only apply to --data" in err


def test_builtin_datasets_keep_the_test_split(files, capsys):
    ckpt = files / "m.safetensors"
    rc, out, _ = cli(capsys, "eval", ckpt, "--data", "digits", "--levels", 4)
    assert rc == 0 and out.startswith("digits, test split: 359 images: NLL")
    rc, out, err = cli(capsys, "score", ckpt, "--data", "digits", "--levels", 4, "--limit", 3, "--json")
    assert rc == 0 and "digits, test split: the first 3 of 359 images" in err
