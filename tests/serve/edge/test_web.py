"""The browser bundle in a real headless Chromium: the page predicts what the registry model does.

The bundle directory is served by a loopback static file server (no loopml code
involved); onnxruntime-web runs the model inside the page.
"""

from __future__ import annotations

import functools
import http.server
import math
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from loopml.predict.flavours import load_predictor
from loopml.registry.registry import Registry
from loopml.serve.edge.export import export_edge
from loopml.serve.edge.loader import load_bundle

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NUMBERS = ("age", "hour", "item_ctr", "position")


class _Files(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
    }

    def log_message(self, *args) -> None:  # noqa: ANN002
        """Quiet: the test reads requests through the browser instead."""


@pytest.fixture(scope="module")
def web_bundle(edge_cfg, world, npm_cache, tmp_path_factory) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("web") / "bundle"
    export_edge(
        edge_cfg,
        "ctr_gbm@production",
        out,
        web=True,
        data=world["holdout"],
        label="clicked",
        web_cache=npm_cache,
        progress=False,
    )
    return out


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """A loopback static file server for ``directory``; yields its base URL."""
    handler = functools.partial(_Files, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _open(browser, base: str):  # noqa: ANN001, ANN202
    page = browser.new_page()
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    page.goto(f"{base}/index.html")
    page.wait_for_selector("body[data-ready]", timeout=60_000)
    return page, requests


def _float32(value: float) -> float:
    """A number the page's Float32Array holds exactly (and the native model gets too)."""
    return float(np.float32(value))


def test_bundle_ships_the_page_and_onnxruntime_web(web_bundle):
    manifest = load_bundle(web_bundle).manifest
    assert manifest["target"] == "browser"
    assert manifest["web"]["onnxruntime_web"] == "1.30.0"
    assert manifest["web"]["integrity"].startswith("sha512-")
    assert {
        "index.html",
        "edge.js",
        "vendor/ort.wasm.min.js",
        "vendor/ort-wasm-simd-threaded.wasm",
    } <= set(manifest["files"])


def test_page_predicts_like_the_registry_model(edge_cfg, world, web_bundle, browser):
    native = load_predictor(Registry.from_config(edge_cfg), "ctr_gbm", "production")
    holdout = world["holdout"].drop(columns="clicked").iloc[:200].reset_index(drop=True)
    for col in NUMBERS:
        holdout[col] = holdout[col].map(_float32)
    expected = native.predict(holdout)
    with serving(web_bundle) as base:
        page, requests = _open(browser, base)
        assert page.get_attribute("body", "data-ready") == "true"
        assert page.text_content("h1") == "ctr_gbm v1"
        # a person fills the form built from the signature, row by row
        for i in (0, 1, 2, 3, 4, 17):
            row = holdout.iloc[i]
            for col in NUMBERS:
                page.fill(f"#f-{col}", "" if math.isnan(row[col]) else repr(float(row[col])))
            for col in ("country", "device"):  # categories were recorded: a select
                page.select_option(f"#f-{col}", "" if row[col] is None else row[col])
            previous = page.get_attribute("#result", "data-value")
            page.click("#predict")
            page.wait_for_function(
                "prev => document.getElementById('result').dataset.value !== prev", arg=previous
            )
            shown = float(page.get_attribute("#result", "data-value"))
            assert shown == pytest.approx(expected[i], abs=1e-5), f"row {i}"
            assert page.text_content("#result").endswith("%")
        # the same page function scores a whole batch
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in holdout.to_dict(orient="records")
        ]
        batch = page.evaluate("rows => loopmlEdge.predict(rows)", rows)
        np.testing.assert_allclose(batch, expected, atol=1e-5)
        # nothing but static files was fetched, and only from the loopback file server
        assert all(method == "GET" and url.startswith(base) for method, url in requests)
        page.close()


def test_page_refuses_a_tampered_model(web_bundle, browser, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(web_bundle, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))
    with serving(copy) as base:
        page, _ = _open(browser, base)
        assert page.get_attribute("body", "data-ready") == "error"
        assert "model.onnx has sha256" in page.text_content("#status")
        assert "refusing to run it" in page.text_content("#status")
        assert page.is_hidden("#form")
        page.close()
