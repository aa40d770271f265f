"""bench/efficiency.py at a toy size: one row per architecture (and per scan with --pytorch-scan),
the GFLOP counted by FlopCounterMode the same on both scans, and no warning that the counter
missed the scan's products (its timings are not checked)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_efficiency_bench_counts_the_same_flops_on_both_scans():
    r = subprocess.run([sys.executable, "bench/efficiency.py", "--batch", "2", "--size", "6", "--hidden", "8",
                        "--layers", "1", "--repeats", "1", "--threads", "1", "--gemm", "64", "--pytorch-scan"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "WARNING" not in r.stderr
    table = [line.split("|") for line in r.stdout.splitlines() if line.startswith("| ")]
    rows = {cells[1].strip(): cells[2:] for cells in table[1:]}  # after the header
    assert "pixelcnn" in rows and rows["pixelcnn"][-2].strip().startswith("1.00 [1.00-1.00]x")
    for arch in ("row_lstm", "diagonal_bilstm"):
        assert float(rows[arch][0]) > 0
        if f"{arch} (PyTorch scan)" in rows:  # only when the native kernel runs here
            assert rows[arch][0] == rows[f"{arch} (PyTorch scan)"][0]
    assert "scan FLOPs counted/analytic:" in r.stdout
