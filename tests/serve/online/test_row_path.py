"""One-row requests skip the column validation for flavours that check rows themselves.

The answers and the errors must be those of the full path: same probabilities, a 4xx
naming the field for every kind of bad value, and the row in the prediction log.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from loopml.core.config import ProjectConfig
from loopml.core.errors import ValidationError

from .conftest import FEATURES, make_project, train_models


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    from loopml.core.signature import Signature
    from loopml.predict.flavours import predictor_for
    from loopml.serve.online.app import create_app
    from loopml.serve.online.repository import StaticSource

    X, ctr, _ = train_models()
    predictor = predictor_for(ctr, Signature.infer(X, classes=(0, 1)), "lightgbm", name="ctr")
    root = make_project(
        tmp_path_factory.mktemp("rows") / "proj",
        "[online]\ngrpc_port = 0\n[models.ctr]\ncache = false\n",
    )
    app = create_app(ProjectConfig.load(root), StaticSource({"ctr": predictor}), grpc=False)
    loop = asyncio.new_event_loop()
    state = app.state

    async def start():
        await state.startup()
        while not state.repository.ready:
            await asyncio.sleep(0.01)

    loop.run_until_complete(start())
    yield loop, state, X, ctr
    loop.run_until_complete(state.shutdown())
    loop.close()


def _infer(plane, columns):
    loop, state, _, _ = plane
    return loop.run_until_complete(state.dataplane.infer("ctr", columns, protocol="simple"))


def test_one_row_answers_equal_the_model_and_take_the_row_path(plane):
    loop, state, X, ctr = plane
    model = loop.run_until_complete(state.repository.get("ctr"))
    assert model.checks_own_rows  # LightGBM: inline, no coalescing, its own row path
    expected = ctr.predict_proba(X.iloc[:50])[:, 1]
    for i in range(50):
        row = X.iloc[i]
        result = _infer(plane, {f: [float(row[f])] for f in FEATURES})
        assert result.rows == 1
        assert abs(result.outputs["probability"][0] - expected[i]) < 1e-12
        assert result.outputs["label"][0] == int(expected[i] >= 0.5)
    # integers are numbers too, and an extra field is ignored as on the full path
    row = {f: [1] for f in FEATURES} | {"comment": ["x"]}
    want = ctr.predict_proba(pd.DataFrame({f: [1.0] for f in FEATURES}))[0, 1]
    assert abs(_infer(plane, row).outputs["probability"][0] - want) < 1e-12


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("high", "f2"),
        (float("inf"), "f2"),
        ([1.0, 2.0], "f2"),
        ({"x": 1}, "f2"),
    ],
)
def test_bad_values_on_one_row_name_the_field(plane, value, words):
    row = {f: [0.1] for f in FEATURES}
    row["f2"] = [value]
    with pytest.raises(ValidationError) as err:
        _infer(plane, row)
    assert words in str(err.value)


@pytest.mark.parametrize("value", [None, True, "1.5", np.float64(0.3)])
def test_values_the_full_path_coerces_give_its_answer(plane, value):
    loop, state, _, _ = plane
    model = loop.run_until_complete(state.repository.get("ctr"))
    row = {f: [0.1] for f in FEATURES}
    row["f2"] = [value]
    full = model.predictor.predict(model.validate(row))
    assert _infer(plane, row).outputs["probability"][0] == pytest.approx(full[0], abs=1e-12)


def test_a_missing_field_on_one_row_is_named(plane):
    row = {f: [0.1] for f in FEATURES if f != "f3"}
    with pytest.raises(ValidationError) as err:
        _infer(plane, row)
    assert "f3" in str(err.value)


def test_the_row_is_what_the_prediction_log_keeps(plane):
    loop, state, _, _ = plane
    log = state.predlog
    before = len(log._buffer)
    _infer(plane, {f: [0.25] for f in FEATURES})
    assert len(log._buffer) == before + 1
    from loopml.serve.online.predlog import _rows

    (row,) = _rows(log._buffer[-1:])
    assert row["inputs"] == '{"f0":0.25,"f1":0.25,"f2":0.25,"f3":0.25}'
    assert np.isfinite(row["output"])
