"""Users and items: their public attribute frames and the hidden truth behind them.

A user's category preferences are the sum of a global category taste, an age-band
taste, a segment taste and a personal part, so observable attributes carry signal but
history still matters. From ``shift_day`` a fraction of existing users move their
tastes by a fixed per-category delta (some categories up, some down), and a new
segment with its own strong tastes starts signing up: both are what drift detection
is meant to see.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from loopml.sim.config import SEGMENTS, US_PER_DAY, WorldConfig
from loopml.sim.events import with_schema
from loopml.sim.truth import DEVICES

CATEGORY_NAMES = (
    "news", "sports", "music", "tech", "food", "travel",
    "fashion", "gaming", "finance", "health", "movies", "kids",
)  # fmt: skip
COUNTRIES = (("KR", 0.35), ("US", 0.25), ("JP", 0.15), ("DE", 0.10), ("BR", 0.10), ("IN", 0.05))
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
_AGE_P = {"old": (0.20, 0.30, 0.25, 0.15, 0.10), "new": (0.45, 0.35, 0.12, 0.05, 0.03)}
_DEVICE_P = {"old": (0.40, 0.40, 0.20), "new": (0.25, 0.65, 0.10)}
#: Probability that a request comes from the user's primary device.
PRIMARY_DEVICE_P = 0.9


@dataclass(frozen=True)
class Latent:
    """The hidden truth; row ``j`` of each user array is row ``j`` of ``World.users``.

    Times are int64 microseconds since the epoch.
    """

    preference: np.ndarray  # (n_users, n_categories) category tastes before the shift
    preference_shifted: np.ndarray  # tastes from shift_day on (equal for unshifted users)
    shifted: np.ndarray  # bool (n_users,): whose tastes change on shift_day
    shift_delta: np.ndarray  # (n_categories,) taste change of shifted users
    activity: np.ndarray  # (n_users,) relative request rate
    device: np.ndarray  # int8 (n_users,) primary device code into truth.DEVICES
    signup_us: np.ndarray  # int64 (n_users,)
    is_new_segment: np.ndarray  # bool (n_users,): member of config.new_segment
    item_category: np.ndarray  # int (n_items,) index into the category names
    item_quality: np.ndarray  # (n_items,) additive logit
    item_exposure: np.ndarray  # (n_items,) the logging policy's draw weights, sum to 1
    item_conversion: np.ndarray  # (n_items,) P(conversion | click)
    categories: tuple[str, ...]  # category names


def category_names(n: int) -> tuple[str, ...]:
    """Readable category names; beyond the built-in twelve they are numbered.

    >>> category_names(3), category_names(13)[-1]
    (('news', 'sports', 'music'), 'cat12')
    """
    return tuple(CATEGORY_NAMES[j] if j < len(CATEGORY_NAMES) else f"cat{j}" for j in range(n))


def format_ids(prefix: str, n: int, width: int) -> pd.Series:
    """Zero-padded string ids ``prefix + number`` for ``0..n-1`` (e.g. 'u000123')."""
    width = max(width, len(str(max(n - 1, 0))))
    numbers = pd.Series(np.arange(n), dtype="int64").astype("str").str.zfill(width)
    return (prefix + numbers).astype("str")


def build_population(
    config: WorldConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, Latent]:
    """Draw every user and item the world will ever have, plus their hidden truth."""
    categories = category_names(config.n_categories)
    n_cat = len(categories)
    n_old, n_new = config.n_users, config.n_new_users
    n = n_old + n_new
    is_new = np.r_[np.zeros(n_old, bool), np.ones(n_new, bool)]

    # sign-up times: existing users over the year before day 0, the new segment from
    # shift_day on; ids follow sign-up order like a real auto-increment key
    start = config.start_us
    old_signup = start - rng.integers(1, 365 * US_PER_DAY, n_old)
    new_from = config.day_start_us(config.shift_day)
    new_span = max(config.days - config.shift_day, 1) * US_PER_DAY
    new_signup = new_from + rng.integers(0, new_span, n_new)
    signup = np.r_[old_signup, new_signup].astype(np.int64)
    order = np.argsort(signup, kind="stable")
    signup, is_new = signup[order], is_new[order]

    def pick(options: tuple[str, ...], p_old, p_new) -> np.ndarray:
        """Codes into ``options``: existing users by ``p_old``, the new segment by ``p_new``."""
        return np.where(
            is_new,
            rng.choice(len(options), n, p=np.asarray(p_new) / np.sum(p_new)),
            rng.choice(len(options), n, p=np.asarray(p_old) / np.sum(p_old)),
        )

    country_names = tuple(c for c, _ in COUNTRIES)
    country_p = [p for _, p in COUNTRIES]
    country = pick(country_names, country_p, country_p)
    age = pick(AGE_BANDS, _AGE_P["old"], _AGE_P["new"])
    segment_names = (*(s for s, _ in SEGMENTS), config.new_segment)
    seg_p_old = [p for _, p in SEGMENTS] + [0.0]
    seg_p_new = [0.0] * len(SEGMENTS) + [1.0]
    segment = pick(segment_names, seg_p_old, seg_p_new)
    device = pick(DEVICES, _DEVICE_P["old"], _DEVICE_P["new"]).astype(np.int8)

    # category tastes: global + age band + segment + personal
    global_taste = rng.normal(0.0, 0.3, n_cat)
    age_taste = rng.normal(0.0, 0.35, (len(AGE_BANDS), n_cat))
    segment_taste = rng.normal(0.0, 0.2, (len(segment_names), n_cat))
    favourites = rng.choice(n_cat, size=min(2, n_cat), replace=False)
    segment_taste[-1] = -0.4
    segment_taste[-1, favourites] = 1.3  # the new segment loves two categories
    preference = (
        global_taste + age_taste[age] + segment_taste[segment] + rng.normal(0.0, 0.6, (n, n_cat))
    )

    # the shift: a fixed fraction of existing users move by a per-category delta
    shift_delta = np.zeros(n_cat)
    k = max(n_cat // 4, 1)
    perm = rng.permutation(n_cat)
    shift_delta[perm[:k]] = 1.0
    if n_cat > 1:
        shift_delta[perm[k : 2 * k]] = -1.0
    existing = np.flatnonzero(~is_new)
    n_shift = round(config.shift_fraction * existing.size)
    shifted = np.zeros(n, bool)
    shifted[rng.permutation(existing)[:n_shift]] = True
    preference_shifted = preference.copy()
    preference_shifted[shifted] += shift_delta + rng.normal(0.0, 0.2, (n_shift, n_cat))

    activity = rng.lognormal(0.0, 1.0, n) * np.where(is_new, 1.5, 1.0)

    user_ids = format_ids("u", n, 6)
    signup_ts = pd.to_datetime(signup, unit="us", utc=True)
    users = pd.DataFrame(
        {
            "event_id": "user-" + user_ids,
            "ts": signup_ts,
            "user_id": user_ids,
            "country": np.asarray(country_names, dtype=object)[country],
            "age_band": np.asarray(AGE_BANDS, dtype=object)[age],
            "segment": np.asarray(segment_names, dtype=object)[segment],
            "signup_ts": signup_ts,
        }
    )
    users = with_schema(users, "user")

    items, item_latent = _build_items(config, rng, categories)
    latent = Latent(
        preference=preference,
        preference_shifted=preference_shifted,
        shifted=shifted,
        shift_delta=shift_delta,
        activity=activity,
        device=device,
        signup_us=signup,
        is_new_segment=is_new,
        categories=categories,
        **item_latent,
    )
    return users, items, latent


def _build_items(
    config: WorldConfig, rng: np.random.Generator, categories: tuple[str, ...]
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = config.n_items
    cat_p = rng.dirichlet(np.full(len(categories), 5.0))
    category = rng.choice(len(categories), n, p=cat_p)
    n_pub = max(5, n // 12)
    pub_p = 1.0 / np.arange(1, n_pub + 1) ** 0.8
    publisher = rng.choice(n_pub, n, p=pub_p / pub_p.sum())
    publisher_quality = rng.normal(0.0, 0.2, n_pub)
    quality = publisher_quality[publisher] + rng.normal(0.0, 0.4, n)
    # the logging policy: mildly favours good items, plus promotion noise unrelated to quality
    exposure = np.exp(0.8 * quality + rng.normal(0.0, 0.5, n))
    exposure /= exposure.sum()
    conv_factor = rng.lognormal(0.0, 0.5, n)
    conversion = np.clip(config.conversion_rate * conv_factor / conv_factor.mean(), 0.0, 1.0)
    length = np.round(rng.lognormal(np.log(120.0), 0.8, n), 1)
    length[rng.random(n) < 0.03] = np.nan  # optional field: some publishers omit it
    created = config.start_us - rng.integers(1, 180 * US_PER_DAY, n)
    created_ts = pd.to_datetime(created, unit="us", utc=True)

    item_ids = format_ids("i", n, 4)
    items = pd.DataFrame(
        {
            "event_id": "item-" + item_ids,
            "ts": created_ts,
            "item_id": item_ids,
            "category": np.asarray(categories, dtype=object)[category],
            "publisher": format_ids("pub", n_pub, 2).to_numpy(dtype=object)[publisher],
            "length_s": length,
            "created_ts": created_ts,
        }
    )
    latent = {
        "item_category": category,
        "item_quality": quality,
        "item_exposure": exposure,
        "item_conversion": conversion,
    }
    return with_schema(items, "item"), latent
