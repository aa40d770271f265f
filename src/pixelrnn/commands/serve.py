"""``pixelrnn serve [MODEL] [--host 127.0.0.1] [--port 7860]``: a local web page in front of a
model: draw, complete, sample and inspect (needs ``pip install "pixelrnn[app]"``).

MODEL is a checkpoint file or a pretrained name (``pixelrnn models``); by default
``binarized-mnist``, or the first shipped model while that one is not shipped. The page draws at
the image size of the checkpoint's ``image_size`` metadata (or ``--size HxW``). The server
listens on 127.0.0.1 (this machine only) unless ``--host`` says otherwise.
"""
from __future__ import annotations

import os
import sys

from ..errors import ArgumentError
from .common import DEVICE_HELP, find_checkpoint, load_model, resolve_device, set_threads

DEFAULT_MODEL = "binarized-mnist"
NEEDS = 'pixelrnn serve needs the web extra: pip install "pixelrnn[app]" (Starlette and uvicorn)'


def register(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: draw, complete, sample, inspect",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help=f"checkpoint file or pretrained name (default {DEFAULT_MODEL})")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--size", help="HxW the page draws at (default: the checkpoint's image_size)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP + " (default cpu)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(func=run)


def default_model() -> tuple[str, str | None]:
    """(the model to serve when none is named, a note saying why when it is not the default)."""
    from ..pretrained import pretrained_names
    names = pretrained_names()
    if DEFAULT_MODEL in names or not names:
        return DEFAULT_MODEL, None
    return names[0], f"{DEFAULT_MODEL} is not shipped yet; serving {names[0]} (pixelrnn models lists them)"


def build_service(spec: str, size: str | None, device: str):
    """The app's ModelService for a checkpoint file or pretrained name."""
    from ..app import ModelService
    from ..data import parse_size
    from ..pretrained import model_card, pretrained_names
    path = find_checkpoint(spec)
    model, meta = load_model(spec, device)
    card = model_card(spec) if path != spec and spec in pretrained_names() else None
    if size is None:
        size = meta.get("image_size") or (card.image_size if card else None)
        if size is None:
            raise ArgumentError("the checkpoint has no image_size metadata: give --size HxW")
    name = spec if card else os.path.basename(spec)
    return ModelService(model, name, parse_size(size, "--size"), card)


def run(args) -> int:
    try:
        from ..app import bind, create_app, run_server, url_of
    except ImportError as e:
        if e.name and e.name.split(".")[0] in ("starlette", "uvicorn", "anyio"):
            raise ArgumentError(NEEDS) from None
        raise
    if not 0 <= args.port <= 65535:
        raise ArgumentError(f"--port must be 0..65535, got {args.port}")
    set_threads(args.threads)
    device = resolve_device(args.device)
    spec, note = (args.model, None) if args.model else default_model()
    if note:
        print(f"pixelrnn serve: {note}", file=sys.stderr)
    service = build_service(spec, args.size, device)
    local = args.host in ("127.0.0.1", "localhost", "::1")
    sock = bind(args.host, args.port)
    url = url_of(sock).replace("0.0.0.0", "127.0.0.1") if not local else url_of(sock)
    print(f"serving {service.name} ({service.height}x{service.width}) at {url}  (Ctrl-C to stop)", flush=True)
    if not local:
        print(f"pixelrnn serve: listening on {args.host}: other machines can use this page", file=sys.stderr)
    # Host headers: the loopback names by default (no DNS rebinding); any for other addresses and
    # for IPv6, whose "[::1]:port" Starlette's host check does not parse
    hosts = None if args.host in ("127.0.0.1", "localhost") else ["*"]
    run_server(create_app(service, allowed_hosts=hosts), sock)
    return 0
