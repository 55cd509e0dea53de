"""Materialised online values equal the offline point-in-time values (same entity, same time)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from loopml.features.materialize import materialize
from loopml.storage.online import OnlineStore

T0 = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)


def write_events(log, n_users: int = 6, seed: int = 0) -> None:
    """Impressions and clicks over ten days before T0, plus some after it (must not count)."""
    rng = np.random.default_rng(seed)
    imps, clicks = [], []
    for k in range(400):
        user = f"u{rng.integers(n_users)}"
        ts = T0 - dt.timedelta(hours=float(rng.uniform(-24, 240)))
        iid = f"imp{k}"
        imps.append(
            {
                "event_id": iid,
                "ts": ts,
                "request_id": f"r{k}",
                "user_id": user,
                "item_id": f"i{rng.integers(20)}",
                "position": int(rng.integers(5)),
            }
        )
        if rng.random() < 0.2:
            clicks.append(
                {
                    "event_id": f"c{k}",
                    "ts": ts + dt.timedelta(seconds=30),
                    "impression_id": iid,
                    "user_id": user,
                    "item_id": "i0",
                }
            )
    log.append("impression", imps)
    log.append("click", clicks)


@pytest.fixture
def log(tmp_path):
    from loopml.logs.eventlog import EventLog

    log = EventLog(str(tmp_path / "events"))
    write_events(log)
    return log


def test_online_values_equal_offline_point_in_time_values(log, tmp_path):
    from loopml.features.pointintime import point_in_time
    from loopml.features.views import default_catalog

    store = OnlineStore(f"sqlite:///{tmp_path / 'online.db'}")
    result = materialize(log, store, ["user_activity"], as_of=T0)
    view = default_catalog().get("user_activity")
    assert result.written["user_activity"] == 6 and "user_activity" in str(result)
    ids = [f"u{i}" for i in range(6)]
    offline = point_in_time(log, [view], pd.DataFrame({"user_id": ids, "ts": [T0] * 6}))
    online = store.read("user_activity", ids)
    for i, uid in enumerate(ids):
        for column in view.columns:
            want = offline[column].iloc[i]
            got = online[i][column]
            if pd.isna(want):
                assert got is None, (uid, column)
            else:
                assert got == pytest.approx(float(want), rel=1e-12), (uid, column)
    info = store.view_info("user_activity")
    assert info["entity_key"] == "user_id" and info["version"] == view.version
    assert info["as_of"].startswith("2026-01-10")


def test_every_view_by_default_and_only_named_entities(log, tmp_path):
    store = OnlineStore(f"memory://materialize-{tmp_path.name}")
    result = materialize(log, store, as_of=T0, entity_ids=["u1", "u2"])
    assert set(result.written) >= {"user_activity", "item_popularity"}
    assert result.written["user_activity"] == 2
    assert store.read("user_activity", ["u3"]) == [None]


def test_unknown_view_names_the_choices(log, tmp_path):
    from loopml.core.errors import NotFoundError

    store = OnlineStore(f"memory://materialize-bad-{tmp_path.name}")
    with pytest.raises(NotFoundError, match="user_activity"):
        materialize(log, store, ["user_activity_typo"], as_of=T0)


def test_materialize_project_uses_the_configured_stores(project_dir):
    from loopml.core.config import ProjectConfig
    from loopml.features.materialize import materialize_project
    from loopml.logs.eventlog import EventLog

    cfg = ProjectConfig.load(project_dir)
    write_events(EventLog.from_config(cfg))
    result = materialize_project(cfg, ["user_activity"], as_of=T0, progress=False)
    store = OnlineStore(cfg.url("online"))
    assert result.written["user_activity"] == len(
        [r for r in store.read("user_activity", [f"u{i}" for i in range(6)]) if r is not None]
    )
