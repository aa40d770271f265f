"""``pixelrnn sample`` and ``pixelrnn complete``: files written, reproducibility, one-line errors."""
import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ckpt(tmp_path):
    model = pixelrnn.create_model("row_lstm", channels=1, levels=4, hidden=6, layers=2)
    path = tmp_path / "gray.safetensors"
    pixelrnn.save(model, path, metadata={"image_size": "6x5"})
    return path


@pytest.fixture
def ckpt_rgb(tmp_path):
    model = pixelrnn.create_model("diagonal_bilstm", channels=3, levels=5, hidden=6, layers=1)
    path = tmp_path / "rgb.safetensors"
    pixelrnn.save(model, path)  # no image_size metadata
    return path


def error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_sample_writes_grid_and_npz(ckpt, tmp_path, capsys):
    out, npz = tmp_path / "grid.png", tmp_path / "s.npz"
    assert main(["sample", str(ckpt), "-n", "10", "--out", str(out), "--npz", str(npz),
                 "--seed", "3", "--no-progress"]) == 0
    data = np.load(npz)
    assert data["images"].shape == (10, 1, 6, 5) and data["images"].dtype == np.uint8
    assert int(data["levels"]) == 4 and data["images"].max() < 4
    img = Image.open(out)
    # near-square grid: 4 columns x 3 rows of 5x6 tiles with 1 px gaps
    assert img.size == (4 * 5 + 3, 3 * 6 + 2)
    pix = np.asarray(img)
    tile = pix[:6, :5]
    assert set(np.unique(tile)) <= {0, 85, 170, 255}  # 4 levels scaled to 0..255
    assert np.array_equal(tile, (data["images"][0, 0].astype(int) * 255 // 3).astype(np.uint8))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_sample_same_seed_same_images_and_methods_agree(ckpt, tmp_path):
    runs = []
    for k, extra in enumerate([[], [], ["--method", "naive"], ["--seed", "4"]]):
        npz = tmp_path / f"s{k}.npz"
        args = ["sample", str(ckpt), "-n", "3", "--out", str(tmp_path / f"g{k}.png"), "--npz", str(npz),
                "--no-progress"]
        assert main(args + (extra if "--seed" in extra else ["--seed", "1"] + extra)) == 0
        runs.append(np.load(npz)["images"])
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0], runs[3])


def test_sample_size_option_and_rgb(ckpt_rgb, tmp_path, capsys):
    out, npz = tmp_path / "g.png", tmp_path / "g.npz"
    assert main(["sample", str(ckpt_rgb), "-n", "2", "--size", "3x4", "--out", str(out), "--npz", str(npz),
                 "--temperature", "0.7", "--batch-size", "1", "--progress"]) == 0
    assert np.load(npz)["images"].shape == (2, 3, 3, 4)
    img = Image.open(out)
    assert img.mode == "RGB" and img.size == (2 * 4 + 1, 3)
    assert "sampling" in capsys.readouterr().err  # the progress bar


@pytest.mark.parametrize("args,match", [
    (["--size", "abc"], "size"),
    (["--size", "0x5"], "size"),
    (["-n", "0"], "-n"),
    (["--temperature", "0"], "temperature"),
    (["--batch-size", "0"], "batch-size"),
    (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N"),
    (["--device", "cuda:x"], "--device"),
])
def test_sample_bad_arguments(ckpt, tmp_path, capsys, args, match):
    assert main(["sample", str(ckpt), "--out", str(tmp_path / "g.png")] + args) == 2
    assert match in error_line(capsys)
    assert not (tmp_path / "g.png").exists()


def test_sample_needs_a_size(ckpt_rgb, tmp_path, capsys):
    assert main(["sample", str(ckpt_rgb), "-n", "2", "--out", str(tmp_path / "g.png")]) == 2
    assert "--size" in error_line(capsys)


def test_sample_not_a_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    assert main(["sample", str(bad), "-n", "1", "--size", "2x2", "--out", str(tmp_path / "g.png")]) == 2
    assert "checkpoint" in error_line(capsys)
    assert main(["sample", str(tmp_path / "missing.safetensors"), "--size", "2x2",
                 "--out", str(tmp_path / "g.png")]) == 2
    error_line(capsys)


# -- complete ------------------------------------------------------------------------------------

def write_pngs(tmp_path, n, H, W, mode="L", seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n):
        shape = (H, W) if mode == "L" else (H, W, 3)
        a = rng.integers(0, 256, size=shape, dtype=np.uint8)
        p = tmp_path / f"img{k}.png"
        Image.fromarray(a, mode=None).save(p)
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("mask", ["bottom-half", "top-half", "center", "random:0.4"])
def test_complete_from_files(ckpt, tmp_path, mask):
    files = write_pngs(tmp_path, 3, 6, 5)
    out, npz = tmp_path / "c.png", tmp_path / "c.npz"
    assert main(["complete", str(ckpt), *files, "--mask", mask, "--out", str(out), "--npz", str(npz),
                 "--seed", "2", "--particles", "2", "--no-progress"]) == 0
    d = np.load(npz)
    images, known, originals = d["images"], d["known"], d["originals"]
    assert images.shape == originals.shape == (3, 1, 6, 5) and known.shape == (3, 1, 6, 5)
    expect = np.stack([np.asarray(Image.open(f)) for f in files])[:, None].astype(int) * 4 // 256
    assert np.array_equal(originals, expect)
    assert np.array_equal(images[known], originals[known])  # known values kept exactly
    assert (~known).any() and known.any()
    if mask == "bottom-half":
        assert not known[:, :, 3:].any() and known[:, :, :3].all()
    if mask == "top-half":
        assert not known[:, :, :3].any() and known[:, :, 3:].all()
    if mask == "center":
        assert (~known).sum() == 3 * 3 * 2 and not known[:, :, 1:4, 1:3].any()
    img = Image.open(out)
    assert img.mode == "RGB" and img.size == (3 * 5 + 2, 3 * 6 + 2)
    pix = np.asarray(img)
    row0 = pix[:6, :5]  # occluded input of image 0: unknown pixels in red
    assert (row0[~known[0, 0]] == [255, 0, 0]).all()
    # same seed, same result
    npz2 = tmp_path / "c2.npz"
    assert main(["complete", str(ckpt), *files, "--mask", mask, "--out", str(tmp_path / "c2.png"),
                 "--npz", str(npz2), "--seed", "2", "--particles", "2", "--no-progress"]) == 0
    assert np.array_equal(np.load(npz2)["images"], images)


def test_complete_from_dataset_with_mask_png(ckpt_rgb, tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, size=(12, 4, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=arr[:8], x_test=arr[8:])
    m = np.zeros((4, 6), dtype=np.uint8)
    m[1:3, 2:5] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    out, npz = tmp_path / "c.png", tmp_path / "c.npz"
    assert main(["complete", str(ckpt_rgb), "--data", f"npz:{tmp_path / 'd.npz'}", "--n", "3",
                 "--mask", str(tmp_path / "mask.png"), "--out", str(out), "--npz", str(npz),
                 "--no-progress"]) == 0
    d = np.load(npz)
    assert d["images"].shape == (3, 3, 4, 6)
    assert np.array_equal(d["originals"], arr[8:11].transpose(0, 3, 1, 2).astype(int) * 5 // 256)
    unknown = ~d["known"][:, 0]
    assert np.array_equal(unknown[0], m > 127)
    kn = np.broadcast_to(d["known"], d["images"].shape)
    assert np.array_equal(d["images"][kn], d["originals"][kn])
    assert Image.open(out).size == (3 * 6 + 2, 3 * 4 + 2)


def test_complete_gray_model_on_rgb_files(ckpt, tmp_path):
    files = write_pngs(tmp_path, 2, 6, 5, mode="RGB")
    assert main(["complete", str(ckpt), *files, "--mask", "center", "--out", str(tmp_path / "c.png"),
                 "--no-progress"]) == 0


@pytest.mark.parametrize("case,match", [
    ("mask_shape", "mask"),
    ("image_sizes", "same size"),
    ("bad_mask", "--mask"),
    ("random_p", "random"),
    ("n_zero", "--n"),
    ("particles", "particles"),
    ("no_images", "--data"),
    ("not_checkpoint", "checkpoint"),
    ("device", "--device"),
])
def test_complete_errors(ckpt, tmp_path, capsys, case, match):
    files = write_pngs(tmp_path, 2, 6, 5)
    args = ["complete", str(ckpt), *files, "--mask", "center", "--out", str(tmp_path / "c.png")]
    if case == "mask_shape":
        Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "m.png")
        args[args.index("center")] = str(tmp_path / "m.png")
    elif case == "image_sizes":
        Image.fromarray(np.zeros((7, 5), dtype=np.uint8)).save(tmp_path / "other.png")
        args.insert(3, str(tmp_path / "other.png"))
    elif case == "bad_mask":
        args[args.index("center")] = "left-half"
    elif case == "random_p":
        args[args.index("center")] = "random:1.5"
    elif case == "n_zero":
        args += ["--n", "0"]
    elif case == "particles":
        args += ["--particles", "0"]
    elif case == "no_images":
        args = ["complete", str(ckpt), "--mask", "center", "--out", str(tmp_path / "c.png")]
    elif case == "device":
        args += ["--device", "tpu"]
    elif case == "not_checkpoint":
        (tmp_path / "x.safetensors").write_text("nope")
        args[1] = str(tmp_path / "x.safetensors")
    assert main(args) == 2
    assert match in error_line(capsys)
    assert not (tmp_path / "c.png").exists()


def test_existing_outputs_need_force(ckpt, tmp_path, capsys):
    """sample, complete and score never replace a file the user named without --force."""
    files = write_pngs(tmp_path, 2, 6, 5)
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"precious")
    keep_npz, keep_csv = tmp_path / "keep.npz", tmp_path / "keep.csv"
    keep_npz.write_bytes(b"precious")
    keep_csv.write_bytes(b"precious")
    fresh = str(tmp_path / "fresh.png")
    runs = {
        "sample": (["sample", str(ckpt), "-n", "2", "--no-progress"], ["--out", str(keep)],
                   ["--out", fresh, "--npz", str(keep_npz)]),
        "complete": (["complete", str(ckpt), *files, "--mask", "bottom-half", "--no-progress"],
                     ["--out", str(keep)], ["--out", fresh, "--npz", str(keep_npz)]),
        "score": (["score", str(ckpt), *files], ["--csv", str(keep_csv)], ["--heatmap", str(keep)]),
    }
    for base, *outputs in runs.values():
        for out in outputs:
            assert main(base + out) == 2
            assert "exists (use --force to overwrite)" in error_line(capsys)
            assert keep.read_bytes() == keep_npz.read_bytes() == keep_csv.read_bytes() == b"precious"
            assert not (tmp_path / "fresh.png").exists()
    for base, *outputs in runs.values():
        for out in outputs:
            assert main(base + out + ["--force"]) == 0
    assert keep.read_bytes() != b"precious" and keep_csv.read_bytes() != b"precious"
    assert np.load(keep_npz)["images"].shape[0] == 2
    assert main(["sample", str(ckpt), "-n", "1", "--out", fresh, "--npz", fresh, "--force"]) == 2
    assert "same file" in error_line(capsys)


def test_output_paths_checked_before_any_work(ckpt, tmp_path, capsys):
    """An empty name, or a parent that is a file: a one-line error and nothing written, not a
    traceback after the work (and not a grid written before the .npz fails)."""
    (tmp_path / "afile").write_text("x")
    grid = tmp_path / "grid.png"
    for out, npz, message in [("", None, "must name a file"),
                              (str(grid), str(tmp_path / "afile" / "s.npz"), "afile is not a directory"),
                              (str(tmp_path / "afile" / "g.png"), None, "afile is not a directory")]:
        extra = ["--npz", npz] if npz else []
        assert main(["sample", str(ckpt), "-n", "1", "--no-progress", "--out", out, *extra]) == 2
        assert message in error_line(capsys)
        assert not grid.exists()


def test_a_long_output_name_is_writable(ckpt, tmp_path, capsys):
    """The temporary file's name stays short: a 250-byte output name works."""
    out = tmp_path / ("n" * 246 + ".png")
    assert main(["sample", str(ckpt), "-n", "1", "--no-progress", "--out", str(out)]) == 0
    assert out.is_file() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
