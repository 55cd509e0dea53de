"""LightGBM serving fast path vs the scikit-learn wrapper, measured in the same run.

Run:  .venv/bin/python bench/predict_lightgbm.py [--trees 200] [--repeats 9] [--clock cpu]

Single row: ``LightGBMPredictor.predict_one(dict)`` (validation + category codes +
LightGBM's single-row fast C call) against ``LGBMClassifier.predict_proba`` on a
one-row DataFrame (what a hand-written server does) and ``Booster.predict`` on a
one-row matrix. Batch: ``LightGBMPredictor.predict`` against ``predict_proba`` on
10,000 rows. Prints medians over interleaved repeats and the speed-up ratios, and
checks that every path agrees to 1e-9.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def _per_call_us(fn: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    start = clock()
    for _ in range(calls):
        fn()
    return (clock() - start) / calls * 1e6


def _agree(a: object, b: object, what: str) -> None:
    gap = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    if gap >= 1e-9:
        raise SystemExit(f"{what}: predictions differ by {gap:.3g}; timing is meaningless")


def main() -> None:
    import lightgbm as lgb

    from loopml.predict.frames import to_frame
    from loopml.predict.lightgbm import LightGBMPredictor
    from loopml.train.frame_model import FrameModel
    from loopml.train.synthetic import FEATURES, make_clicks

    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time, which ignores time descheduled on a busy machine",
    )
    args = parser.parse_args()

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    clicks = make_clicks(20_000, seed=0)
    est = lgb.LGBMClassifier(n_estimators=args.trees, num_leaves=31, n_jobs=1, verbose=-1)
    model = FrameModel(est).fit(clicks[FEATURES], clicks.clicked)
    sig = model.signature_
    predictor = LightGBMPredictor(model, sig).load()
    clf = model.estimator_
    booster = clf.booster_

    rows = clicks[FEATURES].head(200).to_dict(orient="records")
    row = rows[7]
    row_frame = to_frame(sig, {k: [v] for k, v in row.items()}, "category")
    row_matrix = predictor.model.encode(sig.validate({k: [v] for k, v in row.items()}))
    batch = clicks[FEATURES].head(10_000)
    batch_prepared = to_frame(sig, batch, "category")

    # agreement first: a fast wrong answer is worthless
    want = clf.predict_proba(row_frame)[0, 1]
    _agree(predictor.predict_one(row), want, "predict_one vs predict_proba")
    _agree(booster.predict(row_matrix)[0], want, "Booster.predict vs predict_proba")
    many = predictor.predict(batch)
    _agree(many, clf.predict_proba(batch_prepared)[:, 1], "batch vs predict_proba")
    for i, r in enumerate(rows[:50]):
        _agree(predictor.predict_one(r), many[i], f"predict_one row {i} vs batch")

    single = {
        "LGBMClassifier.predict_proba (1-row DataFrame)": (
            lambda: clf.predict_proba(row_frame),
            200,
        ),
        "Booster.predict (1-row matrix)": (lambda: booster.predict(row_matrix), 500),
        "LightGBMPredictor.predict (1-row mapping, validating)": (
            lambda: predictor.predict({k: [v] for k, v in row.items()}),
            500,
        ),
        "LightGBMPredictor.predict_one (dict, fast path)": (
            lambda: predictor.predict_one(row),
            20_000,
        ),
    }
    batch_cases = {
        "FrameModel.predict_proba (10k raw rows, via LGBMClassifier)": (
            lambda: model.predict_proba(batch),
            3,
        ),
        "LGBMClassifier.predict_proba (10k rows, frame prepared)": (
            lambda: clf.predict_proba(batch_prepared),
            3,
        ),
        "LightGBMPredictor.predict (10k raw rows, validated)": (
            lambda: predictor.predict(batch),
            3,
        ),
    }
    timings: dict[str, list[float]] = {k: [] for k in [*single, *batch_cases]}
    for _ in range(args.repeats):
        for name, (fn, calls) in {**single, **batch_cases}.items():
            timings[name].append(_per_call_us(fn, calls, clock))
    med = {k: statistics.median(v) for k, v in timings.items()}
    best = {k: min(v) for k, v in timings.items()}

    base = med["LGBMClassifier.predict_proba (1-row DataFrame)"]
    print(
        f"LightGBM {lgb.__version__}, {args.trees} trees x 31 leaves, {len(FEATURES)} features, "
        f"{args.clock} clock"
    )
    print(f"single row, median (best) of {args.repeats} repeats, microseconds per row:")
    for name in single:
        ratio = base / med[name]
        print(f"  {name:<56} {med[name]:>9.1f} ({best[name]:>8.1f}) us  x{ratio:>7.1f}")
    print("batch of 10,000 rows, median (best), microseconds per row:")
    bbase = med["FrameModel.predict_proba (10k raw rows, via LGBMClassifier)"]
    for name in batch_cases:
        per_row, best_row = med[name] / 10_000, best[name] / 10_000
        print(f"  {name:<56} {per_row:>9.2f} ({best_row:>8.2f}) us  x{bbase / med[name]:>7.2f}")
    print("all paths agree to 1e-9")


if __name__ == "__main__":
    main()
