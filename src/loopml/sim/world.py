"""The simulated world: an ad/content feed whose click probability is known exactly.

Each feed request shows a slate of ``slate_size`` items to one user; an impression at
slot ``k`` is clicked with probability (terms in :mod:`loopml.sim.truth`)::

    P(click | u, i, k, t, d) = sigmoid(b + theta_u(t)[c_i] + q_i
                                       - 0.55 ln(1 + k) + 0.25 cos(2 pi (h_t - 20) / 24)
                                       + dev[d])

``b`` is calibrated so the overall click rate is ``base_ctr``; ``theta_u`` are the user's
category tastes (global + age band + segment + personal, :mod:`loopml.sim.population`),
``q_i`` the item quality, ``h_t`` the UTC hour and ``dev`` = +0.15 ios, 0 android, -0.25
web. Clicks convert with an item-dependent rate around ``conversion_rate``. Scheduled
changes: from ``format_change_day`` impressions are schema v2 and log ``device``; from
``shift_day`` a ``shift_fraction`` of existing users move their tastes by a fixed
per-category delta and the ``new_segment`` starts signing up. The same world also
answers a policy in closed loop (``respond``), so online experiments have a known truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from loopml.core.errors import ValidationError
from loopml.sim.config import WorldConfig
from loopml.sim.events import (
    click_frame,
    concat_events,
    conversion_frame,
    impression_frame,
    sort_by_time,
)
from loopml.sim.inputs import (
    broadcast,
    device_codes_of,
    positions_of,
    rows_of,
    ts_us_of,
)
from loopml.sim.population import Latent, build_population
from loopml.sim.traffic import day_traffic, draw_outcomes
from loopml.sim.truth import calibrate_bias, click_logit, sigmoid

# independent random streams, so one day can be generated without the others
_POPULATION, _CALIBRATION, _DAY, _LOOP = 1, 2, 3, 4
_CALIBRATION_REQUESTS = 20_000


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), *keys]))


class World:
    """A deterministic feed world: users, items, two weeks of logs and a closed loop.

    Construction draws the population and calibrates the click bias (well under a
    second); ``generate`` produces the logs; ``true_ctr`` / ``respond`` /
    ``best_items`` let online policies be scored against the truth.

    Attributes: ``config``; ``users`` and ``items`` (every user and item the world ever
    has, with the ``user`` / ``item`` schema columns; users of the new segment sign up
    after ``shift_day``); ``latent`` (the hidden truth, :class:`~loopml.sim.population.
    Latent`); ``bias`` (the calibrated logit intercept).

    Examples
    --------
    >>> world = World(WorldConfig(n_users=1000, n_items=50, days=1, impressions_per_day=2000))
    >>> logs = world.generate()
    >>> len(logs["impression"]), round(len(logs["click"]) / len(logs["impression"]), 2)
    (2000, 0.03)
    >>> ctr = world.true_ctr(["u000001", "u000001"], ["i0003", "i0003"], [0, 4],
    ...                      "2026-01-05T20:00Z")
    >>> bool(ctr[0] > ctr[1])
    True
    """

    def __init__(self, config: WorldConfig = WorldConfig()) -> None:
        if not isinstance(config, WorldConfig):
            raise ValidationError(
                f"World needs a WorldConfig, got {type(config).__name__}; "
                "use World(WorldConfig(seed=..., ...))",
                field="config",
            )
        self.config = config
        users, items, latent = build_population(config, _rng(config.seed, _POPULATION))
        self.users: pd.DataFrame = users
        self.items: pd.DataFrame = items
        self.latent: Latent = latent
        self._user_index = pd.Index(users["user_id"])
        self._item_index = pd.Index(items["item_id"])
        self._user_ids = users["user_id"].to_numpy(dtype=object)
        self._item_ids = items["item_id"].to_numpy(dtype=object)
        self._shift_us = config.day_start_us(config.shift_day)
        self.bias: float = self._calibrate()
        self._loop_rng = _rng(config.seed, _LOOP)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"World(seed={c.seed}, users={len(self.users)}, items={len(self.items)}, "
            f"days={c.days}, impressions_per_day={c.impressions_per_day})"
        )

    # -- the truth ---------------------------------------------------------------------
    def _calibrate(self) -> float:
        """Solve the bias so day-0 logged traffic clicks at ``base_ctr`` on average."""
        rng = _rng(self.config.seed, _CALIBRATION)
        t = day_traffic(self.config, self.latent, 0, rng, n_requests=_CALIBRATION_REQUESTS)
        offsets = self._logit(0.0, t.user, t.item, t.position, t.ts_us, t.device)
        return calibrate_bias(offsets, self.config.base_ctr)

    def _logit(self, bias, users, items, positions, ts_us, devices) -> np.ndarray:
        lat = self.latent
        cats = lat.item_category[items]
        shifted_now = lat.shifted[users] & (ts_us >= self._shift_us)
        affinity = np.where(
            shifted_now, lat.preference_shifted[users, cats], lat.preference[users, cats]
        )
        return click_logit(bias, affinity, lat.item_quality[items], positions, ts_us, devices)

    def _ctr(self, users, items, positions, ts_us, devices) -> np.ndarray:
        return sigmoid(self._logit(self.bias, users, items, positions, ts_us, devices))

    def true_ctr(
        self, user_ids: Any, item_ids: Any, positions: Any, ts: Any, devices: Any = None
    ) -> np.ndarray:
        """The true click probability of each (user, item, position, time) row.

        Arguments are per-row arrays of equal length, or scalars / length-1 arrays that
        repeat. ``devices`` (``"ios"``, ``"android"``, ``"web"`` or None) defaults to
        each user's usual device.

        Raises
        ------
        NotFoundError
            An id is not a user / item of this world.
        ValidationError
            Lengths differ, a position is negative, a time or device is not valid.
        """
        u, i, k, t, d = broadcast(
            user_ids=rows_of(self._user_index, user_ids, "user_ids", self._user_ids[0]),
            item_ids=rows_of(self._item_index, item_ids, "item_ids", self._item_ids[0]),
            positions=positions_of(positions),
            ts=ts_us_of(ts),
            devices=device_codes_of(devices),
        )
        return self._ctr(u, i, k, t, self._devices(u, d))

    def _devices(self, users: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Device codes, with -1 (not given) replaced by the user's usual device."""
        return np.where(codes < 0, self.latent.device[users], codes).astype(np.int8)

    def respond(
        self,
        user_ids: Any,
        item_ids: Any,
        positions: Any,
        ts: Any,
        rng: np.random.Generator | None = None,
        devices: Any = None,
    ) -> np.ndarray:
        """Closed loop: did each shown item get clicked? Bernoulli draws of ``true_ctr``.

        Without ``rng`` the world's own loop stream is used: deterministic for a given
        sequence of calls on a freshly built world.
        """
        p = self.true_ctr(user_ids, item_ids, positions, ts, devices)
        rng = self._loop_rng if rng is None else rng
        return rng.random(p.shape) < p

    def best_items(
        self, user_ids: Any, candidate_item_ids: Any, ts: Any, devices: Any = None
    ) -> np.ndarray:
        """Per user, the candidate with the highest true click probability at slot 0.

        ``candidate_item_ids`` is one list shared by every user, or a 2-D array with
        one row of candidates per user. Returns item ids; the oracle for regret.
        """
        users, t, d = broadcast(
            user_ids=rows_of(self._user_index, user_ids, "user_ids", self._user_ids[0]),
            ts=ts_us_of(ts),
            devices=device_codes_of(devices),
        )
        cands = rows_of(
            self._item_index,
            candidate_item_ids,
            "candidate_item_ids",
            self._item_ids[0],
            max_ndim=2,
        )
        if cands.ndim == 1:
            cands = np.broadcast_to(cands, (users.size, cands.size))
        elif cands.shape[0] != users.size:
            raise ValidationError(
                f"candidate_item_ids has {cands.shape[0]} rows but there are {users.size} "
                "users; pass one row of candidates per user, or one flat list for all",
                field="candidate_item_ids",
            )
        if cands.shape[1] == 0:
            raise ValidationError(
                "candidate_item_ids is empty; pass at least one candidate item id",
                field="candidate_item_ids",
            )
        d = self._devices(users, d)
        p = self._ctr(users[:, None], cands, 0, t[:, None], d[:, None])
        best = np.argmax(p, axis=1)
        return self._item_ids[np.take_along_axis(cands, best[:, None], axis=1)[:, 0]]

    # -- closed-loop traffic -----------------------------------------------------------
    def sample_users(self, n: int, ts: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` users making requests at ``ts`` (with repeats), drawn by activity among
        the users signed up by then; returns user ids."""
        n = _count(n, "n")
        stamps = ts_us_of(ts)
        if stamps.size != 1:
            raise ValidationError(
                f"sample_users takes one ts for the whole batch, got {stamps.size}; call it "
                "once per request time",
                field="ts",
            )
        t = int(stamps[0])
        n_known = int(np.searchsorted(self.latent.signup_us, t, side="right"))
        if n_known == 0:
            first = self.users["signup_ts"].iloc[0]
            raise ValidationError(
                f"no user has signed up by ts={pd.Timestamp(t, unit='us', tz='UTC')}; the "
                f"first sign-up is {first}, pick a later ts",
                field="ts",
            )
        rng = self._loop_rng if rng is None else rng
        weights = np.cumsum(self.latent.activity[:n_known])
        rows = np.searchsorted(weights, rng.random(n) * weights[-1], side="right")
        return self._user_ids[np.minimum(rows, n_known - 1)]

    def candidates(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` distinct item ids drawn uniformly: a candidate set for bandits/ranking."""
        n = _count(n, "n")
        if n > len(self._item_ids):
            raise ValidationError(
                f"candidates: n={n} exceeds the {len(self._item_ids)} items of this world; "
                "ask for at most that many",
                field="n",
            )
        rng = self._loop_rng if rng is None else rng
        return self._item_ids[rng.choice(len(self._item_ids), n, replace=False)]

    def day_start(self, day: int) -> pd.Timestamp:
        """UTC midnight of ``day`` (day 0 is ``config.start``)."""
        return pd.Timestamp(self.config.day_start_us(day), unit="us", tz="UTC")

    # -- logs --------------------------------------------------------------------------
    def generate_day(self, day: int) -> dict[str, pd.DataFrame]:
        """The events caused on ``day``: its sign-ups and new items (day 0 also holds
        everyone from before the start), impressions, and the clicks and conversions
        they lead to, whose ``ts`` may fall on a later day.

        Independent of other days: ``generate_day(d)`` equals day ``d`` of ``generate()``.
        """
        day = self._check_day(day)
        cfg = self.config
        rng = _rng(cfg.seed, _DAY, day)
        traffic = day_traffic(cfg, self.latent, day, rng)
        p = self._ctr(traffic.user, traffic.item, traffic.position, traffic.ts_us, traffic.device)
        outcomes = draw_outcomes(p, traffic, self.latent.item_conversion, rng)
        version = 2 if day >= cfg.format_change_day else 1
        impressions = impression_frame(
            traffic, version, self.users["user_id"], self.items["item_id"]
        )
        low = -np.inf if day == 0 else cfg.day_start_us(day)
        return {
            "user": self._snapshot(self.users, "signup_ts", low, cfg.day_start_us(day + 1)),
            "item": self._snapshot(self.items, "created_ts", low, cfg.day_start_us(day + 1)),
            "impression": impressions,
            "click": click_frame(traffic, outcomes, impressions),
            "conversion": conversion_frame(traffic, outcomes, impressions),
        }

    def generate(
        self, days: Iterable[int] | None = None, progress: bool = False
    ) -> dict[str, pd.DataFrame]:
        """Event type -> frame for ``days`` (all of ``config.days`` by default).

        ``user`` and ``item`` hold every user and item known by the end of the last day
        (``ts`` = sign-up / creation), so a partial range is self-contained. Behaviour
        frames are sorted by ``ts``; impressions are v1 before ``format_change_day`` and
        v2 (with ``device``) from it, with ``device`` missing on v1 rows.
        """
        chosen = self._check_days(days)
        iterator: Iterable[int] = chosen
        if progress:
            from rich.progress import track

            iterator = track(chosen, description="simulating days", total=len(chosen))
        parts = [self.generate_day(day) for day in iterator]
        end = self.config.day_start_us(chosen[-1] + 1)
        version = 2 if chosen[-1] >= self.config.format_change_day else 1
        return {
            "user": self._snapshot(self.users, "signup_ts", -np.inf, end),
            "item": self._snapshot(self.items, "created_ts", -np.inf, end),
            "impression": concat_events([p["impression"] for p in parts], "impression", version),
            "click": sort_by_time(concat_events([p["click"] for p in parts], "click", 1)),
            "conversion": sort_by_time(
                concat_events([p["conversion"] for p in parts], "conversion", 1)
            ),
        }

    @staticmethod
    def _snapshot(frame: pd.DataFrame, column: str, low: float, high: int) -> pd.DataFrame:
        us = pd.DatetimeIndex(frame[column]).as_unit("us").asi8
        return frame[(us >= low) & (us < high)].reset_index(drop=True)

    def _check_day(self, day: Any) -> int:
        if isinstance(day, bool) or not isinstance(day, int | np.integer):
            raise ValidationError(f"day must be an integer, got {day!r}", field="day")
        if not 0 <= day < self.config.days:
            raise ValidationError(
                f"day {day} is outside the world's 0..{self.config.days - 1}; "
                f"pick a day in range({self.config.days}) or raise WorldConfig.days",
                field="day",
            )
        return int(day)

    def _check_days(self, days: Iterable[int] | None) -> list[int]:
        if days is None:
            return list(range(self.config.days))
        chosen = [self._check_day(d) for d in days]
        if not chosen:
            raise ValidationError(
                f"days is empty ({days!r}); pass e.g. range({self.config.days})", field="days"
            )
        if len(set(chosen)) != len(chosen):
            raise ValidationError(
                f"days repeats a day ({chosen}); each day's events would be duplicated",
                field="days",
            )
        return sorted(chosen)


def _count(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValidationError(f"{name} must be a positive integer, got {n!r}", field=name)
    return int(n)
