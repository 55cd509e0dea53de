"""One conformance suite every Predictor flavour must pass: ``check_predictor``.

Like scikit-learn's ``estimator_checks`` and River's ``checks``: each check is a
small function with a name, a failure raises ``AssertionError`` naming the check and
what differed, and a flavour that cannot support a check skips it by name (and says
why in its own tests).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import NotFittedError, SignatureError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.predict.predictor import Predictor

MakePredictor = Callable[[], "Predictor"]


def check_predictor(
    make_predictor: MakePredictor,
    sample_frame: pd.DataFrame,
    *,
    skip: Collection[str] = (),
    atol: float = 1e-9,
) -> list[str]:
    """Run every conformance check; return the names of those that ran.

    Parameters
    ----------
    make_predictor:
        Builds a fresh Predictor each call, typically
        ``lambda: load_predictor(registry, "ctr", 1)`` so the registry round trip
        with hash verification is part of what is checked.
    sample_frame:
        At least two rows with every signature column (extra columns are fine).
    skip:
        Names of checks this flavour cannot support (see :data:`CHECKS`).
    atol:
        Absolute tolerance for comparisons between two ways of predicting.
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValidationError(f"unknown check(s) to skip {unknown}; valid: {sorted(CHECKS)}")
    if len(sample_frame) < 2:
        raise ValidationError(
            f"sample_frame needs at least 2 rows, got {len(sample_frame)}", field="sample_frame"
        )
    predictor = make_predictor().load()
    ran = []
    for name, check in CHECKS.items():
        if name in skip:
            continue
        try:
            check(make_predictor, predictor, sample_frame, atol)
        except AssertionError as exc:
            raise AssertionError(f"{predictor!r} failed check {name!r}: {exc}") from exc
        ran.append(name)
    return ran


# -- the checks ------------------------------------------------------------------------------
def check_output_shape(make, p, frame, atol) -> None:
    """Binary/regression give ``(n,)``, multiclass ``(n, k)``; probabilities are in [0, 1]."""
    out = p.predict(frame)
    n, task = len(frame), p.signature.task
    if task == "multiclass":
        k = len(p.signature.classes or ())
        _expect(out.shape == (n, k), f"expected shape {(n, k)}, got {out.shape}")
        _expect(np.allclose(out.sum(axis=1), 1.0, atol=1e-6), "class probabilities must sum to 1")
    else:
        _expect(out.shape == (n,), f"expected shape {(n,)}, got {out.shape}")
    _expect(np.isfinite(out).all(), "predictions contain NaN or infinity")
    if task in ("binary", "multiclass"):
        _expect(((out >= 0) & (out <= 1)).all(), "probabilities outside [0, 1]")


def check_reload(make, p, frame, atol) -> None:
    """A second predictor (re-loaded from the registry, hash verified) answers the same."""
    other = make().load()
    _expect(other is not p, "make_predictor returned the same object twice; it must build anew")
    _close(p.predict(frame), other.predict(frame), atol, "a re-loaded predictor")
    if p.model_version is not None:
        _expect(p.sha256 == p.model_version.sha256, "sha256 differs from the registry record")


def check_unload(make, p, frame, atol) -> None:
    """An unloaded predictor refuses to predict with NotFittedError, and loads again."""
    q = make().load()
    before = q.predict(frame)
    q.unload()
    _expect(not q.ready, "ready is still True after unload()")
    try:
        q.predict(frame)
    except NotFittedError:
        pass
    else:
        raise AssertionError("predict() after unload() did not raise NotFittedError")
    _close(before, q.load().predict(frame), atol, "predictions after unload/load")


def check_column_order(make, p, frame, atol) -> None:
    """Columns are matched by name: shuffling them changes nothing."""
    names = list(frame.columns)
    shuffled = frame[list(np.random.default_rng(7).permutation(names))]
    reversed_ = frame[names[::-1]]
    base = p.predict(frame)
    _close(base, p.predict(shuffled), atol, "shuffled columns")
    _close(base, p.predict(reversed_), atol, "reversed columns")


def check_extra_columns(make, p, frame, atol) -> None:
    """Columns the signature does not name are ignored."""
    wider = frame.copy()
    wider["__extra_number__"] = np.arange(len(frame), dtype=float)
    wider["__extra_text__"] = "ignored"
    _close(p.predict(frame), p.predict(wider), atol, "extra columns")


def check_missing_column(make, p, frame, atol) -> None:
    """A missing column raises SignatureError naming it."""
    for name in {p.signature.names[0], p.signature.names[-1]}:
        try:
            p.predict(frame.drop(columns=[name]))
        except SignatureError as exc:
            _expect(name in str(exc), f"SignatureError does not name {name!r}: {exc}")
        else:
            raise AssertionError(f"dropping column {name!r} did not raise SignatureError")
        row = {k: v for k, v in _rows(frame)[0].items() if k != name}
        try:
            p.predict_one(row)
        except SignatureError as exc:
            _expect(name in str(exc), f"predict_one's SignatureError does not name {name!r}")
        else:
            raise AssertionError(f"predict_one without {name!r} did not raise SignatureError")


def check_single_row(make, p, frame, atol) -> None:
    """``predict_one`` and one-row batches agree with the whole batch."""
    rows = _rows(frame)[:10]
    batch = p.predict(frame)[: len(rows)]  # the whole batch may take a different code path
    for i, row in enumerate(rows):
        one = np.asarray(p.predict_one(row), dtype=np.float64)
        _close(batch[i], one, atol, f"predict_one on row {i}")
        single = p.predict(frame.iloc[i : i + 1])
        _close(batch[i : i + 1], single, atol, f"one-row batch {i}")


def check_empty_batch(make, p, frame, atol) -> None:
    """An empty batch gives an empty result of the right shape, not an error."""
    out = p.predict(frame.iloc[:0])
    expected = (0, len(p.signature.classes or ())) if p.signature.task == "multiclass" else (0,)
    _expect(out.shape == expected, f"empty batch gave shape {out.shape}, expected {expected}")


def check_reproducible(make, p, frame, atol) -> None:
    """The same input gives bit-identical output on repeated calls and across instances."""
    first = p.predict(frame)
    _expect(np.array_equal(first, p.predict(frame)), "two calls on the same input differ")
    _expect(np.array_equal(first, make().load().predict(frame)), "two instances differ")


def check_input_kinds(make, p, frame, atol) -> None:
    """A mapping of lists, a DataFrame and an Arrow table give the same answer."""
    import pyarrow as pa

    base = p.predict(frame)
    as_lists = {c: frame[c].tolist() for c in frame.columns}
    _close(base, p.predict(as_lists), atol, "a mapping of lists")
    _close(base, p.predict(pa.Table.from_pandas(frame, preserve_index=False)), atol, "Arrow")


def check_missing_values(make, p, frame, atol) -> None:
    """A missing value in a nullable column is answered (finite), not an error."""
    nullable = [s.name for s in p.signature.inputs if s.nullable]
    if not nullable:
        return
    holes = frame.copy()
    for name in nullable:
        holes[name] = holes[name].astype(object)
        holes.loc[holes.index[0], name] = None
    out = p.predict(holes)
    _expect(np.isfinite(out).all(), "missing values gave NaN or infinite predictions")


def check_bad_value(make, p, frame, atol) -> None:
    """A non-number in a numeric column raises SignatureError naming the column."""
    numeric = [s.name for s in p.signature.inputs if s.kind != "category"]
    if not numeric:
        return
    bad = frame.copy()
    bad[numeric[0]] = bad[numeric[0]].astype(object)
    bad.loc[bad.index[0], numeric[0]] = "not-a-number"
    try:
        p.predict(bad)
    except SignatureError as exc:
        _expect(numeric[0] in str(exc), f"SignatureError does not name {numeric[0]!r}")
    else:
        raise AssertionError("a string in a numeric column did not raise SignatureError")


CHECKS: dict[str, Callable[[MakePredictor, Any, Any, float], None]] = {
    "output_shape": check_output_shape,
    "reload": check_reload,
    "unload": check_unload,
    "column_order": check_column_order,
    "extra_columns": check_extra_columns,
    "missing_column": check_missing_column,
    "single_row": check_single_row,
    "empty_batch": check_empty_batch,
    "reproducible": check_reproducible,
    "input_kinds": check_input_kinds,
    "missing_values": check_missing_values,
    "bad_value": check_bad_value,
}


# -- helpers ----------------------------------------------------------------------------------
def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python dicts (what a JSON request would give)."""
    out = []
    for record in frame.to_dict(orient="records"):
        out.append({str(k): _plain(v) for k, v in record.items()})
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and value != value:
            return None
    return value


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _close(a: Any, b: Any, atol: float, what: str) -> None:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shape {b.shape} differs from {a.shape}")
    if not np.allclose(a, b, atol=atol, rtol=0.0, equal_nan=True):
        worst = float(np.nanmax(np.abs(a - b)))
        raise AssertionError(f"{what}: predictions differ by up to {worst:.3g} (atol {atol})")
