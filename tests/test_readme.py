"""The README's Python example runs as written, and its comments say what the objects are."""
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.slow
def test_readme_python_example(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) == 2  # the API, then the conditional models (run in the same namespace)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    x, known = ns["x"], ns["known"]
    assert ns["logits"].shape == (8, 2, 1, 28, 28)
    assert ns["logp"].shape == ns["bpd"].shape == (8,)
    assert ns["per_value"].shape == x.shape
    torch.testing.assert_close(ns["per_value"].flatten(1).sum(1), ns["logp"])
    torch.testing.assert_close(ns["model2"].log_prob(x), ns["logp"])
    assert ns["samples"].shape == (16, 1, 28, 28)
    assert torch.equal(ns["filled"][known], x[known])
    assert ns["scores"].shape == (8,)
    assert len(ns["images"]) == 8 and all(torch.equal(a, b) for a, b in zip(ns["images"], x))
    assert (tmp_path / "m.safetensors").is_file()
    assert ns["logp_y"].shape == ns["marginal"].shape == (8,)
    torch.testing.assert_close(ns["posterior"].logsumexp(1), torch.zeros(8))
    assert ns["sevens"].shape == (4, 1, 28, 28) and torch.equal(ns["guessed"][known], x[known])
    assert ns["feats"].shape == (8, 8 * 32)  # 7 blocks and the first layer, 2h = 32 maps each
