"""The simulated world the retraining tests share: it shifts on ``SHIFT_DAY``."""

from __future__ import annotations

SHIFT_DAY = 5
DAYS = 9


def world_config():  # noqa: ANN201 - a WorldConfig (imported lazily)
    from loopml.sim import WorldConfig

    return WorldConfig(
        seed=3, n_users=2000, n_items=100, days=DAYS, impressions_per_day=3000, shift_day=SHIFT_DAY
    )
