"""Smoke tests of bench/big_data.py and bench/large_images.py at toy sizes (their timings and
memory figures are not checked, only that every row is there and the numbers are sane)."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| run") and not line.startswith("| architecture")]


@pytest.mark.slow
def test_big_data_trains_on_a_mapped_file_and_reports_memory_and_start_up(tmp_path):
    path = tmp_path / "x.npy"
    r = _bench("bench/big_data.py", "--path", path, "--images", 700, "--size", 8, "--steps", 3,
               "--eval-every", 2, "--eval-limit", 5, "--small", 100, "--hidden", 4, "--layers", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(r.stdout)
    assert [row[0] for row in rows] == ["cold (700 images)", "warm (700 images)", "small (100 images)"]
    for row in rows:
        startup, step1, peak, anon, file = map(float, row[1:6])
        assert 0 < step1 < startup and 0 < anon < peak and 0 < file < peak
        assert row[-1] == "[5, 5]"  # the periodic and the final evaluation, on 5 test images each
    assert not path.exists()  # made here, so deleted (no --keep)
    np.save(path, np.zeros((700, 3, 8, 8), np.uint8))
    r = _bench("bench/big_data.py", "--path", path, "--images", 700, "--size", 8, "--steps", 2,
               "--eval-every", 2, "--eval-limit", 5, "--runs", "warm", "--hidden", 4, "--layers", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reused" in r.stdout and path.exists()  # a file that was there is kept


def test_big_data_writes_the_file_chunk_by_chunk(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import big_data
    finally:
        sys.path.remove(str(ROOT / "bench"))
    monkeypatch.setattr(big_data, "CHUNK_BYTES", 1000)  # 5 images of 3x8x8 per chunk
    big_data.make_file(tmp_path / "x.npy", (23, 3, 8, 8), seed=1)
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (23, 3, 8, 8) and x.dtype == np.uint8
    assert big_data.usable(tmp_path / "x.npy", (23, 3, 8, 8)) and not big_data.usable(tmp_path / "x.npy", (2, 3, 8, 8))
    assert len(np.unique(x.reshape(23, -1), axis=0)) == 23  # every chunk drew new images


@pytest.mark.slow
def test_large_images_prints_one_row_per_configuration():
    """Three fresh children per row (memory without and with checkpointing, time): two
    architectures keep it short; the others run the same code."""
    r = _bench("bench/large_images.py", "--archs", "diagonal_bilstm", "multiscale", "--sizes", 8, 12,
               "--sample-sizes", 8, "--multiscale-sizes", 8, "--hidden", 4, "--layers", 1, "--batch", 2,
               "--repeats", 1, "--threads", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [row for row in _rows(r.stdout) if len(row) == 14]
    configurations = [("diagonal_bilstm", "8²"), ("diagonal_bilstm", "12²"), ("multiscale (row_lstm)", "8²")]
    assert [(row[0], row[1]) for row in rows] == configurations
    evals = [row for row in _rows(r.stdout) if len(row) == 5]  # evaluation memory, one pass / bands
    assert [(row[0], row[1]) for row in evals] == configurations
    assert all(float(row[2]) >= 0 and float(row[3]) >= 0 for row in evals)
    for row in rows:
        assert float(row[3]) > 0 and float(row[5]) > 0 and float(row[6]) > 0  # times and peaks
        assert re.fullmatch(r"[\d.]+x", row[7])
        if row[1] == "8²":
            assert float(row[11].strip("*")) > 0  # sampled: the ratio to one forward pass
        else:
            assert row[9:] == ["skipped"] * 5


@pytest.mark.parametrize("script", ["bench/train_step.py", "bench/sampling.py"])
def test_before_after_in_one_process(script):
    """--against DIR imports another checkout's package beside this one (here: this tree itself)."""
    args = ["--size", 5, "--hidden", 4, "--layers", 1, "--repeats", 1, "--threads", 1, "--against", ROOT]
    args += ["--batch", 2] if script.endswith("train_step.py") else ["--batches", 2]
    r = _bench(script, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [row for row in _rows(r.stdout) if row[0] in ("pixelcnn", "row_lstm", "diagonal_bilstm")]
    assert [row[0] for row in rows] == ["pixelcnn", "row_lstm", "diagonal_bilstm"]
    assert all(re.fullmatch(r"[\d.]+ \[[\d.]+-[\d.]+\]", row[-1]) for row in rows)
    assert "drew different images" not in r.stdout  # the same weights sample the same images
