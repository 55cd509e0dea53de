"""``export_edge``: registry model -> verified bundle, inventory record and published files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.predict.flavours import load_predictor
from loopml.registry.bundles import BundleInventory
from loopml.registry.registry import Registry
from loopml.serve.edge.export import export_edge, parse_size
from loopml.serve.edge.loader import load_bundle


@pytest.mark.parametrize("model", ["ctr_pipe", "ctr_gbm", "ctr_gb"])
def test_export_writes_a_bundle_that_predicts_like_the_registry_model(
    edge_cfg, world, tmp_path, model
):
    holdout = world["holdout"]
    result = export_edge(
        edge_cfg,
        f"{model}@production",
        tmp_path / "b",
        data=holdout,
        label="clicked",
        progress=False,
    )
    bundle = load_bundle(tmp_path / "b")
    manifest = bundle.manifest
    assert manifest["model"]["name"] == model and manifest["model"]["version"] == 1
    assert manifest["feature_order"] == ["age", "hour", "item_ctr", "position", "country", "device"]
    assert {i["name"]: i["dtype"] for i in manifest["inputs"]}["country"] == "string"
    assert set(manifest["files"]) == {"model.onnx", "parity.json"}
    assert manifest["verified_with"]["onnxruntime"]
    assert manifest["opset"]["ai.onnx"] >= 9 and manifest["opset"]["ai.onnx.ml"] >= 1
    assert manifest["preprocessing"]
    assert "probabilities" in manifest["outputs"]
    # parity was measured on held-out rows with labels, within tolerance
    parity = json.loads((tmp_path / "b" / "parity.json").read_text())["original"]
    assert parity["passed"] and parity["rows"] == 3000 and parity["metric"] == "roc_auc"
    assert parity["max_abs_diff"] < 1e-4 and abs(parity["metric_diff"]) < 1e-3
    assert parity["metric_native"] > 0.6
    # the bundle predicts what the registry's own model predicts
    native = load_predictor(Registry.from_config(edge_cfg), model, "production")
    rows = holdout.iloc[:500]
    rows32 = rows.assign(
        **{
            c: rows[c].astype(np.float32).astype(float)
            for c in ("age", "hour", "item_ctr", "position")
        }
    )
    np.testing.assert_allclose(
        bundle.predictor().predict(rows32), native.predict(rows32), atol=1e-5
    )
    # the inventory knows it, and its files were published to the artifact store
    record = BundleInventory.from_config(edge_cfg).get(bundle.sha256)
    assert (record.model_name, record.model_version, record.target) == (model, 1, "onnxruntime")
    assert record.compression == "original" and result.record == record
    registry = Registry.from_config(edge_cfg)
    published = registry.artifacts.get_bytes(
        f"{record.location}/model.onnx", sha256=manifest["files"]["model.onnx"]["sha256"]
    )
    assert published == (tmp_path / "b" / "model.onnx").read_bytes()


def test_downsampled_lightgbm_is_corrected_inside_the_graph(edge_cfg, world, tmp_path):
    export_edge(
        edge_cfg,
        "ctr_gbm@production",
        tmp_path / "b",
        data=world["holdout"],
        label="clicked",
        progress=False,
    )
    predictor = load_bundle(tmp_path / "b").predictor()
    p = predictor.predict(world["holdout"].iloc[:2000])
    # trained on half the negatives: uncorrected, the mean would be far above the base rate
    assert abs(p.mean() - world["holdout"]["clicked"].iloc[:2000].mean()) < 0.03


def test_export_refuses_an_existing_directory_unless_forced(edge_cfg, world, tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    kwargs = {"data": world["holdout"], "label": "clicked", "progress": False}
    with pytest.raises(Exception, match="already exists and is not empty"):
        export_edge(edge_cfg, "ctr_pipe@production", out, **kwargs)
    assert (out / "keep.txt").read_text() == "mine"
    export_edge(edge_cfg, "ctr_pipe@production", out, force=True, **kwargs)
    assert not (out / "keep.txt").exists() and (out / "model.onnx").exists()


def test_export_fails_when_parity_exceeds_the_tolerance(edge_cfg, world, tmp_path):
    with pytest.raises(ValidationError, match=r"parity check failed for ctr_gbm v1: max \|p_onnx"):
        export_edge(
            edge_cfg,
            "ctr_gbm@production",
            tmp_path / "b",
            data=world["holdout"],
            label="clicked",
            tolerance=1e-12,
            progress=False,
        )
    assert not (tmp_path / "b").exists()
    assert BundleInventory.from_config(edge_cfg).list("ctr_gbm", "strict") == []


def test_export_explains_missing_inputs(edge_cfg, world, tmp_path):
    with pytest.raises(NotFoundError, match="carries no held-out sample"):
        export_edge(edge_cfg, "ctr_pipe@production", tmp_path / "b", progress=False)
    with pytest.raises(ValidationError, match="label column 'click'.*did you mean 'clicked'"):
        export_edge(
            edge_cfg,
            "ctr_pipe@production",
            tmp_path / "b",
            data=world["holdout"],
            label="click",
            progress=False,
        )
    with pytest.raises(NotFoundError, match="has no alias 'prod'"):
        export_edge(
            edge_cfg, "ctr_pipe@prod", tmp_path / "b", data=world["holdout"], progress=False
        )
    with pytest.raises(ValidationError, match="--compress 'prun' is unknown; did you mean 'prune'"):
        export_edge(
            edge_cfg,
            "ctr_pipe@production",
            tmp_path / "b",
            data=world["holdout"],
            label="clicked",
            compress="prun",
            progress=False,
        )


def test_export_reads_data_files(edge_cfg, world, tmp_path):
    path = tmp_path / "holdout.parquet"
    world["holdout"].to_parquet(path)
    result = export_edge(
        edge_cfg,
        "ctr_pipe@1",
        tmp_path / "b",
        data=path,
        label="clicked",
        sample_rows=800,
        progress=False,
    )
    assert result.parity.rows == 800 and result.record.ref == "1"
    csv = tmp_path / "holdout.txt"
    csv.write_text("x")
    with pytest.raises(ValidationError, match="unsupported file type '.txt'"):
        export_edge(edge_cfg, "ctr_pipe@1", tmp_path / "c", data=csv, progress=False)


def test_parse_size_reads_units_and_refuses_nonsense():
    assert parse_size("2MB") == 2_000_000 and parse_size("1KiB") == 1024 and parse_size(10) == 10
    with pytest.raises(ValidationError, match="--max-size 'big' is not a size"):
        parse_size("big")


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_models_trained_by_loopml_train_export_with_parity(project_dir, kind):
    """FrameModels (loopml.train) with make_preprocessor, downsampling and both flavours."""
    from lightgbm import LGBMClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from loopml.core.config import ProjectConfig
    from loopml.features.transforms import make_preprocessor
    from loopml.train.datasets import time_split
    from loopml.train.synthetic import FEATURES, make_clicks
    from loopml.train.trainer import train

    cfg = ProjectConfig.load(project_dir)
    registry = Registry.from_config(cfg)
    splits = time_split(make_clicks(8000, seed=3), "ts", valid_days=2, test_days=3)
    numbers = [c for c in FEATURES if c not in ("country", "device")]
    estimator = (
        make_pipeline(make_preprocessor(numbers, ["country", "device"]), LogisticRegression())
        if kind == "logistic"
        else LGBMClassifier(n_estimators=60, verbose=-1, n_jobs=1)
    )
    result = train(estimator, splits, features=FEATURES, label="clicked", name="ctr",
                   downsample_rate=0.3)  # fmt: skip
    result.register(registry, name="ctr")
    out = export_edge(cfg, "ctr@1", project_dir / "bundle", data=splits.test, progress=False)
    assert out.parity.metric == "roc_auc"  # the label was found in the model's lineage
    assert out.parity.max_abs_diff < 1e-5 and out.parity.metric_diff == pytest.approx(0, abs=1e-4)
    assert result.flavour == ("sklearn" if kind == "logistic" else "lightgbm")
    assert "probability corrected for negative downsampling" in out.bundle.manifest["preprocessing"]
