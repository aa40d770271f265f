"""Memory-mapped data (issue 24 item 1): npy:PATH and uncompressed npz members are mapped, their
splits are views read batch by batch, and the results equal those of data read into memory."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pixelrnn.data import DataError, load_dataset
from pixelrnn.data.arrays import load_array_file


def _images(n=40, c=3, h=6, w=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


def _anon_rss() -> int:
    """Bytes of this process's memory that are not file mappings (a copy of the data would be)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


def test_npy_splits_are_views_of_one_memory_map(tmp_path):
    x = _images()
    np.save(tmp_path / "x.npy", x)
    train, test = (load_dataset(f"npy:{tmp_path / 'x.npy'}", s) for s in ("train", "test"))
    for ds in (train, test):
        assert ds.store is not None and isinstance(ds.store.shards[0], np.memmap)
        assert Path(ds.store.shards[0].filename) == tmp_path / "x.npy" and "memory-mapped" in repr(ds)
    parts = load_array_file(tmp_path / "x.npy", "all")  # both splits of one load: one mapping
    assert np.shares_memory(parts.train.shards[0], parts.test.shards[0])
    perm = np.random.default_rng(0).permutation(40)  # the seeded 90/10 split, as in memory
    assert np.array_equal(train.images.numpy(), x[perm[:36]]) and np.array_equal(test.images.numpy(), x[perm[36:]])
    idx = torch.tensor([5, 0, 35, 5])
    got = train.batch(idx)
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), x[perm[:36]][[5, 0, 35, 5]])
    assert np.array_equal(train.batch(slice(2, 6)).numpy(), x[perm[2:6]])
    assert np.array_equal(train[3].numpy(), x[perm[3]]) and train[3].shape == (3, 6, 5)
    assert (len(train), train.channels, train.height, train.width) == (36, 3, 6, 5)
    assert train.names[:2] == ["train/0", "train/1"] and len(train.names) == 36 and test.names[-1] == "test/3"


def test_all_of_a_mapped_file_and_a_data_loader(tmp_path):
    x = _images(n=11, c=1)
    np.save(tmp_path / "x.npy", x[:, 0])  # N x H x W
    both = load_dataset(f"npy:{tmp_path / 'x.npy'}", "all")
    perm = np.random.default_rng(0).permutation(11)
    assert both.store is not None and np.array_equal(both.images.numpy(), x[perm])
    assert both.names[9] == "train/9" and both.names[10] == "test/0"
    batches = list(torch.utils.data.DataLoader(both, batch_size=4))
    assert torch.equal(torch.cat(batches), torch.from_numpy(x[perm]).long())


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_mapped_crop_and_levels_match_data_in_memory(tmp_path, layout):
    x = _images(n=30, h=8, w=7, seed=2)
    stored = x.transpose(0, 2, 3, 1) if layout == "nhwc" else x
    np.save(tmp_path / "x.npy", stored)
    np.savez_compressed(tmp_path / "x.npz", x=stored)  # compressed: read into memory
    for split in ("train", "test", "all"):
        mapped = load_dataset(f"npy:{tmp_path / 'x.npy'}", split, levels=16, crop=(5, 4))
        memory = load_dataset(f"npz:{tmp_path / 'x.npz'}", split, levels=16, crop=(5, 4))
        assert mapped.store is not None and memory.store is None
        assert mapped.levels == memory.levels == 16 and mapped.images.shape == (len(mapped), 3, 5, 4)
        assert torch.equal(mapped.images, memory.images)
        assert torch.equal(mapped.batch(torch.tensor([1, 0])), memory.batch(torch.tensor([1, 0])))


def test_uncompressed_npz_members_are_mapped(tmp_path):
    tr, te = _images(n=7, seed=3), _images(n=3, seed=4)
    np.savez(tmp_path / "s.npz", x_train=tr, x_test=te, y_train=np.arange(7) % 2, y_test=np.array([1, 0, 1]))
    train, test, both = (load_dataset(f"npz:{tmp_path / 's.npz'}", s) for s in ("train", "test", "all"))
    assert isinstance(train.store.shards[0], np.memmap) and isinstance(test.store.shards[0], np.memmap)
    assert np.array_equal(train.images.numpy(), tr) and np.array_equal(test.images.numpy(), te)
    assert np.array_equal(both.batch(torch.tensor([6, 7, 9])).numpy(), np.concatenate([tr, te])[[6, 7, 9]])
    assert both.labels.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    np.savez_compressed(tmp_path / "c.npz", x_train=tr, x_test=te)
    assert load_dataset(f"npz:{tmp_path / 'c.npz'}", "train").store is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_loading_a_mapped_file_does_not_copy_it(tmp_path):
    n, side = 24_000, 64  # 98 MB of pixels
    out = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(n, 1, side, side))
    for start in range(0, n, 4000):
        out[start:start + 4000] = np.arange(start, start + 4000, dtype=np.int64)[:, None, None, None] % 251
    out.flush()
    del out
    before = _anon_rss()
    train = load_dataset(f"npy:{tmp_path / 'big.npy'}", "train")
    test = load_dataset(f"npy:{tmp_path / 'big.npy'}", "test", levels=16)
    for k in range(20):
        b = train.batch(torch.randint(0, len(train), (64,), generator=torch.Generator().manual_seed(k)))
        assert b.shape == (64, 1, side, side)
    assert test.batch(slice(0, 8)).shape == (8, 1, side, side)
    grown = _anon_rss() - before
    assert grown < 24 * 2**20, f"anonymous memory grew by {grown / 2**20:.1f} MiB for a 98 MB file"
    for ds in (train, test):
        assert isinstance(ds.store.shards[0], np.memmap) and Path(ds.store.shards[0].filename) == tmp_path / "big.npy"


def test_npy_labels_file_and_class_names(tmp_path):
    x = _images(n=20, c=1)
    y = np.random.default_rng(9).integers(0, 3, 20)
    np.save(tmp_path / "d.npy", x)
    np.save(tmp_path / "d.labels.npy", y)
    perm = np.random.default_rng(0).permutation(20)
    train = load_dataset(f"npy:{tmp_path / 'd.npy'}", "train")
    assert train.labels.tolist() == y[perm[:18]].tolist() and train.class_names == ["0", "1", "2"]
    (tmp_path / "d.meta.json").write_text(json.dumps({"class_names": ["cat", "dog", "eel"]}))
    assert load_dataset(f"npy:{tmp_path / 'd.npy'}", "test").class_names == ["cat", "dog", "eel"]
    (tmp_path / "d.meta.json").write_text(json.dumps({"class_names": ["cat", "dog"]}))
    with pytest.raises(DataError, match=r"d\.labels\.npy: label 2 is out of range for 2 classes"):
        load_dataset(f"npy:{tmp_path / 'd.npy'}")
    (tmp_path / "d.meta.json").unlink()
    np.save(tmp_path / "d.labels.npy", y[:5])
    with pytest.raises(DataError, match=r"d\.labels\.npy: expected 20 labels"):
        load_dataset(f"npy:{tmp_path / 'd.npy'}")


def test_npy_meta_gives_the_split_and_the_levels(tmp_path):
    x = _images(n=10, c=1) % 17
    np.save(tmp_path / "m.npy", x)
    (tmp_path / "m.meta.json").write_text(json.dumps({"levels": 17, "train": 7, "source": "digits"}))
    train, test, both = (load_dataset(f"npy:{tmp_path / 'm.npy'}", s) for s in ("train", "test", "all"))
    assert np.array_equal(train.images.numpy(), x[:7]) and np.array_equal(test.images.numpy(), x[7:])
    assert np.array_equal(both.images.numpy(), x) and train.levels == 17
    assert isinstance(train.store.shards[0], np.memmap) and test.names == ["test/0", "test/1", "test/2"]
    assert load_dataset(f"npy:{tmp_path / 'm.npy'}", "train", levels=4).images.max() <= 3


@pytest.mark.parametrize("meta,match", [
    ({"levels": 300}, "levels must be an integer in 2..256"),
    ({"levels": True}, "levels must be an integer in 2..256"),
    ({"train": 10}, r"train must be an integer in 1..9 \(the array has 10 images\)"),
    ({"class_names": "abc"}, "class_names must be a list of strings"),
    ([1, 2], "must hold a JSON object"),
])
def test_bad_npy_meta_names_the_file(tmp_path, meta, match):
    np.save(tmp_path / "m.npy", _images(n=10))
    (tmp_path / "m.meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"npy:{tmp_path / 'm.npy'}")
    assert "m.meta.json" in str(err.value)
