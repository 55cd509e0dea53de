"""to_frame: the one place training and serving build a model's input frame."""

from __future__ import annotations

import numpy as np
import pytest

from loopml.core.errors import SignatureError, ValidationError
from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.frames import category_codes, to_frame

SIG = Signature(
    (
        ColumnSpec("n", "int"),
        ColumnSpec("c", "category", categories=("a", "b")),
        ColumnSpec("free", "category"),
    )
)


def test_category_mode_maps_unseen_and_missing_to_missing_codes():
    frame = to_frame(
        SIG, {"free": ["x", None, "z"], "c": ["b", None, "new"], "n": [1, 2, 3]}, "category"
    )
    assert list(frame.columns) == ["n", "c", "free"]
    assert frame["n"].dtype == np.float64
    assert frame["c"].cat.codes.tolist() == [1, -1, -1]
    assert list(frame["c"].cat.categories) == ["a", "b"]
    assert frame["free"].dtype == object  # no recorded categories: stays strings
    assert category_codes(SIG.inputs[1]) == {"a": 0, "b": 1}


def test_object_mode_keeps_strings_and_none():
    frame = to_frame(SIG, {"n": [1], "c": ["new"], "free": [None]})
    assert frame["c"].tolist() == ["new"] and frame["free"].tolist() == [None]


def test_errors_name_the_problem():
    with pytest.raises(SignatureError, match=r"missing column\(s\) \['free'\]"):
        to_frame(SIG, {"n": [1], "c": ["a"]})
    with pytest.raises(ValidationError, match="categorical must be one of"):
        to_frame(SIG, {"n": [1], "c": ["a"], "free": ["x"]}, "onehot")
