"""Pipeline transformations: each option does what its docstring says, and converts to ONNX."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from loopml.core.errors import ValidationError
from loopml.features.transforms import MISSING, make_preprocessor

FRAME = pd.DataFrame(
    {
        "clicks": [0.0, 1.0, 3.0, np.nan, 7.0, 15.0],
        "age": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        "country": ["KR", "JP", None, "KR", "US", "KR"],
    }
)


def _out(pre, frame=FRAME):
    values = pre.fit(FRAME).transform(frame)
    return pd.DataFrame(values, columns=pre.get_feature_names_out())


def test_missing_values_are_imputed_with_the_median_and_flagged():
    out = _out(make_preprocessor(["clicks"], [], scaling="none"))
    assert out["num__clicks"].tolist() == [0.0, 1.0, 3.0, 3.0, 7.0, 15.0]  # median of the rest
    assert out["missing__clicks"].tolist() == [0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize(
    ("scaling", "check"),
    [
        ("standard", lambda v: np.isclose(v.mean(), 0) and np.isclose(v.std(), 1)),
        ("minmax", lambda v: v.min() == 0 and v.max() == 1),
        ("log", lambda v: np.allclose(v, np.log1p([10, 20, 30, 40, 50, 60]))),
        ("none", lambda v: v.tolist() == [10, 20, 30, 40, 50, 60]),
    ],
)
def test_scaling_options(scaling, check):
    out = _out(make_preprocessor(["age"], [], scaling=scaling))
    assert check(out["num__age"].to_numpy())


def test_buckets_cut_at_quantiles_one_hot_or_ordinal():
    onehot = _out(make_preprocessor(["age"], [], buckets={"age": 3}))
    bins = [c for c in onehot.columns if c.startswith("bucket_age")]
    assert len(bins) == 3 and onehot[bins].sum(axis=1).tolist() == [1.0] * 6
    assert onehot[bins].sum(axis=0).tolist() == [2.0, 2.0, 2.0]  # equal-frequency bins
    ordinal = _out(make_preprocessor(["age"], [], encoding="ordinal", buckets={"age": 3}))
    assert ordinal["bucket_age__age"].tolist() == [0, 0, 1, 1, 2, 2]
    assert "num__age" not in ordinal.columns  # bucketed instead of scaled


def test_one_hot_encoding_with_missing_and_unknown_categories():
    pre = make_preprocessor([], ["country"], encoding="onehot")
    out = _out(pre, pd.DataFrame({"country": ["JP", None, "FR"]}))
    assert list(out.columns) == [
        "cat__country_JP",
        "cat__country_KR",
        "cat__country_US",
        f"cat__country_{MISSING}",
    ]
    assert out.to_numpy().tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_ordinal_encoding_gives_integers_and_minus_one_for_unknown():
    out = _out(
        make_preprocessor([], ["country"], encoding="ordinal"),
        pd.DataFrame({"country": ["JP", "KR", None, "FR"]}),
    )
    assert out["cat__country"].tolist() == [0, 1, 3, -1]  # JP < KR < US < __missing__


def test_hash_encoding_has_fixed_width_and_is_deterministic():
    pre = make_preprocessor([], ["country"], encoding="hash", hash_features=8)
    out = _out(pre, pd.DataFrame({"country": ["KR", "KR", "brand-new"]}))
    assert out.shape == (3, 8)
    assert list(out.columns)[:2] == ["hash_country__country_0", "hash_country__country_1"]
    assert (out.iloc[0] == out.iloc[1]).all()
    assert np.abs(out.to_numpy()).sum(axis=1).tolist() == [1.0, 1.0, 1.0]


def test_options_are_validated_listing_the_valid_ones():
    with pytest.raises(
        ValidationError,
        match="scaling='zscore' is not an option; valid: 'standard', 'minmax', 'log', 'none'",
    ):
        make_preprocessor(["age"], [], scaling="zscore")
    with pytest.raises(ValidationError, match="encoding='embedding' .* 'onehot', 'ordinal'"):
        make_preprocessor([], ["country"], encoding="embedding")
    with pytest.raises(ValidationError, match="'country' is not one of the numeric columns"):
        make_preprocessor(["age"], ["country"], buckets={"country": 3})
    with pytest.raises(ValidationError, match="must be an integer >= 2"):
        make_preprocessor(["age"], [], buckets={"age": 1})
    with pytest.raises(ValidationError, match="both numeric and categorical"):
        make_preprocessor(["age"], ["age"])
    with pytest.raises(ValidationError, match="at least one"):
        make_preprocessor([], [])


def test_preprocessors_clone_and_pickle():
    pre = make_preprocessor(["clicks", "age"], ["country"], scaling="log").fit(FRAME)
    again = pickle.loads(pickle.dumps(pre))
    assert np.allclose(again.transform(FRAME), pre.transform(FRAME))
    assert np.allclose(clone(pre).fit(FRAME).transform(FRAME), pre.transform(FRAME))


@pytest.mark.parametrize("encoding", ["onehot", "ordinal", "hash"])
@pytest.mark.parametrize("scaling", ["standard", "log"])
def test_every_option_converts_to_onnx_with_the_same_output(scaling, encoding):
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    from loopml.features.onnx_export import register_onnx_converters

    register_onnx_converters()
    register_onnx_converters()  # idempotent
    pre = make_preprocessor(
        ["clicks", "age"], ["country"], scaling=scaling, encoding=encoding, buckets={"age": 3}
    ).fit(FRAME)
    types = [
        ("clicks", FloatTensorType([None, 1])),
        ("age", FloatTensorType([None, 1])),
        ("country", StringTensorType([None, 1])),
    ]
    model = to_onnx(pre, initial_types=types, target_opset=17)
    session = ort.InferenceSession(model.SerializeToString())
    feed = {
        "clicks": FRAME[["clicks"]].to_numpy(np.float32),
        "age": FRAME[["age"]].to_numpy(np.float32),
        "country": FRAME[["country"]].fillna("").to_numpy().astype(str).astype(object),
    }
    got = session.run(None, feed)[0]
    assert got.shape == pre.transform(FRAME).shape
    assert np.allclose(got, pre.transform(FRAME), atol=1e-5)
