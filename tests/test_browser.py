"""The page of ``pixelrnn serve`` in a real headless Chromium, driven by Playwright: draw on the
canvas (mouse and touch), complete, sample, inspect, upload.

Needs the Python package ``playwright`` (``make test`` installs it; never ``playwright install``,
which downloads a browser) and Debian's Chromium (``apt-get install -y chromium``, as ``.ci/run``
does), or any Chromium named by PIXELRNN_CHROMIUM. Elsewhere these tests skip and say so.

``python tests/test_browser.py docs/serve.png`` writes the README's screenshot.
"""
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

CHROMIUM = os.environ.get("PIXELRNN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
HOW = ('install the web extra and the test tools (make test, or pip install "pixelrnn[app,test]") '
       "and Debian's chromium (apt-get install -y chromium, as .ci/run does) or set PIXELRNN_CHROMIUM")


def unavailable(what: str) -> None:
    """Skip these tests, saying how to enable them; fail instead where PIXELRNN_REQUIRE_BROWSER is
    set (.ci/run sets it, so that CI cannot pass without running them)."""
    if os.environ.get("PIXELRNN_REQUIRE_BROWSER"):
        pytest.fail(f"browser tests required but {what}: {HOW}", pytrace=False)
    pytest.skip(f"{what}: {HOW}", allow_module_level=True)


try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
    from playwright import sync_api
except ImportError as e:
    unavailable(f"no {e.name}")
if not os.path.isfile(CHROMIUM):
    unavailable(f"no Chromium at {CHROMIUM}")

import pixelrnn  # noqa: E402
from pixelrnn.app import BackgroundServer, ModelService, create_app  # noqa: E402
from pixelrnn.pretrained import model_card  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def mnist_url():
    with BackgroundServer(create_app(ModelService.for_pretrained("mnist"))) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def plain_url():
    torch.manual_seed(3)
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=4, hidden=4, layers=1).eval()
    with BackgroundServer(create_app(ModelService(model, "tiny", (12, 12)))) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def cond_url():
    torch.manual_seed(2)
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, classes=3).eval()
    model.class_names = ["zero", "one", "two"]
    with BackgroundServer(create_app(ModelService(model, "tiny-conditional", (12, 12)))) as srv:
        yield srv.url


def open_page(browser, url, **context):
    page = browser.new_context(viewport={"width": 1180, "height": 900}, **context).new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("#bits:has-text('bits/dim')")  # the blank canvas was inspected
    return page, errors


def stroke(page, points, size):
    """Drag the mouse through ``points`` given in image pixels (x, y)."""
    box = page.locator("#canvas").bounding_box()
    at = [(box["x"] + x * box["width"] / size, box["y"] + y * box["height"] / size) for x, y in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for xy in at[1:]:
        page.mouse.move(*xy, steps=5)
    page.mouse.up()


def wait_changed(page, selector, before):
    page.wait_for_function("([s, b]) => document.querySelector(s).textContent !== b", arg=[selector, before])
    return page.inner_text(selector)


def draw_seven(page):
    stroke(page, [(8, 7), (14, 6.5), (20, 7), (18, 12), (15, 18), (13.5, 22)], 28)


def test_draw_complete_sample_inspect(browser, mnist_url, tmp_path):
    page, errors = open_page(browser, mnist_url)
    card = model_card("mnist")
    assert "mnist" in page.inner_text("#model-name")
    assert f"{card.test['bits_per_dim']:.4f} bits/dim" in page.inner_text("#model-facts")
    blank = page.inner_text("#bits")
    draw_seven(page)
    bits = wait_changed(page, "#bits", blank)
    assert "bits/dim" in bits and "nats" in bits
    assert page.get_attribute("#heatmap", "src").startswith("data:image/png;base64,")
    assert page.locator("#sizes tr").count() == 3 and "B" in page.inner_text("#sizes")
    assert page.locator("#classes-box").is_visible()  # a conditional model: p(y | x) of the drawing
    page.wait_for_function("document.querySelectorAll('#classes .bar').length === 10")
    page.click("#complete")
    page.wait_for_function("document.querySelectorAll('#completions img').length === 8")
    assert page.eval_on_selector_all("#completions img", "els => els.every(e => e.naturalWidth === 28)")
    assert "particle" in page.inner_text("#complete-status")
    page.click("#sample")
    page.wait_for_function("document.querySelectorAll('#samples img').length === 16")
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000
    before = page.inner_text("#bits")  # a result drawn on again is inspected again
    page.click("#samples img >> nth=0")
    wait_changed(page, "#bits", before)
    assert page.inner_text("#message") == "" and errors == []


def test_touch_draws_too(browser, plain_url):
    page, errors = open_page(browser, plain_url, has_touch=True)
    assert page.locator("#classes-box").is_hidden()  # an unconditional model
    blank = page.inner_text("#bits")
    box = page.locator("#canvas").bounding_box()
    page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert wait_changed(page, "#bits", blank) != blank and errors == []


def test_conditional_model_labels_classes_and_a_painted_region(browser, cond_url):
    page, errors = open_page(browser, cond_url)
    page.wait_for_function("document.querySelectorAll('#classes .bar').length === 3")
    assert [t.strip() for t in page.locator("#classes > span:not(.p)").all_inner_texts()] == ["zero", "one", "two"]
    assert page.locator("#label-sample").is_visible() and page.locator("#label-complete").is_visible()
    page.click("text=Paint region")
    assert page.input_value("#region") == "painted"
    page.click("#complete")  # nothing painted yet: the page says so
    page.wait_for_selector("#message:has-text('paint the region')")
    stroke(page, [(3, 3), (9, 9)], 12)
    page.select_option("#label-complete", "1")
    page.click("#complete")
    page.wait_for_function("document.querySelectorAll('#completions img').length === 8")
    assert page.locator("#message").is_hidden()
    page.select_option("#label-sample", "2")
    page.fill("#n-sample", "5")
    page.click("#sample")
    page.wait_for_function("document.querySelectorAll('#samples img').length === 5")
    assert errors == []


def test_uploads(browser, cond_url):
    page, errors = open_page(browser, cond_url)
    page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    page.wait_for_selector("#message:has-text('notes.txt: the file is not an image')")
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("L", (30, 30), 255).save(buf, format="PNG")
    before = page.inner_text("#bits")
    page.set_input_files("#upload", files=[{"name": "white.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    wait_changed(page, "#bits", before)
    assert page.locator("#message").is_hidden() and errors == []


def screenshot(path: str) -> None:
    """The README's picture: the shipped mnist model after a drawn 7, completions and samples."""
    with sync_api.sync_playwright() as p, \
            BackgroundServer(create_app(ModelService.for_pretrained("mnist"))) as srv:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page, _ = open_page(b, srv.url)
        draw_seven(page)
        page.click("#complete")
        page.wait_for_function("document.querySelectorAll('#completions img').length === 8")
        page.click("#sample")
        page.wait_for_function("document.querySelectorAll('#samples img').length === 16")
        page.wait_for_timeout(800)
        page.screenshot(path=path, full_page=True)
        b.close()


if __name__ == "__main__":
    torch.set_num_threads(2)
    screenshot(sys.argv[1] if len(sys.argv) > 1 else str(Path("docs") / "serve.png"))
