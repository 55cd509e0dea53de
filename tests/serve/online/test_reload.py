"""Hot reload: moving the registry alias swaps the model without failing any request."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pandas as pd

from .conftest import ADMIN_TOKEN, FEATURES, ServerThread, make_project, register, train_models


def test_alias_move_reloads_without_dropping_requests(tmp_path, monkeypatch):
    from loopml.core.config import ProjectConfig
    from loopml.registry import Registry
    from loopml.serve.online.app import create_app

    root = make_project(tmp_path / "proj", "[online]\ngrpc_port = 0\nreload_interval_s = 0.1\n")
    cfg = ProjectConfig.load(root)
    X, v1, _ = train_models(seed=1)
    _, v2, _ = train_models(seed=2)
    register(cfg, "ctr", v1, X, "lightgbm", (0, 1))
    register(cfg, "ctr", v2, X, "lightgbm", (0, 1), alias=None)
    monkeypatch.setenv(cfg.serve.admin_token_env, ADMIN_TOKEN)
    server = ServerThread(create_app(cfg)).start()
    answers: list[tuple[int, int, float]] = []
    errors: list[str] = []
    stop = threading.Event()
    rows = np.random.default_rng(3).normal(size=(50, 4))

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            i = 0
            while not stop.is_set():
                k = i % len(rows)
                body = {"features": dict(zip(FEATURES, map(float, rows[k]), strict=True))}
                r = http.post("/v1/models/ctr/predict", json=body)
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    answers.append((k, r.json()["version"], r.json()["prediction"]))
                i += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        Registry.from_config(cfg).set_alias("ctr", "production", 2, actor="test", reason="promote")
        deadline = time.time() + 40  # generous: the reload loads and warms v2 in a thread
        while time.time() < deadline and not any(v == 2 for _, v, _ in answers[-5:]):
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        server.stop()
    assert not errors
    versions = [v for _, v, _ in answers]
    assert versions[0] == 1 and versions[-1] == 2, (len(versions), set(versions))
    assert versions.index(2) > 0 and 1 not in versions[versions.index(2) + 10 :]
    frame = pd.DataFrame(rows, columns=FEATURES)
    by_version = {1: v1.predict_proba(frame)[:, 1], 2: v2.predict_proba(frame)[:, 1]}
    for k, version, prediction in answers:
        assert abs(prediction - by_version[version][k]) < 1e-9


def test_admin_alias_move_and_explicit_versions(tmp_path, monkeypatch):
    from loopml.core.config import ProjectConfig
    from loopml.serve.online.app import create_app

    root = make_project(tmp_path / "proj", "[online]\ngrpc_port = 0\nreload_interval_s = 30\n")
    cfg = ProjectConfig.load(root)
    X, v1, _ = train_models(seed=1)
    _, v2, _ = train_models(seed=2)
    register(cfg, "ctr", v1, X, "lightgbm", (0, 1))
    register(cfg, "ctr", v2, X, "lightgbm", (0, 1), alias=None)
    monkeypatch.setenv(cfg.serve.admin_token_env, ADMIN_TOKEN)
    server = ServerThread(create_app(cfg)).start()
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"features": dict.fromkeys(FEATURES, 0.2)}
    try:
        assert httpx.post(f"{server.url}/v1/models/ctr/predict", json=body).json()["version"] == 1
        explicit = httpx.post(f"{server.url}/v1/models/ctr/predict", json={**body, "version": "2"})
        assert explicit.json()["version"] == 2
        r = httpx.post(
            f"{server.url}/v1/admin/models/ctr/aliases/production",
            json={"version": 2, "reason": "better AUC"},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "model": "ctr",
            "alias": "production",
            "from_version": 1,
            "to_version": 2,
            "serving": 2,
        }
        assert httpx.post(f"{server.url}/v1/models/ctr/predict", json=body).json()["version"] == 2
        r = httpx.post(
            f"{server.url}/v1/admin/models/ctr/aliases/production",
            json={"version": 7},
            headers=auth,
        )
        assert r.status_code == 404 and "7" in r.json()["error"]
    finally:
        server.stop()


def test_requests_pinned_to_a_version_follow_reloads(tmp_path):
    """A pinned version is remembered for speed; a reload must not leave a stale answer."""
    from loopml.core.config import ProjectConfig
    from loopml.registry import Registry
    from loopml.serve.online.app import create_app

    root = make_project(tmp_path / "proj", "[online]\ngrpc_port = 0\nreload_interval_s = 0.1\n")
    cfg = ProjectConfig.load(root)
    X, v1, _ = train_models(seed=1)
    _, v2, _ = train_models(seed=2)
    register(cfg, "ctr", v1, X, "lightgbm", (0, 1))
    register(cfg, "ctr", v2, X, "lightgbm", (0, 1), alias=None)
    server = ServerThread(create_app(cfg)).start()
    row = dict(zip(FEATURES, map(float, X.iloc[0]), strict=True))
    want = {v: float(m.predict_proba(pd.DataFrame([row]))[0, 1]) for v, m in ((1, v1), (2, v2))}

    def ask(version: str) -> dict:
        r = httpx.post(
            f"{server.url}/v1/models/ctr/predict", json={"features": row, "version": version}
        )
        assert r.status_code == 200, r.text
        return r.json()

    try:
        for _ in range(3):  # remembered after the first: the same model each time
            assert ask("1")["version"] == 1 and ask("2")["version"] == 2
        Registry.from_config(cfg).set_alias("ctr", "production", 2, actor="test", reason="v2")
        deadline = time.time() + 30
        while time.time() < deadline:
            r = httpx.post(f"{server.url}/v1/models/ctr/predict", json={"features": row})
            if r.json()["version"] == 2:
                break
            time.sleep(0.05)
        for version in ("1", "2", "v2"):
            doc = ask(version)
            number = int(version.removeprefix("v"))
            assert doc["version"] == number
            assert abs(doc["prediction"] - want[number]) < 1e-9
    finally:
        server.stop()
