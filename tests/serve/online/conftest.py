"""A real project with real models, served by a real uvicorn server on a free loopback port."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ADMIN_TOKEN = "test-admin-token"
FEATURES = ["f0", "f1", "f2", "f3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_models(seed: int = 0):
    """A LightGBM binary model and a scikit-learn multiclass model on the same features."""
    import lightgbm as lgb
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f: rng.normal(size=400) for f in FEATURES})
    y = (X.f0 - 0.5 * X.f1 + rng.normal(scale=0.5, size=400) > 0).astype(int)
    ctr = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1).fit(X, y)
    y3 = np.digitize(X.f0 + X.f2, [-0.7, 0.7])
    kind = LogisticRegression(max_iter=300).fit(X, y3)
    return X, ctr, kind


def make_project(root: Path, extra_toml: str = "") -> Path:
    from loopml.core.config import init_project

    init_project(root, name="servetest")
    with open(root / "loopml.toml", "a") as fh:
        fh.write("\n" + extra_toml)
    return root


def register(
    cfg,
    name: str,
    model,
    X,
    flavour: str,
    classes,
    alias: str | None = "production",
    task: str = "binary",
):
    from loopml.core.signature import Signature
    from loopml.predict.flavours import save_model
    from loopml.registry import Registry

    reg = Registry.from_config(cfg)
    mv = reg.register(
        name,
        save_model(model, flavour),
        flavour=flavour,
        signature=Signature.infer(X, task=task, classes=classes),
    )
    if alias:
        reg.set_alias(name, alias, mv.version, actor="test", reason="test setup")
    return mv


class ServerThread:
    """uvicorn running ``app`` in a daemon thread; ``stop()`` shuts it down cleanly."""

    def __init__(self, app, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.app = app
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready: bool = True) -> ServerThread:
        import httpx

        self.thread.start()
        deadline = time.time() + 30
        path = "/v2/health/ready" if ready else "/v2/health/live"
        while time.time() < deadline:
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError("server did not become ready within 30 s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """A project with ``ctr`` (LightGBM, binary) and ``kind`` (sklearn, 3 classes), served."""
    from loopml.core.config import ProjectConfig
    from loopml.serve.online.app import create_app

    grpc_port = free_port()
    root = make_project(
        tmp_path_factory.mktemp("served") / "proj",
        f"""
[online]
grpc_port = {grpc_port}
reload_interval_s = 0.2
log_flush_s = 0.5
log_seal_s = 0.5

[models.ctr]
threshold = 0.7
fallback = 0.03
route_by = "header:x-segment"
routes = {{ multi = "kind", old = "ctr@1" }}
""",
    )
    text = (
        (root / "loopml.toml")
        .read_text()
        .replace("max_body_bytes = 1048576", "max_body_bytes = 65536")
    )
    (root / "loopml.toml").write_text(text)
    cfg = ProjectConfig.load(root)
    X, ctr, kind = train_models()
    register(cfg, "ctr", ctr, X, "lightgbm", (0, 1))
    register(cfg, "kind", kind, X, "sklearn", (0, 1, 2), task="multiclass")
    old = os.environ.get(cfg.serve.admin_token_env)
    os.environ[cfg.serve.admin_token_env] = ADMIN_TOKEN
    app = create_app(cfg)
    server = ServerThread(app).start()
    server.cfg = cfg
    server.grpc_port = grpc_port
    server.X = X
    server.ctr = ctr
    server.kind = kind
    yield server
    server.stop()
    if old is None:
        os.environ.pop(cfg.serve.admin_token_env, None)
    else:
        os.environ[cfg.serve.admin_token_env] = old
