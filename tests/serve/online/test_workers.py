"""`loopml serve --workers 2`: both workers serve, reload on an alias move, and lose no log row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import psutil

from loopml.core.config import ProjectConfig
from loopml.logs.eventlog import EventLog

from .conftest import FEATURES, free_port, make_project, register, train_models


def _wait_ready(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server was not ready within 60 s")


def test_two_workers_serve_reload_and_log_every_prediction(tmp_path):
    root = make_project(
        tmp_path / "proj",
        f"[online]\ngrpc_port = {free_port()}\nreload_interval_s = 0.2\n"
        "log_flush_s = 0.2\nlog_seal_s = 0.2\n",
    )
    cfg = ProjectConfig.load(root)
    X, v1, _ = train_models(seed=0)
    _, v2, _ = train_models(seed=1)
    register(cfg, "ctr", v1, X, "lightgbm", (0, 1))
    register(cfg, "ctr", v2, X, "lightgbm", (0, 1), alias=None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    loopml = Path(sys.executable).with_name("loopml")
    proc = subprocess.Popen(
        [str(loopml), "serve", "--workers", "2", "--port", str(port), "--project", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "LOOPML_ADMIN_TOKEN": "t"},
    )
    try:
        _wait_ready(url, proc)
        workers = psutil.Process(proc.pid).children()
        assert len([w for w in workers if "spawn_main" in " ".join(w.cmdline())]) == 2
        rows = X.iloc[:200]
        asked: list[int] = []

        def ask(i: int) -> dict:
            with httpx.Client() as client:  # a new connection each time: any worker answers
                row = {f: float(rows.iloc[i][f]) for f in FEATURES}
                r = client.post(f"{url}/v1/models/ctr/predict", json={"features": row})
                assert r.status_code == 200, r.text
                doc = r.json()
                asked.append(doc["version"])
                return doc

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(len(rows))))
        expected = v1.predict_proba(rows)[:, 1]
        np.testing.assert_allclose([a["prediction"] for a in answers], expected, rtol=1e-9)
        assert {a["version"] for a in answers} == {1}

        # move the alias: every worker polls the registry and reloads
        from loopml.registry import Registry

        Registry.from_config(cfg).set_alias("ctr", "production", 2, actor="test", reason="v2")
        deadline = time.time() + 30
        streak = 0
        while streak < 40 and time.time() < deadline:
            streak = streak + 1 if ask(0)["version"] == 2 else 0
        assert streak >= 40, "not every worker reloaded version 2"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    # every worker flushed and sealed its prediction log on shutdown: no row lost
    logged = EventLog.from_config(cfg).sql(
        "SELECT version, count(*) AS n FROM prediction GROUP BY 1 ORDER BY 1"
    )
    counts = {int(v): int(n) for v, n in zip(logged["version"], logged["n"], strict=True)}
    assert counts == {1: asked.count(1), 2: asked.count(2)}
