"""Pattern-4 benchmark: the full streaming learner vs River's bare loop, in the same run.

Events: a simulated feed (user/item profiles, impressions, clicks). The bare baseline is
what a user writes by hand on the same labelled examples in memory: River's
``learn_one`` over a list (and ``predict_proba_one`` + ``learn_one``, the same work as
progressive validation). loopml = ``run_learner``: consume from the queue, join clicks
to impressions within the label window, predict then learn, checkpoint + ack, and
snapshot into the registry, on the embedded SQLite queue and on Redis Streams (timed
from the first consume to the last ack; process start-up is excluded).
Throughput is labelled examples learnt per second (the learner also reads the profile
and click events; bare loops do not). Mini-batch rows compare ``mini_batch=500`` with
the bare per-event loop.

    .venv/bin/python bench/stream.py [--impressions 30000] [--repeats 3] [--no-redis]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
import uuid
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


class Clock:
    """Wall and CPU time of one block: the machine is shared, so both are reported."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        return n / self.wall, n / self.cpu


def bare_learn(model_name: str, examples, **params) -> tuple[float, float]:
    model = make_model(model_name, **params)
    with Clock() as c:
        for x, y in examples:
            model.learn_one(x, y)
    return c.rates(len(examples))


def bare_progressive(model_name: str, examples, **params) -> tuple[float, float]:
    model = make_model(model_name, **params)
    with Clock() as c:
        for x, y in examples:
            model.predict_proba_one(x)
            model.learn_one(x, y)
    return c.rates(len(examples))


def bare_mini_batch(model_name: str, examples, size: int = 500, **params) -> tuple[float, float]:
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
    return c.rates(len(examples))


def in_memory_learner(
    events: list[dict], model: str, mini_batch: int = 1, window: float = WINDOW, **params
) -> tuple[float, float]:
    """The learner without a queue: isolates what the queue, checkpoints and snapshots cost."""
    from loopml.storage.queues.base import Message

    learner = OnlineLearner(
        model, label_window_s=window, mini_batch=mini_batch, model_params=params
    )
    msgs = [Message("events", 0, str(i), (i, 0), None, e) for i, e in enumerate(events, 1)]
    with Clock() as c:
        for i in range(0, len(msgs), 1000):
            learner.process_messages(msgs[i : i + 1000])
    return c.rates(learner.n_learnt)


def full_learner(
    url: str,
    events: list[dict],
    model: str,
    mini_batch: int = 1,
    window: float = WINDOW,
    **params,
) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp()) / "proj"
    name = f"b{uuid.uuid4().hex[:8]}"
    init_project(root, name=name)
    text = (root / "loopml.toml").read_text()
    if url.startswith("redis"):
        text = text.replace('queue = "sqlite:///.loopml/queue.db"', f'queue = "{url}"')
        (root / "loopml.toml").write_text(text)
    cfg = ProjectConfig.load(root)
    with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
        for i in range(0, len(events), 5000):
            q.publish_many("events", events[i : i + 5000])
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
        with Clock() as c:
            report = runner.run(idle_timeout_s=0.0, block_ms=0)
        assert report.consumed == len(events) and len(report.snapshots) >= 3, report
        return c.rates(report.status["counts"]["learnt"])
    finally:
        runner.queue.close()
        if url.startswith("redis"):
            with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
                q.purge()


def median(f, repeats: int) -> tuple[float, float]:
    runs = [f() for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impressions", type=int, default=30_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-redis", action="store_true")
    ap.add_argument("--out", default="bench/results/stream.md")
    args = ap.parse_args()

    events = make_events(args.impressions)
    examples = labelled_examples(copy.deepcopy(events))
    print(f"{len(events):,} events, {len(examples):,} labelled examples")
    rows = []

    def row(model: str, path: str, rates: tuple[float, float], base: tuple[float, float]):
        rows.append((model, path, rates[0], rates[0] / base[0], rates[1], rates[1] / base[1]))
        print(rows[-1], flush=True)

    backends = [("SQLite queue", "sqlite")] + ([] if args.no_redis else [("Redis Streams", REDIS)])
    bare_logreg = None
    for model in ("logreg", "hoeffding"):
        bare = median(lambda m=model: bare_learn(m, examples), args.repeats)
        bare_logreg = bare_logreg or bare
        row(model, "River bare `learn_one` loop (baseline)", bare, bare)
        row(
            model,
            "River bare `predict_proba_one` + `learn_one`",
            median(lambda m=model: bare_progressive(m, examples), args.repeats),
            bare,
        )
        row(
            model,
            "loopml learner in memory (join, metrics; no queue)",
            median(lambda m=model: in_memory_learner(events, m), args.repeats),
            bare,
        )
        for label, url in backends:
            row(
                model,
                f"loopml learner, {label} (queue, learn, snapshot)",
                median(lambda u=url, m=model: full_learner(u, events, m), args.repeats),
                bare,
            )
    for mb_model in ("logreg", "sgd"):
        row(
            mb_model,
            "bare mini-batch update, 500 rows (`learn_many`)",
            median(lambda m=mb_model: bare_mini_batch(m, examples), args.repeats),
            bare_logreg,
        )
        row(
            mb_model,
            "loopml learner, SQLite queue, mini-batch 500",
            median(lambda m=mb_model: full_learner("sqlite", events, m, 500), args.repeats),
            bare_logreg,
        )
    # dense numeric features (River's Phishing, repeated): where mini-batches pay off
    dense_events, dense_examples = dense_stream(len(examples))
    plain = {"crosses": ()}
    base = median(lambda: bare_learn("logreg", dense_examples, **plain), args.repeats)
    row("logreg, dense", "River bare `learn_one` loop (baseline)", base, base)
    row(
        "logreg, dense",
        "bare mini-batch update, 500 rows (`learn_many`)",
        median(lambda: bare_mini_batch("logreg", dense_examples, **plain), args.repeats),
        base,
    )
    for mb in (1, 500):
        row(
            "logreg, dense",
            f"loopml learner, SQLite queue, mini-batch {mb}",
            median(
                lambda b=mb: full_learner("sqlite", dense_events, "logreg", b, 25, **plain),
                args.repeats,
            ),
            base,
        )
    load = " / ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    lines = [
        "## Streaming learner (pattern 4): `bench/stream.py`",
        "",
        f"{len(events):,} simulated events ({len(examples):,} labelled impressions), median "
        f"of {args.repeats} runs, labelled examples learnt per second. Ratios are against "
        "River's bare `learn_one` loop over the same examples with the same model in the "
        "same run (mini-batch rows: against the River logreg loop; dense rows: River's "
        "Phishing data repeated, 9 numeric features). The machine is shared "
        f"(load average {load} on 2 cores during the run), so CPU-time rates are given "
        "too; the Redis server's own CPU is not in the CPU column.",
        "",
        "| model | path | examples/s (wall) | ratio | examples/s (CPU) | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m} | {p} | {w:,.0f} | {rw:.2f}x | {c:,.0f} | {rc:.2f}x |"
        for m, p, w, rw, c, rc in rows
    ]
    flags = f"--impressions {args.impressions} --repeats {args.repeats}"
    flags += " --no-redis" if args.no_redis else ""
    lines += ["", f"Command: `.venv/bin/python bench/stream.py {flags}`", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
