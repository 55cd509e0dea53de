"""Timeouts, circuit breaker, on/off switch and fallbacks, with a deliberately slow model."""

from __future__ import annotations

import time

import httpx
import numpy as np

from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.predictor import Predictor

from .conftest import ServerThread, make_project


class SlowModel(Predictor):
    """A real predictor whose latency the test controls (a model that sometimes stalls)."""

    flavour = "test"

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(Signature((ColumnSpec("x"),), task="binary", classes=(0, 1)), "slow", 1)
        self.delay_s = delay_s

    def _predict(self, columns):
        time.sleep(self.delay_s)
        return 1.0 / (1.0 + np.exp(-columns["x"]))


def test_timeout_breaker_fallback_and_switch(tmp_path):
    from loopml.core.config import ProjectConfig
    from loopml.serve.online.app import create_app
    from loopml.serve.online.repository import StaticSource

    root = make_project(
        tmp_path / "proj",
        """
[online]
grpc_port = 0

[models.slow]
timeout_ms = 100
fallback = 0.25
breaker_failures = 2
breaker_reset_s = 0.5
cache = false

[models.off]
enabled = false
fallback = 0.1

[models.off_nofallback]
enabled = false
""",
    )
    cfg = ProjectConfig.load(root)
    slow = SlowModel(delay_s=0.0)
    models = {"slow": slow, "off": SlowModel(), "off_nofallback": SlowModel()}
    server = ServerThread(create_app(cfg, StaticSource(models))).start()
    url = f"{server.url}/v1/models/slow/predict"
    try:
        ok = httpx.post(url, json={"features": {"x": 0.0}}).json()
        assert ok["fallback"] is None and abs(ok["prediction"] - 0.5) < 1e-12
        slow.delay_s = 0.4
        # measured fast at load, it ran on the event loop; its first slow batch still
        # answers, and moves it to a worker thread where the timeout applies
        first = httpx.post(url, json={"features": {"x": 1.0}}).json()
        assert first["fallback"] is None
        for _ in range(2):  # two timeouts open the breaker
            r = httpx.post(url, json={"features": {"x": 1.0}})
            assert r.status_code == 200
            assert r.json()["fallback"] == "timeout" and r.json()["prediction"] == 0.25
            assert r.headers["x-loopml-fallback"] == "timeout"
        with httpx.Client() as http:
            http.get(f"{server.url}/v2/health/live")  # connection set up outside the timing
            t0 = time.perf_counter()
            r = http.post(url, json={"features": {"x": 1.0}})
            elapsed = time.perf_counter() - t0
        assert r.json()["fallback"] == "circuit-open"
        assert elapsed < 0.3  # answered at once, not queued behind the 0.4 s model
        slow.delay_s = 0.0
        time.sleep(0.6)  # reset window passes; the next request probes the model
        healed = httpx.post(url, json={"features": {"x": 2.0}}).json()
        assert healed["fallback"] is None
        assert abs(healed["prediction"] - 1 / (1 + np.exp(-2.0))) < 1e-12
        off = httpx.post(f"{server.url}/v1/models/off/predict", json={"features": {"x": 3.0}})
        assert off.json()["fallback"] == "disabled" and off.json()["prediction"] == 0.1
        r = httpx.post(
            f"{server.url}/v1/models/off_nofallback/predict", json={"features": {"x": 3.0}}
        )
        assert r.status_code == 503 and "enabled = false" in r.json()["error"]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'loopml_fallbacks_total{model="slow",reason="timeout"} 2.0' in metrics
    finally:
        server.stop()


def test_bad_model_config_fails_at_start_naming_the_key(tmp_path):
    import pytest

    from loopml.core.config import ProjectConfig
    from loopml.core.errors import ConfigError
    from loopml.serve.online.app import create_app
    from loopml.serve.online.repository import StaticSource

    root = make_project(tmp_path / "proj", "[models.slow]\nthreshhold = 0.5\n")
    with pytest.raises(ConfigError, match="threshold"):
        create_app(ProjectConfig.load(root), StaticSource({"slow": SlowModel()}))
