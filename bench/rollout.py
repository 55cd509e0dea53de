"""Benchmark the experiment router: what an A/B or a shadow policy costs the online service.

One LightGBM model (100 trees, 8 features) is registered twice (v1 = production, v2 =
challenger, same size). The online service builds its experiment router itself, so every
server is plain ``create_app(cfg, grpc=False)``; they differ only in what the project's
metadata database holds when the server starts:

- ``baseline``: no experiment running (the router passes every request through);
- ``ab``: a 50/50 A/B between v1 and v2, sticky on ``X-Unit-Id`` (1,000 users rotated);
- ``shadow``: v1 answers, every request mirrored to v2 off the response path (scored by
  the server's rollout sidecar, a child process on idle CPU).

Each is served by one uvicorn worker on loopback and loaded with ``wrk`` at 1 and 32
connections, round-robin (every server runs throughout, and each round loads them in
turn, so the shared machine's background load falls on all alike); every figure is the
median of ``--repeats`` rounds. Besides requests per second, each run reads the server
process's CPU time (all its threads) and, apart, its sidecar's, and divides by the
requests served: CPU per request is far steadier than throughput on a machine shared
with other work. For the shadow server it also counts the shadow rows stored, to say
what share of requests the challenger answered.

A second, in-process section times the bare data plane, the data plane called with the
arguments a routed request carries (a pinned version for half the units, the arm and
unit for its log), the idle router and an A/B router on the same model: the median
wall time per call, and the process CPU per call (mean, the writer thread included;
every path yields to the event loop every 16 calls so background work runs as in a
server). It isolates the router's own cost from the machine's noise. Run::

    .venv/bin/python bench/rollout.py                  # 5 rounds x 5 s per figure
    .venv/bin/python bench/rollout.py --duration 3 --repeats 1
    .venv/bin/python bench/rollout.py --in-process     # the in-process table only

Needs ``wrk`` on PATH (Debian/Ubuntu: ``apt-get install -y wrk``).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from serve import free_port, wrk  # noqa: E402 - bench/serve.py's wrk runner and parser

N_FEATURES = 8
N_BODIES = 1000
KINDS = ("baseline", "ab", "shadow")


def make_project(workdir: Path) -> str:
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
    project = workdir / "project"
    init_project(project, name="bench")
    with open(project / "loopml.toml", "a") as fh:
        fh.write(
            "\n[online]\ngrpc_port = 0\n\n[models.ctr]\ncache = false\nlog_sample_rate = 0.01\n"
        )
    cfg = ProjectConfig.load(project)
    reg = Registry.from_config(cfg)
    for seed in (1, 2):
        clf = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, verbose=-1, random_state=seed)
        clf.fit(X, y)
        reg.register(
            "ctr",
            save_model(clf, "lightgbm"),
            flavour="lightgbm",
            signature=Signature.infer(X, classes=(0, 1)),
        )
    reg.set_alias("ctr", "production", 1, actor="bench", reason="benchmark")
    reg.set_alias("ctr", "challenger", 2, actor="bench", reason="benchmark")
    return str(project)


def serve(kind: str, port: int, project: str) -> None:
    """One server process: the online app as shipped (its router built in); for ``ab`` and
    ``shadow`` the experiment is started in the project before the app opens it."""
    import uvicorn

    from loopml.core.config import ProjectConfig
    from loopml.rollout import manage
    from loopml.serve.online.app import create_app

    cfg = ProjectConfig.load(project)
    if kind != "baseline":
        manage.start_experiment(
            cfg, f"bench-{kind}-{port}", model="ctr", policy=kind, arms="production,challenger"
        )
    app = create_app(cfg, grpc=False)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def start(kind: str, port: int, project: str) -> subprocess.Popen:
    import httpx

    cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--arg", project]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server died: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{kind} server was not ready within 120 s")


def lua_script(path: Path, bodies: list[str]) -> Path:
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    path.write_text(
        f"local bodies = {{\n{quoted}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  local headers = {["Content-Type"] = "application/json", '
        '["X-Unit-Id"] = "user" .. (i % 1000)}\n'
        '  return wrk.format("POST", "/v1/models/ctr/predict", headers, '
        "bodies[(i % #bodies) + 1])\nend\n"
    )
    return path


def serving_mode(port: int) -> str:
    """How the server runs ``ctr``'s default version (inline-direct, inline-batched or
    thread): picked from start-up timings, so the report shows every server's pick."""
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/v1/models/ctr", timeout=5).json()["mode"]


def shadow_counter(project: str, port: int) -> Callable[[], int]:
    """Shadow requests the shadow server's challenger has answered so far (in its store)."""
    from loopml.core.config import ProjectConfig
    from loopml.rollout.store import ExperimentStore

    store = ExperimentStore(ProjectConfig.load(project).url("metadata"))

    def count() -> int:
        totals = store.arm_totals(f"bench-shadow-{port}", kind="shadow")
        return sum(int(t["requests"]) for t in totals.values())

    return count


def measure(
    servers: dict[str, tuple[subprocess.Popen, int]],
    script: Path,
    duration: float,
    repeats: int,
    shadows: Callable[[], int],
) -> dict:
    """Round-robin over the servers, so the shared machine's load hits every one alike."""
    import psutil

    def cpu_s(proc: subprocess.Popen) -> tuple[float, float]:
        """CPU seconds of the server process and of its children (the rollout sidecar)."""
        server = psutil.Process(proc.pid)
        times = server.cpu_times()
        child = 0.0
        for kid in server.children(recursive=True):
            try:
                kt = kid.cpu_times()
                child += kt.user + kt.system
            except psutil.NoSuchProcess:
                pass
        return times.user + times.system, child

    for _, port in servers.values():
        wrk(port, script, 8, 2)  # warm-up
    runs: dict[str, dict[int, list[dict]]] = {k: {1: [], 32: []} for k in servers}
    order = list(servers.items())
    for round_no in range(repeats):
        for c in (1, 32):
            # alternate the order, so no server always runs first (or right after another)
            for kind, (proc, port) in order if round_no % 2 == 0 else order[::-1]:
                before, kids_before = cpu_s(proc)
                shadows_before = shadows() if kind == "shadow" else 0
                out = wrk(port, script, c, duration)
                served = max(out["rps"] * duration, 1.0)
                if kind == "shadow":
                    time.sleep(1.5)  # the sidecar's rows are written at the next tick
                    out["mirrored"] = (shadows() - shadows_before) / served
                after, kids_after = cpu_s(proc)
                out["cpu_us"] = (after - before) / served * 1e6
                out["sidecar_us"] = (kids_after - kids_before) / served * 1e6
                runs[kind][c].append(out)
    out: dict = {
        kind: {
            c: {k: float(np.median([r[k] for r in rs])) for k in rs[0]} for c, rs in by_c.items()
        }
        for kind, by_c in runs.items()
    }
    # each round's figure over the baseline's in the same round, then the median: the
    # machine's load drifts between rounds, and a ratio within a round cancels most of it
    for kind, by_c in runs.items():
        for c, rs in by_c.items():
            base = runs["baseline"][c]
            for key in ("rps", "p99_ms", "cpu_us"):
                ratios = [r[key] / b[key] for r, b in zip(rs, base, strict=True) if b[key]]
                out[kind][c][f"{key}_ratio"] = float(np.median(ratios)) if ratios else 0.0
    return out


# -- in-process: the router's own cost ----------------------------------------------------
def _store():  # noqa: ANN202
    from loopml.rollout.store import ExperimentStore

    return ExperimentStore(f"sqlite:///{tempfile.mkdtemp()}/bench.db")


def in_process(project: str, calls: int = 3000) -> dict[str, dict[str, float]]:
    """Per path, the median wall microseconds per call and the mean process CPU per call:
    the bare data plane; the data plane called with a routed request's arguments; the
    server's own router with no experiment (pass-through); a router running a 50/50 A/B
    over the same data plane (rows written from a thread of this process); and, as a
    server runs them, an A/B and a shadow router whose rows (and shadows) go to a rollout
    sidecar, whose CPU is not this process's."""
    import asyncio

    from loopml.core.config import ProjectConfig
    from loopml.rollout.assignment import bucket
    from loopml.rollout.records import ExperimentSpec
    from loopml.rollout.router import ExperimentRouter
    from loopml.rollout.sidecar import Sidecar
    from loopml.serve.online.state import ServerState

    cfg = ProjectConfig.load(project)
    rng = np.random.default_rng(0)
    rows = [{f"f{i}": [float(v)] for i, v in enumerate(r)} for r in rng.normal(size=(64, 8))]
    units = [f"u{i}" for i in range(1000)]
    unit_headers = [{"x-unit-id": u} for u in units]
    arms = [0 if bucket("ab", u) < 0.5 else 1 for u in units]

    async def timed(call, n: int, drain) -> tuple[list[float], float]:  # noqa: ANN001
        times = []
        cpu = time.process_time()
        for i in range(n):
            t = time.perf_counter()
            await call(i)
            times.append(time.perf_counter() - t)
            if i % 16 == 15:
                await asyncio.sleep(0)  # let background work (assignment writes) run
        await drain()  # what this path left buffered is written on its own account
        return times, time.process_time() - cpu

    async def main() -> dict[str, dict[str, float]]:
        state = ServerState(cfg, grpc=False)
        await state.dataplane.open()  # the built-in router: no experiment in this project
        await state.repository.start()
        await state.repository.get("ctr", "2")  # load the challenger before timing
        bare = state.dataplane.inner
        ab = ExperimentRouter(bare, _store(), tick_s=None)
        await ab.start(ExperimentSpec("ab", "ctr", "ab", ("production", "2")))
        # as a server runs them: rows written, shadows scored, by the rollout sidecar
        routers = {}
        for policy in ("ab", "shadow"):
            store = _store()
            sidecar = Sidecar(store.url, project=project)
            routers[policy] = ExperimentRouter(bare, store, tick_s=None, writer=sidecar)
            await routers[policy].start(ExperimentSpec(policy, "ctr", policy, ("production", "2")))
        versions, names = (None, "2"), ("production", "2")

        def as_routed(i: int):  # noqa: ANN202
            u = i % 1000
            return bare.infer(
                "ctr",
                rows[i % 64],
                version=versions[arms[u]],
                headers=unit_headers[u],
                arm=names[arms[u]],
                entity_id=units[u],
            )

        async def nothing() -> None:
            return None

        paths = {
            "dataplane": (lambda i: bare.infer("ctr", rows[i % 64], headers={}), nothing),
            "dataplane, routed args": (as_routed, nothing),
            "router-idle": (
                lambda i: state.dataplane.infer("ctr", rows[i % 64], headers={}),
                nothing,
            ),
            "router-ab": (
                lambda i: ab.infer("ctr", rows[i % 64], headers=unit_headers[i % 1000]),
                ab.flush,
            ),
            "router-ab, sidecar": (
                lambda i: routers["ab"].infer("ctr", rows[i % 64], headers=unit_headers[i % 1000]),
                routers["ab"].flush,
            ),
            "router-shadow, sidecar": (
                lambda i: routers["shadow"].infer(
                    "ctr", rows[i % 64], headers=unit_headers[i % 1000]
                ),
                routers["shadow"].flush,
            ),
        }
        for call, drain in paths.values():  # warm up every path before timing any
            await timed(call, 200, drain)
        times: dict[str, list[float]] = {k: [] for k in paths}
        cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
        rounds = 6
        for _ in range(rounds):  # alternate, so background load hits every path alike
            for key, (call, drain) in paths.items():
                got, used = await timed(call, calls // rounds, drain)
                times[key] += got
                cpu[key] += used
        await ab.aclose()
        for router in routers.values():
            await router.aclose()
        await state.shutdown()
        return {
            k: {"us": float(np.median(v) * 1e6), "cpu_us": cpu[k] / len(v) * 1e6}
            for k, v in times.items()
        }

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (median per figure)")
    parser.add_argument("--out", default=str(HERE / "results" / "rollout.md"))
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="only the in-process section (no wrk, nothing written): for development",
    )
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.arg)
        return
    if args.in_process:
        project = make_project(Path(tempfile.mkdtemp(prefix="loopml-bench-rollout-")))
        for key, v in in_process(project).items():
            print(f"{key:24s} wall {v['us']:6.1f} us/call   cpu {v['cpu_us']:6.1f} us/call")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; on Debian/Ubuntu: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="loopml-bench-rollout-"))
    project = make_project(workdir)
    rng = np.random.default_rng(1)
    bodies = [
        json.dumps({"features": {f"f{i}": float(v) for i, v in enumerate(r)}})
        for r in rng.normal(size=(N_BODIES, N_FEATURES)).round(4)
    ]
    script = lua_script(workdir / "rollout.lua", bodies)
    from loopml.storage.sql import dispose_all

    dispose_all()  # the SQLite files are copied below: no connection may hold them
    projects = {}
    for kind in KINDS:  # one project (metadata DB) per server: one experiment per model each
        projects[kind] = str(workdir / kind)
        shutil.copytree(project, projects[kind])
    procs = {}
    load_before = os.getloadavg()[0]
    try:
        for kind in KINDS:
            port = free_port()
            procs[kind] = (start(kind, port, projects[kind]), port)
        modes = {kind: serving_mode(port) for kind, (_, port) in procs.items()}
        print("serving mode of ctr per server:", modes, flush=True)
        shadows = shadow_counter(projects["shadow"], procs["shadow"][1])
        results = measure(procs, script, args.duration, args.repeats, shadows)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(10)
    for kind in KINDS:
        for c in (1, 32):
            x = results[kind][c]
            print(
                f"{kind:12s} c={c:<3d} {x['rps']:8.0f} req/s  p50 {x['p50_ms']:7.3f} ms  "
                f"p99 {x['p99_ms']:7.2f} ms  cpu {x['cpu_us']:6.1f} us/req  "
                f"errors {x['errors']:.0f}",
                flush=True,
            )
    micro = in_process(project)
    load = (load_before, os.getloadavg()[0])
    report = render(results, micro, args.duration, args.repeats, load, modes)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)


def render(
    r: dict,
    micro: dict[str, dict[str, float]],
    duration: float,
    repeats: int,
    load: tuple[float, float],
    modes: dict[str, str],
) -> str:
    base = r["baseline"]
    lines = [
        "## bench/rollout: the experiment router in front of the online service",
        "",
        f"`.venv/bin/python bench/rollout.py --duration {duration:g} --repeats {repeats}` -- "
        "wrk -t1, loopback, one uvicorn worker, simple JSON route, 1,000 users rotated in "
        "X-Unit-Id; LightGBM 100 trees x2 versions; cache off; servers measured round-robin, "
        "medians of the rounds; CPU = the server process's CPU time (all threads) per "
        "request served; 2-core machine shared with other work. "
        f"Load average {load[0]:.1f} before, {load[1]:.1f} after. Serving mode of the "
        f"champion: {', '.join(f'{k} {v}' for k, v in modes.items())}.",
        "",
        "| server | c | req/s | vs baseline | p50 ms | p99 ms | p99 vs baseline "
        "| CPU us/req | vs baseline | sidecar CPU us/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for c in (1, 32):
            x = r[kind][c]
            lines.append(
                f"| {kind} | {c} | {x['rps']:.0f} | {x['rps_ratio']:.2f}x | "
                f"{x['p50_ms']:.3f} | {x['p99_ms']:.2f} | {x['p99_ms_ratio']:.2f}x | "
                f"{x['cpu_us']:.1f} | {x['cpu_us_ratio']:.2f}x | {x['sidecar_us']:.1f} | "
                f"{x['errors']:.0f} |"
            )
    ab, sh = r["ab"][32], r["shadow"]
    lines += [
        "",
        "Ratios are medians of per-round ratios (each server against the baseline measured in "
        "the same round).",
        "",
        f"- A/B 50/50 throughput at 32 connections: {ab['rps_ratio']:.0%} of baseline (goal "
        f">= 90%); CPU per request {ab['cpu_us_ratio']:.2f}x baseline",
        f"- shadow, champion p99 at 1 connection: {sh[1]['p99_ms']:.2f} ms vs "
        f"{base[1]['p99_ms']:.2f} ms baseline ({sh[1]['p99_ms_ratio']:.2f}x; goal <= 1.10x); "
        f"at 32 connections {sh[32]['p99_ms_ratio']:.2f}x, throughput {sh[32]['rps_ratio']:.0%}",
        f"- shadow requests the challenger answered (in the sidecar, on idle CPU): "
        f"{sh[1]['mirrored']:.0%} at 1 connection, {sh[32]['mirrored']:.0%} at 32 (the rest "
        "were over the sidecar's bounded queue and counted as dropped)",
        "",
        "In-process, per `infer` call (3,000 calls per path, one row, same model; wall = "
        "median, CPU = process CPU per call, writer thread included):",
        "",
        "| path | wall us/call | vs data plane | CPU us/call | vs data plane |",
        "|---|---|---|---|---|",
    ]
    d = micro["dataplane"]
    for key, v in micro.items():
        lines.append(
            f"| {key} | {v['us']:.1f} | {v['us'] / d['us']:.2f}x | {v['cpu_us']:.1f} | "
            f"{v['cpu_us'] / d['cpu_us']:.2f}x |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
