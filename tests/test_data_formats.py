"""The paper's datasets' formats (issue 24 item 2): downsampled ImageNet (imagenet32:DIR,
imagenet64:DIR) read batch file by batch file, and Larochelle & Murray's binarized MNIST
(binarized-mnist-amat:DIR). Small files of each format are built here."""
import warnings

import numpy as np
import pytest
import torch

from pixelrnn.data import DataError, DataWarning, load_dataset
from pixelrnn.data.imagenet import CompressedMember
from pixelrnn.data.prepare import prepare

TRAIN_SIZES = (3, 1, 2, 2, 1, 3, 1, 2, 1, 2)  # 18 images in 10 batch files


def make_imagenet(root, side=32, compressed=True, sizes=TRAIN_SIZES, n_val=4, labels=None):
    """The batch files with random images (and random labels, or all ``labels``); returns the
    (N, 3, S, S) images and 1-based labels of the train files (in order) and of the validation file."""
    rng = np.random.default_rng(side)
    save = np.savez_compressed if compressed else np.savez
    out = {}
    for which, names, counts in (("train", [f"train_data_batch_{i}.npz" for i in range(1, 11)], sizes),
                                 ("test", ["val_data.npz"], (n_val,))):
        images, all_labels = [], []
        for name, n in zip(names, counts):
            x = rng.integers(0, 256, (n, 3, side, side), dtype=np.uint8)
            y = rng.integers(1, 1001, n) if labels is None else np.full(n, labels)
            rows = np.concatenate([x[:, c].reshape(n, side * side) for c in range(3)], axis=1)
            extra = {"mean": rows.mean(0)} if which == "train" else {}
            save(root / name, data=rows, labels=list(y), **extra)
            images.append(x)
            all_labels.append(np.asarray(y))
        out[which] = np.concatenate(images), np.concatenate(all_labels)
    return out


@pytest.mark.parametrize("compressed", [True, False])
def test_imagenet32_splits_layout_and_labels(tmp_path, compressed):
    files = make_imagenet(tmp_path, compressed=compressed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train = load_dataset(f"imagenet32:{tmp_path}", "train")
        test, both = load_dataset(f"imagenet32:{tmp_path}", "test"), load_dataset(f"imagenet32:{tmp_path}", "all")
    warned = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(warned) == (2 if compressed else 0)  # train and all, not the one validation file
    assert all("pixelrnn prepare imagenet32:" in w for w in warned)
    (x_tr, y_tr), (x_te, y_te) = files["train"], files["test"]
    assert (len(train), train.channels, train.height, train.width, train.levels) == (18, 3, 32, 32, 256)
    assert np.array_equal(train.images.numpy(), x_tr) and np.array_equal(test.images.numpy(), x_te)
    assert train.labels.tolist() == (y_tr - 1).tolist() and test.labels.tolist() == (y_te - 1).tolist()
    assert len(train.class_names) == 1000 and train.class_names[0] == "1"
    assert torch.equal(both.labels, torch.cat([train.labels, test.labels]))
    idx = torch.tensor([17, 0, 3, 9, 3])  # across batch files, in any order
    assert np.array_equal(train.batch(idx).numpy(), x_tr[idx.numpy()])
    assert np.array_equal(both.batch(torch.tensor([18, 2])).numpy(), np.concatenate([x_tr, x_te])[[18, 2]])
    assert all(isinstance(s, CompressedMember) != (not compressed) for s in train.store.shards)
    if not compressed:
        assert all(isinstance(s, np.memmap) for s in train.store.shards)


def test_imagenet_keeps_at_most_two_batch_files_in_memory(tmp_path):
    make_imagenet(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        train = load_dataset(f"imagenet32:{tmp_path}", "train")
    cache = train.store.shards[0].cache
    for start in range(0, 18, 4):
        train.batch(slice(start, start + 4))
        assert len(cache.arrays) <= 2
    train.batch(torch.arange(18))  # every file: still two at the end
    assert len(cache.arrays) == 2


def test_imagenet64_and_wrong_sizes(tmp_path):
    files = make_imagenet(tmp_path, side=64, sizes=(1,) * 10, n_val=2)
    test = load_dataset(f"imagenet64:{tmp_path}", "test")
    assert test.images.shape == (2, 3, 64, 64) and np.array_equal(test.images.numpy(), files["test"][0])
    with pytest.raises(DataError, match=r"val_data\.npz: data is uint8 \(2, 12288\); expected uint8 \(N, 3072\)"):
        load_dataset(f"imagenet32:{tmp_path}", "test")


@pytest.mark.parametrize("bad,match", [(0, r"labels must be 1 \.\.\. 1000, found 0"),
                                       (1001, "label 1000 is out of range for 1000 classes")])
def test_imagenet_bad_labels_name_the_file(tmp_path, bad, match):
    make_imagenet(tmp_path, labels=bad)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"imagenet32:{tmp_path}", "test")
    assert "val_data.npz[labels]" in str(err.value)


def test_imagenet_missing_files(tmp_path):
    make_imagenet(tmp_path)
    (tmp_path / "train_data_batch_7.npz").unlink()
    assert len(load_dataset(f"imagenet32:{tmp_path}", "test")) == 4  # only the files of the split
    with pytest.raises(DataError, match="has no train_data_batch_7.npz"):
        load_dataset(f"imagenet32:{tmp_path}", "train")
    (tmp_path / "val_data.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"cannot read .*val_data\.npz"):
        load_dataset(f"imagenet32:{tmp_path}", "test")


def test_prepare_imagenet_gives_a_mapped_copy(tmp_path):
    (tmp_path / "in").mkdir()
    make_imagenet(tmp_path / "in")
    spec = f"imagenet32:{tmp_path / 'in'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        prepare(spec, tmp_path / "i.npy")
        for split in ("train", "test"):
            a, b = load_dataset(f"npy:{tmp_path / 'i.npy'}", split), load_dataset(spec, split)
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
            assert a.class_names == b.class_names and isinstance(a.store.shards[0], np.memmap)


# ------------------------------------------------------------------------------------------
# binarized-mnist-amat:DIR
# ------------------------------------------------------------------------------------------

def make_amat(root, sizes=(5, 2, 3)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {}
    for name, n in zip(("train", "valid", "test"), sizes):
        x = rng.integers(0, 2, (n, 784), dtype=np.uint8)
        text = "".join(" ".join(map(str, row)) + "\n" for row in x)
        (root / f"binarized_mnist_{name}.amat").write_text(text)
        out[name] = x.reshape(n, 1, 28, 28)
    return out


def test_binarized_mnist_amat_trains_on_train_and_valid(tmp_path):
    x = make_amat(tmp_path)
    train, test, both = (load_dataset(f"binarized-mnist-amat:{tmp_path}", s) for s in ("train", "test", "all"))
    assert train.levels == 2 and train.labels is None and (train.channels, train.height, train.width) == (1, 28, 28)
    assert np.array_equal(train.images.numpy(), np.concatenate([x["train"], x["valid"]]))
    assert np.array_equal(test.images.numpy(), x["test"]) and len(both) == 10
    prepare(f"binarized-mnist-amat:{tmp_path}", tmp_path / "b.npy")
    again = load_dataset(f"npy:{tmp_path / 'b.npy'}", "test")
    assert again.levels == 2 and torch.equal(again.images, test.images) and again.labels is None


@pytest.mark.parametrize("content,match", [
    ("0 1 2\n", "byte 4 is b'2', expected only 0, 1 and white space"),
    ("0 1 10\n", "two digits together"),
    (" ".join(["1"] * 783) + "\n", "a line of 783 values; expected 784"),
    ("1.0 0\n", r"byte 1 is b'\.'"),
])
def test_bad_amat_files_name_the_file(tmp_path, content, match):
    make_amat(tmp_path)
    (tmp_path / "binarized_mnist_test.amat").write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"binarized-mnist-amat:{tmp_path}", "test")
    assert "binarized_mnist_test.amat" in str(err.value)


def test_amat_needs_its_files(tmp_path):
    make_amat(tmp_path)
    (tmp_path / "binarized_mnist_valid.amat").unlink()
    assert len(load_dataset(f"binarized-mnist-amat:{tmp_path}", "test")) == 3
    with pytest.raises(DataError, match="has no binarized_mnist_valid.amat"):
        load_dataset(f"binarized-mnist-amat:{tmp_path}", "train")
