"""The one --device parser (pixelrnn.device) and the commands that use it."""
import pytest
import torch

from pixelrnn.cli import main
from pixelrnn.device import check_device_name, resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA errors")


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_well_formed_names(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda0", "mps", " cpu"])
def test_malformed_names(name):
    with pytest.raises(ValueError, match="--device must be auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_auto_can_be_refused():
    with pytest.raises(ValueError, match="--device must be cpu, cuda or cuda:N, got 'auto'"):
        resolve_device("auto", allow_auto=False)
    assert resolve_device("cpu", allow_auto=False) == "cpu"


def test_auto_picks_this_machines_device():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_option_name_in_message():
    with pytest.raises(ValueError, match="^--eval-device must"):
        resolve_device("gpu", option="--eval-device")


@no_cuda
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_a_gpu(name):
    with pytest.raises(ValueError, match=f"--device {name}: no CUDA device is available"):
        resolve_device(name)


@pytest.mark.gpu
def test_cuda_index_beyond_the_machine():
    n = torch.cuda.device_count()
    with pytest.raises(ValueError, match=f"this machine has {n} CUDA device"):
        resolve_device(f"cuda:{n}")


@no_cuda
@pytest.mark.parametrize("command", [
    ["train", "--data", "digits", "--steps", "1", "--device", "cuda"],
    ["sample", "CKPT", "-n", "1", "--size", "2x2", "--device", "cuda:0"],
    ["eval", "CKPT", "--data", "digits", "--device", "cuda"],
])
def test_commands_refuse_a_missing_gpu(command, tmp_path, capsys):
    import pixelrnn
    ckpt = tmp_path / "m.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=2, layers=1), ckpt)
    command = [str(ckpt) if a == "CKPT" else a for a in command]
    if command[0] == "train":
        command += ["--out", str(tmp_path / "run")]
    else:
        command += ["--out", str(tmp_path / "g.png")] if command[0] == "sample" else []
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].endswith("no CUDA device is available")
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "run" / "last.safetensors").exists()


def test_compress_wants_an_explicit_device(tmp_path, capsys):
    import numpy as np
    import pixelrnn
    ckpt = tmp_path / "m.safetensors"
    pixelrnn.save(pixelrnn.create_model("pixelcnn", channels=1, levels=4, hidden=2, layers=1), ckpt)
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 1, 3, 3), dtype=np.uint8))
    out = tmp_path / "x.prnn"
    assert main(["compress", str(ckpt), "--npz", str(tmp_path / "x.npz"), "-o", str(out),
                 "--device", "auto"]) == 2
    assert "--device must be cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not out.exists()


def test_torchrun_refuses_one_fixed_gpu_for_every_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--data", "digits", "--steps", "1", "--device", "cuda:0",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "would put all 2 processes on one GPU: use --device cuda" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
