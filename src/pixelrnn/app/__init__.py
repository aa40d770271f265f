"""``pixelrnn serve``: a local web page in front of a model (needs ``pip install "pixelrnn[app]"``:
Starlette and uvicorn).

    from pixelrnn.app import BackgroundServer, ModelService, create_app
    service = ModelService.for_pretrained("mnist")
    with BackgroundServer(create_app(service)) as server:  # a free port on 127.0.0.1
        print(server.url)

The page (``static/``: one HTML file, one script, one style sheet; no build step) draws on a
canvas at the model's size, completes the drawing (bottom half, right half or a painted region;
importance-resampled particles), samples, and inspects the drawing: NLL and bits/dim, a
per-pixel surprise map, p(y | x) for a conditional model, and its size coded by the model
against PNG. Modules: :mod:`.service` (the model work and the checks of a request), :mod:`.jobs`
(the worker thread and its queue), :mod:`.server` (the HTTP API).
"""
from .jobs import Job, Jobs, QueueFull
from .server import STATIC, BackgroundServer, bind, create_app, run_server, url_of
from .service import LIMITS, REGIONS, ModelService

__all__ = ["ModelService", "create_app", "BackgroundServer", "run_server", "bind", "url_of", "Job",
           "Jobs", "QueueFull", "LIMITS", "REGIONS", "STATIC"]
