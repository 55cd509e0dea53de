"""The LightGBM flavour: the native Booster on a float64 matrix, the online fast path.

The artifact is not a pickle: one JSON header line (features, the category codes
recorded at training, task, classes, downsampling rate) followed by LightGBM's own
text model. Category strings are mapped to the integer codes the trees split on,
unseen or missing ones to NaN, exactly as LightGBM's scikit-learn wrapper does, so
predictions equal ``LGBMClassifier.predict_proba`` to floating-point precision.

Single rows go through LightGBM's ``PredictForMatSingleRowFast`` C entry point (set up
once at ``load()``), which skips the per-call parameter parsing and set-up that make
``Booster.predict`` cost tens of microseconds (and far more under OpenMP contention)
for one row; see :mod:`loopml.predict.lightgbm_fast` and ``bench/predict_lightgbm.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import Signature
from loopml.predict.flavours import Flavour
from loopml.predict.predictor import Predictor

FORMAT = "loopml.lightgbm/1"
#: Batches up to this many rows go row by row through the fast path; larger ones through
#: ``Booster.predict``, whose fixed setup cost is then shared (crossover measured ~8-16 rows).
SMALL_BATCH = 8
#: Below this many rows ``Booster.predict`` runs on one thread: OpenMP start-up and spinning
#: cost more than they save on small batches, and starve co-located serving workers.
PARALLEL_ROWS = 5000


class LightGBMModel:
    """A Booster plus what is needed to feed it raw columns: the servable form of the flavour.

    Build it with :meth:`from_estimator` (a fitted ``LGBMClassifier``/``LGBMRegressor``,
    or a ``loopml.train.FrameModel`` around one) or :meth:`from_bytes`.
    """

    def __init__(self, model: str | Any, header: dict[str, Any]) -> None:
        from loopml.predict.lightgbm_fast import CBooster

        # The model text is the source of truth; prediction runs on the C library so that
        # serving never imports the lightgbm package (and scikit-learn, pandas, SciPy).
        self.text: str = model if isinstance(model, str) else model.model_to_string()
        self.cbooster = CBooster(self.text)
        self._booster = None if isinstance(model, str) else model
        self.header = header
        self.features: list[str] = list(header["features"])
        self.categorical: dict[str, list[str]] = {
            k: [str(c) for c in v] for k, v in header["categorical"].items()
        }
        self.task: str = header["task"]
        self.classes: list[Any] | None = header.get("classes")
        self.downsample_rate: float | None = header.get("downsample_rate")
        self.num_outputs = self.cbooster.num_class
        self._codes = {
            name: {c: i for i, c in enumerate(cats)} for name, cats in self.categorical.items()
        }

    @property
    def booster(self) -> Any:
        """A ``lightgbm.Booster`` for training-side work (warm starts, pruning, ONNX export)."""
        if self._booster is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.text)
        return self._booster

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_estimator(cls, model: Any) -> LightGBMModel:
        """Extract the booster and category codes from a fitted LightGBM estimator."""
        if isinstance(model, LightGBMModel):
            return model
        import lightgbm as lgb

        estimator = getattr(model, "estimator_", model)
        if not isinstance(estimator, lgb.LGBMModel):
            raise ValidationError(
                f"the lightgbm flavour needs a fitted LGBMClassifier/LGBMRegressor (or a "
                f"FrameModel around one), got {type(estimator).__name__}; use flavour "
                "'sklearn' for other estimators",
                field="model",
            )
        if callable(getattr(estimator, "objective", None)):
            raise ValidationError(
                "LightGBM models with a custom objective function cannot be served natively "
                "(the booster does not know the link function); use flavour 'sklearn'",
                field="model",
            )
        text = estimator.booster_.model_to_string()
        booster = lgb.Booster(model_str=text)
        features = booster.feature_name()
        signature = getattr(model, "signature_", None)
        if signature is not None:
            features = signature.names
        if len(features) != booster.num_feature():
            raise ValidationError(
                f"the booster reads {booster.num_feature()} features but the model's signature "
                f"names {len(features)} ({features}); refit it through FrameModel",
                field="model",
            )
        cat_index = sorted(int(i) for i in booster.params.get("categorical_feature", []) or [])
        pandas_cats = booster.pandas_categorical or []
        if pandas_cats and len(pandas_cats) != len(cat_index):
            raise ValidationError(
                "cannot tell which columns the recorded pandas categories belong to (categorical "
                "columns were given both as pandas dtype and by index); train through "
                "loopml.train.train or FrameModel",
                field="model",
            )
        categorical = {features[i]: list(c) for i, c in zip(cat_index, pandas_cats, strict=False)}
        classes = getattr(estimator, "classes_", None)
        task = (
            "regression" if classes is None else ("binary" if len(classes) == 2 else "multiclass")
        )
        header = {
            "format": FORMAT,
            "lightgbm": lgb.__version__,
            "features": list(features),
            "categorical": {k: [_plain(c) for c in v] for k, v in categorical.items()},
            "task": task,
            "classes": None if classes is None else [_plain(c) for c in classes],
            "downsample_rate": getattr(model, "downsample_rate", None),
            "objective": booster.params.get("objective"),
        }
        return cls(booster, header)

    def to_bytes(self) -> bytes:
        head = json.dumps(self.header, sort_keys=True).encode()
        return head + b"\n" + self.text.encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LightGBMModel:
        head, sep, body = data.partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValidationError(
                "artifact is not a loopml LightGBM model (no format header); was it registered "
                "with another flavour?",
                field="flavour",
            )
        return cls(body.decode(), header)

    # -- prediction ------------------------------------------------------------------------
    def encode(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Raw columns (numbers, category strings) -> the float64 matrix the booster reads."""
        n = len(next(iter(columns.values()))) if columns else 0
        matrix = np.empty((n, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            values = columns[name]
            cats = self.categorical.get(name)
            if cats is None:
                matrix[:, j] = np.asarray(values, dtype=np.float64)
                continue
            if n <= 256:  # a dict lookup beats building pandas indexes for small batches
                lookup = self._codes[name]
                keys = [_cat_key(v) for v in np.asarray(values, dtype=object)]
                matrix[:, j] = [
                    lookup.get(k, math.nan) if k is not None else math.nan for k in keys
                ]
                continue
            # vectorised: pandas maps strings to positions in C; missing values map to -1.
            # (imported here, not above: serving single rows never needs pandas)
            import pandas as pd

            keys = pd.Index(np.asarray(values, dtype=object)).astype(str, copy=False)
            keys = keys.where(~pd.isna(np.asarray(values, dtype=object)), None)
            codes = pd.Index(cats, dtype=object).get_indexer(keys)
            codes = codes.astype(np.float64)
            codes[codes < 0] = np.nan
            matrix[:, j] = codes
        return matrix

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """Booster output -> Predictor convention, with the downsampling correction."""
        out = np.asarray(raw, dtype=np.float64)
        if self.task == "binary" and self.downsample_rate:
            rate = self.downsample_rate
            out = out / (out + (1.0 - out) / rate)
        return out

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        threads = 1 if len(matrix) < PARALLEL_ROWS else None
        return self.finish(self.cbooster.predict(matrix, num_threads=threads))

    def predict_proba(self, frame: Any) -> np.ndarray:
        """``(n, k)`` class probabilities from a raw frame, like the scikit-learn wrapper."""
        out = self.predict_matrix(self.encode(_columns(frame)))
        if self.task == "binary":
            return np.column_stack([1.0 - out, out])
        return out

    def predict(self, frame: Any) -> np.ndarray:
        out = self.predict_matrix(self.encode(_columns(frame)))
        if self.task == "regression" or self.classes is None:
            return out
        index = (out > 0.5).astype(int) if self.task == "binary" else out.argmax(axis=1)
        return np.asarray(self.classes, dtype=object)[index]


class LightGBMPredictor(Predictor):
    """Serve a LightGBM model natively; single rows on LightGBM's fast C path.

    Examples
    --------
    >>> import numpy as np, pandas as pd, lightgbm as lgb
    >>> from loopml.core.signature import Signature
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    >>> y = (X.x + rng.normal(size=400) > 0).astype(int)
    >>> clf = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(X, y)
    >>> p = LightGBMPredictor(clf, Signature.infer(X, classes=(0, 1))).load()
    >>> row = {"x": 1.5, "z": 0.0}
    >>> bool(abs(p.predict_one(row) - clf.predict_proba(pd.DataFrame([row]))[0, 1]) < 1e-12)
    True
    """

    flavour = "lightgbm"

    def __init__(
        self, model: Any, signature: Signature, name: str = "model", version: int = 0
    ) -> None:
        super().__init__(signature, name, version)
        self.model = LightGBMModel.from_estimator(model)
        self._fast: Any = None
        self._plan: list[tuple[str, dict[str, int] | None, bool]] = []
        self._others: list[str] = []

    def _load(self) -> None:
        from loopml.predict.lightgbm_fast import FastRowPredictor

        m = self.model
        specs = {s.name: s for s in self.signature.inputs}
        missing = [f for f in m.features if f not in specs]
        if missing:
            raise ValidationError(
                f"LightGBM model {self.name} reads feature(s) {missing} that its signature "
                f"does not declare ({self.signature.names}); register it with a matching signature",
                field="signature",
            )
        if self.signature.task != m.task:
            raise ValidationError(
                f"signature task {self.signature.task!r} does not match the LightGBM model's "
                f"{m.task!r}",
                field="task",
            )
        self._plan = [(f, m._codes.get(f), specs[f].nullable) for f in m.features]
        self._others = [n for n in self.signature.names if n not in set(m.features)]
        self._fast = FastRowPredictor(m.cbooster, len(m.features), m.num_outputs)

    def _unload(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        matrix = self.model.encode(columns)
        if len(matrix) <= SMALL_BATCH:
            raw = np.stack([self._fast.predict(values) for values in matrix])
            raw = raw[:, 0] if self.model.num_outputs == 1 else raw
            return self.model.finish(raw)
        return self.model.predict_matrix(matrix)

    def predict_one(self, row: Mapping[str, Any]) -> Any:
        """One row on the fast path; anything unusual takes the validating path instead."""
        self._check_ready()
        values = self._encode_row(row) if type(row) is dict or isinstance(row, Mapping) else None
        if values is None:
            return super().predict_one(row)
        m = self.model
        if m.num_outputs > 1:
            return m.finish(self._fast.predict(values))
        p = self._fast.predict_scalar(values)
        rate = m.downsample_rate
        if rate and m.task == "binary":
            p = p / (p + (1.0 - p) / rate)
        return p

    def _encode_row(self, row: Mapping[str, Any]) -> list[float] | None:
        """The row as floats in model order, or None when it needs full validation (or an error)."""
        values: list[float] = []
        append = values.append
        for name, codes, nullable in self._plan:
            value = row.get(name, _ABSENT)
            kind = type(value)
            if codes is None:
                if kind is float or kind is int:
                    x = float(value)
                    if x - x != 0.0 and (x == x or not nullable):  # inf, or NaN not allowed
                        return None
                    append(x)
                elif value is None and nullable:
                    append(math.nan)
                else:
                    return None
            elif kind is str:
                code = codes.get(value)
                append(math.nan if code is None else float(code))
            elif value is None and nullable:
                append(math.nan)
            else:
                return None
        for name in self._others:
            if name not in row:
                return None
        return values


_ABSENT = object()


def _cat_key(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _columns(frame: Any) -> dict[str, Any]:
    if isinstance(frame, Mapping):
        return dict(frame)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def save(model: Any) -> bytes:
    """Serialise a fitted LightGBM estimator (or FrameModel around one) without pickle."""
    return LightGBMModel.from_estimator(model).to_bytes()


def load(data: bytes) -> LightGBMModel:
    return LightGBMModel.from_bytes(data)


def _predictor(model: Any, signature: Signature, name: str, version: int) -> LightGBMPredictor:
    return LightGBMPredictor(model, signature, name, version)


FLAVOUR = Flavour("lightgbm", save, load, _predictor)
