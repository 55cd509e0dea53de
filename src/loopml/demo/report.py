"""The demo's HTML report: what a person would rather look at than read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from loopml.demo.scenario import DemoResult
    from loopml.project import Project
    from loopml.sim.world import World


def write_report(
    project: Project, world: World, results: dict[str, Any], splits: Any, result: DemoResult
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from loopml.core.report import HtmlReport

    test = splits.test
    scores = {
        name: r.model.predict_proba(test[r.signature.names])[:, 1] for name, r in results.items()
    }
    y = test["label"].to_numpy()
    best = result.best

    report = HtmlReport("loopml demo: click-through-rate model, end to end")
    counts = project.events.counts()
    report.kpis(
        {
            "impressions": f"{counts.get('impression', 0):,}",
            "clicks": f"{counts.get('click', 0):,}",
            "click rate": f"{counts.get('click', 0) / max(counts.get('impression', 1), 1):.2%}",
            "production model": f"ctr v{result.production_version} ({best})",
            "test ROC-AUC": f"{results[best].metrics['test']['roc_auc']:.4f}",
            "batch predictions": f"{result.batch_rows:,}",
        }
    )
    report.heading("Models side by side (test days)")
    report.text(
        "Seed 000 asks first whether the problem can be solved without ML: the class prior and "
        "an item-popularity rule are the baselines every model must beat. Normalised entropy "
        "is log loss divided by the entropy of the base rate (1.0 = no better than the prior)."
    )
    report.table(result.leaderboard.reset_index().round(5))
    report.figure(_roc(y, scores), "ROC curves on the test days")
    report.figure(_calibration(y, scores), "Calibration (reliability) on the test days")
    report.figure(_importance(results[best]), f"Feature importance of {best}")
    report.heading("Click rate by day")
    daily = project.events.sql(
        "SELECT CAST(date_trunc('day', i.ts) AS DATE) AS day, count(*) AS impressions, "
        "count(c.event_id) AS clicks FROM impression i LEFT JOIN click c "
        "ON c.impression_id = i.event_id GROUP BY 1 ORDER BY 1"
    )
    daily["click_rate"] = daily["clicks"] / daily["impressions"]
    report.figure(
        _daily(daily, world), "Click rate by day (the simulated world's scheduled events marked)"
    )
    report.heading(f"Metrics by slice ({best})")
    from loopml.train.metrics import by_slice

    sliced = test.assign(score=scores[best])
    sliced["device"] = (
        sliced["device"].astype(object).where(sliced["device"].notna(), "(not logged)")
    )
    for column in ("user_profile__segment", "device", "position"):
        table = by_slice(sliced, column, "label", "score")
        keep = [
            c for c in (column, "n", "roc_auc", "log_loss", "base_rate", "mean_score") if c in table
        ]
        report.table(table[keep].round(5))
    report.figure(_slices(sliced), "Observed vs predicted click rate by position and segment")
    report.heading("Pattern 1: batch predictions")
    rows = project.predictions.read(
        "SELECT user_id, item_id, score, model, version FROM latest_predictions "
        "ORDER BY score DESC LIMIT 10"
    )
    report.text(
        f"{result.batch_rows:,} rows written to {project.config.storage.predictions}; a web app "
        "reads the latest complete job from the latest_predictions view. Top 10 scores:"
    )
    report.table(rows)
    if result.loop is not None:
        loop = result.loop
        report.heading("Monitoring and the retraining loop")
        report.text(
            f"After the foundation's days the world kept running: on day {world.config.shift_day} "
            f"half of the users changed tastes and a new segment arrived. Drift was detected on "
            f"day {loop.detection_day} and the retrained model, having beaten the champion on "
            f"the latest labelled window, was promoted on day {loop.promotion_day}."
        )
        report.figure(
            loop.figure(),
            "Drift, performance and click rate over time; detection and promotion marked",
        )
        report.table(loop.to_frame().round(4))
    report.heading("Timings")
    report.table([{"step": k, "seconds": round(v, 2)} for k, v in result.timings.items()])
    return report.write(project.root / "report.html")


def _roc(y: np.ndarray, scores: dict[str, np.ndarray]):  # noqa: ANN202
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    return fig


def _calibration(y: np.ndarray, scores: dict[str, np.ndarray]):  # noqa: ANN202
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, p in scores.items():
        edges = np.quantile(p, np.linspace(0, 1, 11))
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        mean_p = [p[which == b].mean() for b in range(10) if (which == b).any()]
        rate = [y[which == b].mean() for b in range(10) if (which == b).any()]
        ax.plot(mean_p, rate, marker="o", label=name)
    top = max(0.12, float(np.quantile(np.concatenate(list(scores.values())), 0.99)))
    ax.plot([0, top], [0, top], ls=":", c="grey")
    ax.set(xlabel="mean predicted click probability (decile)", ylabel="observed click rate")
    ax.legend()
    return fig


def _importance(result: Any):  # noqa: ANN202
    import matplotlib.pyplot as plt

    inner = result.model.estimator_
    est = inner.steps[-1][1] if hasattr(inner, "steps") else inner
    names = result.signature.names
    values = getattr(est, "feature_importances_", None)
    if values is None and hasattr(est, "coef_"):
        values = np.abs(np.ravel(est.coef_))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if values is None or len(values) != len(names):
        ax.text(0.5, 0.5, "no per-feature importance for this model", ha="center")
        return fig
    if hasattr(est, "booster_"):
        values = est.booster_.feature_importance(importance_type="gain")
    order = np.argsort(values)
    ax.barh([names[i] for i in order], np.asarray(values)[order])
    ax.set(xlabel="importance (gain)")
    return fig


def _daily(daily: Any, world: Any):  # noqa: ANN202
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(daily["day"].astype(str), daily["click_rate"], marker="o")
    cfg = world.config
    for day, label in (
        (cfg.format_change_day, "log format v2"),
        (cfg.shift_day, "preference shift"),
    ):
        if day < len(daily):
            ax.axvline(day, ls="--", c="grey")
            ax.text(day + 0.1, daily["click_rate"].max(), label, fontsize=8, va="top")
    ax.set(ylabel="click rate")
    ax.tick_params(axis="x", rotation=60)
    return fig


def _slices(frame: Any):  # noqa: ANN202
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, column in zip(axes, ("position", "user_profile__segment"), strict=True):
        g = frame.groupby(column, observed=True).agg(
            observed=("label", "mean"), predicted=("score", "mean")
        )
        g.plot.bar(ax=ax)
        ax.set(title=column, ylabel="click rate")
    return fig
