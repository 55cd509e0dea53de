"""One contract suite for the registry, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopml.core.errors import ConflictError, IntegrityError, NotFoundError, ValidationError
from loopml.core.hashing import sha256_bytes
from loopml.core.signature import ColumnSpec, Signature
from loopml.registry import ModelVersion, Registry, parse_ref

SIG = Signature(
    (ColumnSpec("age", "float"), ColumnSpec("country", "category", categories=("kr", "us"))),
    task="binary",
    classes=(0, 1),
)


@pytest.fixture(params=["sqlite", "postgres"])
def metadata_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/meta.db"
    return request.getfixturevalue("postgres_schema")


@pytest.fixture
def reg(metadata_url: str, tmp_path: Path) -> Registry:
    return Registry(metadata_url, str(tmp_path / "artifacts"))


def _register(reg: Registry, payload: bytes, **kw) -> ModelVersion:
    return reg.register("ctr", payload, flavour="sklearn", signature=SIG, **kw)


def test_register_then_get_by_every_kind_of_ref(reg: Registry):
    v1 = _register(
        reg,
        b"model-one",
        metrics={"test": {"roc_auc": 0.71}},
        lineage={"dataset_fingerprint": "abc", "parent_version": None},
        run_id="run-1",
        description="first",
        tags={"team": "feed"},
    )
    v2 = _register(reg, b"model-two")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.sha256 == sha256_bytes(b"model-one")
    got = reg.get("ctr", 1)
    assert got == reg.get("ctr", "1") == reg.get("ctr", "v1")
    assert got.signature == SIG
    assert got.metrics == {"test": {"roc_auc": 0.71}}
    assert got.lineage["dataset_fingerprint"] == "abc"
    assert (got.run_id, got.description, got.tags) == ("run-1", "first", {"team": "feed"})
    assert got.created_at is not None and got.created_at.tzinfo is not None
    assert reg.get("ctr").version == 2 == reg.get("ctr", "latest").version
    reg.set_alias("ctr", "production", 1, actor="ana")
    name, ref = parse_ref("ctr@production")
    assert reg.get(name, ref).version == 1
    mv, data = reg.fetch("ctr", "production")
    assert (mv.version, data) == (1, b"model-one")
    assert reg.list_models() == ["ctr"]
    assert [v.version for v in reg.list_versions("ctr")] == [1, 2]


def test_extra_files_are_stored_and_verified(reg: Registry):
    mv = _register(reg, b"m", files={"model.onnx": b"onnx-bytes", "parity.json": b"{}"})
    assert set(mv.files) == {"model.onnx", "parity.json"}
    assert reg.fetch_file("ctr", mv.version, "model.onnx") == b"onnx-bytes"
    with pytest.raises(NotFoundError, match="did you mean 'model.onnx'"):
        reg.fetch_file("ctr", mv.version, "model.onx")
    path = reg.artifacts.local_path(f"models/ctr/{mv.version}/files/model.onnx")
    path.write_bytes(b"evil")
    with pytest.raises(IntegrityError):
        reg.fetch_file("ctr", mv.version, "model.onnx")


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from loopml.core.signature import ColumnSpec, Signature
    from loopml.registry import Registry
    url, root, tag, go = sys.argv[1:5]
    reg = Registry(url, root)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.01)
    sig = Signature((ColumnSpec("x"),))
    for i in range(6):
        mv = reg.register("ctr", f"{tag}-{i}".encode(), flavour="sklearn", signature=sig)
        print(mv.version, f"{tag}-{i}", flush=True)
    """
)


def test_concurrent_register_from_two_processes_gets_distinct_versions(
    reg: Registry, metadata_url: str, tmp_path: Path
):
    go = tmp_path / "go"  # both processes race from the very first version of a new model
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, metadata_url, reg.artifacts.root, tag, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for proc in procs:  # both are connected before either starts registering
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    claimed = [line.split() for out, _ in outputs for line in out.splitlines()]
    versions = sorted(int(v) for v, _ in claimed)
    assert versions == list(range(1, 13))
    for version, payload in claimed:
        _, data = reg.fetch("ctr", int(version))
        assert data == payload.encode()


def test_alias_moves_are_atomic_and_audited(reg: Registry):
    for i in range(3):
        _register(reg, f"m{i}".encode())
    first = reg.set_alias("ctr", "production", 1, actor="ana", reason="launch")
    second = reg.set_alias("ctr", "production", "v2", actor="bo", reason="better auc")
    reg.set_alias("ctr", "staging", 3)
    assert (first.from_version, first.to_version) == (None, 1)
    assert (second.from_version, second.to_version, second.actor) == (1, 2, "bo")
    assert reg.aliases("ctr") == {"production": 2, "staging": 3}
    assert reg.resolve("ctr", "production") == 2
    history = reg.alias_history("ctr", "production")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in history] == [
        (None, 1, "ana", "launch"),
        (1, 2, "bo", "better auc"),
    ]
    assert history[0].at <= history[1].at
    assert len(reg.alias_history("ctr")) == 3
    promoted = reg.set_alias("ctr", "production", "staging", actor="cy")
    assert promoted.to_version == 3 and reg.resolve("ctr", "production") == 3


def test_rollback_walks_back_through_history(reg: Registry):
    for i in range(3):
        _register(reg, f"m{i}".encode())
    for v in (1, 2, 3):
        reg.set_alias("ctr", "production", v)
    back = reg.rollback("ctr", actor="oncall", reason="latency regression")
    assert (back.from_version, back.to_version, back.kind) == (3, 2, "rollback")
    assert back.reason == "latency regression" and back.actor == "oncall"
    assert reg.rollback("ctr").to_version == 1
    assert reg.resolve("ctr", "production") == 1
    with pytest.raises(ConflictError, match="no earlier version"):
        reg.rollback("ctr")
    reg.delete_alias("ctr", "production", reason="retire")
    assert "production" not in reg.aliases("ctr")
    assert reg.rollback("ctr", reason="undo retire").to_version == 1
    assert reg.resolve("ctr", "production") == 1


def test_tampered_artifact_is_refused(reg: Registry):
    mv = _register(reg, b"honest weights")
    reg.artifacts.local_path(mv.artifact_key).write_bytes(b"evil weights")
    with pytest.raises(IntegrityError, match="modified after registration"):
        reg.fetch("ctr", mv.version)
    with pytest.raises(IntegrityError):
        reg.verify("ctr", mv.version)


def test_unknown_names_list_what_exists(reg: Registry):
    for i in range(3):
        _register(reg, f"m{i}".encode())
    reg.set_alias("ctr", "production", 1)
    with pytest.raises(NotFoundError, match=r"model ctr has no version 7; 1, 2, 3 exist"):
        reg.get("ctr", 7)
    with pytest.raises(NotFoundError, match="did you mean 'production'"):
        reg.get("ctr", "prodution")
    with pytest.raises(NotFoundError, match="did you mean 'ctr'"):
        reg.get("ctx")
    with pytest.raises(NotFoundError, match="did you mean 'production'"):
        reg.resolve("ctr", "producton")
    with pytest.raises(NotFoundError, match="no version 9"):
        reg.set_alias("ctr", "staging", 9)


def test_bad_input_is_refused_with_the_rule(reg: Registry):
    with pytest.raises(ValidationError, match="not allowed"):
        reg.register("../etc", b"x", flavour="sklearn", signature=SIG)
    with pytest.raises(ValidationError, match="must be bytes"):
        reg.register("ctr", "not bytes", flavour="sklearn", signature=SIG)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        _register(reg, b"x", metrics={"auc": object()})
    _register(reg, b"x")
    with pytest.raises(ValidationError, match="reserved"):
        reg.set_alias("ctr", "v2", 1)
    with pytest.raises(ValidationError, match="reserved"):
        reg.set_alias("ctr", "latest", 1)
    with pytest.raises(ValidationError, match=">= 1"):
        reg.get("ctr", 0)
    assert reg.list_versions("ctr")[0].version == 1  # nothing half-written by the failures


def test_from_config_uses_the_project_stores(project_dir: Path):
    from loopml.core.config import ProjectConfig

    reg = Registry.from_config(ProjectConfig.load(project_dir))
    mv = reg.register("ctr", b"w", flavour="sklearn", signature=SIG)
    assert (project_dir / ".loopml" / "artifacts" / mv.artifact_key).read_bytes() == b"w"
    assert (project_dir / ".loopml" / "metadata.db").exists()


def test_parse_ref_refuses_malformed_refs():
    assert parse_ref("ctr@challenger") == ("ctr", "challenger")
    with pytest.raises(ValidationError, match="ends with '@'"):
        parse_ref("ctr@")
    with pytest.raises(ValidationError, match="not allowed"):
        parse_ref("../x@1")
