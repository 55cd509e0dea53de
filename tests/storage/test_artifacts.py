"""The artifact store refuses path traversal and tampered files."""

from __future__ import annotations

import pytest

from loopml.core.errors import IntegrityError, NotFoundError, ValidationError
from loopml.core.names import check_name
from loopml.storage.artifacts import ArtifactStore


def test_roundtrip_and_tamper_detection(tmp_path):
    store = ArtifactStore(str(tmp_path))
    digest = store.put_bytes("ctr/1/model.bin", b"weights")
    store.verify("ctr/1/model.bin", digest)
    (tmp_path / "ctr/1/model.bin").write_bytes(b"weightz")
    with pytest.raises(IntegrityError, match="modified after registration"):
        store.get_bytes("ctr/1/model.bin", sha256=digest)
    with pytest.raises(IntegrityError):
        store.verify("ctr/1/model.bin", digest)


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "./a"])
def test_path_traversal_is_refused(tmp_path, key):
    with pytest.raises(ValidationError):
        ArtifactStore(str(tmp_path)).put_bytes(key, b"x")


def test_missing_artifact_names_the_key(tmp_path):
    with pytest.raises(NotFoundError, match="'m/1/x' is missing"):
        ArtifactStore(str(tmp_path)).get_bytes("m/1/x")


def test_fsspec_memory_url_works():
    store = ArtifactStore("memory://loopml-test")
    digest = store.put_bytes("m/1/x", b"abc")
    assert store.get_bytes("m/1/x", sha256=digest) == b"abc"
    assert store.exists("m/1/x")


@pytest.mark.parametrize("name", ["..", "a/b", "", "x" * 200, ".hidden", "a..b", None, "é"])
def test_unsafe_names_refused(name):
    with pytest.raises(ValidationError):
        check_name(name)
