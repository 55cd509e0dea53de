"""Outcomes from the event log: behaviour events joined to assignments, with no outcome API.

Closed loop with the simulated world (users, rankers of known quality, the world's
clicks) where the only outcome path is the event log, then the attribution rules one by
one on hand-made events: by request, by unit within the window, conversions with an
amount, interleaving teams, and re-runs that must never count an event twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import numpy as np
import pytest
from tests.rollout.helpers import Feed, TruthScorer, dataplane

from loopml.logs.eventlog import EventLog
from loopml.rollout.eventjoin import CURSOR, join_events
from loopml.rollout.records import ExperimentSpec
from loopml.rollout.router import ExperimentRouter
from loopml.rollout.store import ExperimentStore

pytestmark = pytest.mark.timeout(120)


def _ts(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def test_ab_is_decided_from_logged_events_alone_and_rejoining_never_double_counts(tmp_path):
    log = EventLog(str(tmp_path / "events"))

    async def main():
        dp = await dataplane(
            {1: TruthScorer(3.0, 1, 1), 2: TruthScorer(0.3, 2, 2)},
            {"production": 1, "challenger": 2},
        )
        store = ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
        router = ExperimentRouter(dp, store, tick_s=None, events=log, join_every_s=0.0)
        spec = ExperimentSpec("ev", "ranker", "ab", ("production", "challenger"), seed=1, mde=0.05)
        await router.start(spec)
        feed = Feed(router, "ev", seed=1, log=log)
        winner, status = None, None
        while feed.requests < 1500 and winner is None:
            await feed.run(100)
            await router.tick()  # the server's tick joins the log; no feedback call anywhere
            status = await router.status("ev")
            winner = status["decision"]["winner"]
        await router.aclose()
        return feed, winner, status, store

    feed, winner, status, store = asyncio.run(main())
    assert winner == "challenger"  # the truly better ranker, from the world's clicks
    positives = sum(a["positive"] for a in status["arms"])
    assert 0 < positives <= feed.clicks
    clicked = log.sql("SELECT count(DISTINCT impression_id) AS n FROM click")["n"].iloc[0]
    stored = store.engine.connect().exec_driver_sql("SELECT count(*) FROM rollout_outcomes")
    assert stored.scalar() == clicked == feed.clicks  # every logged click, exactly once
    exp = store.get("ev")
    again = join_events(store, log, exp, full=True)
    assert again["accepted"] == 0 and again["duplicates"] == feed.clicks
    assert again["by_request"] == feed.clicks and again["unmatched"] == 0
    after = store.outcome_totals("ev", "click")
    assert sum(o["positive"] for o in after.values()) == positives


@pytest.fixture
def routed(tmp_path):
    """An A/B experiment whose store holds three served requests of two units, at t0."""
    store = ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
    spec = ExperimentSpec("e", "m", "ab", ("production", "challenger"), attribution_window_s=3600.0)
    store.create(spec)
    t0 = time.time() - 1800  # the requests were served half an hour ago
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE rollout_experiments SET created_at = ?", (t0 - 60,))
    exp = store.get("e")
    rows = [
        ("e", "r1", "u1", "production", 1, "serve", t0, 1.0, False, None, None),
        ("e", "r1", "u1", "challenger", 2, "shadow", t0, 1.0, False, None, None),
        ("e", "r2", "u2", "challenger", 2, "serve", t0, 1.0, False, None, None),
        ("e", "r3", "u1", "production", 1, "serve", t0 + 600, 1.0, False, None, None),
    ]
    store.add_assignments(rows)
    return store, exp, t0, EventLog(str(tmp_path / "events"))


def test_events_are_attributed_by_request_or_unit_within_the_window(routed):
    store, exp, t0, log = routed
    imp = {"ts": _ts(t0), "position": 0}
    log.append(
        "impression",
        [
            {**imp, "event_id": "i1", "request_id": "r1", "user_id": "u1", "item_id": "a"},
            {**imp, "event_id": "i2", "request_id": "r2", "user_id": "u2", "item_id": "b"},
            {**imp, "event_id": "i9", "request_id": "elsewhere", "user_id": "u2", "item_id": "c"},
        ],
    )

    def click(event_id, after, impression, user):
        return {
            "event_id": event_id,
            "ts": _ts(t0 + after),
            "impression_id": impression,
            "user_id": user,
            "item_id": "a",
        }

    log.append(
        "click",
        [
            click("c1", 5, "i1", "u1"),  # by request, through the impression
            click("c2", 9, "i9", "u2"),  # impression of another page: by unit, u2's r2
            click("c3", 700, "?", "u1"),  # no impression logged: by unit, u1's latest is r3
            click("c4", 4000, "i2", "u2"),  # by request, but after the one-hour window
            click("c5", 9, "?", "u7"),  # a user the experiment never routed
        ],
    )
    log.append(
        "conversion",
        [
            {
                "event_id": "v1",
                "ts": _ts(t0 + 300),
                "impression_id": "i2",
                "user_id": "u2",
                "item_id": "b",
                "value": 42.5,
            }
        ],
    )
    log.append(
        "feedback",
        [
            {
                "event_id": "f1",
                "ts": _ts(t0 + 60),
                "request_id": "r2",
                "metric": "watch_s",
                "value": 30.0,
            },
            {
                "event_id": "f2",
                "ts": _ts(t0 + 60),
                "request_id": "nope",
                "metric": "watch_s",
                "value": 10.0,
                "entity_id": "u1",
            },
        ],
    )
    out = join_events(store, log, exp)
    assert out["events"] == 8
    assert (out["by_request"], out["by_unit"]) == (3, 3)  # c1 v1 f1 / c2 c3 f2
    assert out["outside_window"] == 1 and out["unmatched"] == 1
    assert out["accepted"] == 7  # the conversion counts twice: conversion + its amount
    clicks = store.request_outcomes("e", "click")
    assert clicks == {
        "r1": {"production": 1.0},
        "r2": {"challenger": 1.0},
        "r3": {"production": 1.0},
    }
    assert store.request_outcomes("e", "conversion_value") == {"r2": {"challenger": 42.5}}
    assert store.request_outcomes("e", "conversion") == {"r2": {"challenger": 1.0}}
    watch = store.outcome_totals("e", "watch_s")
    assert watch["challenger"]["total"] == 30.0 and watch["production"]["total"] == 10.0
    assert not watch["challenger"]["binary"]
    # the cursor moved; a second run re-reads only the overlap and stores nothing new
    assert store.cursor("e", CURSOR) >= t0
    again = join_events(store, log, exp)
    assert again["accepted"] == 0 and again["duplicates"] == 7  # files still in the overlap
    quiet = join_events(store, log, exp, late_s=0.0)
    assert quiet["files"] == 0 and quiet["events"] == 0  # nothing written since: nothing read
    # a click from half an hour ago, ingested only now (a batch upload): still read,
    # because the cursor follows when files were written, not when events happened
    late = {"event_id": "c6", "ts": _ts(t0 + 20), "impression_id": "i1", "user_id": "u1"}
    log.append("click", [{**late, "item_id": "a"}])
    late_run = join_events(store, log, exp, late_s=0.0)
    assert late_run["files"] == 1 and late_run["accepted"] == 1
    assert store.outcome_totals("e", "click")["production"]["positive"] == 2  # r1 and r3


def test_an_interleaved_click_goes_to_the_team_that_showed_the_item(tmp_path):
    import json

    store = ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
    exp = store.create(ExperimentSpec("il", "m", "interleave", ("a", "b")))
    t0 = time.time()
    store.add_assignments(
        [
            ("il", "r1", "u1", "a", 1, "interleave", t0, 1.0, False, None, json.dumps(["x"])),
            ("il", "r1", "u1", "b", 2, "interleave", t0, 1.0, False, None, json.dumps(["y"])),
        ]
    )
    log = EventLog(str(tmp_path / "events"))
    log.append(
        "impression",
        [
            {
                "event_id": f"i{k}",
                "ts": _ts(t0),
                "request_id": "r1",
                "user_id": "u1",
                "item_id": k,
                "position": p,
            }
            for p, k in enumerate("xy")
        ],
    )
    log.append(
        "click",
        [
            {
                "event_id": "c1",
                "ts": _ts(t0 + 3),
                "impression_id": "iy",
                "user_id": "u1",
                "item_id": "y",
            }
        ],
    )
    out = join_events(store, log, exp)
    assert out["accepted"] == 1
    assert store.request_outcomes("il", "click") == {"r1": {"b": 1.0}}


def test_revenue_from_logged_conversions_is_decided_by_the_test_for_means(tmp_path):
    """Conversions with an amount, at the world's conversion rate and order values: the
    challenger's users buy more; the status compares revenue per request as a mean."""
    from tests.rollout.helpers import truth

    from loopml.rollout.analysis import summarize

    world = truth().world
    conv = float(np.mean(world.latent.item_conversion))
    store = ExperimentStore(f"sqlite:///{tmp_path}/meta.db")
    spec = ExperimentSpec(
        "rev", "m", "ab", ("production", "challenger"), metric="conversion_value", mde=0.5
    )
    exp = store.create(spec)
    rng = np.random.default_rng(0)
    t0 = time.time()
    n = 4000
    rows, imps, convs = [], [], []
    for i in range(2 * n):
        arm = ("production", "challenger")[i % 2]
        rid = f"r{i}"
        rows.append(("rev", rid, f"u{i}", arm, 1, "serve", t0, 1.0, False, None, None))
        rate = conv * (0.5 if arm == "production" else 2.0)  # 4x the buyers
        if rng.random() < rate:
            imps.append(
                {
                    "event_id": f"i{i}",
                    "ts": _ts(t0),
                    "request_id": rid,
                    "user_id": f"u{i}",
                    "item_id": "x",
                    "position": 0,
                }
            )
            value = round(float(rng.lognormal(np.log(20.0), 0.7)), 2)
            convs.append(
                {
                    "event_id": f"v{i}",
                    "ts": _ts(t0 + 30),
                    "impression_id": f"i{i}",
                    "user_id": f"u{i}",
                    "item_id": "x",
                    "value": value,
                }
            )
    store.add_assignments(rows)
    log = EventLog(str(tmp_path / "events"))
    log.append("impression", imps)
    log.append("conversion", convs)
    assert join_events(store, log, exp)["accepted"] == 2 * len(convs)
    status = summarize(store, store.get("rev"))
    comparison = status["comparisons"][0]
    assert comparison["kind"] == "mean" and "means" in comparison["always_valid_test"]
    assert comparison["always_valid_p"] < 0.05 and comparison["diff"] > 0
    assert status["decision"]["winner"] == "challenger"
    assert "means" in status["decision"]["test"]
    plan = status["sample_size"]  # per arm to see 0.5 (currency units) per request
    assert plan["sd"] > 0 and plan["per_arm"] > 100
    from loopml.rollout.report import write_report

    html = write_report(store, store.get("rev"), tmp_path / "rev.html").read_text()
    assert html.count("<img") >= 3 and "difference of means" in html
