"""Benchmark pattern 2: loopml's online server vs a hand-written FastAPI app vs the HTTP floor.

All three serve on loopback, one uvicorn worker each, measured in the same run with
``wrk`` (a C load generator): requests/s and p50/p99 latency at 1 and 32 connections,
resident memory per worker after the load, and seconds from process start to ready.

- ``floor``: a bare ASGI app answering a constant (the cost of HTTP alone);
- ``fastapi``: what a user writes by hand -- FastAPI + pydantic, the same LightGBM
  model through scikit-learn's ``predict_proba`` on a one-row DataFrame;
- ``loopml``: ``loopml serve`` on a project whose registry holds the same model, hit on
  the simple JSON route (same body as the hand-written app) and on the V2 infer route.

Every request body is one of 1,000 distinct rows, rotated. loopml's prediction cache is
switched off (``[models.ctr] cache = false``) so every request reaches the model, and
its prediction log samples 1% of requests. Run::

    .venv/bin/python bench/serve.py                 # 15 s per measurement
    .venv/bin/python bench/serve.py --duration 5    # quicker, noisier

Needs ``wrk`` on PATH (Debian/Ubuntu: ``apt-get install -y wrk``).
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_FEATURES = 8
N_BODIES = 1000


# -- the servers (each runs in its own process: this file re-invoked with --serve) --------------
def serve_floor(port: int) -> None:
    import uvicorn

    body = b'{"probability":0.5}'

    async def app(scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def serve_fastapi(port: int, model_path: str) -> None:
    """The baseline a user would write by hand."""
    import pickle

    import pandas as pd
    import uvicorn
    from fastapi import FastAPI
    from pydantic import create_model

    with open(model_path, "rb") as fh:
        model = pickle.load(fh)
    Features = create_model("Features", **{f"f{i}": (float, ...) for i in range(N_FEATURES)})
    Request = create_model("Request", features=(Features, ...))
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/predict")
    def predict(req: Request) -> dict:  # type: ignore[valid-type]
        frame = pd.DataFrame([req.features.model_dump()])  # type: ignore[attr-defined]
        return {"probability": float(model.predict_proba(frame)[0, 1])}

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def serve_loopml(port: int, project: str) -> None:
    from loopml.core.config import ProjectConfig
    from loopml.serve.online.app import run

    run(ProjectConfig.load(project), "127.0.0.1", port, 1)


# -- set-up -------------------------------------------------------------------------------------
def make_model(workdir: Path) -> tuple[str, str, np.ndarray]:
    """Train one LightGBM model; register it in a fresh project; pickle it for the baseline."""
    import pickle

    import lightgbm as lgb
    import pandas as pd

    from loopml.core.config import ProjectConfig, init_project
    from loopml.core.signature import Signature
    from loopml.predict.flavours import save_model
    from loopml.registry import Registry

    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"f{i}": rng.normal(size=5000) for i in range(N_FEATURES)})
    logit = X.f0 - 0.5 * X.f1 + 0.3 * X.f2 * X.f3
    y = (rng.random(5000) < 1 / (1 + np.exp(-logit))).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1).fit(X, y)
    model_path = workdir / "model.pkl"
    model_path.write_bytes(pickle.dumps(clf))

    project = workdir / "project"
    init_project(project, name="bench")
    with open(project / "loopml.toml", "a") as fh:
        fh.write(
            "\n[online]\ngrpc_port = 0\n\n[models.ctr]\ncache = false\nlog_sample_rate = 0.01\n"
        )
    cfg = ProjectConfig.load(project)
    reg = Registry.from_config(cfg)
    reg.register(
        "ctr",
        save_model(clf, "lightgbm"),
        flavour="lightgbm",
        signature=Signature.infer(X, classes=(0, 1)),
    )
    reg.set_alias("ctr", "production", 1, actor="bench", reason="benchmark")
    rows = rng.normal(size=(N_BODIES, N_FEATURES)).round(4)
    return str(model_path), str(project), rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, port: int, arg: str | None) -> tuple[subprocess.Popen, float]:
    """Start a server process; return it and the seconds until it answers its ready URL."""
    import httpx

    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    if arg:
        cmd += ["--arg", arg]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = {"floor": "/", "fastapi": "/health", "loopml": "/v2/health/ready"}[kind]
    deadline = t0 + 120
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server died: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{url}", timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise SystemExit(f"{kind} server was not ready within 120 s")


def lua_script(path: Path, url_path: str, bodies: list[str]) -> Path:
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path.write_text(
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n  i = i + 1\n"
        f'  return wrk.format("POST", "{url_path}", headers, bodies[(i % #bodies) + 1])\nend\n'
    )
    return path


def wrk(port: int, script: Path, connections: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:.0f}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    errors = 0
    for pattern in (
        r"Non-2xx or 3xx responses: (\d+)",
        r"Socket errors: connect (\d+), read (\d+), "
        r"write (\d+), timeout (\d+)",
    ):
        m = re.search(pattern, out)
        if m:
            errors += sum(int(g) for g in m.groups())
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "errors": errors}


def _ms(text: str) -> float:
    value, unit = float(re.match(r"[\d.]+", text).group(0)), re.sub(r"[\d.]+", "", text)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def rss_mib(proc: subprocess.Popen) -> float:
    import psutil

    return psutil.Process(proc.pid).memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--out", default=str(HERE / "results" / "serve.md"))
    parser.add_argument("--serve", choices=["floor", "fastapi", "loopml"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        {
            "floor": lambda: serve_floor(args.port),
            "fastapi": lambda: serve_fastapi(args.port, args.arg),
            "loopml": lambda: serve_loopml(args.port, args.arg),
        }[args.serve]()
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; on Debian/Ubuntu: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-serve-"))
    model_path, project, rows = make_model(workdir)
    simple = [json.dumps({"features": {f"f{i}": float(v) for i, v in enumerate(r)}}) for r in rows]
    v2 = [
        json.dumps(
            {
                "inputs": [
                    {"name": f"f{i}", "shape": [1], "datatype": "FP64", "data": [float(v)]}
                    for i, v in enumerate(r)
                ]
            }
        )
        for r in rows
    ]
    scripts = {
        "floor": lua_script(workdir / "floor.lua", "/", simple),
        "fastapi": lua_script(workdir / "fastapi.lua", "/predict", simple),
        "loopml": lua_script(workdir / "loopml.lua", "/v1/models/ctr/predict", simple),
        "loopml-v2": lua_script(workdir / "loopml_v2.lua", "/v2/models/ctr/infer", v2),
    }
    results: dict[str, dict] = {"load_before": os.getloadavg()[0]}
    for kind, arg in (("floor", None), ("fastapi", model_path), ("loopml", project)):
        port = free_port()
        proc, ready_s = start(kind, port, arg)
        try:
            routes = ["loopml", "loopml-v2"] if kind == "loopml" else [kind]
            for route in routes:
                wrk(port, scripts[route], 8, 2)  # warm-up
                res = {"ready_s": ready_s}
                for c in (1, 32):
                    res[c] = wrk(port, scripts[route], c, args.duration)
                    print(
                        f"{route:10s} c={c:<3d} {res[c]['rps']:9.0f} req/s  "
                        f"p50 {res[c]['p50_ms']:7.3f} ms  p99 {res[c]['p99_ms']:7.2f} ms  "
                        f"errors {res[c]['errors']}",
                        flush=True,
                    )
                res["rss_mib"] = rss_mib(proc)
                results[route] = res
        finally:
            proc.terminate()
            proc.wait(10)
    results["load_after"] = os.getloadavg()[0]
    booster_ms = booster_one_row_ms(model_path)
    report = render(results, booster_ms, args.duration)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


def booster_one_row_ms(model_path: str) -> float:
    """LightGBM's own in-process one-row time (the native booster, median of 2,000)."""
    import pickle

    from loopml.predict.lightgbm_fast import CBooster, FastRowPredictor

    with open(model_path, "rb") as fh:
        clf = pickle.load(fh)
    fast = FastRowPredictor(CBooster(clf.booster_.model_to_string()), N_FEATURES, 1)
    row = np.zeros(N_FEATURES)
    times = []
    for _ in range(2000):
        t = time.perf_counter()
        fast.predict(row)
        times.append(time.perf_counter() - t)
    fast.close()
    return float(np.median(times) * 1e3)


def render(r: dict, booster_ms: float, duration: float) -> str:
    base, floor, lo, v2 = r["fastapi"], r["floor"], r["loopml"], r["loopml-v2"]
    goal_p50 = 2 * (floor[1]["p50_ms"] + booster_ms)
    lines = [
        "## bench/serve: online prediction service (pattern 2)",
        "",
        f"`.venv/bin/python bench/serve.py --duration {duration:.0f}` -- wrk -t1, loopback, "
        "one uvicorn worker per server, 2-core machine shared with other work; 1,000 distinct "
        "one-row bodies rotated; loopml cache off, prediction log sampled at 1%. "
        f"Machine load average {r['load_before']:.1f} before, {r['load_after']:.1f} after "
        "(2 cores: above 2 the servers and wrk were sharing the CPU with other work).",
        "",
        "| server | c | req/s | p50 ms | p99 ms | errors | RSS MiB | ready s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (
        ("floor", "bare ASGI (HTTP floor)"),
        ("fastapi", "hand-written FastAPI"),
        ("loopml", "loopml simple JSON"),
        ("loopml-v2", "loopml V2 infer"),
    ):
        for c in (1, 32):
            x = r[name][c]
            lines.append(
                f"| {label} | {c} | {x['rps']:.0f} | {x['p50_ms']:.3f} | {x['p99_ms']:.2f} | "
                f"{x['errors']} | {r[name]['rss_mib']:.0f} | {r[name]['ready_s']:.2f} |"
            )
    lines += [
        "",
        "- throughput at 32 connections vs hand-written: "
        f"**{lo[32]['rps'] / base[32]['rps']:.1f}x** (simple JSON), "
        f"**{v2[32]['rps'] / base[32]['rps']:.1f}x** (V2); goal >= 5x",
        f"- p99 at 32: loopml {lo[32]['p99_ms']:.2f} ms vs hand-written "
        f"{base[32]['p99_ms']:.2f} ms",
        f"- p50 at 1 connection: loopml {lo[1]['p50_ms']:.3f} ms; goal <= 2 x (floor "
        f"{floor[1]['p50_ms']:.3f} + booster one row {booster_ms:.3f}) = {goal_p50:.3f} ms",
        f"- memory per worker: loopml {lo['rss_mib']:.0f} MiB = "
        f"{lo['rss_mib'] / base['rss_mib']:.0%} of hand-written ({base['rss_mib']:.0f} MiB); "
        "goal <= 60%",
        f"- start to ready: loopml {lo['ready_s']:.2f} s (goal <= 2 s)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
