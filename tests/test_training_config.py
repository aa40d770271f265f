"""TrainConfig: its fields are the flags of ``pixelrnn train``, its model fields come from
ModelConfig, and runs started before the training package resume."""
import argparse
import dataclasses
import json

import pytest
import torch

import pixelrnn
from pixelrnn.cli import main
from pixelrnn.commands import train as train_command
from pixelrnn.models import ModelConfig
from pixelrnn.training import TrainConfig, TrainState, load_state
from pixelrnn.training import config as config_module

# the "train" section of config.json before the training package: its keys must stay fields
KEYS_OF_EARLIER_RUNS = {
    "out", "data", "levels", "crop", "skip_bad", "dynamic_binarization", "shift", "hflip", "dropout",
    "dihedral", "arch", "hidden", "layers", "head", "skip", "mixtures", "kernel", "base", "factor",
    "init", "optimizer", "lr", "lr_schedule", "warmup", "weight_decay", "grad_clip", "ema",
    "batch_size", "epochs", "steps", "max_minutes", "eval_every", "eval_batch_size", "log_every",
    "save_every", "progress", "seed", "deterministic", "device", "precision", "compile", "threads"}


def train_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    train_command.register(sub)
    return sub.choices["train"]


def test_the_flags_of_pixelrnn_train_are_the_fields_of_TrainConfig_and_the_other_way_round():
    given = vars(train_parser().parse_args([]))
    own = {"resume", "json", "func"}  # the command's own
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(given) - own == fields
    assert all(given[name] is None for name in fields)  # not given: the default (or the run's)
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["group"] in config_module.GROUPS, f.name


def test_every_field_of_ModelConfig_is_a_model_flag_or_said_not_to_be():
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    model_fields = set(config_module.MODEL_FIELDS)
    options = {name for name, _, _ in config_module.ARCH_OPTIONS}
    assert names - set(config_module.NOT_FLAGS) == model_fields - options
    assert set(config_module.CONFIG_FIELDS) == model_fields - options
    assert TrainConfig().arch == "diagonal_bilstm" and TrainConfig().hidden == ModelConfig("x").hidden


def test_a_model_field_without_a_flag_stops_the_import(monkeypatch):
    @dataclasses.dataclass
    class Wider(ModelConfig):
        novel: int = 0
    monkeypatch.setattr(config_module, "ModelConfig", Wider)
    with pytest.raises(TypeError, match="ModelConfig.novel has no flag"):
        config_module.model_settings_fields()


def test_the_keys_of_earlier_runs_are_fields_with_the_same_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert KEYS_OF_EARLIER_RUNS <= set(fields)
    assert (fields["arch"], fields["hidden"], fields["layers"], fields["head"], fields["kernel"],
            fields["batch_size"], fields["lr"], fields["log_every"], fields["save_every"]) == \
        ("diagonal_bilstm", 16, 7, None, 3, 16, 1e-3, 20, 200)


def test_the_model_of_a_config_is_the_one_create_model_builds():
    cfg = TrainConfig(arch="multiscale", base="pixelcnn", kernel=5, hidden=6, layers=1, head=10, skip=True)
    torch.manual_seed(0)
    a = pixelrnn.models.model_from_config(cfg.model_config(channels=1, levels=4))
    torch.manual_seed(0)
    b = pixelrnn.create_model("multiscale", channels=1, levels=4, hidden=6, layers=1, head=10, skip=True,
                              base="pixelcnn", factor=2, kernel=5)
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert config_module.settings_of(a.config) == {
        **{name: getattr(cfg, name) for name in config_module.MODEL_FIELDS}, "factor": 2}


def test_the_training_state_keeps_the_keys_and_order_of_earlier_state_files(tmp_path):
    """state.safetensors' meta: the same JSON keys in the same order as before TrainState."""
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--arch", "pixelcnn", "--hidden", "4", "--layers", "1",
                 "--steps", "3", "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    _, meta = load_state(out / "state.safetensors")
    assert list(meta) == ["step", "epoch", "batch_in_epoch", "elapsed", "best_nll", "window_nll",
                          "window_images", "window_seconds", "finished", "param_groups", "optim_scalars"]
    state = TrainState.from_meta(meta)
    assert (state.step, state.finished) == (3, True)
    saved = json.loads((out / "config.json").read_text())["train"]
    assert set(saved) == {f.name for f in dataclasses.fields(TrainConfig)}
