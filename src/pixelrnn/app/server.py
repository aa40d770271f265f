"""The HTTP side of ``pixelrnn serve``: a Starlette app (one static page and a small JSON API) run
by uvicorn.

API (JSON in, JSON out; an error is ``{"error": message}`` with status 400, 404, 413 or 503)::

    GET  /                      the page (static/index.html, app.js, style.css)
    GET  /api/model             name, size, channels, levels, classes and names, card facts
    POST /api/complete          {pixels, region: bottom|right|painted, mask?, n, particles, label?,
                                 temperature, seed?}                         -> a job (202)
    POST /api/sample            {n, label?, temperature, seed?}             -> a job (202)
    POST /api/inspect           {pixels}                                    -> a job (202)
    POST /api/decode            {data_url}: an uploaded image file -> {pixels} at the model's size
    GET  /api/jobs/ID?wait=S    the job: status queued|running|done|error|cancelled, progress
                                0..1, seconds, result or error; ``wait`` (up to 30 s) answers as
                                soon as the job is over, else after S seconds

Model work runs in one worker thread (:mod:`.jobs`), so the event loop always answers at once:
the page polls its job and shows the progress while other requests are served. Requests are
checked before they are queued (:class:`.service.ModelService` ``check_*``).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ArgumentError, UserError
from .jobs import Jobs, QueueFull
from .service import LIMITS, ModelService, check_int, check_seed, check_temperature

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 16 * 1024 * 1024  # an upload as a data URL, with room to spare
LOCAL_HOSTS = ["127.0.0.1", "localhost", "[::1]", "::1"]


class BodyTooLarge(Exception):
    pass


async def read_json(request: Request) -> dict:
    """The request's JSON object, read up to MAX_BODY bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge(f"the request is larger than {MAX_BODY // (1024 * 1024)} MiB")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        raise ArgumentError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise ArgumentError("the request must be a JSON object")
    return body


def generation_args(service: ModelService, body: dict, count: str, default_n: int) -> dict:
    """The checked options that sampling and completing share."""
    return {"n": check_int(f"the number of {count}", body.get("n", default_n), *LIMITS[count]),
            "label": service.check_label(body.get("label")),
            "temperature": check_temperature(body.get("temperature", 1.0)),
            "seed": check_seed(body.get("seed"))}


class Api:
    """The endpoints of one model's app (see the module docstring)."""

    def __init__(self, service: ModelService, jobs: Jobs):
        self.service, self.jobs = service, jobs

    async def page(self, request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def model_info(self, request):
        return JSONResponse(self.service.info())

    async def complete(self, request):
        body, service = await read_json(request), self.service
        x = service.check_pixels(body.get("pixels"))
        known = service.check_region(body.get("region", "bottom"), body.get("mask"))
        args = generation_args(service, body, "completions", 8)
        particles = check_int("the number of particles", body.get("particles", 8), *LIMITS["particles"])
        job = self.jobs.submit("complete", lambda progress: service.complete(
            x, known, particles=particles, progress=progress, **args))
        return JSONResponse(job.view(), status_code=202)

    async def sample(self, request):
        args = generation_args(self.service, await read_json(request), "samples", 16)
        job = self.jobs.submit("sample", lambda progress: self.service.sample(progress=progress, **args))
        return JSONResponse(job.view(), status_code=202)

    async def inspect(self, request):
        x = self.service.check_pixels((await read_json(request)).get("pixels"))
        job = self.jobs.submit("inspect", lambda progress: self.service.inspect(x, progress),
                               priority=0, key="inspect")
        return JSONResponse(job.view(), status_code=202)

    async def decode(self, request):
        data_url = (await read_json(request)).get("data_url")
        return JSONResponse(await asyncio.to_thread(self.service.decode_upload, data_url))

    async def job_status(self, request):
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job (finished jobs are kept 10 minutes)"}, 404)
        try:
            wait = min(30.0, max(0.0, float(request.query_params.get("wait", 0))))
        except ValueError:
            raise ArgumentError("wait must be a number of seconds") from None
        deadline = time.monotonic() + wait
        while not job.over and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return JSONResponse(job.view())

    def routes(self) -> list:
        return [Route("/", self.page), Route("/api/model", self.model_info),
                Route("/api/complete", self.complete, methods=["POST"]),
                Route("/api/sample", self.sample, methods=["POST"]),
                Route("/api/inspect", self.inspect, methods=["POST"]),
                Route("/api/decode", self.decode, methods=["POST"]),
                Route("/api/jobs/{job_id}", self.job_status),
                Mount("/static", StaticFiles(directory=STATIC), name="static")]


def error_response(status: int):
    """An exception handler answering ``{"error": first line of the message}`` with ``status``."""
    async def handler(request, exc):
        text = str(exc).strip().splitlines()
        return JSONResponse({"error": text[0] if text else type(exc).__name__}, status)
    return handler


def create_app(service: ModelService, *, allowed_hosts: list[str] | None = None,
               max_queued: int = 16) -> Starlette:
    """The app of one model, with its worker thread (stopped when the app shuts down).
    ``allowed_hosts``: the Host headers accepted (default: the loopback names, so that a web page
    elsewhere cannot reach the server through DNS rebinding; ["*"]: any)."""
    jobs = Jobs(max_queued=max_queued)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(jobs.close)

    handlers = {UserError: error_response(400), QueueFull: error_response(503),
                BodyTooLarge: error_response(413)}
    app = Starlette(routes=Api(service, jobs).routes(), exception_handlers=handlers, lifespan=lifespan,
                    middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOCAL_HOSTS)])
    app.state.service, app.state.jobs = service, jobs
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); OSError saying so when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_server(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C (blocks)."""
    import uvicorn
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


class BackgroundServer:
    """``app`` served from a thread (tests, benchmarks): ``.url``; ``close()`` stops it."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
