"""A loaded model version as the server holds it: predictor, batcher, breaker, output spec.

The Predictor gives arrays; this wraps them into named V2 outputs (``probability`` and
``label`` for a binary model, with the label from the configured threshold), and
builds the fallback answer for when the model must not be called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.serve.online.batcher import Batcher
from loopml.serve.online.breaker import CircuitBreaker
from loopml.serve.online.settings import ModelSettings

#: A model that predicts one row faster than this (seconds) runs its batches on the loop.
INLINE_ROW_S = 0.005
#: An inline batch slower than this moves the model to a worker thread for good.
INLINE_LIMIT_S = 0.05


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
    def version_label(self) -> str:
        """The version as a metric label (made once, not per request)."""
        found = self.__dict__.get("_version_label")
        if found is None:
            found = self.__dict__["_version_label"] = str(self.version)
        return found

    @property
    def signature(self) -> Signature:
        return self.predictor.signature

    def validate(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Signature-checked columns; all-numeric inputs take a one-allocation fast path.

        The fast path builds one ``(k, n)`` float matrix and checks it once; anything it
        cannot vouch for (categories, missing or ragged columns, infinities, NaN in a
        non-nullable column) goes through :meth:`Signature.validate`, which produces the
        same values or the error naming the field.
        """
        names = self._numeric_names
        if names is not None:
            try:
                matrix = np.array([columns[n] for n in names], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                matrix = None
            if matrix is not None and matrix.ndim == 2:
                finite = np.isfinite(matrix)
                if finite.all() or (self._all_nullable and not np.isinf(matrix[~finite]).any()):
                    return {n: matrix[i] for i, n in enumerate(names)}
        return self.signature.validate(columns)

    @property
    def _numeric_names(self) -> list[str] | None:
        cached = self.__dict__.get("_numeric")
        if cached is None:
            inputs = self.signature.inputs
            numeric = all(c.kind != "category" for c in inputs) and len(inputs) > 0
            cached = ([c.name for c in inputs] if numeric else [],)
            self.__dict__["_numeric"] = cached
            self.__dict__["_nullable"] = all(c.nullable for c in inputs)
        return cached[0] or None

    @property
    def _all_nullable(self) -> bool:
        return self.__dict__.get("_nullable", False)

    @property
    def checks_own_rows(self) -> bool:
        """Whether a one-row request can skip :meth:`validate`.

        True for models predicted one request at a time on the loop whose flavour has a
        single-row path (it checks the row's types itself and sends anything unusual
        through the full validation, so errors still name the field).
        """
        batcher = self.batcher
        return batcher.inline and not batcher.coalesce and self._row_path

    @property
    def _row_path(self) -> bool:
        found = self.__dict__.get("_own_rows")
        if found is None:
            found = "predict_one" in type(self.predictor).__dict__
            self.__dict__["_own_rows"] = found
        return found

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
            probs = np.ascontiguousarray(raw, dtype=np.float64)  # sklearn may give F-order
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
            "mode": (
                "thread"
                if not self.batcher.inline
                else "inline-batched"
                if self.batcher.coalesce
                else "inline-direct"
            ),
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
    predict = _validated_predict(predictor)
    one, eight = _warm_seconds(predict, predictor.signature)
    # batching pays when 8 rows in one call cost less than half of 8 single calls
    coalesce = one is None or eight is None or eight < 4.0 * one
    batcher = Batcher(
        predict,
        max_batch_size=batch_size,
        max_wait_s=(settings.max_wait_ms if settings.max_wait_ms is not None else max_wait_ms)
        / 1000.0,
        max_queue_rows=settings.max_queue_rows,
        inline=one is not None and one < INLINE_ROW_S,
        executor=executor,
        on_batch=on_batch,
        inline_limit_s=INLINE_LIMIT_S,
        coalesce=coalesce,
    )
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
    return LoadedModel(
        name,
        version,
        predictor,
        settings,
        batcher,
        breaker,
        ref=ref,
        warm_ms=(one or 0.0) * 1000.0,
    )


def _warm_seconds(predict: Any, signature: Signature) -> tuple[float | None, float | None]:
    """Best times of ``predict`` on 1 and on 8 typical rows; None where it fails on them.

    The two are timed alternately, for up to 60 rounds or ~0.1 s, and each keeps its
    best. Timed one after the other in a short burst, both could fall into the same
    moment of a busy start-up (another thread holding the interpreter, another process
    starting), and a fast model's one-row time read twice its real value sent it to
    micro-batching, which costs every request an extra turn of the event loop.
    """
    one_row, eight_rows = _typical_rows(signature, 1), _typical_rows(signature, 8)
    try:
        predict(one_row)
    except Exception:  # noqa: BLE001 - a model that cannot take zeros still serves, in a thread
        return None, None
    try:
        predict(eight_rows)
    except Exception:  # noqa: BLE001 - it answers one row; it is timed on one row only
        eight_rows = None
    clock = time.perf_counter
    best_one = best_eight = float("inf")
    began = clock()
    for _ in range(60):
        start = clock()
        predict(one_row)
        best_one = min(best_one, clock() - start)
        if eight_rows is not None:
            start = clock()
            predict(eight_rows)
            best_eight = min(best_eight, clock() - start)
        if clock() - began > 0.1:
            break
    return best_one, best_eight if eight_rows is not None else None


def _typical_rows(signature: Signature, rows: int) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for c in signature.inputs:
        if c.kind == "category":
            value = c.categories[0] if c.categories else "a"
            cols[c.name] = np.array([value] * rows, dtype=object)
        else:
            cols[c.name] = np.zeros(rows, dtype=np.float64)
    return cols


def _validated_predict(predictor: Any) -> Any:
    """The predictor's call for columns the data plane has already validated.

    ``Predictor._predict`` is the documented subclass hook that receives validated
    columns in signature order; calling it skips a second validation of every batch.
    Predictors without it (duck-typed ones) get the public ``predict``.
    """
    hook = getattr(predictor, "_predict", None)
    batch_fn = hook if callable(hook) else predictor.predict
    one = type(predictor).__dict__.get("predict_one")
    if one is None:  # no flavour-specific single-row path: every batch takes the batch call
        return batch_fn
    predict_one = predictor.predict_one

    def predict(columns: dict[str, np.ndarray]) -> np.ndarray:
        first = next(iter(columns.values()), None)
        if first is None or len(first) != 1:
            return batch_fn(columns)
        # a lone row takes the flavour's single-row path (e.g. LightGBM's fast C entry);
        # the data plane passes a single-row request's own one-item lists straight here
        out = predict_one(
            {k: v[0] if type(v) is list else v.tolist()[0] for k, v in columns.items()}
        )
        if isinstance(out, float):
            return np.array([out])
        return np.asarray(out, dtype=np.float64).reshape((1, -1) if np.ndim(out) else (1,))

    return predict
