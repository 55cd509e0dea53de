"""Plots a person reads: drift per column over time, and the loop's timeline.

Matplotlib with the non-interactive Agg backend, so plots render on servers and in CI;
each function returns a Figure the caller saves (``fig.savefig(path)``).
"""

from __future__ import annotations

from typing import Any

from loopml.core.errors import NotFoundError


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def drift_figure(history: list[dict[str, Any]], title: str = "drift over time") -> Any:
    """Each column's drift score (its chosen method) per window, thresholds dashed.

    ``history`` is :meth:`loopml.monitor.store.MonitorStore.column_history` output.
    """
    if not history:
        raise NotFoundError("no drift windows recorded yet; run `loopml monitor drift MODEL` first")
    plt = _pyplot()
    methods = sorted({r["method"] for r in history if r["method"] != "none"})
    fig, axes = plt.subplots(len(methods), 1, figsize=(9, 2.6 * len(methods)), squeeze=False)
    for ax, method in zip(axes[:, 0], methods, strict=True):
        rows = [r for r in history if r["method"] == method]
        for column in sorted({r["column"] for r in rows}):
            points = [(r["end"], r["score"]) for r in rows if r["column"] == column]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=column)
            hits = [(r["end"], r["score"]) for r in rows if r["column"] == column and r["drifted"]]
            if hits:
                ax.scatter([h[0] for h in hits], [h[1] for h in hits], color="red", zorder=3, s=18)
        ax.axhline(rows[0]["threshold"], color="grey", ls="--", lw=1)
        ax.set_ylabel(method)
        ax.legend(fontsize=7, ncol=4, loc="upper left")
    axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def loop_figure(report: Any) -> Any:
    """Three panels: drift, model performance and click rate per day, with the shift,
    the first alert (detection) and the promotion of the retrained version marked."""
    plt = _pyplot()
    days = [d.day for d in report.days]
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    a.plot(days, [d.drift_score for d in report.days], marker="o", label="largest feature drift")
    a.plot(
        days, [d.prediction_score or 0.0 for d in report.days], marker="s", label="prediction drift"
    )
    a.axhline(0.1, color="grey", ls="--", lw=1, label="threshold")
    a.set_ylabel("drift score")
    aucs = [(d.day, d.auc) for d in report.days if d.auc is not None]
    b.plot(
        [x for x, _ in aucs],
        [y for _, y in aucs],
        marker="o",
        color="tab:purple",
        label="serving model AUC (delayed labels)",
    )
    b.set_ylabel("ROC-AUC")
    c.plot(days, [d.policy_ctr for d in report.days], marker="o", label="model-driven feed")
    c.plot(days, [d.oracle_ctr for d in report.days], ls=":", label="best possible")
    c.plot(days, [d.random_ctr for d in report.days], ls=":", label="random feed")
    c.plot(days, [d.click_rate for d in report.days], ls="-.", label="logged traffic")
    c.set_ylabel("click rate")
    c.set_xlabel("simulated day")
    marks = [
        (report.shift_day, "world shifts", "black"),
        (report.detection_day, "drift alert", "tab:red"),
        (report.promotion_day, "new version promoted", "tab:green"),
    ]
    for ax in (a, b, c):
        for day, label, color in marks:
            if day is not None:
                ax.axvline(day, color=color, ls="--", lw=1.2, label=label if ax is a else None)
        ax.legend(fontsize=7, loc="upper left")
    a.set_title(f"{report.model}: drift, performance and click rate over time")
    fig.tight_layout()
    return fig
