"""The registry's edge-bundle inventory, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from loopml.core.errors import NotFoundError, ValidationError
from loopml.registry.bundles import BundleInventory, BundleRecord


def _rec(n: int, version: int, target: str = "browser") -> BundleRecord:
    return BundleRecord(
        f"{n:064x}",
        f"{n + 1000:064x}",
        "ctr",
        version,
        "production",
        target,
        "original",
        1000 + n,
        f"edge/ctr/{n:064x}",
        {"n": n},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def inventory(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "sqlite":
        return BundleInventory(f"sqlite:///{tmp_path}/meta.db")
    return BundleInventory(request.getfixturevalue("postgres_schema"))


def test_record_and_query(inventory):
    first = inventory.record(_rec(1, 1))
    inventory.record(_rec(2, 2))
    inventory.record(_rec(3, 2, target="android"))
    assert first.id > 0 and first.created_at is not None and first.details == {"n": 1}
    assert [r.model_version for r in inventory.list("ctr", "browser")] == [2, 1]
    assert inventory.latest("ctr", "browser").bundle_sha256 == f"{2:064x}"
    assert inventory.latest("ctr", "browser", version=1).bundle_sha256 == f"{1:064x}"
    assert inventory.latest("ctr", "ios") is None
    assert inventory.get(f"{1001:064x}").bundle_sha256 == f"{1:064x}"  # by model.onnx hash
    assert len(inventory.list()) == 3 and len(inventory.list(target="android")) == 1


def test_recording_the_same_bundle_twice_keeps_one_row(inventory):
    a = inventory.record(_rec(7, 1))
    b = inventory.record(_rec(7, 1))
    assert a == b and len(inventory.list("ctr")) == 1


def test_bad_input_is_refused(inventory):
    with pytest.raises(NotFoundError, match="no exported edge bundle has sha256 000000000000"):
        inventory.get("0" * 64)
    bad = BundleRecord("xyz", "0" * 64, "ctr", 1, "production", "browser", "original", 1, "x")
    with pytest.raises(ValidationError, match="bundle_sha256 must be a 64-character hex"):
        inventory.record(bad)
    with pytest.raises(ValidationError, match="target '../up' is not allowed"):
        inventory.record(BundleRecord("a" * 64, "b" * 64, "ctr", 1, "p", "../up", "o", 1, "x"))
