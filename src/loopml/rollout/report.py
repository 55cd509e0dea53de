"""The experiment report: one HTML file with the decision, the tables and the plots.

Plots: the metric per arm with its interval; traffic share and the always-valid
p-value over the experiment's life (so a reader sees when it became decidable); the
latency distribution per arm; the canary ramp with its rollback; the shadow score
scatter; interleaving wins over impressions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loopml.core.report import HtmlReport
from loopml.rollout.analysis import summarize
from loopml.rollout.records import Experiment
from loopml.rollout.stats import sequential_mean_difference, sequential_two_proportions
from loopml.rollout.store import ExperimentStore

_POINTS = 300


def write_report(store: ExperimentStore, exp: Experiment, out: str | Path) -> Path:
    """Write the report for ``exp`` to ``out`` and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    summary = summarize(store, exp)
    spec = exp.spec
    rep = HtmlReport(f"Experiment {spec.name}: {spec.policy} on {spec.model}")
    rep.kpis(
        {
            "status": exp.status,
            "arms": ", ".join(spec.arms),
            "metric": spec.metric,
            "winner": summary["decision"].get("winner") or "none yet",
        }
    )
    rep.text(summary["decision"].get("reason", ""))
    if exp.reason:
        rep.text(f"Last change: {exp.reason}", note=True)
    rep.heading("Arms").table(_arm_rows(summary["arms"]))
    if summary.get("comparisons"):
        rep.heading("Comparison with the control").table(summary["comparisons"])
        rep.text(
            "p_value is the fixed-horizon z-test (valid read once, at the planned sample "
            "size); always_valid_p is the mSPRT p-value, valid however often it is read "
            "(for a rate: the difference of rates; for an amount such as revenue: the "
            "difference of means).",
            note=True,
        )
    if "sample_size" in summary:
        ss = summary["sample_size"]
        rep.text(
            f"Fixed-horizon plan: {ss['per_arm']} requests per arm to detect "
            f"{ss['mde']:+.4f} on a baseline of {ss['baseline']:.4f}."
        )
    timeline = store.timeline(exp.name, kind="serve")
    means = bool(summary.get("comparisons")) and summary["comparisons"][0]["kind"] == "mean"
    if summary["arms"] and any(a["requests"] for a in summary["arms"]):
        rep.figure(
            _rates_figure(summary["arms"], spec.metric, means), "metric per arm, 95% interval"
        )
    if timeline and spec.policy in ("ab", "bandit", "canary"):
        rep.figure(
            _path_figure(store, exp, timeline, means), "traffic share and always-valid p-value"
        )
    rep.figure(_latency_figure(store, exp), "latency per arm (ms)")
    if spec.policy == "shadow":
        rep.heading("Shadow comparison").table([_flat(summary["shadow"])])
        rep.figure(_shadow_figure(store, exp), "champion vs challenger score, same requests")
    if spec.policy == "interleave":
        rep.heading("Interleaving").table([_flat(summary["interleave"])])
    if spec.policy == "canary":
        rep.figure(_ramp_figure(summary["events"], spec.ramp), "canary ramp")
    rep.heading("Audit trail").table(summary["events"])
    return rep.write(out)


def _arm_rows(arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("arm", "requests", "share", "errors", "error_rate", "latency_p50_ms")
    keep += ("latency_p99_ms", "positive", "rate", "rate_low", "rate_high", "metric_mean")
    return [{k: a.get(k) for k in keep} for a in arms]


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _rates_figure(arms: list[dict[str, Any]], metric: str, means: bool = False) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [a["arm"] for a in arms]
    if means:  # an amount: the mean per request with its normal 95% interval
        rates = np.array([a["metric_mean"] or 0.0 for a in arms])
        half = np.array(
            [
                1.96 * np.sqrt((a["metric_var"] or 0.0) / a["requests"]) if a["requests"] else 0.0
                for a in arms
            ]
        )
        low, high = rates - half, rates + half
    else:
        rates = np.array([a["rate"] or 0.0 for a in arms])
        low = np.array([a["rate_low"] if a["rate_low"] is not None else 0.0 for a in arms])
        high = np.array([a["rate_high"] if a["rate_high"] is not None else 0.0 for a in arms])
    ax.bar(names, rates, color="#4c72b0", alpha=0.8)
    ax.errorbar(names, rates, yerr=[rates - low, high - rates], fmt="none", color="black")
    ax.set_ylabel(f"{metric} {'mean per request' if means else 'rate'}")
    ax.set_title(f"{metric} per arm")
    return fig


def _path_figure(
    store: ExperimentStore, exp: Experiment, timeline: list[tuple], means: bool = False
) -> Any:
    import matplotlib.pyplot as plt

    arms = list(exp.spec.arms)
    index = {a: i for i, a in enumerate(arms)}
    credits = store.request_outcomes(exp.name, exp.spec.metric)
    arm_idx = np.array([index.get(r[2], 0) for r in timeline])
    value = np.array([credits.get(r[1], {}).get(r[2], 0.0) for r in timeline])
    hit = value > 0
    onehot = np.eye(len(arms))[arm_idx]
    n = np.cumsum(onehot, axis=0)
    s = np.cumsum(onehot * hit[:, None], axis=0)
    total = np.cumsum(onehot * value[:, None], axis=0)
    total_sq = np.cumsum(onehot * (value * value)[:, None], axis=0)
    step = max(1, len(timeline) // _POINTS)
    at = np.arange(step - 1, len(timeline), step)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    served = n[at].sum(axis=1)
    for i, arm in enumerate(arms):
        top.plot(at + 1, n[at, i] / served, label=arm)
    top.set_ylabel("traffic share")
    top.legend()
    for i, arm in enumerate(arms[1:], start=1):
        if means:
            p = sequential_mean_difference(
                total[at, 0],
                total_sq[at, 0],
                n[at, 0],
                total[at, i],
                total_sq[at, i],
                n[at, i],
                tau=exp.spec.mde,
            )
        else:
            tau = exp.spec.mde or 0.01
            p = sequential_two_proportions(s[at, 0], n[at, 0], s[at, i], n[at, i], tau)
        bottom.plot(at + 1, p, label=f"{arm} vs {arms[0]}")
    bottom.axhline(exp.spec.alpha, color="red", linestyle="--", label=f"alpha={exp.spec.alpha}")
    bottom.set_yscale("log")
    bottom.set_ylabel("always-valid p")
    bottom.set_xlabel("requests")
    bottom.legend()
    return fig


def _latency_figure(store: ExperimentStore, exp: Experiment) -> Any:
    import matplotlib.pyplot as plt

    data = [store.latencies(exp.name, arm, limit=5000) for arm in exp.spec.arms]
    fig, ax = plt.subplots(figsize=(6, 3))
    shown = [(arm, d) for arm, d in zip(exp.spec.arms, data, strict=True) if d.size]
    if shown:
        ax.boxplot([d for _, d in shown], showfliers=False)
        ax.set_xticks(range(1, len(shown) + 1), [a for a, _ in shown])
    ax.set_ylabel("latency ms")
    ax.set_title("latency per arm (whiskers 1.5 IQR)")
    return fig


def _shadow_figure(store: ExperimentStore, exp: Experiment) -> Any:
    import matplotlib.pyplot as plt

    champion, challenger = exp.spec.arms
    served, mirrored = {}, {}
    for _, rid, arm, _, _, score in store.timeline(exp.name, limit=20_000):
        (served if arm == champion else mirrored)[rid] = score
    pairs = [
        (served[r], v) for r, v in mirrored.items() if r in served and None not in (served[r], v)
    ]
    fig, ax = plt.subplots(figsize=(4, 4))
    if pairs:
        a, b = zip(*pairs, strict=True)
        ax.scatter(a, b, s=4, alpha=0.4)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
    ax.set_xlabel(f"{champion} score")
    ax.set_ylabel(f"{challenger} score")
    return fig


def _ramp_figure(events: list[dict[str, Any]], ramp: tuple[float, ...]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    if events:
        t0 = events[0]["ts"]
        xs, ys = [], []
        for e in events:
            pct = (
                0.0
                if e["action"] in ("rollback", "stop")
                else ramp[min(e["stage"] or 0, len(ramp) - 1)]
            )
            if e["action"] == "promote":
                pct = 100.0
            xs.append(e["ts"] - t0)
            ys.append(pct)
            if e["action"] == "rollback":
                ax.annotate("rollback", (xs[-1], 0.0), color="red")
        ax.step(xs, ys, where="post")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("challenger traffic %")
    return fig
