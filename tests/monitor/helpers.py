"""Logged predictions and delayed feedback, written through the real event log."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd

from loopml.core.config import ProjectConfig
from loopml.logs.eventlog import EventLog

T0 = pd.Timestamp("2026-01-05T00:00:00Z")


def log_predictions(
    cfg: ProjectConfig,
    n: int,
    *,
    seed: int = 0,
    start: pd.Timestamp = T0,
    days: float = 3.0,
    shift: float = 0.0,
    version: int = 1,
    click_delay_min: float = 5.0,
    prefix: str = "r",
) -> pd.DataFrame:
    """``n`` predictions of model ``ctr`` over ``days``, clicks drawn from the true score."""
    rng = np.random.default_rng(seed)
    ts = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    x = rng.normal(shift, 1, n)
    segment = rng.choice(["a", "b"], n)
    p = 1 / (1 + np.exp(-(x - 2.5)))
    clicked = rng.random(n) < p
    ids = [f"{prefix}{i}" for i in range(n)]
    events = EventLog.from_config(cfg)
    events.append(
        "prediction",
        pd.DataFrame(
            {
                "event_id": [f"p-{i}" for i in ids],
                "ts": ts,
                "request_id": ids,
                "model": "ctr",
                "version": version,
                "inputs": [
                    orjson.dumps({"x": float(a), "segment": s}).decode()
                    for a, s in zip(x, segment, strict=True)
                ],
                "output": p,
                "latency_ms": rng.gamma(2, 2, n),
            }
        ),
    )
    rows = np.flatnonzero(clicked)
    events.append(
        "feedback",
        pd.DataFrame(
            {
                "event_id": [f"f-{ids[i]}" for i in rows],
                "ts": ts[rows] + pd.Timedelta(minutes=click_delay_min),
                "request_id": [ids[i] for i in rows],
                "metric": "click",
                "value": 1.0,
            }
        ),
    )
    return pd.DataFrame(
        {"ts": ts, "request_id": ids, "x": x, "segment": segment, "p": p, "clicked": clicked}
    )


def reference(n: int = 5000, seed: int = 99) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return pd.DataFrame(
        {"x": x, "segment": rng.choice(["a", "b"], n), "prediction": 1 / (1 + np.exp(-(x - 2.5)))}
    )
