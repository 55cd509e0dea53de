"""Pattern-3 benchmark: the demo's model exported to ONNX vs the native model, same run.

The demo's pipeline (simulated world -> event log -> point-in-time training set ->
LightGBM and a logistic regression, negatives downsampled to 10%, exactly as
``loopml demo`` trains them) produces the models; each is registered, exported with
``export_edge`` (parity on the test split, every compression method, smallest variant
within 0.005 ROC-AUC) and then timed against its native form:

- single row: the native model's ``predict_proba`` on a one-row DataFrame (baseline),
  loopml's native Predictor, the ONNX Predictor (validation included) and a bare
  ``InferenceSession.run`` on a prepared feed (what a device pays);
- 10k-row batch throughput, same four ways;
- size (registry artifact vs model.onnx vs the chosen compressed variant) and ROC-AUC.

    .venv/bin/python bench/edge.py [--days 10] [--per-day 15000] [--out bench/out/edge]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from loopml.core.config import ProjectConfig, init_project
from loopml.predict.flavours import load_predictor
from loopml.registry.registry import Registry
from loopml.serve.edge.export import export_edge
from loopml.serve.edge.loader import load_bundle
from loopml.serve.edge.parity import score
from loopml.serve.edge.timing import median_us, rows_per_second
from loopml.serve.edge.tradeoff import to_markdown

BATCH = 10_000


def build(root: Path, days: int, per_day: int, seed: int):  # noqa: ANN201
    """The demo's data and models (see loopml.demo.scenario), registered in a fresh project."""
    from loopml.demo.models import candidates
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog
    from loopml.project import Project
    from loopml.sim import World, WorldConfig
    from loopml.train.datasets import time_split
    from loopml.train.trainer import train

    shutil.rmtree(root, ignore_errors=True)
    init_project(root, name="edgebench")
    project = Project.open(root)
    world = World(WorldConfig(seed=seed, days=days, impressions_per_day=per_day))
    for event_type, frame in world.generate(progress=False).items():
        project.events.append(event_type, frame, source="sim")
    views = list(default_catalog())
    data = build_training_set(
        project.events,
        views,
        start=world.day_start(min(3, days - 3)),
        end=world.day_start(days - 1) + np.timedelta64(23, "h"),
        label="click",
        label_window="1h",
        progress=False,
    )
    data["hour"] = data["ts"].dt.hour.astype("int64")
    splits = time_split(data, "ts", valid_days=1, test_days=2)
    registry = Registry.from_config(ProjectConfig.load(root))
    trained = {}
    for name, (estimator, features) in candidates(seed).items():
        if name not in ("lightgbm", "logistic"):
            continue
        result = train(
            estimator,
            splits,
            features=features,
            label="label",
            task="binary",
            name=f"ctr-{name}",
            downsample_rate=0.1,
            seed=seed,
        )
        mv = result.register(registry, name=name)
        registry.set_alias(name, "production", mv.version, actor="bench", reason="bench")
        trained[name] = (result, mv)
    return splits, trained


def bench_model(cfg, name, result, mv, test, out: Path) -> dict:  # noqa: ANN001
    """Export one model and time it against its native form."""
    registry = Registry.from_config(cfg)
    started = time.perf_counter()
    export = export_edge(
        cfg,
        f"{name}@production",
        out / name,
        data=test,
        compress="all",
        max_metric_loss=0.005,
        sample_rows=20_000,
        batch_rows=BATCH,
        force=True,
        progress=True,
    )
    export_s = time.perf_counter() - started
    bundle = load_bundle(out / name)
    features = result.signature.names
    frame = test[features].reset_index(drop=True)
    for spec in result.signature.inputs:  # device precision for numbers, as the export does
        if spec.kind != "category":
            frame[spec.name] = frame[spec.name].astype(np.float32).astype(np.float64)
    reps = -(-BATCH // len(frame))
    big = frame.loc[np.tile(np.arange(len(frame)), reps)[:BATCH]].reset_index(drop=True)
    row_df = frame.iloc[[0]]
    row = {k: (None if v != v else v) for k, v in row_df.iloc[0].to_dict().items()}
    native_model = result.model
    native = load_predictor(registry, name, "production")
    chosen = bundle.predictor()  # the shipped (possibly compressed) variant
    from loopml.predict.onnx import OnnxPredictor
    from loopml.serve.edge.convert import to_onnx

    original = OnnxPredictor(
        result.signature,
        to_onnx(native.model, result.signature, name, mv.version).SerializeToString(),
    ).load()
    feed_one = original.feed(result.signature.validate(row_df))
    feed_big = original.feed(result.signature.validate(big))
    session = original._session  # noqa: SLF001 - the bare runtime call a device makes
    big_columns = {c: big[c].to_numpy() for c in features}

    single = {
        "native predict_proba (baseline)": median_us(lambda: native_model.predict_proba(row_df)),
        "loopml native Predictor.predict_one": median_us(lambda: native.predict_one(row)),
        "ONNX Predictor.predict_one": median_us(lambda: original.predict_one(row)),
        "ONNX InferenceSession.run": median_us(lambda: session.run(["probabilities"], feed_one)),
    }
    batch = {
        "native predict_proba (baseline)": rows_per_second(
            lambda: native_model.predict_proba(big), BATCH
        ),
        "loopml native Predictor.predict": rows_per_second(
            lambda: native.predict(big_columns), BATCH
        ),
        "ONNX Predictor.predict": rows_per_second(lambda: original.predict(big_columns), BATCH),
        "ONNX InferenceSession.run": rows_per_second(
            lambda: session.run(["probabilities"], feed_big), BATCH
        ),
    }
    labels = test["label"].to_numpy()
    auc = {
        "native": score("binary", labels, native.predict(frame)).value,
        "onnx": score("binary", labels, original.predict(frame)).value,
        export.chosen: score("binary", labels, chosen.predict(frame)).value,
    }
    artifact = len(registry.fetch(name, "production")[1])
    return {
        "name": name,
        "export_s": export_s,
        "single": single,
        "batch": batch,
        "auc": auc,
        "artifact_bytes": artifact,
        "onnx_bytes": export.tradeoff[0].size_bytes,
        "chosen": export.chosen,
        "chosen_bytes": bundle.manifest["files"]["model.onnx"]["bytes"],
        "parity": export.parity,
        "tradeoff": export.tradeoff,
        "skipped": export.skipped,
        "test_rows": len(frame),
    }


def report(results: list[dict], command: str) -> str:
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# bench/edge: pattern 3 (edge) - ONNX Runtime vs the native model",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, load average {load} when the report was written "
        "(shared machine: absolute times are noisy, ratios come from the same run).",
        "",
    ]
    for r in results:
        base_1 = r["single"]["native predict_proba (baseline)"]
        base_b = r["batch"]["native predict_proba (baseline)"]
        lines += [
            f"## {r['name']} ({r['test_rows']:,} test rows; export {r['export_s']:.1f} s)",
            "",
            "| single row | median (us) | speed-up vs predict_proba |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v:.0f} | {base_1 / v:.1f}x |" for k, v in r["single"].items()]
        lines += ["", f"| {BATCH:,}-row batch | rows/s | vs predict_proba |", "|---|---:|---:|"]
        lines += [f"| {k} | {v:,.0f} | {v / base_b:.2f}x |" for k, v in r["batch"].items()]
        p = r["parity"]
        lines += [
            "",
            "| size | bytes | vs model.onnx |",
            "|---|---:|---:|",
            f"| registry artifact (native) | {r['artifact_bytes']:,} | "
            f"{r['artifact_bytes'] / r['onnx_bytes']:.2f} |",
            f"| model.onnx (exact) | {r['onnx_bytes']:,} | 1.00 |",
            f"| shipped variant `{r['chosen']}` | {r['chosen_bytes']:,} | "
            f"{r['chosen_bytes'] / r['onnx_bytes']:.3f} |",
            "",
            "| ROC-AUC on the test split | value | delta vs native |",
            "|---|---:|---:|",
        ]
        lines += [f"| {k} | {v:.4f} | {v - r['auc']['native']:+.4f} |" for k, v in r["auc"].items()]
        lines += [
            "",
            f"Parity (export, {p.rows:,} held-out rows): max |dp| = "
            f"{p.max_abs_diff:.2e}, ROC-AUC diff {p.metric_diff:+.1e}.",
            "",
            "Trade-off (export, second half of the held-out sample):",
            "",
            to_markdown(r["tradeoff"], r["chosen"]).rstrip(),
        ]
        lines += [f"\nSkipped: {n}: {why}" for n, why in r["skipped"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--per-day", type=int, default=15_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/out/edge"))
    ap.add_argument("--results", type=Path, default=Path("bench/results/edge.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    splits, trained = build(args.out / "proj", args.days, args.per_day, args.seed)
    print(f"built the demo's models in {time.perf_counter() - t0:.1f}s")
    cfg = ProjectConfig.load(args.out / "proj")
    results = [
        bench_model(cfg, name, result, mv, splits.test, args.out / "bundles")
        for name, (result, mv) in trained.items()
    ]
    command = (
        f".venv/bin/python bench/edge.py --days {args.days} --per-day {args.per_day} "
        f"--seed {args.seed}"
    )
    text = report(results, command)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    for r in results:
        ratio = (
            r["single"]["native predict_proba (baseline)"]
            / r["single"]["ONNX Predictor.predict_one"]
        )
        size = r["chosen_bytes"] / r["onnx_bytes"]
        loss = r["auc"]["native"] - r["auc"][r["chosen"]]
        print(
            f"{r['name']}: single-row ONNX vs predict_proba {ratio:.1f}x (goal >= 5x); "
            f"shipped {r['chosen']} at {size:.1%} of model.onnx, ROC-AUC loss {loss:+.4f} "
            "(goal <= 25%, <= 0.005)"
        )


if __name__ == "__main__":
    main()
