"""Latency of `pixelrnn serve` through the page's HTTP API: submit a job, wait for its result.

    OMP_WAIT_POLICY=PASSIVE python bench/serve_latency.py                  # shipped mnist, 2 threads
    python bench/serve_latency.py --model mnist --threads 2 --requests 20 --json

Each timed request is what the page does: POST /api/complete (or /api/sample) and GET
/api/jobs/ID?wait=30 until the job is over, over HTTP to a uvicorn server in this process, on
127.0.0.1. Two warm-up requests of each kind are not timed. The digit completed is the first of the
mnist test split (the model's own kind of data), its bottom half unknown, as the page sends it
(8-bit values; the page's default of 8 particles, which a bottom half does not need: the
completion is exact with one, and the server uses one). A third row completes the right half, where
the particles do work (8 x 8 = 64 sequences). Targets (issue 23): median <= 1.0 s for 8
completions of the bottom half and for 16 samples, 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

import torch


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def run_job(base: str, path: str, body: dict) -> dict:
    job = post(base + path, body)
    while job["status"] in ("queued", "running"):
        with urllib.request.urlopen(f"{base}/api/jobs/{job['id']}?wait=30", timeout=60) as r:
            job = json.loads(r.read())
    if job["status"] != "done":
        raise RuntimeError(f"{path}: {job}")
    return job


def timed(base: str, path: str, body: dict, requests: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        run_job(base, path, body)
    seconds = []
    for _ in range(requests):
        t0 = time.perf_counter()
        run_job(base, path, body)
        seconds.append(time.perf_counter() - t0)
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mnist", help="a pretrained name (default mnist)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pixelrnn.app import BackgroundServer, ModelService, create_app
    from pixelrnn.data import load_dataset
    from pixelrnn.imaging import to_uint8
    service = ModelService.for_pretrained(args.model)
    card = service.card
    ds = load_dataset(card.test["data"], "test", levels=card.test.get("levels"))
    digit = to_uint8(ds.images[0], ds.levels).transpose(1, 2, 0).reshape(-1).tolist()
    cases = [("8 completions, bottom half", "/api/complete",
              {"pixels": digit, "region": "bottom", "n": 8, "particles": 8, "seed": 1}),
             ("16 samples", "/api/sample", {"n": 16, "seed": 1}),
             ("8 completions, right half, 8 particles each", "/api/complete",
              {"pixels": digit, "region": "right", "n": 8, "particles": 8, "seed": 1})]
    rows = []
    with BackgroundServer(create_app(service)) as srv:
        for what, path, body in cases:
            s = timed(srv.url, path, body, args.requests)
            rows.append({"request": what, "median_s": statistics.median(s), "min_s": min(s),
                         "max_s": max(s), "requests": len(s)})
    if args.json:
        print(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=2))
        return
    print(f"model {args.model} ({card.architecture}), {args.threads} torch threads, "
          f"{args.requests} requests each")
    print("| request | median | min | max |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['request']} | {r['median_s']:.3f} s | {r['min_s']:.3f} s | {r['max_s']:.3f} s |")


if __name__ == "__main__":
    main()
