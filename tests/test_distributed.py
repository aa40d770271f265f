"""Two gloo processes on loopback (torchrun) against a single process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.evaluate import evaluate, shard_range

ARGS = ["train", "--data", "digits", "--arch", "row_lstm", "--hidden", "6", "--layers", "1",
        "--batch-size", "8", "--deterministic", "--threads", "1", "--no-progress",
        "--log-every", "2", "--eval-every", "4", "--device", "cpu"]


def run(args, nproc=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc}", "-m", "pixelrnn"] if nproc > 1 else [sys.executable, "-m", "pixelrnn"]
    p = subprocess.run(launcher + [str(a) for a in args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def records(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_shard_range_covers_everything_once():
    for n in (0, 1, 7, 359, 1000):
        for world in (1, 2, 3, 8):
            parts = [shard_range(n, r, world) for r in range(world)]
            covered = [i for a, b in parts for i in range(a, b)]
            assert covered == list(range(n))
            sizes = [b - a for a, b in parts]
            assert max(sizes) - min(sizes) <= 1


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    run(ARGS + ["--steps", "8", "--out", tmp_path / "single"])
    p = run(ARGS + ["--steps", "8", "--out", tmp_path / "ddp"], nproc=2)
    assert p.stdout.count("step 8") == 1  # only rank 0 reports
    final = records(tmp_path / "ddp")[-1]
    assert final["final"] and final["rank_max_weight_diff"] == 0.0  # both ranks hold the same weights
    a = load_file(tmp_path / "single" / "last.safetensors")
    b = load_file(tmp_path / "ddp" / "last.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    # the distributed (sharded, all-reduced) evaluation equals the single-process one
    dist_test = [r for r in records(tmp_path / "ddp") if "test_nll" in r][-1]
    model = pixelrnn.load(tmp_path / "ddp" / "last.safetensors")
    single = evaluate(model, load_dataset("digits", "test").images, batch_size=64)
    assert dist_test["test_nll"] == pytest.approx(single.nll, rel=1e-9)
    # the same global batch gives the same logged training NLL
    s_train = [r["train_nll"] for r in records(tmp_path / "single") if "train_nll" in r]
    d_train = [r["train_nll"] for r in records(tmp_path / "ddp") if "train_nll" in r]
    assert d_train == pytest.approx(s_train, rel=1e-5)


@pytest.mark.slow
def test_checkpointing_in_bands_under_torchrun(tmp_path):
    """Two processes with --checkpoint-activations (bands recomputed in the backward pass, the
    gradients all-reduced) end where one plain process does, up to float rounding."""
    run(ARGS + ["--steps", "6", "--out", tmp_path / "single"])
    run(ARGS + ["--steps", "6", "--checkpoint-activations", "--checkpoint-bands", "3",
                "--out", tmp_path / "ddp"], nproc=2)
    assert records(tmp_path / "ddp")[-1]["rank_max_weight_diff"] == 0.0
    a = load_file(tmp_path / "single" / "last.safetensors")
    b = load_file(tmp_path / "ddp" / "last.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


@pytest.mark.slow
def test_resume_under_torchrun(tmp_path):
    run(ARGS + ["--steps", "8", "--out", tmp_path / "straight"], nproc=2)
    run(ARGS + ["--steps", "3", "--save-every", "1", "--out", tmp_path / "resumed"], nproc=2)
    run(["train", "--resume", tmp_path / "resumed", "--steps", "8"], nproc=2)
    a = load_file(tmp_path / "straight" / "last.safetensors")
    b = load_file(tmp_path / "resumed" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_failed_save_on_rank_0_stops_every_rank(tmp_path):
    """Rank 0 alone writes checkpoints; when that fails (a full disk), rank 1 must not wait in
    the next all-reduce until the collective times out: both stop at once with one-line errors."""
    launcher = tmp_path / "full_disk.py"
    launcher.write_text(
        "import errno, os, sys\n"
        "import pixelrnn.checkpoint as pio\n"
        "from pixelrnn.cli import main\n"
        "real = pio.save\n"
        "def save(model, path, metadata=None):\n"
        "    if os.environ.get('RANK') == '0' and int((metadata or {}).get('step', 0)) >= 4:\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return real(model, path, metadata)\n"
        "pio.save = save\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(launcher), *map(str, ARGS), "--steps", "12", "--save-every", "2",
                        "--out", tmp_path / "run"], capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode != 0
    assert "No space left on device" in p.stderr
    assert "rank 0 could not write a checkpoint" in p.stderr
    assert pixelrnn.checkpoint.describe(tmp_path / "run" / "last.safetensors")["metadata"]["step"] == "2"


def test_a_torchrun_worker_exits_without_the_interpreter_teardown():
    """Under torchrun (WORLD_SIZE > 1) the CLI leaves with os._exit after flushing its output:
    torch keeps a DDP model's gloo process group alive past destroy_process_group, and one of its
    worker threads dropping a finished collective during interpreter shutdown aborted rank 1 (2 of
    153 two-process runs here, none of 300 after the fix). The output and the exit status must
    survive the shortcut."""
    ckpt = Path(__file__).resolve().parents[1] / "bench" / "models" / "mnist-row-h32.safetensors"
    script = ("import atexit, runpy, sys\n"
              "atexit.register(lambda: print('interpreter finalized', flush=True))\n"
              "sys.argv = ['pixelrnn', 'info', sys.argv[1]]\n"
              "runpy.run_module('pixelrnn', run_name='__main__')\n")
    for world, finalized in (("2", False), ("1", True)):
        env = {**os.environ, "WORLD_SIZE": world}
        p = subprocess.run([sys.executable, "-c", script, str(ckpt)], capture_output=True, text=True,
                           env=env, timeout=120)
        assert p.returncode == 0, p.stderr[-2000:]
        assert '"arch": "row_lstm"' in p.stdout  # flushed before the exit
        assert ("interpreter finalized" in p.stdout) == finalized
        bad = subprocess.run([sys.executable, "-c", script, "/no/such/model.safetensors"],
                             capture_output=True, text=True, env=env, timeout=120)
        assert bad.returncode == 2
        assert bad.stderr.strip() == "pixelrnn info: error: checkpoint not found: /no/such/model.safetensors"
