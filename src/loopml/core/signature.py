"""A model's input signature: features by name, never by position.

Every serving pattern validates input against the signature before a model sees it,
so a wrong column is a 400 naming the field, not a silent mis-prediction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loopml.core.errors import SignatureError, ValidationError

_KINDS = ("float", "int", "category", "bool")


@dataclass(frozen=True)
class ColumnSpec:
    """One input feature: name, kind, and whether missing values are allowed."""

    name: str
    kind: str = "float"
    nullable: bool = True
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValidationError(
                f"column {self.name!r}: kind {self.kind!r} unknown; use one of {_KINDS}",
                field=self.name,
            )


@dataclass(frozen=True)
class Signature:
    """Ordered input columns plus what the output means.

    >>> sig = Signature((ColumnSpec("age"), ColumnSpec("country", "category")))
    >>> sorted(sig.validate({"age": [31.0], "country": ["kr"]}))
    ['age', 'country']
    >>> sig.validate({"age": [31.0]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.SignatureError: input is missing column(s) ['country']; the model ...
    """

    inputs: tuple[ColumnSpec, ...]
    task: str = "binary"
    classes: tuple[Any, ...] | None = None
    output: str = "probability of the positive class"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [asdict(c) for c in self.inputs]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        inputs = tuple(
            ColumnSpec(
                c["name"],
                c.get("kind", "float"),
                c.get("nullable", True),
                tuple(c["categories"]) if c.get("categories") is not None else None,
            )
            for c in data["inputs"]
        )
        classes = tuple(data["classes"]) if data.get("classes") is not None else None
        return cls(
            inputs,
            data.get("task", "binary"),
            classes,
            data.get("output", "probability of the positive class"),
            dict(data.get("extra", {})),
        )

    @classmethod
    def infer(cls, frame: Any, task: str = "binary", classes: Any = None) -> Signature:
        """Derive a signature from a pandas DataFrame's columns and dtypes."""
        cols = []
        for name, dtype in frame.dtypes.items():
            kind = dtype.kind
            if kind in "fc":
                spec = ColumnSpec(str(name), "float")
            elif kind in "iu":
                spec = ColumnSpec(str(name), "int")
            elif kind == "b":
                spec = ColumnSpec(str(name), "bool")
            else:
                spec = ColumnSpec(str(name), "category")
            cols.append(spec)
        return cls(tuple(cols), task, tuple(classes) if classes is not None else None)

    def validate(self, batch: Mapping[str, Any] | Any, allow_extra: bool = True) -> dict[str, Any]:
        """Check names, kinds and missing values; return ``{name: ndarray}`` in signature order.

        Extra columns are ignored unless ``allow_extra`` is False. Raises
        :class:`SignatureError` naming the missing/extra columns or the bad field.
        """
        columns = _as_columns(batch)
        missing = [n for n in self.names if n not in columns]
        extra = [n for n in columns if n not in self.names]
        if missing or (extra and not allow_extra):
            parts = []
            if missing:
                parts.append(f"is missing column(s) {missing}")
            if extra and not allow_extra:
                parts.append(f"has unexpected column(s) {extra}")
            raise SignatureError(
                f"input {' and '.join(parts)}; the model expects {self.names}",
                missing=missing,
                extra=extra,
            )
        out: dict[str, Any] = {}
        length = None
        for spec in self.inputs:
            arr = _coerce(spec, columns[spec.name])
            if length is None:
                length = len(arr)
            elif len(arr) != length:
                raise SignatureError(
                    f"column {spec.name!r} has {len(arr)} rows but {self.inputs[0].name!r} has "
                    f"{length}; every column needs the same number of rows",
                    field=spec.name,
                )
            out[spec.name] = arr
        return out


def _as_columns(batch: Any) -> dict[str, Any]:
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "to_pydict") and hasattr(batch, "schema"):  # pyarrow.Table
        return {
            name: batch.column(name).to_numpy(zero_copy_only=False) for name in batch.schema.names
        }
    if hasattr(batch, "columns") and hasattr(batch, "__getitem__"):  # pandas.DataFrame
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    raise SignatureError(
        f"input must be a mapping of column name to values, a pandas DataFrame or an Arrow "
        f"table, got {type(batch).__name__}"
    )


def _coerce(spec: ColumnSpec, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise SignatureError(
            f"column {spec.name!r} must be one-dimensional, got shape {arr.shape}; "
            "send one value per row",
            field=spec.name,
        )
    if spec.kind in ("float", "int", "bool"):
        if arr.dtype.kind in "fiub":
            out = arr.astype(np.float64, copy=False)
        else:
            try:
                out = np.array(
                    [np.nan if v is None else float(v) for v in arr.tolist()], dtype=np.float64
                )
            except (TypeError, ValueError):
                bad = next(v for v in arr.tolist() if not _is_number(v))
                raise SignatureError(
                    f"column {spec.name!r} expects numbers ({spec.kind}), got {bad!r}; "
                    "send a number or null",
                    field=spec.name,
                ) from None
        if np.isinf(out).any():
            raise SignatureError(
                f"column {spec.name!r} contains infinity; send a finite number or null",
                field=spec.name,
            )
        if not spec.nullable and np.isnan(out).any():
            raise SignatureError(
                f"column {spec.name!r} contains missing values but the model does not accept "
                "them; fill it before predicting",
                field=spec.name,
            )
        return out
    out = _categories(arr)
    if not spec.nullable and any(v is None for v in out):
        raise SignatureError(
            f"column {spec.name!r} contains missing values but the model does not accept them",
            field=spec.name,
        )
    return out


def _categories(arr: np.ndarray) -> np.ndarray:
    """Category values as an object array of str, None for missing (vectorised when possible)."""
    if arr.dtype.kind in "US":
        return arr.astype(object)
    if arr.dtype == object and len(arr) > 64:
        import pandas as pd

        kind = pd.api.types.infer_dtype(arr, skipna=True)
        if kind in ("string", "empty"):
            out = arr.copy()
            out[pd.isna(arr)] = None
            return out
    return np.array([None if _missing(v) else str(v) for v in arr.tolist()], dtype=object)


def _is_number(v: Any) -> bool:
    if v is None:
        return True
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
