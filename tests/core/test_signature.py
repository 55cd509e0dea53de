"""Signatures validate features by name and name the offending field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import SignatureError
from loopml.core.signature import ColumnSpec, Signature

SIG = Signature(
    (ColumnSpec("age"), ColumnSpec("country", "category"), ColumnSpec("n", "int", nullable=False))
)


def test_order_and_extra_columns_do_not_matter():
    cols = SIG.validate(
        {"n": [1, 2], "extra": [0, 0], "country": ["kr", None], "age": [30, np.nan]}
    )
    assert list(cols) == ["age", "country", "n"]
    assert cols["country"].tolist() == ["kr", None]
    assert cols["n"].dtype == np.float64


def test_missing_and_extra_are_listed_when_strict():
    with pytest.raises(SignatureError) as err:
        SIG.validate({"age": [1], "zzz": [1]}, allow_extra=False)
    assert err.value.fields["missing"] == ["country", "n"]
    assert err.value.fields["extra"] == ["zzz"]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"age": ["old"], "country": ["kr"], "n": [1]}, "column 'age' expects numbers.*'old'"),
        ({"age": [np.inf], "country": ["kr"], "n": [1]}, "'age' contains infinity"),
        ({"age": [1.0], "country": ["kr"], "n": [None]}, "'n' contains missing values"),
        ({"age": [[1.0, 2.0]], "country": ["kr"], "n": [1]}, "'age' must be one-dimensional"),
        ({"age": [1.0, 2.0], "country": ["kr"], "n": [1]}, "'country' has 1 rows"),
    ],
)
def test_bad_values_name_the_field(batch, message):
    with pytest.raises(SignatureError, match=message):
        SIG.validate(batch)


def test_infer_and_roundtrip_through_dict():
    frame = pd.DataFrame({"a": [1.0], "b": [1], "c": ["x"], "d": [True]})
    sig = Signature.infer(frame)
    assert [c.kind for c in sig.inputs] == ["float", "int", "category", "bool"]
    assert Signature.from_dict(sig.to_dict()) == sig


def test_dataframe_and_arrow_inputs():
    import pyarrow as pa

    frame = pd.DataFrame({"age": [1.0], "country": ["kr"], "n": [3]})
    assert SIG.validate(frame)["n"].tolist() == [3.0]
    assert SIG.validate(pa.Table.from_pandas(frame))["country"].tolist() == ["kr"]
