"""Compression with a class-conditional model: each image's label is coded under the prior, then
the image given it; decompress restores both, bit-exact."""
import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.compression import compress, decompress, encode


def conditional(arch, seed=0):
    torch.manual_seed(seed)
    model = pixelrnn.create_model(arch, channels=1, levels=5, hidden=6, layers=1, classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.set_prior([1, 2, 3]).eval()


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"])
def test_labels_and_images_round_trip(arch):
    model = conditional(arch)
    x = torch.randint(0, 5, (7, 1, 5, 6), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    out = decompress(model, compress(model, x, labels=y, chunk=3))
    assert all(torch.equal(a, d.image) for a, d in zip(x, out))
    assert [d.label for d in out] == y.tolist()
    name, image = out[0]  # still unpacks as (name, image)
    assert name is None and torch.equal(image, x[0])


def test_without_labels_each_image_gets_its_shortest_code():
    model = conditional("pixelcnn")
    x = torch.randint(0, 5, (6, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    enc = encode(model, x)
    best = model.classify(x).argmax(1)
    assert [d.label for d in decompress(model, enc.data)] == best.tolist()
    with torch.no_grad():  # the code length is -log p(y*) - log p(x | y*), in bits
        expect = -model.joint_log_probs(x).max(1).values.sum().item() / np.log(2)
    assert abs(enc.nll_bits - expect) < 1e-3 * abs(expect)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        compress(model, x, labels=torch.full((6,), 3))
    plain = pixelrnn.create_model("pixelcnn", channels=1, levels=5, hidden=4, layers=1)
    with pytest.raises(ValueError, match="unconditional"):
        compress(plain, x, labels=torch.zeros(6, dtype=torch.long))
    assert all(d.label is None for d in decompress(plain, compress(plain, x)))


def test_the_command_line_restores_the_labels(tmp_path):
    model = conditional("row_lstm")
    ckpt = tmp_path / "m.safetensors"
    pixelrnn.save(model, ckpt)
    x = np.random.default_rng(0).integers(0, 5, (4, 1, 5, 5)).astype(np.uint8)
    np.savez(tmp_path / "x.npz", images=x)
    assert main(["compress", str(ckpt), "--npz", str(tmp_path / "x.npz"), "-o", str(tmp_path / "x.prnn"),
                 "--no-progress"]) == 0
    assert main(["decompress", str(ckpt), str(tmp_path / "x.prnn"), "--npz", str(tmp_path / "y.npz"),
                 "--no-progress"]) == 0
    out = np.load(tmp_path / "y.npz")
    assert np.array_equal(out["images"], x)
    assert out["labels"].tolist() == model.classify(torch.from_numpy(x).long()).argmax(1).tolist()
