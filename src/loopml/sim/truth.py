"""The known click function: every term of the true click probability, in one place.

Models, bandits and A/B tests are judged against this truth, so it is kept small and
explicit::

    P(click) = sigmoid(b + theta_u(t)[c_i] + q_i + pos(k) + season(hour) + dev(d))

    pos(k)       = -POSITION_DECAY * ln(1 + k)             k = 0-based slot in the slate
    season(h)    = HOUR_CLICK_AMPLITUDE * cos(2 pi (h - HOUR_PEAK) / 24)   h = UTC hour
    dev(d)       = DEVICE_EFFECT[d]                        ios / android / web
    theta_u(t)   = the user's category preferences, shifted for some users from shift_day

Request volume follows ``hour_volume``: the same evening peak, so users are both more
active and clickier in the evening.
"""

from __future__ import annotations

import numpy as np

#: Client devices, in code order (device codes index this tuple and ``DEVICE_EFFECT``).
DEVICES: tuple[str, ...] = ("ios", "android", "web")
#: Additive logit effect of the device a request came from: small, but large enough that
#: backfilling the missing ``device`` of v1 impressions helps a model.
DEVICE_EFFECT = np.array([0.15, 0.0, -0.25])
#: Position bias: logit falls by ``POSITION_DECAY * ln(1 + k)`` at slot ``k``.
POSITION_DECAY = 0.55
#: UTC hour of the evening peak of both activity and clickiness.
HOUR_PEAK = 20.0
#: Logit amplitude of the hour-of-day click effect.
HOUR_CLICK_AMPLITUDE = 0.25
#: Log amplitude of the hour-of-day request volume (peak / trough = exp(2 * this)).
HOUR_VOLUME_AMPLITUDE = 0.9

_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_HOUR


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-safe."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def position_effect(positions: np.ndarray) -> np.ndarray:
    """Logit offset of a slate slot: 0 at the top, decreasing with the position.

    >>> position_effect(np.array([0, 4])).round(3).tolist()
    [-0.0, -0.885]
    """
    return -POSITION_DECAY * np.log1p(np.asarray(positions, dtype=float))


def hour_of_day(ts_us: np.ndarray) -> np.ndarray:
    """Fractional UTC hour (0 <= h < 24) of epoch-microsecond timestamps."""
    return (np.asarray(ts_us, dtype=np.int64) % _US_PER_DAY) / _US_PER_HOUR


def hour_effect(hours: np.ndarray) -> np.ndarray:
    """Logit offset of the hour of day: highest at ``HOUR_PEAK``, lowest 12 hours later.

    >>> float(hour_effect(np.array([20.0]))[0]), round(float(hour_effect(np.array([8.0]))[0]), 2)
    (0.25, -0.25)
    """
    phase = 2.0 * np.pi * (np.asarray(hours, dtype=float) - HOUR_PEAK) / 24.0
    return HOUR_CLICK_AMPLITUDE * np.cos(phase)


def hour_volume(hours: np.ndarray) -> np.ndarray:
    """Relative request volume at an hour of day (unnormalised, evening peak)."""
    phase = 2.0 * np.pi * (np.asarray(hours, dtype=float) - HOUR_PEAK) / 24.0
    return np.exp(HOUR_VOLUME_AMPLITUDE * np.cos(phase))


def click_logit(
    bias: float,
    affinity: np.ndarray,
    quality: np.ndarray,
    positions: np.ndarray,
    ts_us: np.ndarray,
    device_codes: np.ndarray,
) -> np.ndarray:
    """The logit of the true click probability; all arrays share one shape."""
    return (
        bias
        + affinity
        + quality
        + position_effect(positions)
        + hour_effect(hour_of_day(ts_us))
        + DEVICE_EFFECT[device_codes]
    )


def calibrate_bias(offsets: np.ndarray, target: float, tol: float = 1e-7) -> float:
    """The bias ``b`` with ``mean(sigmoid(b + offsets)) == target``, by bisection.

    The mean is monotone in ``b``, so bisection always converges.

    >>> round(calibrate_bias(np.zeros(10), 0.25), 4) == round(float(np.log(1 / 3)), 4)
    True
    """
    low, high = -30.0, 30.0
    while high - low > tol:
        mid = 0.5 * (low + high)
        if sigmoid(mid + offsets).mean() < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
