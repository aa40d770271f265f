"""``pixelrnn info CHECKPOINT``: what a checkpoint holds; for a pretrained name (``pixelrnn
models``) its model card first: data and split, architecture, the commands that trained it, test
NLL, date and file size."""
from __future__ import annotations

import json
import os


def register(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's configuration and size (and a pretrained "
                       "model's card)")
    p.add_argument("checkpoint", help="a checkpoint file or a pretrained name")
    p.add_argument("--json", action="store_true", help="one JSON object (with the card, if any)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import describe
    from ..pretrained import model_card, pretrained_names
    from .common import find_checkpoint
    path = find_checkpoint(args.checkpoint)
    info = describe(path)
    card = None
    if not os.path.lexists(args.checkpoint) and args.checkpoint in pretrained_names():
        card = model_card(args.checkpoint)
    if args.json:
        print(json.dumps({**info, "card": card.to_dict() if card else None}, indent=2, sort_keys=True))
        return 0
    if card is not None:
        print(card.text())
        print()
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0
