"""Event log and feature benchmark: ingest, de-duplicated views, training sets, latest values.

Each loopml figure has a baseline measured in the same run on the same data:

* append 1M impressions (validate, de-duplicate, partition by day/version, atomic files)
  vs a plain ``pyarrow.parquet.write_table`` of the same frame (no checks at all);
* the de-duplicating SQL view vs a raw ``read_parquet`` count;
* one point-in-time feature (a user's impressions in the last 7 days, for every
  impression) with loopml's as-of engine vs DuckDB's ``ASOF JOIN`` (two joins: at t and
  at t - 7d), the approach the engine replaced;
* the full 14-day training set (4 default views, 15 features, labels) and
  ``latest_values`` for every user: absolute times.

    .venv/bin/python bench/eventlog_features.py [--impressions-per-day 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopml.features.pointintime import compute_features, load_events
from loopml.features.training import build_training_set, latest_values
from loopml.features.views import Count, FeatureView, default_catalog
from loopml.logs.eventlog import EventLog
from loopml.sim.config import WorldConfig
from loopml.sim.world import World

CPU: dict[str, float] = {}


def timed(fn, repeats: int, name: str = "") -> tuple[float, object]:
    """Median wall time; the median CPU time of the process (all threads) goes to ``CPU``.

    CPU seconds do not grow when other processes load the machine, wall seconds do.
    """
    times, cpus, result = [], [], None
    for _ in range(repeats):
        began, cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - began)
        cpus.append(time.process_time() - cpu)
    CPU[name] = statistics.median(cpus)
    return statistics.median(times), result


def impressions(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 14 * 86_400_000_000, n)), unit="us"
    )
    v2 = ts >= pd.Timestamp("2026-01-12", tz="UTC")
    return pd.DataFrame(
        {
            "event_id": pd.Series(np.arange(n)).astype("str").radd("imp-"),
            "ts": ts,
            "request_id": pd.Series(np.arange(n) // 5).astype("str").radd("req-"),
            "user_id": pd.Series(rng.integers(0, 20_000, n)).astype("str").radd("u"),
            "item_id": pd.Series(rng.integers(0, 500, n)).astype("str").radd("i"),
            "position": np.arange(n) % 5,
            "device": pd.Series(np.where(v2, "ios", None), dtype="str"),
            "schema_version": np.where(v2, 2, 1),
        }
    )


def bench_append(repeats: int) -> None:
    frame = impressions(1_000_000)

    def loopml_append():
        return EventLog(tempfile.mkdtemp()).append("impression", frame)

    def baseline():
        path = f"{tempfile.mkdtemp()}/all.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)

    ours, result = timed(loopml_append, repeats, "append")
    base, _ = timed(baseline, repeats, "plain")
    assert result.accepted == len(frame)
    print(
        f"append 1M impressions: loopml {ours:.2f}s  plain parquet {base:.2f}s  "
        f"ratio {ours / base:.2f}x (CPU {CPU['append']:.2f}s vs {CPU['plain']:.2f}s)"
    )


def bench_features(per_day: int, repeats: int) -> None:
    began = time.perf_counter()
    logs = World(WorldConfig(impressions_per_day=per_day)).generate()
    log = EventLog(tempfile.mkdtemp())
    for kind, frame in logs.items():
        log.append(kind, frame)
    n = len(logs["impression"])
    print(
        f"setup: {n} impressions, {len(logs['click'])} clicks ({time.perf_counter() - began:.1f}s)"
    )

    con = log.connect()
    raw = con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    view_s, _ = timed(lambda: con.sql('SELECT count(*) FROM "impression"').fetchall(), repeats)
    glob = log.files.path("impression/*/*.parquet")
    raw_s, _ = timed(
        lambda: con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall(), repeats
    )
    print(
        f"dedup view count: {view_s:.2f}s  raw read {raw_s:.2f}s  ratio {view_s / raw_s:.1f}x "
        f"({raw} DuckDB threads)"
    )

    one = FeatureView("u", 1, "user_id", "", (Count("impressions_7d", "impression", "7d"),))
    start, end = pd.Timestamp("2026-01-05", tz="UTC"), pd.Timestamp("2026-01-19", tz="UTC")
    tables = load_events(log, con, [one], start, end, extra={"impression": {"user_id"}})
    imp = tables["impression"]
    keys = {"user_id": imp.column("user_id")}
    t_us = imp.column("_t").to_numpy()

    def ours():
        return compute_features(tables, [one], keys, t_us)["u__impressions_7d"]

    con.register("imp_in", imp.select(["event_id", "user_id", "ts"]))
    con.execute(
        "CREATE TEMP TABLE cum AS SELECT user_id AS k, ts, sum(n) OVER (PARTITION BY user_id "
        "ORDER BY ts ROWS UNBOUNDED PRECEDING) AS n FROM (SELECT user_id, ts, count(*) AS n "
        "FROM imp_in GROUP BY ALL)"
    )

    def duck():
        return con.sql(
            "SELECT coalesce(a.n, 0) - coalesce(b.n, 0) AS v FROM "
            "(SELECT event_id, user_id, ts, ts - INTERVAL 7 DAY AS t7 FROM imp_in) q "
            "ASOF LEFT JOIN cum a ON q.user_id = a.k AND q.ts > a.ts "
            "ASOF LEFT JOIN cum b ON q.user_id = b.k AND q.t7 > b.ts ORDER BY q.ts, q.event_id"
        ).to_arrow_table()

    ours_s, ours_v = timed(ours, repeats)
    duck_s, duck_v = timed(duck, repeats)
    assert np.array_equal(ours_v, duck_v.column("v").to_numpy()), "engines disagree"
    print(
        f"one windowed count x {n} rows: loopml as-of {ours_s:.2f}s  DuckDB ASOF JOIN "
        f"{duck_s:.2f}s  ratio {ours_s / duck_s:.2f}x (identical values)"
    )
    con.close()

    views = list(default_catalog())
    build_s, frame = timed(
        lambda: build_training_set(log, views, start=start, end=end), repeats, "build"
    )
    print(
        f"build_training_set 14 days, {len(frame)} rows x {len(frame.columns)} cols: "
        f"{build_s:.2f}s wall, {CPU['build']:.2f}s CPU ({len(frame) / build_s / 1e3:.0f}k rows/s)"
    )
    lv_s, latest = timed(
        lambda: latest_values(log, default_catalog().get("user_activity"), as_of=end),
        repeats,
        "latest",
    )
    print(
        f"latest_values user_activity for {len(latest)} users: {lv_s:.2f}s wall, "
        f"{CPU['latest']:.2f}s CPU"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions-per-day", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_append(args.repeats)
    bench_features(args.impressions_per_day, args.repeats)


if __name__ == "__main__":
    main()
