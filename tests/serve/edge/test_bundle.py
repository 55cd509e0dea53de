"""The bundle format and its loader: every file hashed, tampering refused, no sklearn needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from loopml.core.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from loopml.predict.flavours import load_predictor
from loopml.registry.registry import Registry
from loopml.serve.edge.bundle import manifest_sha256, write_bundle
from loopml.serve.edge.export import export_edge
from loopml.serve.edge.loader import load_bundle


@pytest.fixture(scope="module")
def exported(edge_cfg, world, tmp_path_factory):  # noqa: ANN001, ANN201
    out = tmp_path_factory.mktemp("bundles") / "gbm"
    export_edge(
        edge_cfg, "ctr_gbm@production", out, data=world["holdout"], label="clicked", progress=False
    )
    return out


@pytest.fixture
def copy(exported, tmp_path):  # noqa: ANN001, ANN201
    target = tmp_path / "bundle"
    shutil.copytree(exported, target)
    return target


def test_manifest_hashes_every_file_and_itself(exported):
    bundle = load_bundle(exported)
    files = bundle.manifest["files"]
    assert set(files) == {"model.onnx", "parity.json"}
    assert files["model.onnx"]["bytes"] == (exported / "model.onnx").stat().st_size
    assert bundle.sha256 == manifest_sha256(bundle.manifest)
    assert load_bundle(exported, expected_sha256=bundle.sha256).sha256 == bundle.sha256


def test_a_tampered_model_file_is_refused(copy):
    data = bytearray((copy / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    (copy / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="bundle file model.onnx has sha256 .* refusing"):
        load_bundle(copy)


def test_a_rewritten_manifest_is_refused(copy):
    manifest = json.loads((copy / "edge.json").read_text())
    manifest["signature"]["output"] = "something else"
    (copy / "edge.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="the manifest was edited after export"):
        load_bundle(copy)
    # even with a recomputed self-hash, the trusted hash from the inventory catches it
    manifest["bundle_sha256"] = manifest_sha256(manifest)
    (copy / "edge.json").write_text(json.dumps(manifest))
    assert load_bundle(copy).sha256 == manifest["bundle_sha256"]
    with pytest.raises(IntegrityError, match="but the expected hash is"):
        load_bundle(copy, expected_sha256="0" * 64)


def test_added_and_missing_files_are_refused(copy):
    (copy / "extra.js").write_text("alert(1)")
    with pytest.raises(IntegrityError, match=r"holds file\(s\) \['extra.js'\] that its manifest"):
        load_bundle(copy)
    (copy / "extra.js").unlink()
    (copy / "parity.json").unlink()
    with pytest.raises(NotFoundError, match="lists parity.json but the file is missing"):
        load_bundle(copy)


def test_bad_manifests_are_explained(tmp_path):
    with pytest.raises(NotFoundError, match="edge.json is missing"):
        load_bundle(tmp_path)
    (tmp_path / "edge.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="is not valid JSON"):
        load_bundle(tmp_path)
    (tmp_path / "edge.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValidationError, match="is not a loopml-edge-bundle manifest"):
        load_bundle(tmp_path)
    with pytest.raises(ValidationError, match="bundle file name '../x' is not allowed"):
        write_bundle(tmp_path / "b", {"../x": b"1", "model.onnx": b"2"}, {})


def test_write_bundle_is_atomic_and_refuses_to_overwrite(tmp_path):
    out, manifest = write_bundle(tmp_path / "b", {"model.onnx": b"m"}, {"x": 1})
    assert sorted(p.name for p in out.iterdir()) == ["edge.json", "model.onnx"]
    with pytest.raises(ConflictError, match="already exists and is not empty"):
        write_bundle(tmp_path / "b", {"model.onnx": b"n"}, {})
    assert (out / "model.onnx").read_bytes() == b"m"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging leftovers


def test_bundle_runs_in_a_fresh_process_without_sklearn_or_lightgbm(edge_cfg, world, exported):
    holdout = world["holdout"].iloc[:300].drop(columns="clicked")
    for col in ("age", "hour", "item_ctr", "position"):
        holdout[col] = holdout[col].astype(np.float32).astype(float)
    rows = {
        c: [
            None if (isinstance(v, float) and np.isnan(v) and c in ("country", "device")) else v
            for v in holdout[c].tolist()
        ]
        for c in holdout.columns
    }
    code = textwrap.dedent(
        """
        import json, sys
        from loopml.serve.edge.loader import load_bundle
        rows = json.loads(sys.stdin.read())
        p = load_bundle(sys.argv[1]).predictor().predict(rows)
        heavy = sorted(m for m in ("sklearn", "lightgbm", "skl2onnx", "onnxmltools")
                       if m in sys.modules)
        print(json.dumps({"p": p.tolist(), "heavy": heavy}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(exported)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(proc.stdout)
    assert out["heavy"] == []
    native = load_predictor(Registry.from_config(edge_cfg), "ctr_gbm", "production")
    np.testing.assert_allclose(out["p"], native.predict(holdout), atol=1e-5)
