"""Smaller, faster variants of a model for devices (seed 002: quantisation, pruning, distillation).

Each variant is a real ONNX graph plus, where one exists, a native model that predicts
like it (so its own conversion parity can be checked too):

- ``int8``: dynamic 8-bit quantisation with onnxruntime.quantization; only MatMul/Gemm
  style operators quantise, so a tree ensemble is reported as not applicable;
- ``pruned-N``: a gradient-boosted model truncated to its first N% of boosting rounds
  (LightGBM, scikit-learn GradientBoosting / HistGradientBoosting);
- ``student-gbm`` / ``student-mlp``: distillation, a small model trained on the
  teacher's predicted probabilities (soft labels, as sample weights) over a transfer
  set; the MLP student is also quantised (``student-mlp-int8``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import ValidationError, did_you_mean
from loopml.core.signature import Signature
from loopml.serve.edge.boosters import is_lightgbm
from loopml.serve.edge.convert import to_onnx, unwrap

METHODS = ("quantize", "prune", "distill")
PRUNE_FRACTIONS = (0.5, 0.25, 0.125)
_QUANTISABLE = {"MatMul", "Gemm", "Conv", "Attention", "LSTM", "GRU"}


@dataclass
class Variant:
    """One candidate for the bundle."""

    name: str
    method: str
    detail: str
    onnx: bytes
    native: Callable[[Any], np.ndarray] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def parse_methods(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"all"``, ``"quantize,prune"`` or a list, validated.

    >>> parse_methods("prune, quantize")
    ['quantize', 'prune']
    """
    if value is None or value == "" or value == []:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [i.strip().lower() for i in items if i.strip()]
    if "all" in items:
        return list(METHODS)
    for item in items:
        if item not in METHODS:
            raise ValidationError(
                f"--compress {item!r} is unknown; {did_you_mean(item, [*METHODS, 'all'])}",
                field="compress",
            )
    return [m for m in METHODS if m in items]


def build_variants(
    model: Any,
    signature: Signature,
    original: bytes,
    methods: list[str],
    transfer: Any,
    teacher: Callable[[Any], np.ndarray],
    name: str = "model",
    version: int = 0,
    seed: int = 0,
) -> tuple[list[Variant], list[tuple[str, str]]]:
    """The original plus every variant ``methods`` allow; also (name, reason) for skipped ones.

    ``transfer`` is a DataFrame of signature columns the students learn from, and
    ``teacher`` predicts it in the Predictor output convention.
    """
    variants = [Variant("original", "none", "exact conversion", original, native=None)]
    skipped: list[tuple[str, str]] = []

    def add(candidate: Variant | str, label: str) -> None:
        if isinstance(candidate, str):
            skipped.append((label, candidate))
        else:
            variants.append(candidate)

    if "quantize" in methods:
        add(quantized(original, "int8", "dynamic int8 weights of the original"), "int8")
    if "prune" in methods:
        pruned = prune(model, signature, name, version)
        if isinstance(pruned, str):
            skipped.append(("pruned", pruned))
        variants.extend(pruned if isinstance(pruned, list) else [])
    if "distill" in methods:
        for kind in ("gbm", "mlp"):
            student = distill(kind, signature, transfer, teacher, name, version, seed)
            add(student, f"student-{kind}")
            if kind == "mlp" and "quantize" in methods and isinstance(student, Variant):
                add(
                    quantized(student.onnx, "student-mlp-int8", f"{student.detail}, int8"),
                    "student-mlp-int8",
                )
    return variants, skipped


# -- quantisation ----------------------------------------------------------------------
def quantized(data: bytes, name: str, detail: str) -> Variant | str:
    """Dynamic int8 quantisation, or the reason it does not apply."""
    import onnx

    proto = onnx.load_from_string(data)
    ops = sorted({n.op_type for n in proto.graph.node})
    if not _QUANTISABLE & set(ops):
        return (
            f"no quantisable operator: the graph uses {ops}; int8 applies to "
            f"{sorted(_QUANTISABLE)} (linear layers), not to tree ensembles"
        )
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    props = [(p.key, p.value) for p in proto.metadata_props]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        src.write_bytes(data)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser warns through the root logger
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except Exception as exc:  # noqa: BLE001 - the quantiser raises many untyped errors
            return f"onnxruntime.quantization refused the graph: {exc}"
        finally:
            root.setLevel(level)
        out = onnx.load(str(dst))
    del out.metadata_props[:]
    for key, value in props:
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    return Variant(name, "quantize", detail, out.SerializeToString())


# -- pruning ---------------------------------------------------------------------------
def prune(model: Any, signature: Signature, name: str, version: int) -> list[Variant] | str:
    """Variants keeping the first 50/25/12.5% of boosting rounds, or why not."""
    inner, _ = unwrap(model)
    final = inner.steps[-1][1] if hasattr(inner, "steps") else inner
    rounds = _rounds(final)
    if rounds is None:
        return (
            f"{type(final).__name__} is not a gradient-boosted model; pruning by boosting "
            "rounds applies to LightGBM and scikit-learn (Hist)GradientBoosting"
        )
    out: list[Variant] = []
    for fraction in PRUNE_FRACTIONS:
        keep = max(1, int(round(rounds * fraction)))
        if keep >= rounds or any(v.params["rounds"] == keep for v in out):
            continue
        truncated = _with_final(model, _truncate(final, keep))
        proto = to_onnx(truncated, signature, name=name, version=version)
        out.append(
            Variant(
                f"pruned-{int(fraction * 1000) / 10:g}",
                "prune",
                f"first {keep} of {rounds} boosting rounds",
                proto.SerializeToString(),
                native=_native(truncated, signature),
                params={"rounds": keep},
            )
        )
    return out or f"the model has only {rounds} boosting round(s); nothing to prune"


def _rounds(est: Any) -> int | None:
    kind = type(est).__name__
    if is_lightgbm(est) and hasattr(est, "header"):  # loopml's LightGBMModel
        return int(est.booster.current_iteration())
    if type(est).__module__.startswith("lightgbm"):
        booster = est if hasattr(est, "dump_model") else est.booster_
        return int(booster.current_iteration())
    if kind in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        return len(est.estimators_)
    if kind in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        return len(est._predictors)
    return None


def _truncate(est: Any, keep: int) -> Any:
    import lightgbm as lgb

    if hasattr(est, "header"):  # loopml's LightGBMModel: same header, fewer trees
        booster = lgb.Booster(model_str=est.booster.model_to_string(num_iteration=keep))
        return type(est)(booster, est.header)
    if isinstance(est, lgb.Booster):
        return lgb.Booster(model_str=est.model_to_string(num_iteration=keep))
    new = copy.deepcopy(est)
    if isinstance(est, lgb.LGBMModel):
        new._Booster = lgb.Booster(model_str=est.booster_.model_to_string(num_iteration=keep))
        new.set_params(n_estimators=keep)
    elif hasattr(est, "estimators_"):
        new.estimators_ = est.estimators_[:keep]
        new.train_score_ = est.train_score_[:keep]
        new.n_estimators = new.n_estimators_ = keep
    else:
        new._predictors = est._predictors[:keep]
        new.n_iter_ = keep
    return new


def _with_final(model: Any, final: Any) -> Any:
    """``model`` with its last estimator replaced (inside a FrameModel and a Pipeline)."""
    inner, _ = unwrap(model)
    if inner is not model:  # a FrameModel: keep its input preparation and correction
        wrapper = copy.copy(model)
        wrapper.estimator_ = _with_final(inner, final)
        return wrapper
    if not hasattr(model, "steps"):
        return final
    from sklearn.pipeline import Pipeline

    return Pipeline([*model.steps[:-1], (model.steps[-1][0], final)])


# -- distillation ----------------------------------------------------------------------
def distill(
    kind: str,
    signature: Signature,
    transfer: Any,
    teacher: Callable[[Any], np.ndarray],
    name: str,
    version: int,
    seed: int = 0,
) -> Variant | str:
    """Train a small student on the teacher's predictions over ``transfer``."""
    if len(transfer) < 50:
        return f"the transfer set has {len(transfer)} rows; distillation needs at least 50"
    from sklearn.pipeline import Pipeline

    soft = np.asarray(teacher(transfer), dtype=np.float64)
    pre = student_preprocessor(signature, scale=kind == "mlp")
    features = pre.fit_transform(transfer)
    X, y, weight = _soft_targets(features, soft, signature.task)
    head = _student_head(kind, signature.task, seed)
    head.fit(X, y, sample_weight=weight)
    student = Pipeline([("pre", pre), ("student", head)])
    proto = to_onnx(student, signature, name=name, version=version)
    detail = (
        f"LightGBM {head.n_estimators} trees x {head.num_leaves} leaves"
        if kind == "gbm"
        else f"MLP {head.hidden_layer_sizes}"
    )
    return Variant(
        f"student-{kind}",
        "distill",
        f"{detail} on teacher soft labels ({len(transfer)} rows)",
        proto.SerializeToString(),
        native=_native(student, signature),
    )


def student_preprocessor(signature: Signature, scale: bool) -> Any:
    """Impute + (scale) numbers, impute + one-hot categories: small and convertible."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c.name for c in signature.inputs if c.kind != "category"]
    cats = [c.name for c in signature.inputs if c.kind == "category"]
    num_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    ]
    if scale:
        num_steps.append(("scale", StandardScaler()))
    parts: list[tuple[str, Any, list[str]]] = []
    if numbers:
        parts.append(("num", Pipeline(num_steps), numbers))
    if cats:
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False, max_categories=32)
        fill = SimpleImputer(strategy="constant", fill_value="", keep_empty_features=True)
        parts.append(("cat", Pipeline([("impute", fill), ("onehot", encode)]), cats))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def _soft_targets(X: Any, soft: np.ndarray, task: str) -> tuple[Any, Any, Any]:
    """Soft labels as weighted copies: cross-entropy on p equals weights p and 1 - p."""
    if task == "regression":
        return X, soft, None
    probs = np.column_stack([1.0 - soft, soft]) if soft.ndim == 1 else soft
    k = probs.shape[1]
    X_rep = np.vstack([X] * k)
    y_rep = np.repeat(np.arange(k), len(X))
    w = probs.T.reshape(-1)
    keep = w > 1e-6
    return X_rep[keep], y_rep[keep], w[keep]


def _student_head(kind: str, task: str, seed: int) -> Any:
    if kind == "gbm":
        import lightgbm as lgb

        cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
        return cls(
            n_estimators=40,
            num_leaves=8,
            learning_rate=0.15,
            min_child_samples=20,
            random_state=seed,
            verbose=-1,
            n_jobs=1,
        )
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPRegressor if task == "regression" else MLPClassifier
    return cls(
        hidden_layer_sizes=(32,),
        alpha=1e-3,
        batch_size=256,
        max_iter=80,
        # no early stopping: its validation score is accuracy, meaningless on soft labels;
        # training stops when the (weighted cross-entropy) loss stops improving instead
        early_stopping=False,
        tol=1e-4,
        n_iter_no_change=5,
        random_state=seed,
    )


def _native(model: Any, signature: Signature) -> Callable[[Any], np.ndarray]:
    """A predict function in the Predictor output convention for a fitted variant."""

    def predict(frame: Any) -> np.ndarray:
        return native_predict(model, signature, frame)

    return predict


def native_predict(model: Any, signature: Signature, frame: Any) -> np.ndarray:
    """Predict with a scikit-learn or LightGBM model, shaped like ``Predictor.predict``."""
    if hasattr(model, "predict_columns"):  # loopml's FrameModel
        return model.predict_columns(signature.validate(frame))
    if hasattr(model, "header"):  # loopml's LightGBMModel
        columns = {name: frame[name].to_numpy() for name in frame.columns}
        out = model.predict_matrix(model.encode(columns))
        return out[:, -1] if signature.task == "binary" and out.ndim == 2 else out
    X = frame[signature.names] if hasattr(model, "dump_model") else frame
    if signature.task == "regression":
        return np.asarray(model.predict(X), dtype=np.float64).reshape(-1)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    else:  # lightgbm.Booster: probabilities straight from predict
        proba = np.asarray(model.predict(X.to_numpy(np.float64)), dtype=np.float64)
        if proba.ndim == 1:
            proba = np.column_stack([1.0 - proba, proba])
    return proba[:, -1] if signature.task == "binary" else proba
