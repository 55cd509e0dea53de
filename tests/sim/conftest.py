"""Worlds shared by the sim tests: building the default one once keeps the suite fast."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from loopml.sim import World, WorldConfig

#: A small world with every scheduled change inside its window.
SMALL = WorldConfig(
    seed=7,
    n_users=2_000,
    n_items=120,
    days=5,
    impressions_per_day=10_000,
    format_change_day=2,
    shift_day=3,
)


@pytest.fixture(scope="session")
def small_world() -> World:
    return World(SMALL)


@pytest.fixture(scope="session")
def small_logs(small_world: World) -> dict[str, pd.DataFrame]:
    return small_world.generate()


@pytest.fixture(scope="session")
def default_world() -> World:
    return World()


@pytest.fixture(scope="session")
def default_run(default_world: World) -> tuple[dict[str, pd.DataFrame], float]:
    """The project's default data (14 days x 100k impressions) and the seconds it took."""
    started = time.perf_counter()
    logs = default_world.generate()
    return logs, time.perf_counter() - started


@pytest.fixture(scope="session")
def default_impressions(default_world: World, default_run) -> pd.DataFrame:
    """Default impressions joined with their outcome and the truth needed to check it."""
    logs, _ = default_run
    imp = logs["impression"]
    lat = default_world.latent
    users = default_world.users["user_id"]
    rows = pd.Index(users).get_indexer(imp["user_id"])
    items = pd.Index(default_world.items["item_id"]).get_indexer(imp["item_id"])
    return pd.DataFrame(
        {
            "day": (imp["ts"] - default_world.day_start(0)).dt.days.to_numpy(),
            "hour": imp["ts"].dt.hour.to_numpy(),
            "position": imp["position"].to_numpy(),
            "device": imp["device"].to_numpy(),
            "item_id": imp["item_id"].to_numpy(),
            "category": lat.item_category[items],
            "shifted": lat.shifted[rows],
            "segment": default_world.users["segment"].to_numpy()[rows],
            "clicked": imp["event_id"].isin(logs["click"]["impression_id"]).to_numpy(),
        }
    )
