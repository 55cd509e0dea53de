"""One day of feed traffic as arrays: who asks when, which slate the logging policy shows,
and what happens afterwards (clicks seconds to minutes later, conversions hours to days
later).

The logging policy is not uniform: it draws items by ``item_exposure`` (mildly favouring
good items, plus promotion noise), so a popularity baseline has signal and logged data
carries the usual exposure bias. Everything is vectorised; one day of 100k impressions
takes tens of milliseconds before formatting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loopml.sim.config import US_PER_DAY, WorldConfig
from loopml.sim.population import PRIMARY_DEVICE_P, Latent
from loopml.sim.truth import DEVICES, hour_volume

_US_PER_S = 1_000_000
_MINUTES = np.arange(24 * 60)
_MINUTE_CDF = np.cumsum(hour_volume((_MINUTES + 0.5) / 60.0))
_MINUTE_CDF /= _MINUTE_CDF[-1]
_REDRAW_ROUNDS = 30


@dataclass(frozen=True)
class Traffic:
    """Impressions of one day, one row each, in request-time order.

    ``request`` counts requests within the day; rows of one request are its slate at
    positions ``0..slate_size-1`` and share ``ts_us`` and ``device``.
    """

    day: int
    request: np.ndarray
    user: np.ndarray
    item: np.ndarray
    position: np.ndarray
    ts_us: np.ndarray
    device: np.ndarray

    def __len__(self) -> int:
        return int(self.request.size)


@dataclass(frozen=True)
class Outcomes:
    """What the impressions led to: ``click`` is a row mask over the impressions;
    conversion arrays index the clicked rows (``conv_rows`` are impression rows)."""

    click: np.ndarray
    click_ts_us: np.ndarray
    conv_rows: np.ndarray
    conv_ts_us: np.ndarray
    conv_value: np.ndarray


def day_traffic(
    config: WorldConfig,
    latent: Latent,
    day: int,
    rng: np.random.Generator,
    n_requests: int | None = None,
) -> Traffic:
    """Requests of ``day`` (time, user, device) and the slate shown for each."""
    if n_requests is None:
        n_requests = round(config.impressions_per_day / config.slate_size)
    ts_us, users = _sample_requests(config, latent, day, n_requests, rng)
    devices = _sample_devices(latent.device[users], rng)
    slates = sample_slates(latent.item_exposure, n_requests, config.slate_size, rng)
    k = config.slate_size
    return Traffic(
        day=day,
        request=np.repeat(np.arange(n_requests), k),
        user=np.repeat(users, k),
        item=slates.reshape(-1),
        position=np.tile(np.arange(k, dtype=np.int64), n_requests),
        ts_us=np.repeat(ts_us, k),
        device=np.repeat(devices, k),
    )


def _sample_requests(
    config: WorldConfig, latent: Latent, day: int, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Request times follow the hour-of-day curve; users are drawn by activity among
    those signed up by the end of the day, and never before their own sign-up."""
    day_start = config.day_start_us(day)
    day_end = day_start + US_PER_DAY
    minute = np.searchsorted(_MINUTE_CDF, rng.random(n), side="right")
    ts = day_start + minute * 60 * _US_PER_S + rng.integers(0, 60 * _US_PER_S, n)
    # users are sorted by sign-up, so those known by day_end are a prefix
    n_known = int(np.searchsorted(latent.signup_us, day_end, side="left"))
    weights = np.cumsum(latent.activity[:n_known])
    users = np.searchsorted(weights, rng.random(n) * weights[-1], side="right")
    users = np.minimum(users, n_known - 1)
    signup = latent.signup_us[users]
    early = ts < signup
    if early.any():
        span = day_end - signup[early]
        ts[early] = signup[early] + (rng.random(int(early.sum())) * span).astype(np.int64)
    order = np.argsort(ts, kind="stable")
    return ts[order], users[order]


def _sample_devices(primary: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mostly the user's primary device, sometimes one of the others."""
    other = (primary + rng.integers(1, len(DEVICES), primary.size)) % len(DEVICES)
    return np.where(rng.random(primary.size) < PRIMARY_DEVICE_P, primary, other).astype(np.int8)


def sample_slates(exposure: np.ndarray, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` slates of ``k`` distinct items drawn by ``exposure`` weight, top slot first.

    Slates with a repeated item are redrawn (rare with hundreds of items); slates still
    repeating after a few rounds use exact Gumbel-top-k sampling. Within a slate, items
    are ordered by weight plus Gumbel noise, so better-exposed items tend to sit higher.

    >>> s = sample_slates(np.full(10, 0.1), 4, 3, np.random.default_rng(0))
    >>> s.shape, bool((np.sort(s, 1)[:, 1:] != np.sort(s, 1)[:, :-1]).all())
    ((4, 3), True)
    """
    cdf = np.cumsum(exposure)
    cdf /= cdf[-1]
    last = exposure.size - 1
    slates = np.minimum(np.searchsorted(cdf, rng.random((n, k)), side="right"), last)
    for _ in range(_REDRAW_ROUNDS):
        ordered = np.sort(slates, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if bad.size == 0:
            break
        redraw = np.searchsorted(cdf, rng.random((bad.size, k)), side="right")
        slates[bad] = np.minimum(redraw, last)
    else:
        ordered = np.sort(slates, axis=1)
        bad = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
        if bad.size:
            keys = np.log(exposure) + rng.gumbel(size=(bad.size, exposure.size))
            slates[bad] = np.argsort(-keys, axis=1)[:, :k]
    log_w = np.log(exposure[slates]) + rng.gumbel(size=slates.shape)
    return np.take_along_axis(slates, np.argsort(-log_w, axis=1), axis=1)


def draw_outcomes(
    p_click: np.ndarray,
    traffic: Traffic,
    item_conversion: np.ndarray,
    rng: np.random.Generator,
) -> Outcomes:
    """Bernoulli clicks at the true probability, then delayed conversions of clicks."""
    n = len(traffic)
    click = rng.random(n) < p_click
    rows = np.flatnonzero(click)
    # a click lands seconds to minutes after its impression (median 15 s, cap 30 min)
    click_delay = np.clip(rng.lognormal(np.log(15.0), 1.2, rows.size), 1.0, 1800.0)
    click_ts = traffic.ts_us[rows] + (click_delay * _US_PER_S).astype(np.int64)
    converted = rng.random(rows.size) < item_conversion[traffic.item[rows]]
    # a conversion lands hours to days after the click (median 8 h, 20 min .. 7 days)
    conv_delay = np.clip(rng.lognormal(np.log(8 * 3600.0), 1.0, rows.size), 1200.0, 7 * 86400.0)
    value = np.round(rng.lognormal(np.log(20.0), 0.7, rows.size), 2)
    conv_ts = click_ts + (conv_delay * _US_PER_S).astype(np.int64)
    return Outcomes(
        click=click,
        click_ts_us=click_ts,
        conv_rows=rows[converted],
        conv_ts_us=conv_ts[converted],
        conv_value=value[converted],
    )
