"""Smoke tests of the analysis scripts under bench/ (the timed benchmarks themselves are not run)."""
import re
import subprocess
import sys
from pathlib import Path

import torch

import pixelrnn
from pixelrnn.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_bits_by_value_accounts_for_every_bit(tmp_path):
    model = pixelrnn.create_model("pixelcnn", levels=17, hidden=6, layers=1)
    pixelrnn.save(model, tmp_path / "m.safetensors")
    out = subprocess.run([sys.executable, ROOT / "bench" / "bits_by_value.py", tmp_path / "m.safetensors",
                          "--data", "digits"], capture_output=True, text=True, check=True).stdout
    bpd = float(re.search(r"([\d.]+) bits/dim", out).group(1))
    x = load_dataset("digits", "test").images.long()
    with torch.no_grad():
        assert abs(bpd - float(model.bits_per_dim(x).mean())) < 1e-3
    rows = {r[0]: r[1:] for r in (line.strip("|").split("|") for line in out.splitlines()
                                  if line.startswith("| ") and "%" in line)}
    rows = {k.strip(): [float(c.strip(" %")) for c in v] for k, v in rows.items()}
    parts = [rows[k] for k in ("0", "1-7", "8-15", "16")]  # 17 levels: 0, low half, high half, top
    assert abs(sum(r[0] for r in parts) - 100) < 0.5 and abs(sum(r[1] for r in parts) - 100) < 0.5
    assert rows["background 0 (5×5 all 0)"][1] <= rows["0"][1]
