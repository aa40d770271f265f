"""The models shipped inside the package (pixelrnn.pretrained): registry, cards, the CLI's
pretrained names, and every card's test NLL recomputed."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.commands.common import find_checkpoint
from pixelrnn.errors import CheckpointError
from pixelrnn.pretrained import FOLDER, cards_table, model_card, model_cards, pretrained_path
from pixelrnn.pretrained.cards import read_card

MAX_BYTES = 20_000_000  # all shipped models together (the wheel must stay small)


def cli(capsys, *args):
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_registry_lists_cards_and_loads_models_in_eval_mode():
    names = pixelrnn.pretrained_names()
    assert "mnist" in names and names == sorted(names)
    for name in names:
        model = pixelrnn.pretrained(name)
        assert isinstance(model, pixelrnn.PixelModel) and not model.training
        card = model_card(name)
        assert card.path == pretrained_path(name) and card.path.parent == FOLDER
        assert card.bytes == card.path.stat().st_size > 0
        H, W = (int(v) for v in card.image_size.split("x"))
        assert model.log_prob(torch.zeros(1, model.channels, H, W, dtype=torch.long)).shape == (1,)
    with pytest.raises(CheckpointError, match="shipped models are: .*mnist"):
        pixelrnn.pretrained("no-such-model")


def test_the_mnist_model_grew_out_of_the_compression_benchmarks_model():
    """The shipped mnist model is the compression benchmark's Row LSTM (bench/models) fine-tuned
    with labels; its card lists every stage and says it meets the issue's target."""
    card = model_card("mnist")
    assert card.test["data"] == "mnist" and card.test["split"] == "test" and card.test["images"] == 1000
    assert card.test["bits_per_dim"] <= 0.95
    assert any("--init bench/models/mnist-row-h32.safetensors" in c for c in card.commands)
    assert len(card.commands) >= 8 and all(c.strip() for c in card.commands)
    model = pixelrnn.pretrained("mnist")
    assert (model.config.arch, model.config.hidden, model.config.layers, model.levels, model.classes) == \
        ("row_lstm", 32, 7, 256, 10)
    bench = pixelrnn.load(Path(__file__).resolve().parents[1] / "bench" / "models" / "mnist-row-h32.safetensors")
    assert (bench.config.hidden, bench.config.layers, bench.classes) == (32, 7, 0)


def test_the_binarized_mnist_card_meets_the_target():
    card = model_card("binarized-mnist")
    assert card.test["data"] == "binarized-mnist" and card.test["images"] == 1000
    assert card.test["nll_nats"] <= 84.0
    assert pixelrnn.pretrained("binarized-mnist").classes == 10


def test_all_models_together_stay_small():
    total = sum(c.bytes for c in model_cards())
    assert total <= MAX_BYTES, f"the shipped models take {total:,} bytes (at most {MAX_BYTES:,})"
    table = cards_table(model_cards())
    assert "| mnist |" in table and f"{total:,} bytes in all" in table


def test_a_card_must_be_complete(tmp_path):
    shutil.copy(FOLDER / "mnist.json", tmp_path / "mnist.json")
    with pytest.raises(CheckpointError, match="is not beside the card"):
        read_card(tmp_path / "mnist.json")
    (tmp_path / "mnist.safetensors").write_bytes(b"x")
    assert read_card(tmp_path / "mnist.json").bytes == 1
    doc = json.loads((FOLDER / "mnist.json").read_text())
    for key, value, match in (("date", None, "has no 'date'"), ("commands", [], "command lines"),
                              ("test", {"data": "mnist"}, r"\[test\]: the card has no 'split'"),
                              ("name", "other", "is not its file name"), ("title", 3, "wrong type")):
        bad = {k: v for k, v in doc.items() if k != key or value is not None}
        if value is not None:
            bad[key] = value
        (tmp_path / "mnist.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=match):
            read_card(tmp_path / "mnist.json")


def test_commands_take_a_pretrained_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = cli(capsys, "models")
    assert rc == 0 and "| mnist |" in out and "bytes in all" in out
    rc, out, _ = cli(capsys, "models", "--json")
    assert rc == 0 and [c["name"] for c in json.loads(out)] == pixelrnn.pretrained_names()
    rc, out, _ = cli(capsys, "info", "mnist")
    assert rc == 0 and "test NLL:" in out and "0.9656 bits/dim" in out and "pixelrnn train" in out
    assert f"{model_card('mnist').bytes:,} bytes" in out and '"arch": "row_lstm"' in out
    rc, out, _ = cli(capsys, "info", "mnist", "--json")
    doc = json.loads(out)
    assert doc["card"]["bytes"] == model_card("mnist").bytes and doc["config"]["hidden"] == 32
    rc, _, err = cli(capsys, "sample", "mnist", "-n", "2", "--out", "s.png", "--no-progress")
    assert rc == 0 and (tmp_path / "s.png").is_file()
    # an existing file of that name wins; an unknown word lists the names
    assert find_checkpoint("mnist") == str(pretrained_path("mnist"))
    (tmp_path / "mnist").write_bytes(b"not a checkpoint")
    assert find_checkpoint("mnist") == "mnist"
    rc, _, err = cli(capsys, "info", "mnist")
    assert rc == 2 and "not a readable pixelrnn checkpoint" in err
    rc, _, err = cli(capsys, "info", "mnsit")
    assert rc == 2 and err.strip() == ("pixelrnn info: error: checkpoint not found: mnsit is neither a file "
                                       f"nor a pretrained model ({', '.join(pixelrnn.pretrained_names())})")
    rc, _, err = cli(capsys, "info", "runs/x.safetensors")
    assert err.strip() == "pixelrnn info: error: checkpoint not found: runs/x.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("name", pixelrnn.pretrained_names())
def test_the_card_test_nll_is_what_the_model_scores(name):
    """Each card's test NLL, recomputed on its data and split (a Row LSTM on 1000 digits: 20-60 s)."""
    from pixelrnn.data import load_dataset
    from pixelrnn.evaluate import evaluate
    card = model_card(name)
    t = card.test
    ds = load_dataset(t["data"], t["split"], levels=t.get("levels"))
    assert len(ds) == t["images"]
    res = evaluate(pixelrnn.pretrained(name), ds.images, batch_size=100)
    assert res.nll == pytest.approx(t["nll_nats"], rel=1e-4)
    assert res.bits_per_dim == pytest.approx(t["bits_per_dim"], rel=1e-4)
