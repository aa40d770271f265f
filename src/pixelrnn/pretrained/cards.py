"""Model cards: one JSON file per shipped model, beside its ``.safetensors`` (see README.md in
this folder for how to add a model).

A card says what the model is (``title``, ``architecture``), what it learned from (``data``,
``split``), how it was made (``commands``, the exact command lines; ``training_time``; ``date``)
and how good it is (``test``: the dataset spec, split and image count it was scored on, its NLL
in nats per image and in bits/dim). ``tests/test_pretrained.py`` recomputes every ``test`` entry.
The file size is measured, not written down, so it cannot go stale.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError

REQUIRED = {"name": str, "title": str, "file": str, "data": str, "split": str, "architecture": str,
            "image_size": str, "commands": list, "test": dict, "date": str}
OPTIONAL = {"training_time": str, "notes": str}
TEST_REQUIRED = {"data": str, "split": str, "images": int, "nll_nats": (int, float),
                 "bits_per_dim": (int, float)}
TEST_OPTIONAL = {"levels": int}


@dataclass(frozen=True)
class ModelCard:
    """What ``pixelrnn info NAME`` shows; ``path`` is the weights file, ``bytes`` its size."""

    name: str
    title: str
    file: str
    data: str
    split: str
    architecture: str
    image_size: str
    commands: tuple[str, ...]
    test: dict
    date: str
    path: Path
    bytes: int
    training_time: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The card as JSON-ready data (with the measured ``bytes`` and the weights ``path``)."""
        d = {k: getattr(self, k) for k in (*REQUIRED, *OPTIONAL, "bytes")}
        d["commands"] = list(self.commands)
        d["path"] = str(self.path)
        return d

    def text(self) -> str:
        """The card as lines of text, for ``pixelrnn info NAME``."""
        t = self.test
        lines = [f"{self.name}: {self.title}",
                 f"  data:          {self.data}",
                 f"  split:         {self.split}",
                 f"  architecture:  {self.architecture}",
                 f"  image size:    {self.image_size}",
                 f"  test NLL:      {t['nll_nats']:.2f} nats/image, {t['bits_per_dim']:.4f} bits/dim "
                 f"({t['images']} images of {t['data']} {t['split']})",
                 f"  file:          {self.path} ({self.bytes:,} bytes)",
                 f"  date:          {self.date}"]
        if self.training_time:
            lines.append(f"  training time: {self.training_time}")
        if self.notes:
            lines.append(f"  notes:         {self.notes}")
        lines.append("  trained with:")
        lines += [f"    {c}" for c in self.commands]
        return "\n".join(lines)


def _check_fields(where: str, doc: dict, required: dict, optional: dict) -> None:
    for key, kind in required.items():
        if key not in doc:
            raise CheckpointError(f"{where}: the card has no {key!r}")
    for key, kind in {**required, **optional}.items():
        if key in doc and (not isinstance(doc[key], kind) or isinstance(doc[key], bool)):
            raise CheckpointError(f"{where}: {key!r} has the wrong type ({type(doc[key]).__name__})")


def read_card(path: Path) -> ModelCard:
    """The card in the JSON file ``path``, its weights file beside it; CheckpointError naming the
    file for a card that is not complete or names a missing file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable model card ({e})") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path}: a model card is a JSON object")
    _check_fields(str(path), doc, REQUIRED, OPTIONAL)
    _check_fields(f"{path} [test]", doc["test"], TEST_REQUIRED, TEST_OPTIONAL)
    if doc["name"] != path.stem:
        raise CheckpointError(f"{path}: the card's name {doc['name']!r} is not its file name")
    if not all(isinstance(c, str) and c for c in doc["commands"]) or not doc["commands"]:
        raise CheckpointError(f"{path}: 'commands' must be the command lines, as strings")
    if not all(math.isfinite(doc["test"][k]) for k in ("nll_nats", "bits_per_dim")):
        raise CheckpointError(f"{path}: the test NLL must be a finite number")
    weights = path.with_name(doc["file"])
    if weights.parent != path.parent or not weights.is_file():
        raise CheckpointError(f"{path}: the weights file {doc['file']!r} is not beside the card")
    known = {**REQUIRED, **OPTIONAL}
    return ModelCard(**{k: doc[k] for k in known if k in doc and k != "commands"},
                     commands=tuple(doc["commands"]), path=weights, bytes=weights.stat().st_size,
                     extra={k: v for k, v in doc.items() if k not in known})


def cards_table(cards: list[ModelCard]) -> str:
    """A Markdown table of ``cards`` (name, data, architecture, test NLL, bytes, date) and the
    total size, for ``pixelrnn models``."""
    rows = [["name", "what", "architecture", "test NLL", "bytes", "date"],
            ["---"] * 6]
    for c in cards:
        t = c.test
        rows.append([c.name, c.title, ",".join(c.architecture.split(",")[:2]),
                     f"{t['nll_nats']:.2f} nats = {t['bits_per_dim']:.4f} bits/dim",
                     f"{c.bytes:,}", c.date])
    total = sum(c.bytes for c in cards)
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + f"\n\n{len(cards)} model(s), {total:,} bytes in all"
