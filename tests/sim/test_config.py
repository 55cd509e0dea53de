"""WorldConfig refuses bad settings at construction, naming the field and the fix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from loopml.core.errors import ValidationError
from loopml.sim import WorldConfig


def test_defaults_are_the_documented_world():
    cfg = WorldConfig()
    assert (cfg.n_users, cfg.n_items, cfg.days, cfg.impressions_per_day) == (
        20_000,
        500,
        14,
        100_000,
    )
    assert (cfg.format_change_day, cfg.shift_day) == (7, 10)
    assert cfg.start_datetime.isoformat() == "2026-01-05T00:00:00+00:00"
    assert cfg.day_start_us(1) - cfg.day_start_us(0) == 86_400_000_000
    assert cfg.n_new_users == 3_000


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        WorldConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"n_users": 0}, "n_users", ">= 1"),
        ({"seed": -1}, "seed", ">= 0"),
        ({"days": 0}, "days", ">= 1"),
        ({"base_ctr": 0.0}, "base_ctr", "> 0 and < 1"),
        ({"base_ctr": 1.0}, "base_ctr", "> 0 and < 1"),
        ({"shift_fraction": 1.5}, "shift_fraction", "between 0 and 1"),
        ({"conversion_rate": -0.1}, "conversion_rate", "between 0 and 1"),
        ({"slate_size": 9, "n_items": 5}, "slate_size", "exceeds n_items"),
        ({"n_items": "500"}, "n_items", "must be an integer"),
        ({"days": True}, "days", "must be an integer"),
        ({"start": "next monday"}, "start", "is not a date"),
        ({"start": "2026-01-05T06:00:00"}, "start", "UTC midnight"),
        ({"new_segment": "organic"}, "new_segment", "existing segments"),
    ],
)
def test_bad_settings_name_the_field(changes, field, hint):
    with pytest.raises(ValidationError) as info:
        WorldConfig(**changes)
    assert info.value.fields["field"] == field
    assert hint in str(info.value)
    assert field in str(info.value)


def test_numpy_numbers_are_accepted():
    cfg = WorldConfig(seed=np.int64(3), base_ctr=np.float64(0.05))
    assert cfg.seed == 3 and cfg.base_ctr == 0.05
