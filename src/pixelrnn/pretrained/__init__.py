"""Trained models shipped inside the package (package data; nothing is ever downloaded).

    import pixelrnn
    pixelrnn.pretrained_names()          # ["mnist", ...]
    model = pixelrnn.pretrained("mnist")  # a loaded model in eval mode
    from pixelrnn.pretrained import model_card
    print(model_card("mnist").text())    # data, split, architecture, commands, test NLL, bytes

Each model is a checkpoint ``NAME.safetensors`` with its model card ``NAME.json`` beside it in
this folder (:mod:`.cards`; README.md here says how to add one). Every command line argument that
takes a checkpoint also takes one of these names (``pixelrnn sample mnist -n 16 --out s.png``;
an existing file of that name wins).

Note: ``pixelrnn.pretrained`` is the function; the package's other names are imported from
``pixelrnn.pretrained`` with ``from ... import``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError
from .cards import ModelCard, cards_table, read_card

FOLDER = Path(__file__).resolve().parent

__all__ = ["pretrained", "pretrained_names", "pretrained_path", "find_checkpoint", "model_card", "model_cards",
           "ModelCard", "cards_table", "FOLDER"]


def pretrained_names() -> list[str]:
    """The names of the shipped models, sorted."""
    return sorted(p.stem for p in FOLDER.glob("*.json"))


def model_card(name: str) -> ModelCard:
    """The card of the shipped model ``name`` (CheckpointError listing the names if there is none)."""
    if not isinstance(name, str) or name not in pretrained_names():
        raise CheckpointError(f"no pretrained model {name!r}; the shipped models are: "
                              f"{', '.join(pretrained_names()) or 'none'}")
    return read_card(FOLDER / f"{name}.json")


def model_cards() -> list[ModelCard]:
    """The cards of all shipped models, in name order."""
    return [model_card(n) for n in pretrained_names()]


def pretrained_path(name: str) -> Path:
    """The weights file of the shipped model ``name``."""
    return model_card(name).path


def find_checkpoint(spec: str) -> str:
    """The checkpoint file a CHECKPOINT argument names (every command, ``train --init``): a path
    that exists wins; else the file of a pretrained model of that name; else FileNotFoundError
    (a bare word that is no pretrained name: the message lists the names)."""
    if os.path.lexists(spec):
        return spec
    names = pretrained_names()
    if spec in names:
        return str(pretrained_path(spec))
    if os.sep in spec or "/" in spec or Path(spec).suffix:
        raise FileNotFoundError(f"checkpoint not found: {spec}")
    raise FileNotFoundError(f"checkpoint not found: {spec} is neither a file nor a pretrained model "
                            f"({', '.join(names) or 'none shipped'})")


def pretrained(name: str, device: str = "cpu"):
    """The shipped model ``name`` (see :func:`pretrained_names`), loaded on ``device`` (cpu,
    cuda, auto, ...) in eval mode. The model's image size is ``model_card(name).image_size``."""
    from ..checkpoint import load
    return load(pretrained_path(name), map_location=device)
