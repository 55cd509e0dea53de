"""What happens to an experiment over its life: start, feedback, canary steps, stop, promote.

These are plain synchronous functions over an :class:`ExperimentStore`, so the CLI
(no server running) and the server's router (in a worker thread) make exactly the
same decisions and leave the same audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loopml.core.errors import ConflictError, NotFoundError, ValidationError
from loopml.rollout.guardrails import ArmWindow, judge
from loopml.rollout.records import Experiment, ExperimentSpec
from loopml.rollout.store import ExperimentStore

#: Champion windows smaller than this borrow the champion's whole-experiment figures
#: (at a 100% stage the champion serves nobody).
_MIN_CHAMPION_WINDOW = 20


def start(
    store: ExperimentStore,
    spec: ExperimentSpec,
    *,
    resolve: Callable[[str, str], int] | None = None,
    actor: str = "loopml",
) -> Experiment:
    """Validate ``spec``, check every arm resolves to a version, and store it running."""
    spec = spec.checked()
    if resolve is not None:
        for arm in spec.arms:
            try:
                resolve(spec.model, arm)
            except NotFoundError as exc:
                raise NotFoundError(
                    f"arm {arm!r} of model {spec.model!r} does not resolve to a version "
                    f"({exc.message}); register it or set the alias first",
                    field="arms",
                ) from None
    return store.create(spec, actor=actor)


def stop(store: ExperimentStore, name: str, reason: str = "", actor: str = "loopml") -> Experiment:
    """Stop routing: the model's default version serves every request again."""
    exp = store.get(name)
    if not exp.running:
        raise ConflictError(
            f"experiment {name!r} is already {exp.status}; nothing to stop", experiment=name
        )
    return store.update(
        name, action="stop", status="stopped", reason=reason or "stopped by hand", actor=actor
    )


def promote(
    store: ExperimentStore,
    name: str,
    registry: Any,
    arm: str | None = None,
    *,
    reason: str = "",
    actor: str = "loopml",
    winner: Callable[[Experiment], str | None] | None = None,
) -> dict[str, Any]:
    """Move the serving alias to ``arm`` (default: the challenger of a canary or shadow,
    the decided winner otherwise) and close the experiment as promoted."""
    exp = store.get(name)
    if exp.status in ("promoted", "rolled_back"):
        raise ConflictError(
            f"experiment {name!r} is {exp.status}; start a new one to promote again ({exp.reason})",
            experiment=name,
        )
    spec = exp.spec
    if arm is None:
        if spec.policy in ("canary", "shadow"):
            arm = spec.arms[1]
        else:
            arm = winner(exp) if winner is not None else None
            if arm is None:
                raise ConflictError(
                    f"experiment {name!r} has no winner yet; pass the arm to promote "
                    f"explicitly (one of {list(spec.arms)})",
                    experiment=name,
                )
    if arm not in spec.arms:
        raise ValidationError(
            f"arm {arm!r} is not in experiment {name!r}; arms are {list(spec.arms)}",
            field="arm",
        )
    if registry is None:
        raise ConflictError("this server has no registry to move aliases in", field="registry")
    alias = serving_alias(spec)
    version = registry.resolve(spec.model, arm)
    why = reason or f"experiment {name} ({spec.policy}) promoted arm {arm!r}"
    move = registry.set_alias(spec.model, alias, version, actor=actor, reason=why)
    if exp.running or exp.status == "stopped":
        store.update(name, action="promote", status="promoted", reason=why, actor=actor)
    return {
        "experiment": name,
        "model": spec.model,
        "arm": arm,
        "alias": alias,
        "from_version": move.from_version,
        "to_version": move.to_version,
    }


def serving_alias(spec: ExperimentSpec) -> str:
    """The alias that unversioned requests follow: the champion arm if it is an alias."""
    champion = spec.arms[0]
    return "production" if champion.lstrip("vV").isdigit() or champion == "latest" else champion


# -- feedback -----------------------------------------------------------------------------------
def record_feedback(
    store: ExperimentStore,
    exp: Experiment,
    rows: Sequence[Mapping[str, Any]],
    known: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Join outcomes to their assignments and store them; bad rows are reported, not lost.

    Each row: ``request_id`` (required), ``metric`` (default: the experiment's),
    ``value`` (default 1), ``item`` (the clicked item, needed for interleaving) and an
    optional ``event_id`` that makes redelivery count once. ``known`` maps recent request
    ids to their arm (or ``{item: arm}`` for interleaving) to skip the database.
    """
    clean: list[dict[str, Any]] = []
    reasons: list[str] = []
    for i, row in enumerate(rows):
        try:
            clean.append(_feedback_row(exp, row, i))
        except ValidationError as exc:
            reasons.append(exc.message)
    known = dict(known or {})
    missing = [r["request_id"] for r in clean if r["request_id"] not in known]
    if missing:
        for rid, found in store.assignments_for(exp.name, missing).items():
            known[rid] = arm_map(found)
    stored: list[dict[str, Any]] = []
    for row in clean:
        target = known.get(row["request_id"])
        if target is None:
            reasons.append(
                f"request_id {row['request_id']!r} was not routed by experiment {exp.name!r}"
            )
            continue
        if isinstance(target, dict):
            arm = target.get(str(row.get("item")))
            if arm is None:
                reasons.append(
                    f"request {row['request_id']!r} is interleaved: 'item' must name a shown "
                    f"item (got {row.get('item')!r})"
                )
                continue
        else:
            arm = target
        stored.append({**row, "arm": arm, "experiment": exp.name})
    added = store.add_outcomes(stored)
    return {
        "accepted": added,
        "duplicates": len(stored) - added,
        "rejected": len(reasons),
        "reasons": reasons[:20],
        "arms": [r["arm"] for r in stored],
    }


def _feedback_row(exp: Experiment, row: Mapping[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ValidationError(f"feedback row {i} must be an object", field="rows")
    rid = row.get("request_id")
    if not isinstance(rid, str) or not rid:
        raise ValidationError(f"feedback row {i}: 'request_id' must be a non-empty string")
    value = row.get("value", 1.0)
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float):
        raise ValidationError(f"feedback row {i}: 'value' must be a number, got {value!r}")
    out: dict[str, Any] = {
        "request_id": rid,
        "metric": str(row.get("metric") or exp.spec.metric),
        "value": float(value),
        "item": str(row["item"]) if row.get("item") is not None else None,
        "ts": time.time(),
    }
    if row.get("event_id") is not None:
        out["event_id"] = str(row["event_id"])[:64]
    return out


def arm_map(found: list[dict[str, Any]]) -> str | dict[str, str]:
    """A request's arm, or ``{item: arm}`` when it was interleaved."""
    teams: dict[str, str] = {}
    for row in found:
        if row["kind"] == "serve":
            return row["arm"]
        if row["kind"] == "interleave" and row["detail"]:
            teams.update({str(item): row["arm"] for item in json.loads(row["detail"])})
    return teams


# -- the canary ramp ----------------------------------------------------------------------------
def evaluate_canary(store: ExperimentStore, exp: Experiment, actor: str = "canary") -> Experiment:
    """Judge the current stage; advance, hold, or roll back with the reason recorded."""
    if exp.spec.policy != "canary" or not exp.running:
        return exp
    spec = exp.spec
    champion_arm, challenger_arm = spec.arms
    since = exp.stage_started_at
    challenger = _window(store, exp, challenger_arm, since)
    champion = _window(store, exp, champion_arm, since)
    if champion.requests < _MIN_CHAMPION_WINDOW:
        champion = _window(store, exp, champion_arm, None)
    verdict = judge(champion, challenger, spec.guardrails)
    try:
        if verdict.action == "rollback":
            return store.update(
                exp.name,
                action="rollback",
                status="rolled_back",
                reason=f"stage {exp.stage} ({spec.ramp[exp.stage]:g}%): {verdict.reason}",
                actor=actor,
                expected_revision=exp.revision,
            )
        if verdict.action == "advance" and exp.stage < len(spec.ramp) - 1:
            return store.update(
                exp.name,
                action="advance",
                stage=exp.stage + 1,
                reason=f"{spec.ramp[exp.stage]:g}% -> {spec.ramp[exp.stage + 1]:g}%: "
                f"{verdict.reason}",
                actor=actor,
                expected_revision=exp.revision,
            )
        if verdict.action == "advance" and not exp.state.get("ready"):
            return store.update(
                exp.name,
                action="ready",
                state={**exp.state, "ready": True},
                reason=f"100% reached and {verdict.reason}; promote to finish",
                actor=actor,
                expected_revision=exp.revision,
            )
    except ConflictError:  # another process decided first; its decision stands
        return store.get(exp.name)
    return exp


def _window(store: ExperimentStore, exp: Experiment, arm: str, since: float | None) -> ArmWindow:
    totals = store.arm_totals(exp.name, kind="serve", since=since).get(arm, {})
    outcomes = store.outcome_totals(exp.name, exp.spec.metric, since=since).get(arm, {})
    requests = int(totals.get("requests", 0))
    return ArmWindow(
        requests=requests,
        errors=int(totals.get("errors", 0)),
        latencies_ms=store.latencies(exp.name, arm, kind="serve", since=since, limit=5000),
        metric_n=requests,
        metric_successes=min(int(outcomes.get("positive", 0)), requests),
    )


def record_look(store: ExperimentStore, exp: Experiment) -> Experiment:
    """Keep the running minimum of each always-valid p-value in the experiment's state."""
    from loopml.rollout.analysis import always_valid_looks

    if not exp.running:
        return exp
    stored = dict(exp.state.get("always_valid_p", {}))
    looks = always_valid_looks(store, exp)
    lower = {a: p for a, p in looks.items() if p < stored.get(a, 1.0) - 1e-12}
    if not lower:
        return exp
    try:
        return store.update(
            exp.name,
            action="state",
            state={**exp.state, "always_valid_p": {**stored, **lower}},
            expected_revision=exp.revision,
        )
    except ConflictError:
        return store.get(exp.name)


def bandit_counts(store: ExperimentStore, exp: Experiment) -> tuple[list[float], list[float]]:
    """Stored successes and trials per arm, in arm order (the bandit's posterior)."""
    totals = store.arm_totals(exp.name, kind="serve")
    outcomes = store.outcome_totals(exp.name, exp.spec.metric)
    trials = [float(totals.get(a, {}).get("requests", 0)) for a in exp.spec.arms]
    wins = [float(outcomes.get(a, {}).get("positive", 0)) for a in exp.spec.arms]
    return wins, trials
