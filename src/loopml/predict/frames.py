"""Validated columns -> the pandas DataFrame a scikit-learn style model is fed.

Training and serving both go through :func:`to_frame`, so a model sees exactly the
same dtypes offline and online: numbers as float64, categories either as object
strings (``None`` when missing) or as a pandas ``category`` with the categories
recorded at training time (unseen values become missing, never a new code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.core.errors import ValidationError
from loopml.core.signature import ColumnSpec, Signature

if TYPE_CHECKING:
    import pandas as pd

#: How category columns are presented: ``object`` strings, or pandas ``category`` dtype.
CATEGORICAL_MODES = ("object", "category")


def to_frame(signature: Signature, batch: Any, categorical: str = "object") -> pd.DataFrame:
    """Validate ``batch`` against ``signature`` and build the model's input frame.

    >>> from loopml.core.signature import ColumnSpec, Signature
    >>> sig = Signature((ColumnSpec("x"), ColumnSpec("c", "category", categories=("a", "b"))))
    >>> frame = to_frame(sig, {"c": ["b", "zz"], "x": [1, 2], "extra": [0, 0]}, "category")
    >>> list(frame.columns), frame["c"].cat.codes.tolist(), frame["x"].dtype.name
    (['x', 'c'], [1, -1], 'float64')
    """
    return columns_to_frame(signature, signature.validate(batch), categorical)


def columns_to_frame(
    signature: Signature, columns: Mapping[str, np.ndarray], categorical: str = "object"
) -> pd.DataFrame:
    """Build the frame from columns already validated by ``signature.validate``."""
    import pandas as pd

    if categorical not in CATEGORICAL_MODES:
        raise ValidationError(
            f"categorical must be one of {CATEGORICAL_MODES}, got {categorical!r}",
            field="categorical",
        )
    data: dict[str, Any] = {}
    for spec in signature.inputs:
        values = columns[spec.name]
        if spec.kind != "category":
            data[spec.name] = values
        elif categorical == "category" and spec.categories is not None:
            data[spec.name] = category_column(spec, values)
        else:
            data[spec.name] = pd.Series(values, dtype=object)
    n = len(next(iter(columns.values()))) if columns else 0
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def category_column(spec: ColumnSpec, values: np.ndarray) -> pd.Categorical:
    """Strings -> ``pd.Categorical`` with the recorded categories; unseen or None -> missing."""
    import pandas as pd

    categories = pd.Index(list(spec.categories or ()), dtype=object)
    codes = categories.get_indexer(pd.Index(values, dtype=object))
    return pd.Categorical.from_codes(codes, categories=categories)


def category_codes(spec: ColumnSpec) -> dict[str, int]:
    """``{category: integer code}`` in recorded order: the codes tree models split on."""
    return {str(c): i for i, c in enumerate(spec.categories or ())}
