"""Streaming learner versus a model retrained daily in batch, across a preference shift.

Both see the same simulated stream and the same label window. The streaming learner
predicts every impression with the model as it is at that moment; the daily batch model
is a scikit-learn logistic regression refit at each midnight on every label known by
then (the full log so far) and frozen for the day. After the world's preference shift
the streaming model follows within hours; the batch model keeps yesterday's tastes
until the next refit, and its refit is still mostly pre-shift data. The result holds
hourly log loss curves for both and the excess loss after the shift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopml.serve.stream.models import DEFAULT_CROSSES

_EPS = 1e-15
_DAY = 86_400.0


@dataclass
class ShiftComparison:
    """Hourly log loss of both learners, and how each coped with the shift."""

    hours: list[float]  # bin start, in hours since the world's start
    stream: list[float]  # mean log loss above the world's truth, per bin
    batch: list[float]
    shift_hour: float
    stream_excess: float  # excess loss in the day after the shift minus the day before
    batch_excess: float
    stream_after: float
    batch_after: float
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"log loss above the truth in the 24 h after the shift: stream "
            f"{self.stream_after:.4f} ({self.stream_excess:+.4f} vs the day before), daily "
            f"batch {self.batch_after:.4f} ({self.batch_excess:+.4f})"
        )


def compare_stream_vs_daily_batch(
    world_config: Any = None,
    model: str = "logreg",
    label_window_s: float = 1800.0,
    model_params: dict[str, Any] | None = None,
    bin_hours: float = 3.0,
    progress: bool = False,
) -> ShiftComparison:
    """Run both learners over a simulated stream with a preference shift.

    ``world_config`` is a :class:`loopml.sim.config.WorldConfig` (by default 4 days,
    the shift at the start of day 3 for every user, and a new segment half as large as
    the population signing up from then; three days of history let the batch model
    mature before the shift, so the comparison is about the shift, not about data).
    Curves are the *excess* log loss over the world's true click probabilities,
    averaged per ``bin_hours`` of event time: the truth removes the hour-of-day noise,
    so what is left is what each model has not learnt (0 = as good as the truth).
    """
    import numpy as np

    from loopml.serve.stream.learner import OnlineLearner
    from loopml.serve.stream.produce import event_payloads
    from loopml.sim.config import WorldConfig
    from loopml.sim.world import World

    cfg = world_config or WorldConfig(
        days=4,
        shift_day=3,
        shift_fraction=1.0,
        new_segment_fraction=0.5,
        impressions_per_day=10_000,
        n_users=3000,
        n_items=100,
        format_change_day=0,
    )
    world = World(cfg)
    frames = world.generate(progress=progress)
    start = cfg.start_datetime.timestamp()
    learner = OnlineLearner(
        model, label_window_s=label_window_s, model_params=model_params, trace=True
    )
    for payload, _ in event_payloads(frames):
        learner.process(payload)
    learner.finish()
    trace = learner.trace_ or []
    ids = [t[0] for t in trace]
    ts = np.array([t[1] for t in trace])
    y = np.array([bool(t[3]) for t in trace])
    p_stream = np.array([t[4] for t in trace])
    p_true = _true_ctr(world, frames["impression"], ids)
    p_batch = _daily_batch_predictions(trace, ts, start, label_window_s, cfg.days)
    scored = ~np.isnan(p_batch)  # day 0 has no batch model yet: compare from day 1
    truth = _log_loss(y, p_true)
    loss_s = _log_loss(y, p_stream) - truth
    loss_b = _log_loss(y, np.where(scored, p_batch, 0.5)) - truth
    bins = np.floor((ts - start) / 3600.0 / bin_hours) * bin_hours
    keys = np.unique(bins[scored])
    stream_curve = [float(loss_s[scored & (bins == h)].mean()) for h in keys]
    batch_curve = [float(loss_b[scored & (bins == h)].mean()) for h in keys]
    hours = (ts - start) / 3600.0
    shift_h = cfg.shift_day * 24.0
    before = scored & (hours >= shift_h - 24) & (hours < shift_h)
    after = scored & (hours >= shift_h) & (hours < shift_h + 24)
    s_after, b_after = float(loss_s[after].mean()), float(loss_b[after].mean())
    return ShiftComparison(
        hours=[float(h) for h in keys],
        stream=stream_curve,
        batch=batch_curve,
        shift_hour=shift_h,
        stream_excess=s_after - float(loss_s[before].mean()),
        batch_excess=b_after - float(loss_b[before].mean()),
        stream_after=s_after,
        batch_after=b_after,
        details={
            "examples": len(trace),
            "model": model,
            "label_window_s": label_window_s,
            "truth_log_loss": float(truth.mean()),
        },
    )


def _true_ctr(world: Any, impressions: Any, ids: list[str]) -> Any:
    import pandas as pd

    imp = impressions.set_index("event_id").loc[ids]
    devices = None  # v1 logs hide the device: the world then assumes the user's usual one
    if "device" in imp.columns:
        devices = imp["device"].astype(object).where(imp["device"].notna(), None).tolist()
    ts = pd.DatetimeIndex(imp["ts"])
    return world.true_ctr(
        imp["user_id"].to_numpy(),
        imp["item_id"].to_numpy(),
        imp["position"].to_numpy(),
        ts,
        devices=devices,
    )


def _daily_batch_predictions(trace: list, ts: Any, start: float, window: float, days: int) -> Any:
    """Refit at each midnight on every example whose label was known by then."""
    import numpy as np
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.linear_model import LogisticRegression

    from loopml.serve.stream.features import Crosses

    crosses = Crosses(DEFAULT_CROSSES)
    hasher = FeatureHasher(n_features=2**16, input_type="dict")
    X = hasher.transform(crosses.transform_one(t[2]) for t in trace)
    y = np.array([bool(t[3]) for t in trace])
    out = np.full(len(trace), np.nan)
    for day in range(1, days):
        midnight = start + day * _DAY
        known = ts + window <= midnight
        today = (ts >= midnight) & (ts < midnight + _DAY)
        if not today.any() or y[known].all() or not y[known].any():
            continue
        clf = LogisticRegression(C=1.0, max_iter=300).fit(X[known], y[known])
        out[today] = clf.predict_proba(X[today])[:, 1]
    return out


def _log_loss(y: Any, p: Any) -> Any:
    import numpy as np

    p = np.clip(p, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (~y) * np.log(1 - p))


def plot_comparison(result: ShiftComparison, path: str, smooth_hours: float = 12.0) -> str:
    """Write the comparison as a PNG (shift marked); return the path.

    Top: each model's loss above the truth, as a trailing ``smooth_hours`` mean (single
    bins are noisy). Bottom: the batch model's extra loss over the streaming learner,
    accumulated bin by bin; its slope steepens at the shift and flattens only after the
    next midnight refit.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    hours = np.array(result.hours)
    step = float(np.diff(hours).min()) if len(hours) > 1 else 1.0
    k = max(1, int(round(smooth_hours / step)))

    def trailing(values: list[float]) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        c = np.cumsum(np.insert(v, 0, 0.0))
        n = np.minimum(np.arange(1, len(v) + 1), k)
        return (c[1:] - c[np.arange(1, len(v) + 1) - n]) / n

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(hours, trailing(result.stream), label="streaming learner (learns every event)")
    top.plot(hours, trailing(result.batch), label="daily batch retrain (refit at midnight)")
    top.axhline(0.0, color="black", linewidth=0.6)
    top.set_ylabel(f"loss above truth\n(trailing {smooth_hours:g} h mean)")
    top.set_title("Recovery after a preference shift: " + result.summary().split(": ", 1)[1])
    top.title.set_fontsize(8)
    gap = np.cumsum(np.asarray(result.batch) - np.asarray(result.stream))
    bottom.plot(hours, gap, color="tab:red")
    bottom.set_ylabel("cumulative extra loss\nof batch over stream")
    bottom.set_xlabel("hours since start (event time)")
    for ax in (top, bottom):
        ax.axvline(result.shift_hour, color="grey", linestyle="--", label="preference shift")
        for h in range(24, int(max(result.hours)) + 1, 24):
            ax.axvline(h, color="grey", alpha=0.15)
    top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_progressive_curve(learner: Any, path: str, title: str = "") -> str:
    """A learner's cumulative and rolling progressive log loss as a PNG (the demo's plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = learner.metrics_.curve
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([c.n for c in curve], [c.log_loss for c in curve], label="cumulative")
    ax.plot([c.n for c in curve], [c.rolling_log_loss for c in curve], label="rolling window")
    ax.set_xlabel("examples scored (predict, then learn)")
    ax.set_ylabel("log loss")
    ax.set_title(title or f"progressive validation of {learner.model}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
