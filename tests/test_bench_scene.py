"""bench/scene_understanding.py runs end to end on tiny models (a smoke test of the harness)."""
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

import pixelrnn

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scene_understanding.py"


@pytest.mark.slow
def test_scene_understanding_bench_on_the_digits(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    cond = pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=4, layers=1, classes=10)
    plain = pixelrnn.create_model("pixelcnn", channels=1, levels=17, hidden=4, layers=1)
    pixelrnn.save(cond, tmp_path / "c.safetensors")
    pixelrnn.save(plain, tmp_path / "u.safetensors")
    monkeypatch.setattr(sys, "argv", ["scene", "--conditional", str(tmp_path / "c.safetensors"),
                                      "--unconditional", str(tmp_path / "u.safetensors"), "--data", "digits",
                                      "--per-label", "2", "--json", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(BENCH), run_name="__main__")
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "(a) generative classifier" in out and "raw pixels" in out and "(c) 2 samples per label" in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert 0 <= res["classifier"]["accuracy"] <= 1
    assert len(res["probes"]) == 1 + 2 * 3  # raw pixels; each model: 2 layers and all together
    assert res["probes"][0]["accuracy"] > 0.8  # the raw-pixel probe of the 8x8 digits is a good classifier
    assert len(res["samples"]["per_label"]) == 10
