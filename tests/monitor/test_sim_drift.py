"""The issue's acceptance test: the simulated world shifts on a known day; monitoring with
the default alert rules detects it within two daily windows and never alarms before it."""

from __future__ import annotations

import pandas as pd
import pytest

from loopml.monitor.service import Monitor
from loopml.sim.config import WorldConfig
from loopml.sim.world import World

SHIFT_DAY = 9
MAX_DELAY = 2  # windows: the default feature-drift rule needs two in a row
FEATURES = ["segment", "age_band", "country", "category", "position", "hour"]


def _features(world: World, day: int) -> pd.DataFrame:
    impressions = world.generate_day(day)["impression"]
    frame = impressions.merge(
        world.users[["user_id", "segment", "age_band", "country"]], on="user_id"
    ).merge(world.items[["item_id", "category"]], on="item_id")
    frame["hour"] = frame["ts"].dt.hour.astype(float)
    return frame[FEATURES]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shift_is_detected_soon_after_shift_day_and_never_before(cfg, seed):
    world = World(
        WorldConfig(
            seed=seed,
            n_users=3000,
            n_items=150,
            days=12,
            impressions_per_day=8000,
            shift_day=SHIFT_DAY,
        )
    )
    monitor = Monitor(cfg)
    monitor.profile("feed", 1, pd.concat([_features(world, d) for d in range(3)]))
    fired: dict[str, int] = {}
    for day in range(3, world.config.days):
        result = monitor.check(
            "feed",
            1,
            _features(world, day),
            world.day_start(day),
            world.day_start(day + 1),
            source="impressions",
        )
        if day < SHIFT_DAY:
            assert result.drift.drifted == [], f"false drift on stable day {day}"
            assert result.alerts == [], f"false alarm on stable day {day}"
        for alert in result.alerts:
            fired.setdefault(alert.rule, day)
            assert "segment" in alert.message
    assert "feature-drift" in fired, "the shift was never detected"
    assert SHIFT_DAY <= fired["feature-drift"] < SHIFT_DAY + MAX_DELAY
    # the new segment is also an unseen category: data quality flags it on the day itself
    assert fired.get("data-quality") == SHIFT_DAY
