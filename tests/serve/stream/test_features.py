"""The learner's one-pass feature transform equals the model's own stateless steps."""

from __future__ import annotations

from loopml.serve.stream.features import Crosses, OneHot, compile_front
from loopml.serve.stream.models import DEFAULT_CROSSES


def _steps(x: dict, steps: list) -> dict:
    for step in steps:
        x = step.transform_one(x)
    return x


def test_fused_crosses_and_one_hot_keep_keys_values_and_order() -> None:
    steps = [Crosses(DEFAULT_CROSSES + (("segment", "category"),)), OneHot()]
    fused = compile_front(steps)
    rows = [
        {"item_id": "i1", "position": "0", "device": "ios", "segment": "paid", "category": "news"},
        {"item_id": "i2", "age_band": 30, "category": "food", "score": 0.7, "flag": True},
        {"segment": "a|b", "category": "c", "country": None, "device": 3},
        {"segment": "x"},  # half a pair: no cross
        {},
    ]
    for x in rows:
        # key order matters: it is the order River sums the weights in
        assert list(fused(x).items()) == list(_steps(x, steps).items())


def test_a_raw_column_named_like_a_cross_takes_the_two_steps() -> None:
    steps = [Crosses([("segment", "category")]), OneHot()]
    x = {"segment|category": "raw", "segment": "paid", "category": "news"}
    assert list(compile_front(steps)(x).items()) == list(_steps(x, steps).items())


def test_other_fronts_run_their_steps_in_order() -> None:
    steps = [OneHot(), Crosses([("a", "b")])]
    x = {"a": "1", "b": "2"}
    assert compile_front(steps)(x) == _steps(x, steps)
    assert compile_front([])(x) is x
