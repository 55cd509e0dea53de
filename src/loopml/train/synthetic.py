"""A small synthetic click table with a known answer, for doctests and tests.

The full simulated world lives in :mod:`loopml.sim`; this is the few-thousand-row
version that every flavour's tests can build in milliseconds. The true click
probability is a logistic function of the features, the log format gains a field
(``dwell_prev``) half-way through, and one numeric feature has missing values, so
categories, NaN handling, schema versions and calibration are all exercised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

COUNTRIES = ("kr", "us", "jp", "de")
DEVICES = ("ios", "android", "web")
FEATURES = ["user_ctr", "item_quality", "position", "hour", "country", "device"]


def make_clicks(
    n: int = 4000, seed: int = 0, days: int = 14, start: str = "2026-01-01", n_items: int = 50
) -> pd.DataFrame:
    """Impressions with features, a ``clicked`` label and the true probability ``p_true``.

    >>> f = make_clicks(1000, seed=1)
    >>> f.shape, round(float(f.clicked.mean()), 3), sorted(f.schema_version.unique().tolist())
    ((1000, 13), 0.071, [1, 2])
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    span = pd.Timedelta(days=days).total_seconds()
    offsets = np.sort(rng.uniform(0, span, size=n))
    ts = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(offsets, unit="s")
    item = rng.integers(0, n_items, size=n)
    quality = np.linspace(-1.5, 1.5, n_items)[item]
    country = rng.choice(COUNTRIES, size=n, p=[0.4, 0.3, 0.2, 0.1])
    device = rng.choice(DEVICES, size=n)
    position = rng.integers(1, 11, size=n)
    hour = ts.hour.to_numpy()
    user_ctr = rng.beta(2, 20, size=n)
    schema = np.where(offsets < span / 2, 1, 2)
    dwell = rng.exponential(30.0, size=n)
    logit = (
        -2.6
        + 0.9 * quality
        + 6.0 * (user_ctr - 0.09)
        - 0.12 * (position - 1)
        + 0.4 * (country == "kr")
        - 0.3 * (device == "web")
        + 0.3 * np.sin(hour / 24 * 2 * np.pi)
        + 0.015 * (dwell - 30.0)
    )
    p = 1.0 / (1.0 + np.exp(-logit))
    clicked = (rng.random(n) < p).astype(np.int64)
    user_ctr_obs = np.where(rng.random(n) < 0.05, np.nan, user_ctr)
    return pd.DataFrame(
        {
            "ts": ts,
            "user_id": [f"u{u}" for u in rng.integers(0, n // 5 + 1, size=n)],
            "item_id": [f"i{i}" for i in item],
            "user_ctr": user_ctr_obs,
            "item_quality": quality,
            "position": position,
            "hour": hour,
            "country": country,
            "device": device,
            "schema_version": schema,
            "dwell_prev": np.where(schema == 2, dwell, np.nan),
            "clicked": clicked,
            "p_true": p,
        }
    )
