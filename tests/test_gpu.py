"""The GPU path. Marked `gpu`: skipped without CUDA (CI has none); run with `pytest -m gpu`."""
import json

import pytest
import torch

import pixelrnn
from conftest import ARCHS

pytestmark = pytest.mark.gpu
ALL = ARCHS + ["multiscale"]  # multiscale: its default base (row_lstm), factor 2


@pytest.fixture
def full_fp32():
    """cuDNN may run float32 convolutions in TF32 (10-bit mantissa) by default: compare with the
    CPU in full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("C", [1, 3])
def test_forward_backward_matches_cpu(arch, C, full_fp32):
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=C, levels=16, hidden=8, layers=2)
    x = torch.randint(0, 16, (4, C, 9, 11))
    cpu = model.log_prob(x)
    cpu.sum().backward()
    g_cpu = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    gpu_model = model.cuda()
    gpu = gpu_model.log_prob(x.cuda())
    gpu.sum().backward()
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-3)
    for n, p in gpu_model.named_parameters():
        torch.testing.assert_close(p.grad.cpu(), g_cpu[n], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_bf16_autocast_forward_backward(arch):
    model = pixelrnn.create_model(arch, levels=256, hidden=16, layers=2).cuda()
    x = torch.randint(0, 256, (8, 1, 16, 16), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logp = model.log_prob(x)
    assert logp.dtype == torch.float32 and torch.isfinite(logp).all()
    logp.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("arch", ALL)
def test_cached_sampling_on_gpu(arch):
    model = pixelrnn.create_model(arch, levels=4, hidden=8, layers=2).cuda()
    if not hasattr(model, "sample"):
        pytest.skip("sampling not available")
    g = torch.Generator(device="cuda").manual_seed(0)
    x = model.sample(4, height=8, width=8, generator=g)
    assert x.shape == (4, 1, 8, 8) and x.device.type == "cuda"


def test_short_training_run_on_gpu(tmp_path, capsys):
    from pixelrnn.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", "binarized-mnist", "--arch", "row_lstm", "--hidden", "16",
                 "--layers", "2", "--steps", "20", "--device", "cuda", "--precision", "bf16",
                 "--eval-batch-size", "500", "--no-progress", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["test"]["nll_nats"] < 544  # below a uniform model (784 ln 2)
    assert pixelrnn.load(out / "last.safetensors").config.arch == "row_lstm"


@pytest.mark.parametrize("script", ["bench/train_step.py", "bench/sampling.py"])
def test_timed_benches_run_on_gpu(script):
    import re
    import subprocess
    import sys
    from pathlib import Path
    small = (["--batch", "4", "--size", "8", "--precision", "bf16"] if "train_step" in script
             else ["--size", "6", "--batches", "4", "--naive-batch", "4", "--naive-steps", "2"])
    r = subprocess.run([sys.executable, script, "--device", "cuda", "--hidden", "8", "--layers", "2",
                        "--repeats", "2", *small], cwd=Path(__file__).resolve().parents[1],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert torch.cuda.get_device_name() in r.stdout and re.search(r"\|\s*row_lstm\s*\|", r.stdout)


def test_sample_and_complete_commands_on_gpu(tmp_path):
    import numpy as np
    from pixelrnn.cli import main
    ckpt = tmp_path / "m.safetensors"
    pixelrnn.save(pixelrnn.create_model("row_lstm", levels=4, hidden=8, layers=2), ckpt,
                  metadata={"image_size": "6x6"})
    assert main(["sample", str(ckpt), "-n", "3", "--device", "cuda", "--out", str(tmp_path / "s.png"),
                 "--npz", str(tmp_path / "s.npz"), "--no-progress"]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (3, 1, 6, 6)
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 6, 6)).astype(np.uint8)
    np.savez(tmp_path / "x.npz", images=x)
    assert main(["complete", str(ckpt), "--data", f"npz:{tmp_path / 'x.npz'}",
                 "--mask", "bottom-half", "--device", "cuda:0", "--out", str(tmp_path / "c.png"),
                 "--npz", str(tmp_path / "c.npz"), "--no-progress"]) == 0
    done = np.load(tmp_path / "c.npz")
    assert (done["images"][..., :3, :] == done["originals"][..., :3, :]).all()
