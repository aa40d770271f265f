"""``pixelrnn serve``: the model work behind the page (pixelrnn.app.service), the job queue, the
HTTP API, and the command. The page itself is tested in a real browser in test_browser.py."""
import base64
import io
import json
import math
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason='the web extra is not installed: pip install "pixelrnn[app]"')
pytest.importorskip("uvicorn", reason='the web extra is not installed: pip install "pixelrnn[app]"')

import pixelrnn  # noqa: E402
from pixelrnn.app import BackgroundServer, Jobs, ModelService, QueueFull, create_app  # noqa: E402
from pixelrnn.app.service import needs_particles  # noqa: E402
from pixelrnn.cli import main  # noqa: E402
from pixelrnn.errors import ArgumentError  # noqa: E402

H = W = 8


def tiny(classes=0, levels=4, channels=1):
    torch.manual_seed(1)
    model = pixelrnn.create_model("pixelcnn", channels=channels, levels=levels, hidden=4, layers=1,
                                  classes=classes)
    if classes:
        model.class_names = [f"c{k}" for k in range(classes)]
        model.set_prior(torch.arange(1, classes + 1))
    return model.eval()


@pytest.fixture(scope="module")
def plain():
    return ModelService(tiny(), "plain", (H, W))


@pytest.fixture(scope="module")
def cond():
    return ModelService(tiny(classes=3), "cond", (H, W))


def drawing(seed=0, channels=1):
    return np.random.default_rng(seed).integers(0, 256, H * W * channels).tolist()


def silent(done, total):
    pass


# -- the model work ----------------------------------------------------------------------------

def test_pixels_are_checked_and_quantized_like_the_datasets(plain):
    x = plain.check_pixels(drawing())
    assert x.shape == (1, 1, H, W) and x.dtype == torch.long
    assert torch.equal(x.flatten(), torch.tensor(drawing()) * 4 // 256)
    for bad, match in ((drawing()[:-1], "must be 64 pixel values"), ([256] * 64, "0 to 255"),
                       ([1.5] * 64, "0 to 255"), ("abc", "must be 64")):
        with pytest.raises(ArgumentError, match=match):
            plain.check_pixels(bad)


def test_regions_and_when_particles_matter(plain, cond):
    bottom, right = plain.check_region("bottom", None), plain.check_region("right", None)
    assert (~bottom).sum() == H * W // 2 and not bottom[H // 2:].any() and bottom[:H // 2].all()
    assert not right[:, W // 2:].any() and right[:, :W // 2].all()
    mask = [0] * (H * W)
    mask[10] = mask[11] = 1
    painted = plain.check_region("painted", mask)
    assert (~painted).sum() == 2 and not painted.view(-1)[10]
    with pytest.raises(ArgumentError, match="paint the region"):
        plain.check_region("painted", [0] * (H * W))
    with pytest.raises(ArgumentError, match="region must be one of"):
        plain.check_region("middle", None)
    assert not needs_particles(bottom, False)  # nothing known follows the gap: exact
    assert needs_particles(bottom, True)  # a label drawn per particle weighs every known value
    assert needs_particles(right, False) and needs_particles(painted, False)
    assert cond.check_label("c2") == 2 and cond.check_label(1) == 1 and cond.check_label(None) is None
    with pytest.raises(ArgumentError, match="unconditional"):
        plain.check_label(1)
    with pytest.raises(ArgumentError, match="from 0 to 2"):
        cond.check_label(3)


def test_complete_keeps_the_known_pixels(plain, cond):
    for service, label in ((plain, None), (cond, None), (cond, 1)):
        x = service.check_pixels(drawing(1))
        known = service.check_region("right", None)
        out = service.complete(x, known, 5, 4, label, 1.0, 3, silent)
        assert len(out["images"]) == 5 and out["particles"] == 4 and out["seed"] == 3
        for im in out["images"]:
            values = torch.tensor(im["pixels"]).view(H, W)
            assert torch.equal(values[known] * 4 // 256, x[0, 0][known])  # known values unchanged
            assert im["png"].startswith("data:image/png;base64,")
    out = plain.complete(plain.check_pixels(drawing()), plain.check_region("bottom", None), 2, 8, None, 1.0, 0, silent)
    assert out["particles"] == 1  # exact without particles
    again = plain.complete(plain.check_pixels(drawing()), plain.check_region("bottom", None), 2, 8, None, 1.0, 0, silent)
    assert [i["pixels"] for i in again["images"]] == [i["pixels"] for i in out["images"]]  # same seed


def test_sample_and_inspect(plain, cond):
    out = cond.sample(6, 2, 0.8, 0, silent)
    assert len(out["images"]) == 6 and len(out["images"][0]["pixels"]) == H * W
    steps = []
    for service in (plain, cond):
        x = service.check_pixels(drawing(2))
        r = service.inspect(x, lambda d, t: steps.append((d, t)))
        with torch.no_grad():
            nll = -float(service.model.log_prob(x))
        assert r["nll_nats"] == pytest.approx(nll, rel=1e-5)
        assert r["bits_per_dim"] == pytest.approx(nll / (H * W * math.log(2)), rel=1e-5)
        assert r["heatmap"].startswith("data:image/png;base64,") and r["heatmap_max_nats"] > 0
        assert r["png_bytes"] > 0 and r["model_bytes"] > r["model_payload_bytes"] > 0
    assert steps[-1] == (3, 3)
    assert r["classes"] is not None and [c["name"] for c in r["classes"]] == ["c0", "c1", "c2"]
    probs = torch.tensor([c["p"] for c in r["classes"]])
    assert probs.sum() == pytest.approx(1, abs=1e-5)
    assert torch.allclose(probs, cond.model.classify(cond.check_pixels(drawing(2))).exp()[0], atol=1e-6)


def png_url(image: Image.Image, fmt="PNG") -> str:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def test_uploads_are_fitted_to_the_model_or_refused(plain):
    wide = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    wide.paste((255, 255, 255, 255), (10, 0, 30, 20))  # the centre square is white, sides clear
    out = plain.decode_upload(png_url(wide))
    assert out["source_size"] == [40, 20] and len(out["pixels"]) == H * W
    assert min(out["pixels"]) > 200  # centre-cropped: the white square only
    rgb = ModelService(tiny(channels=3), "rgb", (H, W))
    assert len(rgb.decode_upload(png_url(Image.new("L", (9, 9), 7), "JPEG"))["pixels"]) == H * W * 3
    for bad in ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "no comma", None,
                "data:image/png;base64,@@@"):
        with pytest.raises(ArgumentError, match="not an image|no file data"):
            plain.decode_upload(bad)


# -- the job queue -----------------------------------------------------------------------------

def test_jobs_run_in_one_worker_short_ones_first_and_replace_by_key():
    jobs = Jobs(max_queued=3)
    gate, order = threading.Event(), []
    first = jobs.submit("long", lambda p: gate.wait(10))
    while first.status == "queued":
        time.sleep(0.001)
    long2 = jobs.submit("long", lambda p: order.append("long"))
    old = jobs.submit("inspect", lambda p: order.append("old"), priority=0, key="inspect")
    new = jobs.submit("inspect", lambda p: (p(1, 2), order.append("new"), 42)[-1], priority=0, key="inspect")
    assert old.status == "cancelled" and old.view()["error"] == "replaced by a newer request"
    jobs.submit("x", lambda p: None)
    with pytest.raises(QueueFull, match="busy"):
        jobs.submit("y", lambda p: None)
    gate.set()
    deadline = time.time() + 10
    while not long2.over and time.time() < deadline:
        time.sleep(0.005)
    assert order == ["new", "long"]  # the short job ran first
    assert new.view()["result"] == 42 and new.view()["progress"] == 0.5
    bad = jobs.submit("bad", lambda p: (_ for _ in ()).throw(ArgumentError("no such thing")))
    while not bad.over:
        time.sleep(0.005)
    assert bad.view()["status"] == "error" and bad.view()["error"] == "no such thing"
    jobs.close()


# -- HTTP --------------------------------------------------------------------------------------

def request(url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read()) if "json" in r.headers["Content-Type"] else r.read()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def run_job(url, path, body):
    status, job = request(url + path, body)
    assert status == 202 and job["status"] in ("queued", "running", "done"), job
    status, job = request(f"{url}/api/jobs/{job['id']}?wait=30")
    assert status == 200 and job["status"] == "done", job
    return job


@pytest.fixture(scope="module")
def server(cond):
    with BackgroundServer(create_app(cond)) as srv:
        yield srv.url


def test_the_http_api(server):
    status, page = request(server + "/")
    assert status == 200 and b'id="canvas"' in page
    for name in ("app.js", "style.css"):
        assert request(f"{server}/static/{name}")[0] == 200
    status, info = request(server + "/api/model")
    assert info["name"] == "cond" and (info["height"], info["width"], info["classes"]) == (H, W, 3)
    assert info["class_names"] == ["c0", "c1", "c2"] and set(info["regions"]) == {"bottom", "right", "painted"}
    job = run_job(server, "/api/complete", {"pixels": drawing(), "region": "bottom", "n": 4, "particles": 3})
    # the known top comes first: the label is drawn from its exact posterior, one particle is exact
    assert len(job["result"]["images"]) == 4 and job["result"]["particles"] == 1 and job["seconds"] > 0
    job = run_job(server, "/api/complete", {"pixels": drawing(), "region": "right", "n": 2, "particles": 3})
    assert len(job["result"]["images"]) == 2 and job["result"]["particles"] == 3
    job = run_job(server, "/api/sample", {"n": 3, "label": "c1", "temperature": 0.9, "seed": 5})
    assert len(job["result"]["images"]) == 3 and job["result"]["seed"] == 5
    job = run_job(server, "/api/inspect", {"pixels": drawing()})
    assert len(job["result"]["classes"]) == 3
    status, out = request(server + "/api/decode", {"data_url": png_url(Image.new("L", (16, 16), 200))})
    assert status == 200 and out["pixels"] == [200] * (H * W)


def test_the_http_api_says_what_is_wrong(server):
    for path, body, match in (("/api/complete", {"pixels": [0] * 3}, "must be 64 pixel values"),
                              ("/api/complete", {"pixels": drawing(), "n": 99}, "from 1 to 16"),
                              ("/api/sample", {"temperature": 0}, "temperature"),
                              ("/api/sample", {"label": "c9"}, "label"),
                              ("/api/decode", {"data_url": "data:x;base64,aGVsbG8="}, "not an image")):
        status, out = request(server + path, body)
        assert status == 400 and re.search(match, out["error"]), (path, out)
    req = urllib.request.Request(server + "/api/sample", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400 and json.loads(e.value.read())["error"] == "the request is not JSON"
    assert request(server + "/api/jobs/nope")[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:  # DNS rebinding: only the loopback names
        urllib.request.urlopen(urllib.request.Request(server + "/api/model", headers={"Host": "evil.example"}))
    assert e.value.code == 400


# -- the command -------------------------------------------------------------------------------

def test_serve_resolves_its_model(tmp_path, capsys):
    from pixelrnn.commands.serve import build_service, default_model
    name, note = default_model()
    if "binarized-mnist" in pixelrnn.pretrained_names():
        assert (name, note) == ("binarized-mnist", None)
    else:
        assert name == pixelrnn.pretrained_names()[0] and "not shipped yet" in note
    service = build_service("mnist", None, "cpu")
    assert (service.name, service.height, service.width, service.card.name) == ("mnist", 28, 28, "mnist")
    path = tmp_path / "m.safetensors"
    pixelrnn.save(tiny(), path)
    with pytest.raises(ArgumentError, match="give --size"):
        build_service(str(path), None, "cpu")
    service = build_service(str(path), "6x5", "cpu")
    assert (service.name, service.height, service.width, service.card) == ("m.safetensors", 6, 5, None)
    assert main(["serve", str(tmp_path / "missing.safetensors")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["serve", "mnist", "--port", "70000"]) == 2


def test_the_serve_command_serves_until_stopped(tmp_path):
    path = tmp_path / "m.safetensors"
    pixelrnn.save(tiny(), path, metadata={"image_size": "8x8"})
    p = subprocess.Popen([sys.executable, "-m", "pixelrnn", "serve", str(path), "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("serving m.safetensors (8x8) at http://127.0.0.1:"), (line, p.stderr.read())
        url = line.split(" at ")[1].split()[0]
        assert request(url + "/api/model")[1]["height"] == 8
        assert len(run_job(url, "/api/sample", {"n": 2})["result"]["images"]) == 2
    finally:
        p.terminate()
        p.wait(timeout=30)
