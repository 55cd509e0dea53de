"""A serving worker stays light: serving LightGBM and logging predictions loads no pandas."""

from __future__ import annotations

import subprocess
import sys

from loopml.core.config import ProjectConfig
from loopml.logs.eventlog import EventLog

from .conftest import make_project, register, train_models

WORKER = """
import sys, threading, time
import httpx, uvicorn
from loopml.core.config import ProjectConfig
from loopml.serve.online.app import create_app

cfg = ProjectConfig.load(sys.argv[1])
server = uvicorn.Server(uvicorn.Config(create_app(cfg, grpc=False), host="127.0.0.1",
                                       port=int(sys.argv[2]), log_level="warning"))
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
url = f"http://127.0.0.1:{sys.argv[2]}"
deadline = time.time() + 30
while time.time() < deadline:
    try:
        if httpx.get(url + "/v2/health/ready").status_code == 200:
            break
    except httpx.HTTPError:
        time.sleep(0.05)
with httpx.Client() as client:
    for i in range(40):
        row = {"f0": i / 40, "f1": -0.3, "f2": 0.1, "f3": 0.0}
        r = client.post(url + "/v1/models/ctr/predict", json={"features": row})
        assert r.status_code == 200, r.text
time.sleep(1.0)  # several flushes and a seal
heavy = [m for m in ("pyarrow", "pandas", "sklearn", "lightgbm") if m in sys.modules]
server.should_exit = True
thread.join(15)
print("heavy=" + ",".join(heavy))
"""


def test_a_worker_serving_lightgbm_and_logging_loads_no_pandas_or_pyarrow(tmp_path):
    from .conftest import free_port

    root = make_project(
        tmp_path / "proj",
        "[online]\nlog_flush_s = 0.2\nlog_seal_s = 0.2\n",
    )
    cfg = ProjectConfig.load(root)
    X, ctr, _ = train_models()
    register(cfg, "ctr", ctr, X, "lightgbm", (0, 1))
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(root), str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "heavy="
    # ... and every prediction it logged is in the event log once read
    logged = EventLog.from_config(cfg).sql("SELECT count(*) AS n FROM prediction")
    assert int(logged["n"].iloc[0]) == 40
