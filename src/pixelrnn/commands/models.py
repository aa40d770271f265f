"""``pixelrnn models``: the trained models shipped with the package, one row each (``pixelrnn
info NAME`` shows a whole card)."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list the pretrained models shipped with the package")
    p.add_argument("--json", action="store_true", help="the cards as a JSON list")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pretrained import cards_table, model_cards
    cards = model_cards()
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
        return 0
    print(cards_table(cards))
    print("Use a name wherever a command takes a checkpoint (pixelrnn sample NAME -n 16 --out s.png, "
          "pixelrnn serve NAME); pixelrnn info NAME shows its card.")
    return 0
