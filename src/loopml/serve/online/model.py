"""A loaded model version as the server holds it: predictor, batcher, breaker, output spec.

The Predictor gives arrays; this wraps them into named V2 outputs (``probability`` and
``label`` for a binary model, with the label from the configured threshold), and
builds the fallback answer for when the model must not be called.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.serve.online.batcher import Batcher
from loopml.serve.online.breaker import CircuitBreaker
from loopml.serve.online.settings import ModelSettings

#: Above this one-batch time (seconds) a model's batches run in a worker thread.
INLINE_LIMIT_S = 0.002


@dataclass
class LoadedModel:
    """One servable model version."""

    name: str
    version: int
    predictor: Any
    settings: ModelSettings
    batcher: Batcher
    breaker: CircuitBreaker
    ref: str | None = None
    loaded_at: float = field(default_factory=time.time)
    warm_ms: float = 0.0

    @property
    def signature(self) -> Signature:
        return self.predictor.signature

    @property
    def task(self) -> str:
        return self.signature.task

    # -- metadata ---------------------------------------------------------------------------
    def input_specs(self) -> list[dict[str, Any]]:
        """V2 tensor metadata for each input column."""
        return [
            {"name": c.name, "datatype": "BYTES" if c.kind == "category" else "FP64", "shape": [-1]}
            for c in self.signature.inputs
        ]

    def output_specs(self) -> list[dict[str, Any]]:
        if self.task == "multiclass":
            classes = self.signature.classes or ()
            label_type = "INT64" if all(isinstance(c, int) for c in classes) else "BYTES"
            return [
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]},
                {"name": "label", "datatype": label_type, "shape": [-1]},
            ]
        if self.task == "binary":
            return [
                {"name": "probability", "datatype": "FP64", "shape": [-1]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ]
        return [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]

    # -- outputs ----------------------------------------------------------------------------
    def postprocess(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Named outputs from the predictor's array (threshold applied here, per config)."""
        if self.task == "binary":
            prob = np.asarray(raw, dtype=np.float64).reshape(-1)
            return {
                "probability": prob,
                "label": (prob >= self.settings.threshold).astype(np.int64),
            }
        if self.task == "multiclass":
            probs = np.asarray(raw, dtype=np.float64)
            classes = np.asarray(self.signature.classes or range(probs.shape[1]))
            if classes.dtype.kind not in "iu":
                classes = classes.astype(object)
            return {"probabilities": probs, "label": classes[np.argmax(probs, axis=1)]}
        return {"prediction": np.asarray(raw, dtype=np.float64).reshape(-1)}

    def fallback_outputs(self, n: int) -> dict[str, np.ndarray] | None:
        """The configured fallback for ``n`` rows, or None when none is configured."""
        value = self.settings.fallback
        if value is None:
            return None
        if self.task == "multiclass":
            k = len(self.signature.classes or ())
            probs = np.asarray(value if isinstance(value, tuple) else [value] * k, dtype=np.float64)
            if probs.shape != (k,):
                raise ValidationError(
                    f"[models.{self.name}] fallback has {probs.size} values but the model has "
                    f"{k} classes; list one probability per class",
                    field="fallback",
                )
            return self.postprocess(np.tile(probs, (n, 1)))
        scalar = value[0] if isinstance(value, tuple) else value
        return self.postprocess(np.full(n, scalar, dtype=np.float64))

    def empty_outputs(self) -> dict[str, np.ndarray]:
        k = len(self.signature.classes or ())
        shape = (0, k) if self.task == "multiclass" else (0,)
        return self.postprocess(np.zeros(shape, dtype=np.float64))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "flavour": getattr(self.predictor, "flavour", "unknown"),
            "task": self.task,
            "inputs": self.signature.names,
            "outputs": [o["name"] for o in self.output_specs()],
            "mode": "inline" if self.batcher.inline else "thread",
            "warm_ms": round(self.warm_ms, 3),
            "breaker": self.breaker.state,
            "settings": {
                "alias": self.settings.alias,
                "enabled": self.settings.enabled,
                "threshold": self.settings.threshold,
                "fallback": self.settings.fallback,
            },
        }


def build(
    name: str,
    version: int,
    predictor: Any,
    settings: ModelSettings,
    *,
    max_batch_size: int,
    max_wait_ms: float,
    executor: Executor | None,
    on_batch: Any = None,
    ref: str | None = None,
) -> LoadedModel:
    """Load, warm and time a predictor, then pick inline or thread batching for it."""
    predictor.load()
    batch_size = settings.max_batch_size or max_batch_size
    warm = _warm_seconds(predictor, batch_size)
    batcher = Batcher(
        predictor.predict,
        max_batch_size=batch_size,
        max_wait_s=(settings.max_wait_ms if settings.max_wait_ms is not None else max_wait_ms)
        / 1000.0,
        max_queue_rows=settings.max_queue_rows,
        inline=warm is not None and warm < INLINE_LIMIT_S,
        executor=executor,
        on_batch=on_batch,
    )
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
    return LoadedModel(
        name, version, predictor, settings, batcher, breaker, ref=ref,
        warm_ms=(warm or 0.0) * 1000.0,
    )


def _warm_seconds(predictor: Any, rows: int) -> float | None:
    """Time one full batch of typical rows (zeros / first category); None if it fails."""
    sig: Signature = predictor.signature
    cols: dict[str, Any] = {}
    for c in sig.inputs:
        if c.kind == "category":
            value = c.categories[0] if c.categories else "a"
            cols[c.name] = np.array([value] * rows, dtype=object)
        else:
            cols[c.name] = np.zeros(rows, dtype=np.float64)
    try:
        predictor.predict({k: v[:1] for k, v in cols.items()})
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            predictor.predict(cols)
            best = min(best, time.perf_counter() - start)
        return best
    except Exception:  # noqa: BLE001 - a model that cannot take zeros still serves, in a thread
        return None
