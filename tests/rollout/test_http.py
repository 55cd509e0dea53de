"""Experiments through a real running online server: the router the app builds in, the
way the online service's hook does it, the admin routes mounted, real HTTP on loopback.
Bounded: at most a few hundred requests, every wait capped."""

from __future__ import annotations

import os
import time

import httpx
import numpy as np
import pytest
from tests.serve.online.conftest import ServerThread, make_project, register

from loopml.rollout import manage
from loopml.rollout.router import ExperimentRouter

pytestmark = pytest.mark.timeout(90)

TOKEN = "rollout-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``ctr`` v1 (production) and v2 (challenger), served with the router plugged in."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from loopml.core.config import ProjectConfig
    from loopml.serve.online.app import create_app

    root = make_project(
        tmp_path_factory.mktemp("rollout") / "proj",
        "[online]\ngrpc_port = 0\nreload_interval_s = 0.2\n\n[models.ctr]\ncache = false\n",
    )
    cfg = ProjectConfig.load(root)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f: rng.normal(size=300) for f in FEATURES})
    y = (X.f0 + rng.normal(scale=0.7, size=300) > 0).astype(int)
    register(cfg, "ctr", LogisticRegression().fit(X, y), X, "sklearn", (0, 1))
    v2 = register(cfg, "ctr", LogisticRegression(C=0.01).fit(X, y), X, "sklearn", (0, 1), None)
    from loopml.registry import Registry

    Registry.from_config(cfg).set_alias("ctr", "challenger", v2.version, actor="test")
    old = os.environ.get(cfg.serve.admin_token_env)
    os.environ[cfg.serve.admin_token_env] = TOKEN
    app = create_app(cfg, grpc=False)
    # the server builds its router in front of the data plane; tick faster for the test
    assert isinstance(app.state.dataplane, ExperimentRouter)
    app.state.dataplane.tick_s = 0.2
    srv = ServerThread(app).start()
    srv.cfg = cfg
    yield srv
    srv.stop()
    if old is None:
        os.environ.pop(cfg.serve.admin_token_env, None)
    else:
        os.environ[cfg.serve.admin_token_env] = old


def _predict(client, unit=None, **extra):
    headers = {"x-unit-id": unit} if unit else {}
    body = {"features": {f: 0.3 for f in FEATURES}, **extra}
    res = client.post("/v1/models/ctr/predict", json=body, headers=headers)
    assert res.status_code == 200, res.text
    return res


def _v2(client, unit):
    body = {
        "inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [0.1]} for f in FEATURES]
    }
    res = client.post("/v2/models/ctr/infer", json=body, headers={"x-unit-id": unit})
    assert res.status_code == 200, res.text
    return res.json()


def test_admin_routes_need_the_token(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        res = client.post("/v1/experiments", json={"name": "x"})
        assert res.status_code == 401 and "Bearer" in res.json()["error"]
        res = client.get("/v1/experiments", headers={"authorization": "Bearer wrong"})
        assert res.status_code == 401
        bad = client.post(
            "/v1/experiments",
            headers=AUTH,
            json={"name": "x", "model": "ctr", "policy": "ab", "arms": ["production", "nope"]},
        )
        assert bad.status_code == 404 and "nope" in bad.json()["error"]


def test_ab_over_http_sticky_with_feedback_status_and_a_cli_stop(server):
    spec = {"name": "http-ab", "model": "ctr", "policy": "ab", "arms": "production,challenger"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        started = client.post("/v1/experiments", json=spec, headers=AUTH)
        assert started.status_code == 201, started.text
        versions: dict[str, set[int]] = {}
        request_ids = []
        for i in range(60):
            res = _predict(client, unit=f"user{i % 15}")
            versions.setdefault(f"user{i % 15}", set()).add(res.json()["version"])
            request_ids.append(res.headers["x-request-id"])
        assert all(len(v) == 1 for v in versions.values())  # sticky through HTTP
        assert set().union(*versions.values()) == {1, 2}  # both arms serve
        doc = _v2(client, "user1")
        assert doc["parameters"]["experiment"] == "http-ab"
        assert doc["parameters"]["arm"] in ("production", "challenger")
        rows = [{"request_id": rid, "metric": "click", "value": 1} for rid in request_ids[:10]]
        fb = client.post("/v1/experiments/http-ab/feedback", json={"rows": rows}, headers=AUTH)
        assert fb.status_code == 200 and fb.json()["accepted"] == 10, fb.text
        status = client.get("/v1/experiments/http-ab", headers=AUTH).json()
        assert sum(a["requests"] for a in status["arms"]) == 61
        assert sum(a["positive"] for a in status["arms"]) == 10
        # a change made elsewhere (the CLI, no server call) reaches the server without restart
        manage.stop_experiment(server.cfg, "http-ab", "seen enough")
        deadline = time.time() + 10
        while time.time() < deadline and "parameters" in _v2(client, "user1"):
            time.sleep(0.1)
        assert "parameters" not in _v2(client, "user1")
        listed = client.get("/v1/experiments", headers=AUTH).json()["experiments"]
        assert [e["status"] for e in listed if e["name"] == "http-ab"] == ["stopped"]


def test_shadow_then_promote_over_http_moves_the_alias(server):
    spec = {"name": "http-shadow", "model": "ctr", "policy": "shadow", "arms": ["production", "2"]}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/experiments", json=spec, headers=AUTH).status_code == 201
        for i in range(20):
            assert _predict(client, unit=f"u{i}").json()["version"] == 1  # champion answers
        deadline = time.time() + 10
        shadow = {}
        while time.time() < deadline:
            shadow = client.get("/v1/experiments/http-shadow", headers=AUTH).json()["shadow"]
            if shadow["mirrored"] >= 20:
                break
            time.sleep(0.1)
        assert shadow["mirrored"] == 20 and shadow["compared"] == 20
        assert shadow["score_correlation"] > 0.5
        promoted = client.post(
            "/v1/experiments/http-shadow/promote", json={"reason": "shadow agrees"}, headers=AUTH
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["to_version"] == 2 and promoted.json()["alias"] == "production"
        assert _predict(client).json()["version"] == 2  # unversioned traffic follows the alias
        again = client.post("/v1/experiments/http-shadow/promote", json={}, headers=AUTH)
        assert again.status_code == 409


def test_ab_outcomes_from_events_posted_to_the_event_log_only(server):
    """No feedback call: the client logs impressions (with the response's X-Request-Id)
    and clicks on ``POST /v1/events``, as it would for analytics; the experiment's status
    shows the clicks per arm, and asking again never counts them twice."""
    import datetime as dt

    spec = {"name": "http-events", "model": "ctr", "policy": "ab", "arms": "production,2"}
    now = dt.datetime.now(dt.UTC).isoformat()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/v1/experiments", json=spec, headers=AUTH).status_code == 201
        served = []
        body = {
            "inputs": [
                {"name": f, "shape": [1], "datatype": "FP64", "data": [0.1]} for f in FEATURES
            ]
        }
        for i in range(40):
            unit = f"reader{i % 20}"
            res = client.post("/v2/models/ctr/infer", json=body, headers={"x-unit-id": unit})
            assert res.status_code == 200, res.text
            arm = res.json()["parameters"]["arm"]
            served.append((res.headers["x-request-id"], unit, arm))
        impressions = [
            {
                "event_id": f"imp-{i}",
                "ts": now,
                "request_id": rid,
                "user_id": unit,
                "item_id": "story",
                "position": 0,
            }
            for i, (rid, unit, _) in enumerate(served)
        ]
        clicked = served[:12]
        clicks = [
            {
                "event_id": f"clk-{i}",
                "ts": now,
                "impression_id": f"imp-{i}",
                "user_id": unit,
                "item_id": "story",
            }
            for i, (_, unit, _) in enumerate(clicked)
        ]
        for kind, rows in (("impression", impressions), ("click", clicks)):
            out = client.post("/v1/events", json={"event_type": kind, "rows": rows})
            assert out.status_code == 200 and out.json()["accepted"] == len(rows), out.text
        for _ in range(2):  # the status joins the log first; a second look adds nothing
            status = client.get("/v1/experiments/http-events", headers=AUTH).json()
            arms = {a["arm"]: a for a in status["arms"]}
            assert sum(a["requests"] for a in arms.values()) == 40
            for arm in ("production", "2"):
                assert arms[arm]["positive"] == sum(1 for c in clicked if c[2] == arm)
        assert {c[2] for c in clicked} == {"production", "2"}
        client.post("/v1/experiments/http-events/stop", json={}, headers=AUTH)
