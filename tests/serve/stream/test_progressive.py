"""Progressive metrics booked a batch at a time equal River's metric, example by example."""

from __future__ import annotations

import math
import random
from collections import deque

import numpy as np
import pytest
from river import metrics

from loopml.serve.stream.progressive import ProgressiveMetrics, RunningMean


def _stream(n: int, seed: int) -> tuple[list, list, list]:
    rng = random.Random(seed)
    ys = [rng.random() < 0.15 for _ in range(n)]
    ps = [rng.random() for _ in range(n)]
    for i in range(0, n, 97):  # River clips these to [1e-15, 1 - 1e-15]
        ps[i] = rng.choice([0.0, 1.0, 1e-18, 1 - 1e-17, 0])
    return ys, ps, [float(i) for i in range(n)]


def test_cumulative_log_loss_is_rivers_bit_for_bit_in_any_batching() -> None:
    ys, ps, ts = _stream(5000, seed=1)
    river = metrics.LogLoss()
    cuts = sorted(random.Random(2).sample(range(1, 5000), 40))
    ours = ProgressiveMetrics(curve_every=250, rolling=300)
    for a, b in zip([0, *cuts], [*cuts, 5000], strict=True):
        ours.update_many(ys[a:b], ps[a:b], ts[a:b])
        for y, p in zip(ys[a:b], ps[a:b], strict=True):
            river.update(y, {True: p, False: 1 - p})
        assert ours.log_loss.get() == river.get()
    assert ours.n == 5000 and ours.log_loss.n == 5000.0


def test_rolling_window_curve_accuracy_and_auc_against_a_plain_reference() -> None:
    ys, ps, ts = _stream(3000, seed=3)
    ours = ProgressiveMetrics(curve_every=100, rolling=250)
    for a in range(0, 3000, 333):
        ours.update_many(ys[a : a + 333], ps[a : a + 333], ts[a : a + 333])
    window: deque = deque(maxlen=250)
    river = metrics.LogLoss()
    curve = []
    for i, (y, p) in enumerate(zip(ys, ps, strict=True), start=1):
        q = min(max(p, 1e-15), 1 - 1e-15)
        window.append((y, p, -math.log(q if y else 1 - q)))
        river.update(y, p)
        if i % 100 == 0:
            curve.append((i, ts[i - 1], river.get(), sum(w[2] for w in window) / len(window)))
    assert [(c.n, c.ts, c.log_loss) for c in ours.curve] == [c[:3] for c in curve]
    assert [c.rolling_log_loss for c in ours.curve] == pytest.approx([c[3] for c in curve])
    s = ours.summary()
    assert s["rolling_log_loss"] == pytest.approx(sum(w[2] for w in window) / 250)
    assert s["accuracy"] == sum((p > 0.5) == y for y, p in zip(ys, ps, strict=True)) / 3000
    assert s["positive_rate"] == sum(ys) / 3000
    y = np.array([w[0] for w in window])
    p = np.array([w[1] for w in window])
    pairs = [(pp > pn) + 0.5 * (pp == pn) for pp in p[y] for pn in p[~y]]
    assert s["roc_auc"] == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)


def test_a_checkpoint_of_the_old_layout_loads_into_the_new_one() -> None:
    """Checkpoints written before the ring buffers held River's LogLoss and a deque."""
    ys, ps, ts = _stream(400, seed=4)
    old = ProgressiveMetrics(curve_every=100, rolling=50)
    river = metrics.LogLoss()
    window: deque = deque(maxlen=50)
    for y, p in zip(ys, ps, strict=True):
        river.update(y, p)
        q = min(max(p, 1e-15), 1 - 1e-15)
        window.append((y, p, -math.log(q if y else 1 - q)))
    state = {k: v for k, v in vars(old).items() if not k.startswith("_")}
    state.update(n=400, correct=0, positives=0, log_loss=river, _window=window, _window_loss=0.0)
    loaded = ProgressiveMetrics.__new__(ProgressiveMetrics)
    loaded.__setstate__(state)
    assert isinstance(loaded.log_loss, RunningMean)
    assert loaded.log_loss.get() == river.get()
    assert loaded.rolling_value() == pytest.approx(sum(w[2] for w in window) / 50)
    loaded.update_many(ys[:10], ps[:10], ts[:10])
    for y, p in zip(ys[:10], ps[:10], strict=True):
        river.update(y, p)
    assert loaded.log_loss.get() == river.get()
