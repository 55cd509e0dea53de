"""Serving the simulated world: a day's predictions and clicks, and a replayed feed.

The loop needs what a deployed model would produce: the production model scores the
day's impressions (logged as ``prediction`` events, clicks as delayed ``feedback``),
and a model-driven feed is replayed against the world's known click probabilities, so
the business metric can be compared with a random feed and the best possible one.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.sim.world import World


def ensure_events(config: ProjectConfig, world: World, day: int) -> None:
    from loopml.logs.eventlog import EventLog

    events = EventLog.from_config(config)
    date = world.day_start(day).date().isoformat()
    if date in events.partitions("impression"):
        return
    for event_type, frame in world.generate_day(day).items():
        events.append(event_type, frame, source="sim")


def features_of(champion: Any) -> list[str]:
    return list(champion.lineage.get("features") or champion.signature.names)


def serve_day(
    config: ProjectConfig, champion: Any, predictor: Any, lo: dt.datetime, hi: dt.datetime
) -> pd.DataFrame:
    """Score the day's impressions; log predictions and their clicks as feedback."""
    import orjson
    import pandas as pd

    from loopml.jobs.candidates import default_dataset
    from loopml.logs.eventlog import EventLog

    events = EventLog.from_config(config)
    frame = default_dataset(config, lo, hi, dict(champion.lineage))
    features = features_of(champion)
    frame["prediction"] = predictor.predict(frame[features])
    records = frame[features].to_dict(orient="records")
    events.append(
        "prediction",
        pd.DataFrame(
            {
                "event_id": "pred-" + frame["event_id"].astype(str),
                "ts": frame["ts"],
                "request_id": frame["event_id"].astype(str),
                "model": champion.name,
                "version": champion.version,
                "inputs": [
                    orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY).decode() for r in records
                ],
                "output": frame["prediction"].astype(float),
                "entity_id": frame["user_id"].astype(str),
            }
        ),
    )
    clicks = events.sql(
        "SELECT impression_id, min(ts) AS ts FROM click WHERE ts >= "
        f"TIMESTAMPTZ '{lo.isoformat()}' AND ts < TIMESTAMPTZ "
        f"'{(hi + dt.timedelta(hours=2)).isoformat()}' GROUP BY impression_id"
    )
    shown = set(frame["event_id"].astype(str))
    clicks = clicks[clicks["impression_id"].astype(str).isin(shown)]
    if len(clicks):
        events.append(
            "feedback",
            pd.DataFrame(
                {
                    "event_id": "fb-" + clicks["impression_id"].astype(str),
                    "ts": clicks["ts"],
                    "request_id": clicks["impression_id"].astype(str),
                    "metric": "click",
                    "value": 1.0,
                }
            ),
        )
    return frame


def feed_click_rates(
    config: ProjectConfig,
    world: World,
    predictor: Any,
    champion: Any,
    at: dt.datetime,
    n_requests: int,
    n_candidates: int,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """A model-driven feed: per request, show the candidate the model scores highest.

    Returns the mean true click probability of the model's choice, of a random choice
    and of the best candidate (the oracle), from the world's known truth.
    """
    import pandas as pd

    from loopml.features.pointintime import point_in_time
    from loopml.features.views import default_catalog
    from loopml.logs.eventlog import EventLog

    users = world.sample_users(n_requests, at, rng)
    cands = np.stack([world.candidates(n_candidates, rng) for _ in range(n_requests)])
    entities = pd.DataFrame(
        {
            "user_id": np.repeat(users, n_candidates).astype(str),
            "item_id": cands.ravel().astype(str),
            "ts": at,
        }
    )
    catalog = default_catalog()
    views = [
        catalog.get(name, int(version))
        for name, version in (champion.lineage.get("feature_views") or {}).items()
    ]
    rows = point_in_time(EventLog.from_config(config), views, entities)
    rows["position"] = 0
    rows["hour"] = at.hour
    features = features_of(champion)
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise ValidationError(
            f"cannot build serving features {missing} for the feed replay", field="features"
        )
    scores = predictor.predict(rows[features]).reshape(n_requests, n_candidates)
    chosen = cands[np.arange(n_requests), scores.argmax(axis=1)]
    best = world.best_items(users, cands, at)
    return (
        float(world.true_ctr(users, chosen, 0, at).mean()),
        float(world.true_ctr(users, cands[:, 0], 0, at).mean()),
        float(world.true_ctr(users, best, 0, at).mean()),
    )
