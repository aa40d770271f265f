"""Under torchrun each rank reads only its own share of a memory-mapped file (issue 24 item 3):
the training batches of two ranks are disjoint and together cover the epoch, and the evaluation
shards likewise; every image a rank reads comes through ``ds.batch`` of its own indices; and a
training run on a memory-mapped file never reads a whole split."""
import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn import evaluate as evaluate_module
from pixelrnn.data import ImageDataset, load_dataset
from pixelrnn.evaluate import evaluate, shard_range
from pixelrnn.training import Dist, TrainConfig, TrainState, train
from pixelrnn.training.batches import Batches


def _npy(tmp_path, n: int, side: int = 4) -> str:
    """An .npy of n RGB images whose pixel (0, 0, 0) is the image's row number mod 256, and
    (0, 0, 1) the row // 256: each image says which row of the file it is."""
    x = np.zeros((n, 3, side, side), dtype=np.uint8)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    np.save(tmp_path / "x.npy", x)
    return f"npy:{tmp_path / 'x.npy'}"


def _rows(images: torch.Tensor) -> list[int]:
    """The file rows of images made by ``_npy``."""
    return (images[:, 0, 0, 0] + 256 * images[:, 0, 0, 1]).tolist()


class Spy:
    """Records what one dataset reads: the indices given to ``ds.batch`` and the file rows its
    store reads; any other read of the images fails."""

    def __init__(self, ds: ImageDataset):
        self.ds, self.batches, self.store_rows = ds, [], []
        batch, read = ds.batch, ds.store.read

        def spy_batch(index):
            self.batches.append(np.asarray(index.tolist() if isinstance(index, torch.Tensor) else
                                           range(len(ds))[index]))
            return batch(index)

        def spy_read(index=slice(None)):
            rows = ds.store.rows[index]
            self.store_rows.append(np.atleast_1d(rows).copy())
            assert len(self.store_rows) == len(self.batches), "a read that did not come through ds.batch"
            assert np.array_equal(np.atleast_1d(rows), ds.store.rows[self.batches[-1]])
            return read(index)

        ds.batch, ds.store.read = spy_batch, spy_read

    def file_rows(self) -> list[int]:
        return [int(r) for rows in self.store_rows for r in rows]


@pytest.fixture
def no_whole_split(monkeypatch):
    """``ds.images`` of a memory-mapped dataset (the whole split read at once) fails."""
    images = ImageDataset.images

    def whole(self):
        assert self.store is None, f"the whole {self.split} split of {self.name} was read"
        return images.fget(self)
    monkeypatch.setattr(ImageDataset, "images", property(whole, images.fset))


@pytest.mark.parametrize("n, batch", [(107, 8), (101, 6)])  # 97 and 91 training images
def test_two_ranks_read_disjoint_training_images_covering_the_epoch(tmp_path, no_whole_split, n, batch):
    spec = _npy(tmp_path, n)
    cfg = TrainConfig(data=spec, batch_size=batch, seed=3)
    seen, spies, indices = {}, {}, {}
    for rank in (0, 1):
        ds = load_dataset(spec, "train")  # each process loads the file itself
        assert ds.store is not None and isinstance(ds.store.shards[0], np.memmap)
        spies[rank] = Spy(ds)
        b = Batches(ds, cfg, Dist(rank=rank, world=2), torch.device("cpu"))
        state, images = TrainState(), []
        for _ in range(b.per_epoch):
            x, _, _ = b.next(state)
            assert x.shape == (batch // 2, 3, 4, 4)
            images.append(x)
            state.advance(0.0, x.shape[0])
        seen[rank] = _rows(torch.cat(images))
        # what the rank read is exactly what its batches hold, through ds.batch of its own indices
        assert spies[rank].file_rows() == seen[rank]
        assert len(spies[rank].batches) == b.per_epoch
        indices[rank] = np.concatenate(spies[rank].batches).tolist()
    train_rows = set(load_dataset(spec, "train").store.rows.tolist())
    a, b_ = set(seen[0]), set(seen[1])
    assert len(a) == len(seen[0]) and len(b_) == len(seen[1]) and not a & b_
    assert not set(indices[0]) & set(indices[1])
    n_train = len(train_rows)
    per_epoch = (n_train // 2) // (batch // 2)
    assert len(a | b_) == per_epoch * batch  # the epoch's global batches, split between the ranks
    assert n_train - len(a | b_) < batch  # only the remainder of an uneven epoch is left out
    assert (a | b_) <= train_rows  # training images only


@pytest.mark.parametrize("limit", [None, 7])
def test_two_ranks_evaluate_disjoint_shards_covering_the_split(tmp_path, monkeypatch, no_whole_split, limit):
    spec = _npy(tmp_path, 40)
    model = pixelrnn.create_model("pixelcnn", channels=3, levels=256, hidden=4, layers=1)
    full = evaluate(model, load_dataset(spec, "test"), batch_size=3, limit=limit)
    sums = []
    seen = {}
    for rank in (0, 1):  # a process group of two, faked: rank, world size and the all-reduce
        monkeypatch.setattr(evaluate_module.dist, "is_available", lambda: True)
        monkeypatch.setattr(evaluate_module.dist, "is_initialized", lambda: True)
        monkeypatch.setattr(evaluate_module.dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(evaluate_module.dist, "get_rank", lambda r=rank: r)
        monkeypatch.setattr(evaluate_module.dist, "all_reduce", lambda t: sums.append(t.clone()))
        ds = load_dataset(spec, "test")
        spy = Spy(ds)
        evaluate(model, ds, batch_size=3, limit=limit)
        n = min(len(ds), limit or len(ds))
        start, stop = shard_range(n, rank, 2)
        indices = np.concatenate(spy.batches).tolist()
        assert indices == list(range(start, stop))  # its own contiguous shard, in batches of 3
        assert all(len(i) <= 3 for i in spy.batches)
        seen[rank] = spy.file_rows()
        assert seen[rank] == ds.store.rows[start:stop].tolist()
    assert not set(seen[0]) & set(seen[1])
    test_rows = load_dataset(spec, "test").store.rows
    assert sorted(seen[0] + seen[1]) == sorted(test_rows[:min(len(test_rows), limit or 40)].tolist())
    total = sums[0] + sums[1]  # what the real all-reduce would give both ranks
    assert float(total[1]) == full.images
    assert float(total[0] / total[1]) == pytest.approx(full.nll, rel=1e-9)


def test_training_on_a_mapped_file_reads_batches_never_a_whole_split(tmp_path, no_whole_split, monkeypatch):
    """Through ``train``: the data stay a memory map (the training and test splits are views of
    it), every read goes through ``ds.batch``, and only the images of the steps taken and of the
    --eval-limit evaluations are read."""
    spec = _npy(tmp_path, 300)
    reads = []
    batch = ImageDataset.batch

    def spy_batch(self, index):
        assert self.store is not None and isinstance(self.store.shards[0], np.memmap)
        out = batch(self, index)
        reads.append((self.split, out.shape[0]))
        return out
    monkeypatch.setattr(ImageDataset, "batch", spy_batch)
    result = train(TrainConfig(data=spec, arch="pixelcnn", hidden=4, layers=1, batch_size=4, steps=3,
                               eval_every=2, eval_limit=5, eval_batch_size=4, threads=1, progress=False,
                               out=str(tmp_path / "run")))
    assert result.step == 3 and result.train_images == 270
    assert sum(k for s, k in reads if s == "train") == 3 * 4
    assert sum(k for s, k in reads if s == "test") == 2 * 5  # at step 2 and the final one, 5 images each
