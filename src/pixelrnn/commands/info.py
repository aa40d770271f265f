"""``pixelrnn info CHECKPOINT``: what a checkpoint holds."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's configuration and size")
    p.add_argument("checkpoint")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checkpoint import describe
    print(json.dumps(describe(args.checkpoint), indent=2, sort_keys=True))
    return 0
