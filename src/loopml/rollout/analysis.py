"""An experiment's status: per-arm figures, the comparison, and the decision.

Per arm: requests, errors and latency beside the business metric (its rate with a
Wilson interval, or its mean for an amount such as revenue). Each challenger is
compared with the control (the first arm): the difference with its interval and the
fixed-horizon z-test, plus the always-valid (mSPRT) p-value that may be watched
continuously -- for a difference of rates, or of means for an amount. The decision
uses the sequential test, Bonferroni-corrected over the challengers, so watching the
status page every minute does not turn noise into a winner.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loopml.rollout.records import Experiment
from loopml.rollout.stats import (
    beta_prob_best,
    difference,
    mean_difference,
    mean_sums,
    percentiles,
    proportion_ci,
    sample_size,
    sample_size_means,
    sequential_mean,
    sequential_mean_difference,
    sequential_two_proportions,
)
from loopml.rollout.store import ExperimentStore

_DEFAULT_TAU = 0.01


def summarize(store: ExperimentStore, exp: Experiment) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data."""
    spec = exp.spec
    out: dict[str, Any] = {"experiment": exp.to_dict()}
    if spec.policy == "interleave":
        out["interleave"] = interleave_summary(store, exp)
        out["arms"] = _arms(store, exp, kind="interleave")
        out["decision"] = out["interleave"]["decision"]
    elif spec.policy == "shadow":
        out["shadow"] = shadow_summary(store, exp)
        out["arms"] = _arms(store, exp, kind=None)
        out["decision"] = {"winner": None, "reason": "shadow traffic is compared, not judged"}
    else:
        arms = _arms(store, exp, kind="serve")
        out["arms"] = arms
        out["comparisons"] = _comparisons(exp, arms)
        out["decision"] = _decide(exp, arms, out["comparisons"])
        if spec.policy == "bandit":
            out["bandit"] = {
                "prob_best": dict(
                    zip(
                        spec.arms,
                        beta_prob_best(
                            [a["positive"] for a in arms], [a["requests"] for a in arms]
                        ),
                        strict=True,
                    )
                )
            }
    plan = _plan(exp, out["arms"], out.get("comparisons"))
    if plan is not None:
        out["sample_size"] = plan
    out["events"] = [
        {k: e[k] for k in ("ts", "action", "stage", "reason", "actor")}
        for e in store.events(exp.name)
    ]
    return out


def _plan(
    exp: Experiment, arms: list[dict[str, Any]], comparisons: list[dict[str, Any]] | None
) -> dict[str, Any] | None:
    """The fixed-horizon sample size per arm for the spec's ``mde``, if it can be planned."""
    spec = exp.spec
    if spec.mde is None or not arms:
        return None
    control = arms[0]
    if comparisons and comparisons[0]["kind"] == "mean":
        var = control["metric_var"]
        if not var or var <= 0:
            return None
        sd = var**0.5
        per_arm = sample_size_means(sd, spec.mde, alpha=spec.alpha)
        return {"per_arm": per_arm, "baseline": control["metric_mean"], "sd": sd, "mde": spec.mde}
    base = control["rate"]
    if base is None or not 0.0 < base < 1.0 - spec.mde:
        return None
    return {
        "per_arm": sample_size(base, spec.mde, alpha=spec.alpha),
        "baseline": base,
        "mde": spec.mde,
    }


def always_valid_looks(store: ExperimentStore, exp: Experiment) -> dict[str, float]:
    """This look's always-valid p-value per challenger (already min-ed with earlier looks).

    The server stores the running minimum at every tick, so the p-value a person reads
    never goes back up and a decision, once reached, stays.
    """
    spec = exp.spec
    if spec.policy == "interleave":
        return {spec.arms[1]: interleave_summary(store, exp)["always_valid_p"]}
    if spec.policy not in ("ab", "bandit"):
        return {}
    arms = _arms(store, exp, kind="serve", latency=False)
    return {c["arm"]: c["always_valid_p"] for c in _comparisons(exp, arms)}


def winner(store: ExperimentStore, exp: Experiment) -> str | None:
    """The arm the statistics declare better, or None while undecided."""
    return summarize(store, exp)["decision"].get("winner")


def _arms(
    store: ExperimentStore, exp: Experiment, kind: str | None, latency: bool = True
) -> list[dict[str, Any]]:
    spec = exp.spec
    totals = store.arm_totals(exp.name, kind=kind)
    outcomes = store.outcome_totals(exp.name, spec.metric)
    rows = []
    for arm in spec.arms:
        t = totals.get(arm, {})
        o = outcomes.get(arm, {})
        n = int(t.get("requests", 0))
        positive = min(int(o.get("positive", 0)), n)
        total = float(o.get("total", 0.0))
        low, high = proportion_ci(positive, n) if n else (None, None)
        lat = store.latencies(exp.name, arm, kind=kind) if latency else []
        p50, p99 = percentiles(lat, [50, 99])
        mean = total / n if n else None
        var = (float(o.get("total_sq", 0.0)) / n - mean * mean) * n / (n - 1) if n > 1 else None
        rows.append(
            {
                "arm": arm,
                "requests": n,
                "share": None,
                "errors": int(t.get("errors", 0)),
                "error_rate": t.get("errors", 0) / n if n else None,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "positive": positive,
                "rate": positive / n if n else None,
                "rate_low": low,
                "rate_high": high,
                "metric_total": total,
                "metric_mean": mean,
                "metric_var": var,
                "binary": bool(o.get("binary", True)),
            }
        )
    served = sum(r["requests"] for r in rows)
    for r in rows:
        r["share"] = r["requests"] / served if served else None
    return rows


def _binary(exp: Experiment, arms: list[dict[str, Any]]) -> bool:
    """Whether the metric is a 0/1 outcome (a rate, e.g. clicks) rather than an amount."""
    return all(a["binary"] for a in arms)


def _comparisons(exp: Experiment, arms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = exp.spec
    control = arms[0]
    binary = _binary(exp, arms)
    running_min = dict(exp.state.get("always_valid_p", {}))
    out = []
    for arm in arms[1:]:
        if binary:
            d = difference(
                control["positive"], control["requests"], arm["positive"], arm["requests"]
            )
            p_seq = float(
                sequential_two_proportions(
                    control["positive"],
                    control["requests"],
                    arm["positive"],
                    arm["requests"],
                    spec.mde or _DEFAULT_TAU,
                )[-1]
            )
            base = control["rate"]
        else:
            d = mean_difference(
                control["metric_mean"] or 0.0,
                control["metric_var"] or 0.0,
                control["requests"],
                arm["metric_mean"] or 0.0,
                arm["metric_var"] or 0.0,
                arm["requests"],
            )
            sums_a = mean_sums(control["metric_mean"], control["metric_var"], control["requests"])
            sums_b = mean_sums(arm["metric_mean"], arm["metric_var"], arm["requests"])
            p_seq = float(
                sequential_mean_difference(
                    *sums_a, control["requests"], *sums_b, arm["requests"], tau=spec.mde
                )[-1]
            )
            base = control["metric_mean"]
        p_seq = min(p_seq, float(running_min.get(arm["arm"], 1.0)))
        out.append(
            {
                "arm": arm["arm"],
                "vs": control["arm"],
                "metric": spec.metric,
                "kind": "rate" if binary else "mean",
                "diff": d.diff,
                "diff_low": d.low,
                "diff_high": d.high,
                "relative_lift": d.diff / base if base else None,
                "z": d.z,
                "p_value": d.p_value,
                "always_valid_p": p_seq,
                "always_valid_test": _TESTS[binary],
            }
        )
    return out


#: What the always-valid p-value of a comparison tests, by whether the metric is a rate.
_TESTS = {
    True: "mSPRT, difference of rates (normal mixture)",
    False: "mSPRT, difference of means (normal mixture, plug-in variances)",
}


def _decide(
    exp: Experiment, arms: list[dict[str, Any]], comparisons: list[dict[str, Any]]
) -> dict[str, Any]:
    spec = exp.spec
    alpha = spec.alpha / max(1, len(comparisons))
    means = bool(comparisons) and comparisons[0]["kind"] == "mean"
    test = f"sequential (mSPRT on {'means' if means else 'rates'})"
    better = [c for c in comparisons if c["always_valid_p"] < alpha and c["diff"] > 0]
    worse = [c for c in comparisons if c["always_valid_p"] < alpha and c["diff"] < 0]
    if better:
        best = max(better, key=lambda c: c["diff"])
        return {
            "winner": best["arm"],
            "test": test,
            "reason": f"{best['arm']} beats {best['vs']} on {spec.metric} by {best['diff']:+.4f} "
            f"(always-valid p={best['always_valid_p']:.3g} < {alpha:.3g})",
        }
    if worse and len(worse) == len(comparisons):
        return {
            "winner": arms[0]["arm"],
            "test": test,
            "reason": f"every challenger is worse than {arms[0]['arm']} on {spec.metric}",
        }
    return {
        "winner": None,
        "test": test,
        "reason": f"no arm differs from {arms[0]['arm']} at alpha={spec.alpha} yet",
    }


def interleave_summary(store: ExperimentStore, exp: Experiment) -> dict[str, Any]:
    """Wins, losses and ties per impression, the preference and its sequential test."""
    a, b = exp.spec.arms
    impressions = store.arm_totals(exp.name, kind="interleave").get(a, {}).get("requests", 0)
    credits = store.request_outcomes(exp.name, exp.spec.metric)
    wins_a = sum(1 for c in credits.values() if c.get(a, 0.0) > c.get(b, 0.0))
    wins_b = sum(1 for c in credits.values() if c.get(b, 0.0) > c.get(a, 0.0))
    n = max(int(impressions), wins_a + wins_b)
    decided = wins_a + wins_b
    total = wins_b - wins_a
    tau = exp.spec.mde or 0.05
    p_seq = float(sequential_mean(total, decided, n, tau)[-1]) if n > 1 else 1.0
    p_seq = min(p_seq, float(exp.state.get("always_valid_p", {}).get(b, 1.0)))
    z = total / math.sqrt(decided) if decided else 0.0
    from statistics import NormalDist

    p_fixed = 2.0 * (1.0 - NormalDist().cdf(abs(z))) if decided else 1.0
    if p_seq < exp.spec.alpha and total != 0:
        best = b if total > 0 else a
        decision = {
            "winner": best,
            "test": "sequential (mSPRT) on per-impression preference",
            "reason": f"{best} wins {max(wins_a, wins_b)} of {decided} decided impressions "
            f"(always-valid p={p_seq:.3g})",
        }
    else:
        decision = {"winner": None, "test": "sequential (mSPRT)", "reason": "no preference yet"}
    return {
        "impressions": n,
        "wins": {a: wins_a, b: wins_b},
        "ties": n - decided,
        "preference": total / n if n else 0.0,
        "p_value": p_fixed,
        "always_valid_p": p_seq,
        "decision": decision,
    }


def shadow_summary(store: ExperimentStore, exp: Experiment, threshold: float = 0.5) -> dict:
    """Champion vs mirrored challenger on the same requests: agreement, correlation, latency."""
    champion, challenger = exp.spec.arms
    served: dict[str, tuple[float | None, float | None]] = {}
    mirrored: dict[str, tuple[float | None, float | None, bool]] = {}
    for ts, rid, arm, lat, err, score in store.timeline(exp.name):
        del ts
        if arm == champion:
            served[rid] = (score, lat)
        elif arm == challenger:
            mirrored[rid] = (score, lat, bool(err))
    pairs = [
        (served[r][0], m[0])
        for r, m in mirrored.items()
        if r in served and None not in (served[r][0], m[0])
    ]
    a = np.asarray([p[0] for p in pairs], dtype=np.float64)
    b = np.asarray([p[1] for p in pairs], dtype=np.float64)
    lat_a = [v[1] for v in served.values() if v[1] is not None]
    lat_b = [v[1] for v in mirrored.values() if v[1] is not None]
    pa, pb = percentiles(lat_a, [50, 99]), percentiles(lat_b, [50, 99])
    corr = float(np.corrcoef(a, b)[0, 1]) if a.size > 2 and a.std() > 0 and b.std() > 0 else None
    return {
        "compared": int(a.size),
        "mirrored": len(mirrored),
        "challenger_errors": sum(1 for m in mirrored.values() if m[2]),
        "agreement": float(np.mean((a >= threshold) == (b >= threshold))) if a.size else None,
        "score_correlation": corr,
        "mean_abs_diff": float(np.mean(np.abs(a - b))) if a.size else None,
        "latency_p50_ms": {champion: pa[0], challenger: pb[0]},
        "latency_p99_ms": {champion: pa[1], challenger: pb[1]},
        "latency_p50_diff_ms": pb[0] - pa[0] if None not in (pa[0], pb[0]) else None,
    }
