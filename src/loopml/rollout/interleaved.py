"""An interleaved ranking response: both rankers score the request, one merged answer.

The request holds the candidate items (one row each). Both arms score all rows
concurrently; each arm's ranking is its scores sorted high to low, and team draft
(:mod:`loopml.rollout.interleaving`) merges them. The answer keeps the data plane's
shape: the main output becomes a score that sorts rows into the merged order
(``(n - rank) / n``) and a ``rank`` output gives each row's 0-based place. Which
arm contributed each item is stored with the assignment, so a click on an item is
credited to that arm's team.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.rollout.interleaving import team_draft
from loopml.rollout.routed import ActiveExperiment, RoutedResult, routed
from loopml.serve.online.dataplane import InferResult

if TYPE_CHECKING:
    from loopml.rollout.router import ExperimentRouter

_SCORES = ("probability", "prediction")


async def interleave(
    router: ExperimentRouter,
    active: ActiveExperiment,
    model_name: str,
    columns: Mapping[str, Any],
    unit: str | None,
    call: dict[str, Any],
) -> RoutedResult:
    """Serve one interleaved request and record both arms' assignments."""
    spec = active.experiment.spec
    rid = call["request_id"]
    (res_a, lat_a, err_a), (res_b, lat_b, err_b) = await asyncio.gather(
        router._call(active, 0, model_name, columns, unit, call),
        router._call(active, 1, model_name, columns, unit, {**call, "request_id": f"{rid}~b"}),
    )
    if res_a is None or res_b is None or err_a or err_b:
        # one ranker failed: the other answers alone, and the failure is on record
        for arm, res, lat, err in ((0, res_a, lat_a, err_a), (1, res_b, lat_b, err_b)):
            router._record(active, rid, unit, arm, "serve", lat, err, None, res)
        ok = 0 if res_a is not None and not err_a else 1
        good = res_a if ok == 0 else res_b
        if good is None or (err_a and err_b):
            if isinstance(err_a, BaseException):
                raise err_a
            return routed(res_a, spec.name, spec.arms[0])  # both answered from the fallback
        return routed(good, spec.name, spec.arms[ok])
    key = next((k for k in _SCORES if k in res_a.outputs), None)
    if key is None or key not in res_b.outputs or np.ndim(res_a.outputs[key]) != 1:
        raise ValidationError(
            f"interleaving needs one score per row (a binary or regression model); model "
            f"{model_name!r} returns {list(res_a.outputs)}",
            field="policy",
        )
    n = res_a.rows
    rank_a = np.argsort(-np.asarray(res_a.outputs[key], dtype=np.float64), kind="stable")
    rank_b = np.argsort(-np.asarray(res_b.outputs[key], dtype=np.float64), kind="stable")
    order, teams = team_draft(rank_a.tolist(), rank_b.tolist(), active.rng)
    items = _item_keys(columns, spec.item_column, n)
    team_items: tuple[list[str], list[str]] = ([], [])
    for row, team in zip(order, teams, strict=True):
        team_items[team].append(items[row])
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    outputs = {k: v for k, v in res_a.outputs.items() if k != "label"}
    outputs[key] = (n - rank) / float(n)
    outputs["rank"] = rank
    for arm, res, lat in ((0, res_a, lat_a), (1, res_b, lat_b)):
        detail = json.dumps(team_items[arm])
        router._record(active, rid, unit, arm, "interleave", lat, None, None, res, detail)
    merged = InferResult(model_name, res_a.version, outputs, n, rid, max(lat_a, lat_b))
    return routed(merged, spec.name, "interleaved")


def _item_keys(columns: Mapping[str, Any], item_column: str, n: int) -> list[str]:
    """Each row's item id (from ``item_column`` when the request has it, else its index)."""
    values = columns.get(item_column)
    if values is None:
        return [str(i) for i in range(n)]
    return [str(v) for v in np.asarray(values, dtype=object).reshape(-1).tolist()]
