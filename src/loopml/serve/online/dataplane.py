"""The data plane: the one place every transport calls to predict.

REST (V2, MLflow, simple JSON), gRPC and async jobs only translate their wire format
into named columns and call :meth:`DataPlane.infer`. It routes (condition-based
serving), finds the loaded model, validates against its signature, answers from the
cache, applies the on/off switch, breaker, queue limit and timeout (answering the
fallback, flagged, when the model must not or cannot answer), batches, records
metrics and the prediction log. A rollout policy wraps this one method.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import LoopmlError, UnavailableError, ValidationError
from loopml.core.names import check_name
from loopml.serve.online.batcher import OverloadedError
from loopml.serve.online.cache import PredictionCache, cache_key
from loopml.serve.online.metrics import Metrics
from loopml.serve.online.model import LoadedModel
from loopml.serve.online.predlog import PredictionLog
from loopml.serve.online.repository import ModelRepository
from loopml.serve.online.settings import ModelSettings, parse_target

_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def _one_row(columns: Mapping[str, Any]) -> bool:
    """Whether every column holds exactly one value (a single-row request)."""
    if not columns:
        return False
    for values in columns.values():  # noqa: SIM110 - a plain loop: this runs per request
        if type(values) is not list or len(values) != 1:
            return False
    return True


def _next_id() -> str:
    """A unique request id without a syscall per request (process prefix + counter)."""
    return f"{_PREFIX}-{next(_COUNTER)}"


@dataclass
class InferResult:
    """What a transport encodes: named outputs plus how they were produced."""

    model: str
    version: int
    outputs: dict[str, np.ndarray]
    rows: int
    request_id: str
    latency_ms: float = 0.0
    fallback: str | None = None
    cached: bool = False
    routed_from: str | None = None
    #: the input columns (arrays, or one-item lists of a single row), for the prediction log
    _columns: dict[str, Any] | None = field(default=None, repr=False)

    def parameters(self) -> dict[str, Any]:
        """Response-level V2 parameters (only what is notable)."""
        out: dict[str, Any] = {}
        if self.fallback:
            out["fallback"] = True
            out["fallback_reason"] = self.fallback
        if self.cached:
            out["cached"] = True
        if self.routed_from:
            out["routed_from"] = self.routed_from
        return out


class DataPlane:
    """Route, validate, cache, batch and guard predictions for every served model."""

    def __init__(
        self,
        repository: ModelRepository,
        settings_for: Any,
        *,
        metrics: Metrics,
        cache: PredictionCache | None = None,
        predlog: PredictionLog | None = None,
        timeout_ms: float = 1000.0,
        online_store: Any = None,
    ) -> None:
        self.repository = repository
        self.settings_for = settings_for
        self.metrics = metrics
        self.cache = cache
        self.predlog = predlog
        self.timeout_ms = timeout_ms
        self.online_store = online_store

    # -- the one entry point ---------------------------------------------------------------
    async def infer(
        self,
        model_name: str,
        columns: Mapping[str, Any],
        *,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        timeout_ms: float | None = None,
        protocol: str = "v2",
        arm: str | None = None,
        entity_id: str | None = None,
    ) -> InferResult:
        """Predict ``columns`` with ``model_name`` (at ``version``: number or alias).

        ``arm`` and ``entity_id`` are recorded in the prediction log when a rollout router
        chose the version for this unit.
        """
        start = time.perf_counter()
        if model_name not in self.repository.default:  # served names were checked at load
            check_name(model_name, "model name")
        routed_from = None
        settings = self.settings_for(model_name)
        if version is None and settings.route_by:
            target = self._route(model_name, settings, columns, headers, params)
            if target is not None:
                routed_from = model_name
                model_name, version = target
        model = await self.repository.get(model_name, version)
        rid = request_id or (headers or {}).get("x-request-id") or _next_id()
        try:
            result = await self._predict(model, columns, rid, timeout_ms)
        except LoopmlError as exc:
            code = exc.status_code
            self.metrics.requests.labels(model.name, protocol, str(code)).inc()
            raise
        result.routed_from = routed_from
        elapsed = time.perf_counter() - start
        result.latency_ms = elapsed * 1000.0
        m = self.metrics
        m.requests.labels(model.name, protocol, "200").inc()
        m.latency.labels(model.name).observe(elapsed)
        if self.predlog is not None and result._columns is not None:
            self.predlog.record(
                request_id=rid,
                model=model.name,
                version=model.version,
                columns=result._columns,
                outputs=result.outputs,
                n=result.rows,
                latency_ms=result.latency_ms,
                rate=model.settings.log_sample_rate,
                arm=arm or (headers or {}).get("x-loopml-arm"),
                entity_id=entity_id,
            )
        return result

    async def _predict(
        self, model: LoadedModel, columns: Mapping[str, Any], rid: str, timeout_ms: float | None
    ) -> InferResult:
        settings = model.settings
        use_cache = self.cache is not None and settings.cache
        if not use_cache and model.checks_own_rows and _one_row(columns):
            # the flavour's single-row path validates the row itself (and takes the
            # full validation, with its errors, for anything unusual): no arrays to build
            valid, n = columns, 1
        else:
            valid = model.validate(columns)
            n = len(next(iter(valid.values()))) if valid else 0
        if n == 0:
            return InferResult(model.name, model.version, model.empty_outputs(), 0, rid)
        if not settings.enabled:
            return self._fallback(
                model,
                n,
                rid,
                "disabled",
                f"model {model.name!r} is switched off ([models.{model.name}] enabled = false)",
            )
        key = None
        if use_cache:
            key = cache_key(model.name, model.version, valid)
            hit = await self.cache.get(key)
            m = self.metrics
            m.cache.labels(model.name, "hit" if hit is not None else "miss").inc()
            if hit is not None:
                return InferResult(
                    model.name, model.version, hit, n, rid, cached=True, _columns=valid
                )
        breaker = model.breaker
        if not breaker.allow():
            return self._fallback(
                model,
                n,
                rid,
                "circuit-open",
                f"model {model.name!r} is failing; its circuit breaker is open",
            )
        timeout = (
            timeout_ms
            if timeout_ms is not None
            else settings.timeout_ms
            if settings.timeout_ms is not None
            else self.timeout_ms
        )
        try:
            raw = await model.batcher.submit(valid, n, timeout / 1000.0 if timeout else None)
        except ValidationError:
            breaker.success()  # the model is fine; the input was not
            raise
        except OverloadedError as exc:
            return self._fallback(model, n, rid, "overloaded", exc.message)
        except TimeoutError:
            breaker.failure()
            self._breaker_metric(model)
            return self._fallback(
                model,
                n,
                rid,
                "timeout",
                f"model {model.name!r} did not answer within {timeout:.0f} ms",
            )
        except Exception as exc:  # noqa: BLE001 - a failing model answers the fallback or 503
            breaker.failure()
            self._breaker_metric(model)
            return self._fallback(
                model, n, rid, "error", f"model {model.name!r} failed: {type(exc).__name__}: {exc}"
            )
        was_closed = breaker.state == "closed"
        breaker.success()
        if not was_closed:
            self._breaker_metric(model)
        outputs = model.postprocess(raw)
        m = self.metrics
        m.rows.labels(model.name, model.version_label).inc(n)
        if key is not None and self.cache is not None:
            await self.cache.put(key, outputs)
        result = InferResult(model.name, model.version, outputs, n, rid)
        result._columns = valid
        return result

    def _fallback(self, model: LoadedModel, n: int, rid: str, reason: str, why: str) -> InferResult:
        outputs = model.fallback_outputs(n)
        if outputs is None:
            raise UnavailableError(
                f"{why}; no fallback is configured (set [models.{model.name}] fallback = ... "
                "to answer with e.g. the class prior instead)",
                model=model.name,
                reason=reason,
            )
        m = self.metrics
        m.child(m.fallbacks, model.name, reason).inc()
        return InferResult(model.name, model.version, outputs, n, rid, fallback=reason)

    def _breaker_metric(self, model: LoadedModel) -> None:
        m = self.metrics
        m.child(m.breaker, model.name).set(1.0 if model.breaker.state == "open" else 0.0)

    # -- condition-based serving -----------------------------------------------------------
    def _route(
        self,
        name: str,
        settings: ModelSettings,
        columns: Mapping[str, Any],
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
    ) -> tuple[str, str | None] | None:
        source = settings.route_source()
        if source is None:
            return None
        kind, key = source
        value: Any = None
        if kind == "header":
            value = (headers or {}).get(key)
        else:
            if params and key in params:
                value = params[key]
            elif key in columns:
                values = np.asarray(columns[key]).reshape(-1)
                if values.size and all(v == values[0] for v in values.tolist()):
                    value = values[0]
        if value is None:
            return None
        target = settings.routes.get(str(value))
        if target is None:
            return None
        routed, ref = parse_target(target, f"models.{name}.routes")
        return routed, ref

    # -- online features --------------------------------------------------------------------
    async def lookup(
        self, model_name: str, entities: Mapping[str, Any], version: str | None = None
    ) -> dict[str, Any]:
        """The model's input features for ``entities`` from the online store.

        Views come from ``[models.<name>] feature_views`` or, when unset, every
        materialised view whose features the model uses.
        """
        if self.online_store is None:
            raise UnavailableError("no online store is configured ([storage] online)")
        model = await self.repository.get(model_name, version)
        wanted = set(model.signature.names)
        views = model.settings.feature_views or await asyncio.to_thread(self.online_store.views)
        row: dict[str, Any] = {}
        for view in views:
            info = await asyncio.to_thread(self.online_store.view_info, view)
            if info is None:
                raise ValidationError(
                    f"feature view {view!r} was never materialised; run `loopml features "
                    "materialize`",
                    field="feature_views",
                )
            if not wanted.intersection(info["features"]):
                continue
            key = info["entity_key"]
            if key not in entities and "" in entities:  # {"entity_id": ...} shortcut
                entities = {**entities, key: entities[""]}
            if key not in entities:
                raise ValidationError(
                    f"feature view {view!r} is keyed by {key!r}; send it in 'entities' "
                    f"(got {sorted(entities)})",
                    field="entities",
                )
            found = (await self.online_store.aread(view, [entities[key]]))[0]
            if found is None:
                raise ValidationError(
                    f"{key} {entities[key]!r} has no features in view {view!r} (unknown entity "
                    "or not materialised yet)",
                    field=key,
                )
            row.update({k: v for k, v in found.items() if k in wanted})
        return row
