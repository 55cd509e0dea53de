"""bench/drift: a full data-drift report on N reference vs N current rows.

20 numeric + 5 categorical columns (normal, log-normal, heavy-tailed, integer, bimodal,
... with known shifts, some near the thresholds, 1% missing values in two columns).
Three contenders run on the same Parquet files, each in a fresh process so that peak
memory is its own:

- loopml: reference profile (once per model version) + one window check;
- scipy: the same per-column tests written by hand (wasserstein_distance / std,
  jensenshannon on value counts), as a user would without a library;
- evidently: the DataDriftPreset of Evidently, a widely used open-source drift library,
  installed only in a separate environment (it needs pandas < 3), e.g.
  ``python -m venv /work/bench-venv && /work/bench-venv/bin/pip install evidently 'pandas<3'``.

It prints medians over ``--repeats`` runs, the ratio against Evidently and scipy, and
whether the per-column verdicts agree at the same thresholds.

    .venv/bin/python bench/drift.py --rows 1000000 --repeats 3 \
        --evidently-python /work/bench-venv/bin/python --write bench/results/drift.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
#: Location shift of each numeric column in reference standard deviations (the normed
#: Wasserstein distance it produces); several sit close to the 0.1 threshold.
SHIFTS = [
    0,
    0,
    0,
    0,
    0,
    0,
    0.02,
    0.04,
    0.06,
    0.08,
    0.12,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
    0,
    0,
    0.05,
    0.25,
]
CARDINALITY = [2, 5, 20, 100, 1000]
MIX = [0.0, 0.05, 0.3, 0.0, 0.5]  # share of the current categorical mass moved elsewhere
THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1}


# -- data --------------------------------------------------------------------------------
def _numeric(rng: np.random.Generator, i: int, n: int) -> tuple[np.ndarray, float]:
    family = i % 8
    if family == 0:
        return rng.normal(10, 2, n), 2.0
    if family == 1:
        return rng.lognormal(0, 1, n), float(np.sqrt((np.e - 1) * np.e))
    if family == 2:
        return rng.exponential(3, n), 3.0
    if family == 3:
        return rng.uniform(-1, 1, n), float(np.sqrt(4 / 12))
    if family == 4:
        return rng.standard_t(5, n), float(np.sqrt(5 / 3))
    if family == 5:
        return rng.poisson(20, n).astype(np.float64), float(np.sqrt(20))
    if family == 6:
        mix = rng.random(n) < 0.3
        return np.where(mix, rng.normal(-3, 1, n), rng.normal(2, 0.5, n)), 2.46
    return rng.gamma(2, 2, n), float(np.sqrt(8))


def make_data(directory: Path, rows: int, seed: int = 7) -> None:
    """Write ref.parquet and cur.parquet into ``directory``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for side in ("ref", "cur"):
        rng = np.random.default_rng(seed + (side == "cur"))
        cols: dict[str, object] = {}
        for i, name in enumerate(NUMERIC):
            x, sd = _numeric(rng, i, rows)
            if side == "cur":
                x = x + SHIFTS[i] * sd
            if i in (3, 17):
                x[rng.random(rows) < 0.01] = np.nan
            cols[name] = x
        for i, name in enumerate(CATEGORICAL):
            k = CARDINALITY[i]
            p = np.random.default_rng(100 + i).dirichlet(np.ones(k) * 2)
            if side == "cur" and MIX[i]:
                q = np.random.default_rng(200 + i).dirichlet(np.ones(k) * 2)
                p = (1 - MIX[i]) * p + MIX[i] * q
            labels = np.array([f"{name}_v{j}" for j in range(k)])
            cols[name] = pa.array(labels[rng.choice(k, rows, p=p)], type=pa.string())
        pq.write_table(pa.table(cols), directory / f"{side}.parquet")


# -- one contender in a fresh process ------------------------------------------------------
def _rss() -> tuple[float, float]:
    with open("/proc/self/status") as fh:
        status = dict(line.split(":", 1) for line in fh if line.startswith("Vm"))
    return (int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def child(kind: str, directory: Path) -> dict:
    import pandas as pd

    ref = pd.read_parquet(directory / "ref.parquet")
    cur = pd.read_parquet(directory / "cur.parquet")
    if kind == "evidently":  # import before measuring: its import is not the report
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    elif kind == "scipy":
        from scipy.spatial.distance import jensenshannon
        from scipy.stats import wasserstein_distance
    else:
        import scipy.special  # noqa: F401  (imported up front, like the others' modules)

        from loopml.monitor.drift import check_drift
        from loopml.monitor.profile import build_profile
    loaded, _ = _rss()
    _reset_peak()
    out: dict = {"kind": kind}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if kind == "evidently":
        definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(cur, data_definition=definition),
            Dataset.from_pandas(ref, data_definition=definition),
        )
        scores = {}
        for metric in snapshot.dict()["metrics"]:
            cfg = metric["config"]
            if cfg.get("type", "").endswith("ValueDrift"):
                method = "wasserstein" if "Wasserstein" in cfg["method"] else "jensenshannon"
                scores[cfg["column"]] = [method, float(metric["value"])]
    elif kind == "scipy":
        scores = {}
        for name in NUMERIC:
            r, c = ref[name].dropna().to_numpy(), cur[name].dropna().to_numpy()
            scores[name] = ["wasserstein", wasserstein_distance(r, c) / max(r.std(), 0.001)]
        for name in CATEGORICAL:
            r, c = ref[name].value_counts(), cur[name].value_counts()
            keys = r.index.union(c.index)
            p = r.reindex(keys, fill_value=0).to_numpy()
            q = c.reindex(keys, fill_value=0).to_numpy()
            scores[name] = ["jensenshannon", float(jensenshannon(p / p.sum(), q / q.sum()))]
    else:
        profile = build_profile(ref, meta={"model": "bench", "version": 1})
        out["profile_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = check_drift(profile, cur)
        out["check_s"] = time.perf_counter() - t1
        scores = {c.column: [c.method, c.score] for c in report.columns}
    out["seconds"] = time.perf_counter() - t0
    out["cpu_s"] = time.process_time() - cpu0
    _, peak = _rss()
    out.update(loaded_mb=loaded, peak_mb=peak, extra_mb=peak - loaded, scores=scores)
    return out


def run_child(python: str, kind: str, directory: Path) -> dict:
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1"}
    proc = subprocess.run(
        [python, __file__, "--child", kind, "--data", str(directory)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- orchestration -------------------------------------------------------------------------
def _verdict(method: str, score: float) -> bool:
    return score >= THRESHOLDS[method]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=None)
    parser.add_argument("--evidently-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--write", default=None, help="write the markdown summary here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.data))))
        return

    runs: dict[str, list[dict]] = {"loopml": [], "scipy": [], "evidently": []}
    have_evidently = Path(args.evidently_python).exists()
    with tempfile.TemporaryDirectory(prefix="loopml-bench-drift-") as tmp:
        data = Path(tmp)
        t = time.perf_counter()
        make_data(data, args.rows)
        print(
            f"data: {args.rows:,} vs {args.rows:,} rows x 25 columns "
            f"({time.perf_counter() - t:.1f}s to generate)",
            flush=True,
        )
        plan = [("loopml", sys.executable, args.repeats), ("scipy", sys.executable, args.repeats)]
        if have_evidently:
            plan.append(
                ("evidently", args.evidently_python, args.evidently_repeats or args.repeats)
            )
        else:
            print(f"evidently: {args.evidently_python} not found; skipping it", flush=True)
        for kind, python, repeats in plan:
            for i in range(repeats):
                result = run_child(python, kind, data)
                runs[kind].append(result)
                print(
                    f"  {kind} run {i + 1}/{repeats}: {result['seconds']:.2f}s, "
                    f"peak {result['peak_mb']:.0f} MB",
                    flush=True,
                )
    print(summarise(runs, args.rows, args.evidently_python, args.write, args.evidently_repeats))


def summarise(
    runs: dict[str, list[dict]],
    rows: int,
    ev_python: str,
    write: str | None,
    ev_repeats: int | None = None,
) -> str:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    lines = [
        f"## bench/drift: {rows:,} reference vs {rows:,} current rows, "
        "20 numeric + 5 categorical columns",
        "",
        "| contender | wall s (median) | CPU s (median) | peak RSS MB | RSS over loaded data MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in ("loopml", "scipy", "evidently"):
        if runs[kind]:
            lines.append(
                f"| {kind} | {med(kind, 'seconds'):.2f} | {med(kind, 'cpu_s'):.2f} | "
                f"{med(kind, 'peak_mb'):.0f} | {med(kind, 'extra_mb'):.0f} |"
            )
    lp, lc = med("loopml", "profile_s"), med("loopml", "check_s")
    lines += [
        "",
        f"loopml split: reference profile {lp:.2f}s (once per model version), "
        f"window check {lc:.2f}s (each new window).",
        "",
    ]
    total = med("loopml", "seconds")
    for base in ("scipy", "evidently"):
        if runs[base]:
            b = med(base, "seconds")
            cpu = med(base, "cpu_s") / med("loopml", "cpu_s")
            lines.append(
                f"- vs {base}: full report {b / total:.1f}x faster (wall; {cpu:.1f}x in CPU "
                f"time), per-window check {b / lc:.1f}x faster; peak RSS "
                f"{med(base, 'peak_mb'):.0f} -> {med('loopml', 'peak_mb'):.0f} MB"
            )
    for base in ("evidently", "scipy"):
        if runs[base]:
            ours, theirs = runs["loopml"][0]["scores"], runs[base][0]["scores"]
            agree = sum(
                ours[c][0] == theirs[c][0] and _verdict(*ours[c]) == _verdict(*theirs[c])
                for c in theirs
            )
            diff = max(abs(ours[c][1] - theirs[c][1]) for c in theirs)
            drifted = sum(_verdict(*theirs[c]) for c in theirs)
            lines.append(
                f"- verdicts vs {base}: {agree}/{len(theirs)} columns agree (same "
                f"method, threshold 0.1; {drifted} drifted); largest score "
                f"difference {diff:.2e}"
            )
            break
    lines += [
        "",
        "Reproduce: `.venv/bin/python bench/drift.py --rows "
        f"{rows} --repeats "
        f"{len(runs['loopml'])}"
        + (f" --evidently-repeats {ev_repeats}" if ev_repeats else "")
        + f" --evidently-python {ev_python}`",
        "",
    ]
    text = "\n".join(lines)
    if write:
        Path(write).parent.mkdir(parents=True, exist_ok=True)
        Path(write).write_text(text)
    return text


if __name__ == "__main__":
    main()
