import json
import os

import pytest
import torch

import pixelrnn
from conftest import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip(arch, tmp_path):
    model = pixelrnn.create_model(arch, channels=3, levels=5, hidden=6, layers=2, skip=True)
    x = torch.randint(0, 5, (2, 3, 6, 7))
    path = tmp_path / "m.safetensors"
    pixelrnn.save(model, path)
    model2 = pixelrnn.load(path)
    assert type(model2) is type(model) and model2.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(model2.log_prob(x), model.log_prob(x), rtol=0, atol=0)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_is_plain_safetensors_with_json_config(tmp_path):
    from safetensors import safe_open
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=6, layers=1, kernel=5)
    path = tmp_path / "m.safetensors"
    pixelrnn.save(model, path)
    with safe_open(str(path), "pt") as f:
        cfg = json.loads(f.metadata()["pixelrnn.config"])
    assert cfg["arch"] == "pixelcnn" and cfg["options"] == {"kernel": 5}
    assert pixelrnn.load(path).config.options["kernel"] == 5


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        pixelrnn.load(tmp_path / "nope.safetensors")


def test_truncated_file(tmp_path):
    model = pixelrnn.create_model("row_lstm", levels=4, hidden=6, layers=1)
    path = tmp_path / "m.safetensors"
    pixelrnn.save(model, path)
    data = path.read_bytes()
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "t.safetensors").write_bytes(data[:cut])
        with pytest.raises(pixelrnn.CheckpointError):
            pixelrnn.load(tmp_path / "t.safetensors")


def test_foreign_files(tmp_path):
    import pickle
    from safetensors.torch import save_file
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"a": 1}))  # a pickle is never unpickled
    with pytest.raises(pixelrnn.CheckpointError):
        pixelrnn.load(evil)
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(pixelrnn.CheckpointError, match="not a pixelrnn checkpoint"):
        pixelrnn.load(other)
    text = tmp_path / "t.safetensors"
    text.write_text("hello world, this is not a checkpoint")
    with pytest.raises(pixelrnn.CheckpointError):
        pixelrnn.load(text)
    with pytest.raises(pixelrnn.CheckpointError, match="directory"):
        pixelrnn.load(tmp_path)


def test_weights_not_matching_config(tmp_path):
    from safetensors.torch import save_file
    model = pixelrnn.create_model("row_lstm", levels=4, hidden=6, layers=1)
    cfg = model.config.to_dict()
    cfg["hidden"] = 8
    bad = tmp_path / "b.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bad),
              metadata={"format": "pixelrnn", "format_version": "1", "pixelrnn.config": json.dumps(cfg)})
    with pytest.raises(pixelrnn.CheckpointError, match="do not match"):
        pixelrnn.load(bad)


@pytest.mark.parametrize("change, match", [
    ({"hidden": 8}, "do not match"),
    ({"arch": "transformer"}, "invalid model config"),
    ({"levels": 1}, "invalid model config"),
    ({"channels": 2}, "invalid model config"),
    ({"hidden": 0}, "invalid model config"),
])
def test_info_refuses_what_load_refuses(tmp_path, capsys, change, match):
    from safetensors.torch import save_file
    from pixelrnn.cli import main
    model = pixelrnn.create_model("row_lstm", levels=4, hidden=6, layers=1)
    cfg = {**model.config.to_dict(), **change}
    bad = tmp_path / "b.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bad),
              metadata={"format": "pixelrnn", "format_version": "1", "pixelrnn.config": json.dumps(cfg)})
    with pytest.raises(pixelrnn.CheckpointError, match=match):
        pixelrnn.load(bad)
    assert main(["info", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and match in captured.err and "Traceback" not in captured.err


def test_info_of_a_good_checkpoint(tmp_path, capsys):
    from pixelrnn.cli import main
    model = pixelrnn.create_model("diagonal_bilstm", channels=3, levels=4, hidden=6, layers=2)
    pixelrnn.save(model, tmp_path / "m.safetensors", metadata={"note": "x"})
    assert main(["info", str(tmp_path / "m.safetensors")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["arch"] == "diagonal_bilstm" and info["metadata"] == {"note": "x"}
    assert info["parameters"] == sum(p.numel() for p in model.state_dict().values())


@pytest.mark.parametrize("where, match", [("bogus", "map_location must be auto, cpu, cuda or cuda:N"),
                                          ("cuda:x", "map_location must be")])
def test_load_map_location_checked(tmp_path, where, match):
    pixelrnn.save(pixelrnn.create_model("pixelcnn", levels=4, hidden=4, layers=1), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=match):
        pixelrnn.load(tmp_path / "m.safetensors", map_location=where)
    assert pixelrnn.load(tmp_path / "m.safetensors", map_location=torch.device("cpu")).device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="map_location cuda: no CUDA device is available"):
            pixelrnn.load(tmp_path / "m.safetensors", map_location=torch.device("cuda"))


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure while writing leaves the previous checkpoint intact and no temporary file."""
    import pixelrnn.checkpoint as pio
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=6, layers=1)
    path = tmp_path / "m.safetensors"
    pixelrnn.save(model, path)
    before = path.read_bytes()

    def boom(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(pio, "save_file", boom)
    with pytest.raises(OSError):
        pixelrnn.save(model, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=6, layers=1)
    old = os.umask(0o027)
    try:
        pixelrnn.save(model, tmp_path / "a.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "a.safetensors").stat().st_mode & 0o777 == 0o640
    assert os.umask(old) == old  # the process umask is left as it was
