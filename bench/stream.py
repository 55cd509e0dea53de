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

REDIS = "redis://127.0.0.1:6379/15"
WINDOW = 1800.0


def make_events(impressions: int) -> list[dict]:
    days = 2
    world = World(
        WorldConfig(
            days=days, impressions_per_day=impressions // days, n_users=2000, n_items=200,
            format_change_day=0,
        )
    )
    return [p for p, _ in event_payloads(world.generate())]


def labelled_examples(events: list[dict]) -> list[tuple[dict, bool]]:
    """The (x, y) pairs the learner learns, in its order: the bare loops' input."""
    learner = OnlineLearner("logreg", label_window_s=WINDOW, trace=True)
    for e in events:
        learner.process(e)
    learner.finish()
    return [(x, bool(y)) for _, _, x, y, _ in learner.trace_]


def bare_learn(model_name: str, examples) -> float:
    model = make_model(model_name)
    start = time.perf_counter()
    for x, y in examples:
        model.learn_one(x, y)
    return len(examples) / (time.perf_counter() - start)


def bare_progressive(model_name: str, examples) -> float:
    model = make_model(model_name)
    start = time.perf_counter()
    for x, y in examples:
        model.predict_proba_one(x)
        model.learn_one(x, y)
    return len(examples) / (time.perf_counter() - start)


def full_learner(url: str, events: list[dict], model: str, mini_batch: int = 1) -> float:
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
        cfg, model=model, mini_batch=mini_batch, label_window_s=WINDOW, consume_batch=1000,
        commit_every=10_000, snapshot_every=len(events) // 4,
    )
    runner = open_runner(cfg, settings)  # start-up (imports, registry tables) is not timed
    try:
        start = time.perf_counter()
        report = runner.run(idle_timeout_s=0.0, block_ms=0)
        seconds = time.perf_counter() - start
        assert report.consumed == len(events) and len(report.snapshots) >= 4, report
        return report.status["counts"]["learnt"] / seconds
    finally:
        runner.queue.close()
        if url.startswith("redis"):
            with open_queue(cfg.url("queue"), namespace=cfg.name) as q:
                q.purge()


def median(f, repeats: int) -> float:
    return statistics.median(f() for _ in range(repeats))


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
    backends = [("SQLite queue", "sqlite")] + ([] if args.no_redis else [("Redis Streams", REDIS)])
    for model in ("logreg", "hoeffding"):
        bare = median(lambda m=model: bare_learn(m, examples), args.repeats)
        bare_pv = median(lambda m=model: bare_progressive(m, examples), args.repeats)
        rows.append((model, "River bare `learn_one` loop (baseline)", bare, 1.0))
        rows.append((model, "River bare `predict_proba_one` + `learn_one`", bare_pv, bare_pv / bare))
        for label, url in backends:
            full = median(lambda u=url, m=model: full_learner(u, events, m), args.repeats)
            rows.append((model, f"loopml learner, {label} (queue, learn, snapshot)", full, full / bare))
            print(rows[-1])
        if model == "logreg":
            for mb_model in ("logreg", "sgd"):
                full = median(
                    lambda m=mb_model: full_learner("sqlite", events, m, mini_batch=500),
                    args.repeats,
                )
                rows.append(
                    (
                        mb_model,
                        "loopml learner, SQLite queue, mini-batch 500 (`learn_many`)",
                        full,
                        full / bare,
                    )
                )
                print(rows[-1])
    lines = [
        "## Streaming learner (pattern 4): `bench/stream.py`",
        "",
        f"{len(events):,} simulated events ({len(examples):,} labelled impressions), "
        f"median of {args.repeats} runs, examples learnt per second; ratio against River's "
        "bare `learn_one` loop over the same examples of the same model in the same run "
        "(for `sgd`, against the River logreg loop).",
        "",
        "| model | path | examples/s | ratio vs bare learn_one |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {m} | {p} | {v:,.0f} | {r:.2f}x |" for m, p, v, r in rows]
    lines += ["", "Command: `.venv/bin/python bench/stream.py " + " ".join(
        f"--impressions {args.impressions} --repeats {args.repeats}".split()
    ) + ("" if not args.no_redis else " --no-redis") + "`", ""]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
