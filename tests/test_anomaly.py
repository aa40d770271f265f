"""Anomaly scores (pixelrnn.anomaly) and the ``pixelrnn score`` command."""
import csv
import io
import json
import lzma
import math

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn.anomaly import (OOD_SETS, anomaly_scores, codec_bits, evaluate_ood, heatmap,
                              image_nll, make_ood_set, ood_metrics, pixel_nll)
from pixelrnn.cli import main

SIZE, LEVELS = 8, 4


def stripes(n: int, levels: int = LEVELS) -> torch.Tensor:
    """The in-distribution pattern: vertical stripes two pixels wide, in four phases."""
    j = torch.arange(SIZE)
    rows = [((j + phase) // 2 % 2) * (levels - 1) for phase in range(4)]
    imgs = torch.stack([rows[k % 4].expand(SIZE, SIZE) for k in range(n)])
    return imgs[:, None].long()


@pytest.fixture(scope="module")
def trained():
    """A tiny PixelCNN trained in-process on the stripes (about a second on 2 CPU threads)."""
    torch.manual_seed(0)
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=LEVELS, hidden=8, layers=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = stripes(16)
    model.train()
    for _ in range(150):
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def files(trained, tmp_path_factory):
    """A checkpoint, an npz dataset of the pattern at 256 levels, and PNG files of it."""
    root = tmp_path_factory.mktemp("anomaly")
    ckpt = root / "model.safetensors"
    pixelrnn.save(trained, ckpt)
    pattern8 = (stripes(24, 256)[:, 0]).numpy().astype(np.uint8)  # values 0 / 255
    np.savez(root / "stripes.npz", x_train=pattern8[:8], x_test=pattern8)
    pngs = root / "pngs"
    pngs.mkdir()
    for k in range(3):
        Image.fromarray(pattern8[k]).save(pngs / f"p{k}.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)).save(pngs / "z_noise.png")
    return {"root": root, "ckpt": str(ckpt), "data": f"npz:{root / 'stripes.npz'}", "pngs": pngs}


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_user_error(capsys, *args, match: str):
    rc, out, err = cli(capsys, *args)
    assert rc == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("pixelrnn score: error:"), err
    assert "Traceback" not in err and match in err, err


# -- the library ------------------------------------------------------------------------------

def test_trained_pattern_scores_below_noise(trained):
    x_in = stripes(8)
    x_noise = torch.randint(0, LEVELS, (8, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    for method in ("nll", "bpd"):
        s_in, s_out = anomaly_scores(trained, x_in, method), anomaly_scores(trained, x_noise, method)
        assert s_in.shape == (8,) and s_in.max() < s_out.min(), method
    assert ood_metrics(anomaly_scores(trained, x_in), anomaly_scores(trained, x_noise))["roc_auc"] == 1.0


def test_methods_agree_with_log_prob(trained):
    x = torch.cat([stripes(3), torch.randint(0, LEVELS, (3, 1, SIZE, SIZE))])
    with torch.no_grad():
        logp = trained.log_prob(x).double()
    nll = anomaly_scores(trained, x, "nll", batch_size=2)
    assert nll.dtype == torch.float64 and nll.shape == (6,)
    torch.testing.assert_close(nll, -logp, rtol=1e-6, atol=1e-5)
    bpd = anomaly_scores(trained, x, "bpd", batch_size=4)
    torch.testing.assert_close(bpd, nll / (SIZE * SIZE * math.log(2)), rtol=1e-6, atol=1e-6)
    for codec in ("png", "lzma"):
        comp = anomaly_scores(trained, x, "complexity", codec=codec, batch_size=2)  # same batches
        expected = nll / math.log(2) - codec_bits(x, LEVELS, codec)
        torch.testing.assert_close(comp, expected, rtol=1e-9, atol=1e-6)
    # uint8 input works like int64; the model's training flag is restored
    trained.train()
    torch.testing.assert_close(anomaly_scores(trained, x.to(torch.uint8)), nll, rtol=1e-6, atol=1e-5)
    assert trained.training
    trained.eval()


def test_pixel_nll_sums_to_image_nll(trained):
    x = torch.cat([stripes(2), torch.randint(0, LEVELS, (3, 1, SIZE, SIZE))])
    maps = pixel_nll(trained, x, batch_size=2)
    assert maps.shape == (5, SIZE, SIZE) and (maps >= 0).all()
    torch.testing.assert_close(maps.double().sum((1, 2)), image_nll(trained, x), rtol=1e-5, atol=1e-4)


def test_pixel_nll_sums_channels_of_rgb_pixels():
    model = pixelrnn.create_model("pixelcnn", channels=3, levels=8, hidden=6, layers=1).eval()
    x = torch.randint(0, 8, (2, 3, 5, 6))
    with torch.no_grad():
        expected = -model.value_log_probs(x).sum(1)
    torch.testing.assert_close(pixel_nll(model, x), expected)


def test_codecs_are_lossless_generic_codecs_of_the_8bit_image():
    x = torch.randint(0, LEVELS, (3, 1, SIZE, SIZE))
    png = codec_bits(x, LEVELS, "png")
    for k in range(3):
        img8 = (x[k, 0].numpy() * 85).astype(np.uint8)  # 0..3 -> 0, 85, 170, 255
        buf = io.BytesIO()
        Image.fromarray(img8).save(buf, format="PNG", optimize=True, compress_level=9)
        assert png[k] == 8 * buf.tell()
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue()))), img8)
    rgb = torch.randint(0, 256, (2, 3, 4, 5))
    bits = codec_bits(rgb, 256, "lzma")
    raw = rgb[1].permute(1, 2, 0).numpy().astype(np.uint8).tobytes()
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 4096}]
    packed = lzma.compress(raw, format=lzma.FORMAT_RAW, filters=filters)
    assert bits[1] == 8 * len(packed)
    assert lzma.decompress(packed, format=lzma.FORMAT_RAW, filters=filters) == raw
    with pytest.raises(ValueError, match="codec"):
        codec_bits(x, LEVELS, "zip")
    with pytest.raises(ValueError, match="pixel values"):
        codec_bits(x + LEVELS, LEVELS)


def test_api_errors(trained):
    x = stripes(2)
    with pytest.raises(ValueError, match="unknown method"):
        anomaly_scores(trained, x, "likelihood")
    with pytest.raises(ValueError, match="codec"):
        anomaly_scores(trained, x, "complexity", codec="gzip")
    with pytest.raises(ValueError, match="channel"):
        anomaly_scores(trained, x.repeat(1, 3, 1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        anomaly_scores(trained, x, batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        anomaly_scores(trained, x.float())


def test_ood_sets_are_deterministic_and_match_the_reference():
    ref = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 1, 28, 28), dtype=np.uint8))
    for name in OOD_SETS:
        a = make_ood_set(name, ref, 256, limit=7)
        assert a.dtype == torch.uint8 and a.shape[1:] == (1, 28, 28) and 1 <= len(a) <= 7, name
        assert torch.equal(a, make_ood_set(name, ref, 256, limit=7)), name
    assert torch.equal(make_ood_set("inverted", ref, 256), 255 - ref)
    assert torch.equal(make_ood_set("rotated", ref, 256), torch.rot90(ref, 1, (2, 3)))
    shuffled = make_ood_set("shuffled", ref, 256)
    patches = lambda t: sorted(p.flatten().tolist() for p in t[0, 0].unfold(0, 7, 7).unfold(1, 7, 7).reshape(16, 7, 7))
    assert patches(shuffled) == patches(ref) and not torch.equal(shuffled, ref)
    const = make_ood_set("constant", ref, 4, limit=20)
    assert (const.amax((1, 2, 3)) == const.amin((1, 2, 3))).all() and const.max() < 4
    assert make_ood_set("uniform", ref, 4).shape == (1000, 1, 28, 28)
    rgb = make_ood_set("photos", torch.zeros(2, 3, 16, 16, dtype=torch.uint8), 16, limit=3)
    assert rgb.shape == (3, 3, 16, 16) and rgb.max() < 16
    digits = make_ood_set("digits", ref, 256, limit=4)
    assert digits[:, :, :4].sum() == 0 and digits[:, :, 4:24, 4:24].sum() > 0  # 20x20 in 28x28
    with pytest.raises(ValueError, match="unknown OOD set"):
        make_ood_set("bogus", ref, 256)


def test_evaluate_ood_report(trained):
    x = stripes(6)
    sets = {n: make_ood_set(n, x, LEVELS, limit=6) for n in ("uniform", "inverted")}
    rep = evaluate_ood(trained, x, sets, columns=["nll", "bpd", "complexity", "complexity:lzma"])
    assert [r.name for r in rep.results] == ["uniform", "inverted"]
    for r in rep.results:
        for col in rep.columns:
            assert 0.0 <= r.metrics[col]["roc_auc"] <= 1.0 and 0.0 <= r.metrics[col]["aupr"] <= 1.0
    assert rep.results[0].metrics["nll"]["roc_auc"] == 1.0
    assert "| uniform | 6 |" in rep.table()


def test_heatmap_layout(trained):
    x = stripes(3)
    picture, vmax = heatmap(x, pixel_nll(trained, x), LEVELS)
    assert picture.dtype == np.uint8 and picture.shape == (SIZE, 6 * SIZE + 5, 3)  # 1 px gaps
    assert vmax > 0
    assert np.array_equal(picture[0, :SIZE, 0], (x[0, 0, 0] * 85).numpy().astype(np.uint8))


# -- the command ------------------------------------------------------------------------------

def test_cli_json_per_image(files, trained, capsys):
    rc, out, _ = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--split", "test",
                     "--levels", LEVELS, "--method", "complexity", "--json", "--limit", 5)
    assert rc == 0
    doc = json.loads(out)
    assert doc["method"] == "complexity" and len(doc["scores"]) == 5
    first = doc["scores"][0]
    assert set(first) == {"image", "score", "nll_nats", "bits_per_dim", "complexity_bits"}
    assert first["image"] == "test/0"
    assert first["score"] == pytest.approx(first["nll_nats"] / math.log(2) - first["complexity_bits"])
    expected = anomaly_scores(trained, stripes(5), "complexity")
    assert [r["score"] for r in doc["scores"]] == pytest.approx(expected.tolist(), abs=1e-3)
    assert first["bits_per_dim"] == pytest.approx(first["nll_nats"] / (64 * math.log(2)))


def test_cli_csv_files_and_heatmap(files, capsys):
    out_csv, hm = files["root"] / "s.csv", files["root"] / "heat.png"
    rc, out, _ = cli(capsys, "score", files["ckpt"], files["pngs"], "--csv", out_csv, "--method", "bpd",
                     "--heatmap", hm)
    assert rc == 0 and "heat map" in out
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["image", "score", "nll_nats", "bits_per_dim"] and len(rows) == 5
    scores = {r[0].rsplit("/", 1)[-1]: float(r[1]) for r in rows[1:]}
    assert scores["z_noise.png"] > max(scores[f"p{k}.png"] for k in range(3))
    with Image.open(hm) as im:
        im.load()
        assert im.mode == "RGB" and im.size == ((8 * SIZE + 7) * 8, SIZE * 8)


def test_cli_text_table(files, capsys):
    rc, out, _ = cli(capsys, "score", files["ckpt"], files["pngs"] / "p0.png", files["pngs"] / "z_noise.png")
    assert rc == 0 and "nll anomaly scores" in out and "z_noise.png" in out and "median" in out


def test_cli_ood_table_json_and_histogram(files, capsys):
    hist = files["root"] / "hist.png"
    rc, out, _ = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                     "--ood", "uniform", "--ood", "constant", "--ood", "digits", "--ood", "photos",
                     "--limit", 12, "--hist", hist, "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["methods"] == ["nll", "bpd", "complexity"] and doc["histogram"] == str(hist)
    assert [o["name"] for o in doc["ood"]] == ["uniform", "constant", "digits", "photos"]
    for o in doc["ood"]:
        assert o["images"] == 12
        for m in doc["methods"]:
            assert 0.0 <= o[m]["roc_auc"] <= 1.0 and 0.0 <= o[m]["aupr"] <= 1.0
    with Image.open(hist) as im:
        im.load()
        assert im.size[0] > 100 and im.size[1] > 100
    # the text table, with the default histogram path next to the checkpoint
    rc, out, _ = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                     "--ood", "inverted", "--ood", "noise", "--limit", 6)
    assert rc == 0 and "| inverted | 6 |" in out and "AUROC" in out
    assert (files["root"] / "model.ood-hist.png").is_file()
    # a dataset spec as OOD set (converted to the model's levels)
    rc, out, _ = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                     "--ood", files["data"], "--limit", 4, "--no-hist", "--csv", "-")
    rows = list(csv.reader(io.StringIO(out)))
    assert rc == 0 and rows[0][:4] == ["ood", "method", "roc_auc", "aupr"] and len(rows) == 4


def test_cli_ood_default_histogram_not_writable_is_a_warning(files, tmp_path, capsys, monkeypatch):
    """The default histogram (next to the checkpoint) is a convenience: when its folder cannot be
    written, the scores are still printed, with one warning line."""
    import pixelrnn.anomaly as anomaly

    def refuse(report, path):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(anomaly, "save_histogram", refuse)
    rc, out, err = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                       "--ood", "noise", "--limit", 4, "--json")
    assert rc == 0 and json.loads(out)["histogram"] is None
    assert err.strip().splitlines()[-1].startswith("pixelrnn score: warning: no histogram: cannot write")
    assert "Permission denied" in err and "Traceback" not in err
    # an explicit --hist that cannot be written is an error
    rc, out, err = cli(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                       "--ood", "noise", "--limit", 4, "--hist", tmp_path / "h.png")
    assert rc == 2 and "Permission denied" in err


def test_cli_hist_and_no_hist_contradict(files, tmp_path, capsys):
    assert_user_error(capsys, "score", files["ckpt"], "--data", files["data"], "--levels", LEVELS,
                      "--ood", "noise", "--hist", tmp_path / "h.png", "--no-hist", match="contradict")


def test_cli_user_errors(files, tmp_path, capsys):
    ckpt, data = files["ckpt"], files["data"]
    assert_user_error(capsys, "score", ckpt, "--data", data, "--levels", LEVELS, "--method", "likelihood",
                      match="unknown method")
    assert_user_error(capsys, "score", ckpt, "--data", data, "--levels", LEVELS,
                      "--complexity-codec", "zip", match="codec")
    assert_user_error(capsys, "score", ckpt, "--data", data, "--levels", LEVELS, "--ood", "martians",
                      match="unknown OOD set")
    assert_user_error(capsys, "score", ckpt, "--data", data, match="pass --levels 4")
    assert_user_error(capsys, "score", ckpt, match="either --data")
    # an RGB model on a gray dataset
    rgb = tmp_path / "rgb.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", channels=3, levels=256, hidden=4, layers=1), rgb)
    assert_user_error(capsys, "score", rgb, "--data", data, match="has 1 channel(s) but the model expects 3")
    # image files of different sizes; an unreadable file; a missing one
    Image.fromarray(np.zeros((9, 9), dtype=np.uint8)).save(tmp_path / "big.png")
    assert_user_error(capsys, "score", ckpt, files["pngs"] / "p0.png", tmp_path / "big.png", match="same size")
    (tmp_path / "bad.png").write_text("not a png")
    assert_user_error(capsys, "score", ckpt, tmp_path / "bad.png", match="cannot read image")
    assert_user_error(capsys, "score", ckpt, tmp_path / "missing.png", match="does not exist")
    # an OOD dataset of another size
    np.save(tmp_path / "small.npy", np.zeros((4, 5, 5), dtype=np.uint8))
    assert_user_error(capsys, "score", ckpt, "--data", data, "--levels", LEVELS,
                      "--ood", f"npy:{tmp_path / 'small.npy'}", match="5x5")


def test_exported_from_the_package(trained):
    """Needs ``from .anomaly import anomaly_scores`` in pixelrnn/__init__.py."""
    x = stripes(2)
    torch.testing.assert_close(pixelrnn.anomaly_scores(trained, x, "bpd"), anomaly_scores(trained, x, "bpd"))


def test_image_files_may_follow_options(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from pixelrnn.cli import main
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=6, layers=1)
    pixelrnn.save(model, tmp_path / "m.safetensors")
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / name)
    assert main(["score", str(tmp_path / "m.safetensors"), "--method", "bpd", "--json",
                 str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["image"] for s in out["scores"]] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(SystemExit):
        main(["score", str(tmp_path / "m.safetensors"), "--bogus", str(tmp_path / "a.png")])


def test_cli_complexity_needs_at_most_256_levels(tmp_path, capsys):
    ckpt = tmp_path / "wide.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", levels=1024, hidden=4, layers=1), ckpt)
    for extra in (["--method", "complexity"], ["--ood", "noise"]):
        assert_user_error(capsys, "score", ckpt, "--data", "digits", *extra, match="at most 256 levels")
