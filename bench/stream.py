"""Pattern-4 benchmark: the full streaming learner vs River's bare loop, in the same run.

Events: a simulated feed (user/item profiles, impressions, clicks). The bare baseline is
what a user writes by hand on the same labelled examples in memory: River's
``learn_one`` over a list (and ``predict_proba_one`` + ``learn_one``, the same work as
progressive validation). loopml = ``run_learner``: consume from the queue, join clicks
to impressions within the label window, predict then learn, checkpoint + ack, and
snapshot into the registry, on the embedded SQLite queue and on Redis Streams (timed
from the first consume to the last ack; process start-up is excluded). Events are
published as ``loopml stream produce`` does, packed ``[stream] pack`` (100) per Redis
entry (``--pack 1``: one entry per event).
Throughput is labelled examples learnt per second (the learner also reads the profile
and click events; bare loops do not). Mini-batch rows compare ``mini_batch=500`` with
the bare per-event loop. Every path runs once per repeat, in rotation, so a burst of
load on the shared machine hits all of them alike; figures are medians. The Redis
server's CPU (``INFO cpu``) is work the learner hands to another process: each Redis
row is followed by the same runs with that CPU added.

    .venv/bin/python bench/stream.py [--impressions 30000] [--repeats 3] [--no-redis]
        [--models logreg] [--only-main] [--backends redis] [--pack N]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loopml.core.config import ProjectConfig, init_project
from loopml.serve.stream.learner import OnlineLearner
from loopml.serve.stream.models import make_model
from loopml.serve.stream.produce import event_payloads
from loopml.serve.stream.runner import open_runner
from loopml.serve.stream.settings import StreamSettings
from loopml.sim.config import WorldConfig
from loopml.sim.world import World
from loopml.storage.queues import open_queue

REDIS = "redis://127.0.0.1:6379/13"  # not 15: test suites flush that one
WINDOW = 1800.0
BASELINE = "River bare `learn_one` loop (baseline)"
BACKENDS = [("SQLite queue", "sqlite"), ("Redis Streams", REDIS)]


def make_events(impressions: int) -> list[dict]:
    days = 2
    world = World(
        WorldConfig(
            days=days,
            impressions_per_day=impressions // days,
            n_users=2000,
            n_items=200,
            format_change_day=0,
        )
    )
    return [p for p, _ in event_payloads(world.generate())]


def dense_stream(n: int) -> tuple[list[dict], list[tuple[dict, bool]]]:
    """River's bundled Phishing data (9 numeric features), repeated to ``n`` examples."""
    from river import datasets

    data = list(datasets.Phishing())
    examples = [data[i % len(data)] for i in range(n)]
    events = [
        {"type": "example", "event_id": f"d{i}", "ts": i, "x": x, "y": y}
        for i, (x, y) in enumerate(examples)
    ]
    return events, examples


def labelled_examples(events: list[dict]) -> list[tuple[dict, bool]]:
    """The (x, y) pairs the learner learns, in its order: the bare loops' input."""
    learner = OnlineLearner("logreg", label_window_s=WINDOW, trace=True)
    for e in events:
        learner.process(e)
    learner.finish()
    return [(x, bool(y)) for _, _, x, y, _ in learner.trace_]


@dataclass
class Run:
    """One timed run: examples learnt, wall and CPU seconds (and a server's CPU seconds)."""

    n: int
    wall: float
    cpu: float
    server_cpu: float = 0.0


class Clock:
    """Wall and CPU time of one block: the machine is shared, so both are reported."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def run(self, n: int, server_cpu: float = 0.0) -> Run:
        return Run(n, self.wall, self.cpu, server_cpu)


def bare_learn(model_name: str, examples, **params) -> Run:
    model = make_model(model_name, **params)
    with Clock() as c:
        for x, y in examples:
            model.learn_one(x, y)
    return c.run(len(examples))


def bare_progressive(model_name: str, examples, **params) -> Run:
    model = make_model(model_name, **params)
    with Clock() as c:
        for x, y in examples:
            model.predict_proba_one(x)
            model.learn_one(x, y)
    return c.run(len(examples))


def bare_mini_batch(model_name: str, examples, size: int = 500, **params) -> Run:
    """The library's own mini-batch update on the same examples (no queue, no join)."""
    import pandas as pd

    model = make_model(model_name, **params)
    xs = [x for x, _ in examples]
    ys = [y for _, y in examples]
    with Clock() as c:
        for i in range(0, len(xs), size):
            if hasattr(model, "learn_dicts"):
                model.learn_dicts(xs[i : i + size], ys[i : i + size])
            else:
                model.learn_many(pd.DataFrame(xs[i : i + size]), pd.Series(ys[i : i + size]))
    return c.run(len(examples))


def loopml_mini_batch(model_name: str, examples, size: int = 500, **params) -> Run:
    """loopml's mini-batch update on the same examples (no queue, no join).

    Each row goes through the model's stateless front, then ``learn_rows`` learns every
    ``size`` rows (River's update step, gradient on a sparse matrix): the bare loop's
    work, batched.
    """
    from loopml.serve.stream.features import compile_front
    from loopml.serve.stream.models import learn_rows, split_stateless

    front, final = split_stateless(make_model(model_name, **params))
    transform = compile_front(front)
    with Clock() as c:
        xs, ys = [], []
        for x, y in examples:
            xs.append(transform(x))
            ys.append(y)
            if len(xs) == size:
                learn_rows(final, xs, ys)
                xs, ys = [], []
        if xs:
            learn_rows(final, xs, ys)
    return c.run(len(examples))


def in_memory_learner(
    events: list[dict], model: str, mini_batch: int = 1, window: float = WINDOW, **params
) -> Run:
    """The learner without a queue: isolates what the queue, checkpoints and snapshots cost."""
    from loopml.storage.queues.base import MessageBatch

    learner = OnlineLearner(
        model, label_window_s=window, mini_batch=mini_batch, model_params=params
    )
    batches = []
    for i in range(0, len(events), 1000):  # what one consume of 1000 delivers
        chunk = copy.deepcopy(events[i : i + 1000])
        seqs = range(i + 1, i + 1 + len(chunk))
        batches.append(
            MessageBatch(
                "events",
                [0] * len(chunk),
                [str(s) for s in seqs],
                [(s, 0) for s in seqs],
                [None] * len(chunk),
                chunk,
            )
        )
    gc.freeze()  # as StreamRunner.run does: full collections skip what existed before
    try:
        with Clock() as c:
            for batch in batches:
                learner.process_messages(batch)
    finally:
        gc.unfreeze()
    return c.run(learner.n_learnt)


def redis_server_cpu() -> float:
    """CPU seconds the Redis server has used so far (user + system), from INFO."""
    import redis

    info = redis.Redis.from_url(REDIS).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


#: events per queue entry when the bench publishes (None: the ``[stream] pack`` default)
PACK: int | None = None


def full_learner(
    url: str,
    events: list[dict],
    model: str,
    mini_batch: int = 1,
    window: float = WINDOW,
    **params,
) -> Run:
    root = Path(tempfile.mkdtemp()) / "proj"
    name = f"b{uuid.uuid4().hex[:8]}"
    init_project(root, name=name)
    text = (root / "loopml.toml").read_text()
    redis = url.startswith("redis")
    if redis:
        text = text.replace('queue = "sqlite:///.loopml/queue.db"', f'queue = "{url}"')
        (root / "loopml.toml").write_text(text)
    cfg = ProjectConfig.load(root)
    pack = PACK or StreamSettings.from_config(cfg).pack  # what `loopml stream produce` does
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        for i in range(0, len(events), 5000):
            q.publish_many("events", events[i : i + 5000], pack=pack)
    settings = StreamSettings.from_config(
        cfg,
        model=model,
        mini_batch=mini_batch,
        label_window_s=window,
        model_params=params,
        consume_batch=1000,
        commit_every=10_000,
        snapshot_every=max(1, len(events) // 6),
    )
    runner = open_runner(cfg, settings)  # start-up (imports, registry tables) is not timed
    try:
        server = redis_server_cpu() if redis else 0.0
        with Clock() as c:
            report = runner.run(idle_timeout_s=0.0, block_ms=0)
        server = redis_server_cpu() - server if redis else 0.0
        assert report.consumed == len(events) and len(report.snapshots) >= 3, report
        return c.run(report.status["counts"]["learnt"], server_cpu=server)
    finally:
        runner.queue.close()
        if redis:
            with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
                q.purge()


def rates(runs: list[Run], with_server: bool = False) -> tuple[float, float]:
    """Median examples per second over wall time and over CPU time."""
    wall = statistics.median(r.n / r.wall for r in runs)
    cpu = statistics.median(r.n / (r.cpu + (r.server_cpu if with_server else 0.0)) for r in runs)
    return wall, cpu


def rotate(paths: dict[str, Callable[[], Run]], repeats: int) -> dict[str, list[Run]]:
    """Each path once per repeat, in turn, so load bursts do not land on one path only."""
    runs: dict[str, list[Run]] = {label: [] for label in paths}
    for _ in range(repeats):
        for label, f in paths.items():
            runs[label].append(f())
            r = runs[label][-1]
            print(f"  {label}: {r.n / r.cpu:,.0f}/s CPU, {r.n / r.wall:,.0f}/s wall", flush=True)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--out", default="bench/results/stream.md")
    ap.add_argument("--models", default="logreg,hoeffding", help="per-event blocks to run")
    ap.add_argument(
        "--only-main", action="store_true", help="skip the mini-batch, sgd and dense blocks"
    )
    ap.add_argument("--backends", default="sqlite,redis", help="queues of the full learner")
    ap.add_argument(
        "--pack", type=int, default=None, help="events per queue entry (default: [stream] pack)"
    )
    args = ap.parse_args()
    global PACK
    PACK = args.pack

    events = make_events(args.impressions)
    examples = labelled_examples(copy.deepcopy(events))
    print(f"{len(events):,} events, {len(examples):,} labelled examples")
    wanted = set(args.backends.split(",")) - ({"redis"} if args.no_redis else set())
    backends = [(label, url) for label, url in BACKENDS if label.split()[0].lower() in wanted]
    full_learner("sqlite", events, "logreg")  # first-use imports, not measured
    rows: list[tuple[str, str, float, float, tuple[float, float]]] = []

    def table(model: str, runs: dict[str, list[Run]], base: tuple[float, float]) -> None:
        for path, rs in runs.items():
            rows.append((model, path, *rates(rs), base))
            if any(r.server_cpu for r in rs):
                rows.append((model, f"{path}, Redis server CPU added", *rates(rs, True), base))

    logreg_base = None
    for model in args.models.split(","):
        paths: dict[str, Callable[[], Run]] = {
            BASELINE: lambda m=model: bare_learn(m, examples),
            "River bare `predict_proba_one` + `learn_one`": lambda m=model: bare_progressive(
                m, examples
            ),
            "loopml learner in memory (join, metrics; no queue)": lambda m=model: in_memory_learner(
                events, m
            ),
        }
        for label, url in backends:
            paths[f"loopml learner, {label} (queue, learn, snapshot)"] = lambda u=url, m=model: (
                full_learner(u, events, m)
            )
        runs = rotate(paths, args.repeats)
        base = rates(runs[BASELINE])
        logreg_base = logreg_base or base
        table(model, runs, base)

    if not args.only_main:
        # mini-batches on the sparse CTR features, against the per-event logreg loop
        paths = {
            BASELINE: lambda: bare_learn("logreg", examples),
            "River `learn_many` (pipeline, pandas frame), 500 rows": lambda: bare_mini_batch(
                "logreg", examples
            ),
            "loopml mini-batch update (`learn_rows`, sparse), 500 rows": lambda: loopml_mini_batch(
                "logreg", examples
            ),
        }
        for label, url in backends:
            paths[f"loopml learner, {label}, mini-batch 500"] = lambda u=url: full_learner(
                u, events, "logreg", 500
            )
        runs = rotate(paths, args.repeats)
        base = rates(runs.pop(BASELINE))
        table("logreg", runs, base)
        runs = rotate(
            {
                "scikit-learn `partial_fit` (hashed), 500 rows": lambda: bare_mini_batch(
                    "sgd", examples
                ),
                "loopml learner, SQLite queue, mini-batch 500": lambda: full_learner(
                    "sqlite", events, "sgd", 500
                ),
            },
            args.repeats,
        )
        table("sgd", runs, base)

        # dense numeric features (River's Phishing, repeated): where mini-batches pay off
        dense_events, dense_examples = dense_stream(len(examples))
        plain = {"crosses": ()}
        paths = {
            BASELINE: lambda: bare_learn("logreg", dense_examples, **plain),
            "River `learn_many` (pipeline, pandas frame), 500 rows": lambda: bare_mini_batch(
                "logreg", dense_examples, **plain
            ),
            "loopml mini-batch update (`learn_rows`, sparse), 500 rows": lambda: loopml_mini_batch(
                "logreg", dense_examples, **plain
            ),
        }
        for mb in (1, 500):
            paths[f"loopml learner, SQLite queue, mini-batch {mb}"] = lambda b=mb: full_learner(
                "sqlite", dense_events, "logreg", b, 25, **plain
            )
        runs = rotate(paths, args.repeats)
        table("logreg, dense", runs, rates(runs[BASELINE]))

    load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
    pack = args.pack or StreamSettings().pack
    pack_text = (
        "one event each"
        if pack == 1
        else f"up to {pack} events each (`[stream] pack`, as `loopml stream produce` packs them)"
    )
    lines = [
        "## Streaming learner (pattern 4): `bench/stream.py`",
        "",
        f"{len(events):,} simulated events ({len(examples):,} labelled impressions), median "
        f"of {args.repeats} runs per path (the paths of a block run in rotation), labelled "
        "examples learnt per second. Ratios are against River's bare `learn_one` loop over "
        "the same examples with the same model, measured in the same block (mini-batch and "
        "sgd rows: the logreg loop; dense rows: River's Phishing data repeated, 9 numeric "
        f"features). The machine is shared (load average {load} on 2 cores at the end of "
        "the run), so CPU-time rates are given too. The CPU column counts this process "
        'only; rows marked "Redis server CPU added" add what the Redis server spent. '
        f"Redis entries hold {pack_text}; the SQLite queue stores a row per event.",
        "",
        "| model | path | examples/s (wall) | ratio | examples/s (CPU) | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m} | {p} | {w:,.0f} | {w / b[0]:.2f}x | {c:,.0f} | {c / b[1]:.2f}x |"
        for m, p, w, c, b in rows
    ]
    flags = f"--impressions {args.impressions} --repeats {args.repeats}"
    flags += " --no-redis" if args.no_redis else ""
    flags += f" --models {args.models}" if args.models != "logreg,hoeffding" else ""
    flags += f" --backends {args.backends}" if args.backends != "sqlite,redis" else ""
    flags += " --only-main" if args.only_main else ""
    flags += f" --pack {args.pack}" if args.pack else ""
    lines += ["", f"Command: `.venv/bin/python bench/stream.py {flags}`", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
