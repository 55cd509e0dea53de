"""One contract for every online key-value store: in-process, SQLite and Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest

from loopml.core.errors import ClosedError, ValidationError
from loopml.storage.online import OnlineStore, open_kv


@pytest.fixture(params=["memory", "sqlite", "redis"])
def url(request, tmp_path):
    if request.param == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    redis_url = request.getfixturevalue("redis_url")
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


def test_get_set_delete_and_missing(url):
    kv = open_kv(url)
    kv.set_many({"a": b"1", "b": b"\x00\xff"})
    assert kv.get_many(["a", "b", "zz"]) == [b"1", b"\x00\xff", None]
    kv.set_many({"a": b"2"})
    assert kv.get_many(["a"]) == [b"2"]
    kv.delete(["a"])
    assert kv.get_many(["a", "b"]) == [None, b"\x00\xff"]
    assert kv.get_many([]) == []
    kv.close()
    with pytest.raises(ClosedError, match="closed"):
        kv.get_many(["b"])


def test_ttl_expires_values(url):
    kv = open_kv(url)
    kv.set_many({"short": b"x"}, ttl_s=0.2)
    kv.set_many({"long": b"y"})
    assert kv.get_many(["short"]) == [b"x"]
    time.sleep(0.35)
    assert kv.get_many(["short", "long"]) == [None, b"y"]
    with pytest.raises(ValidationError, match="ttl_s"):
        kv.set_many({"k": b"v"}, ttl_s=-1)
    kv.close()


def test_async_access_matches_sync(url):
    kv = open_kv(url)

    async def main():
        await kv.aset_many({"k1": b"v1"})
        got = await kv.aget_many(["k1", "k2"])
        closer = getattr(kv, "aclose", None)
        if closer is not None:
            await closer()
        return got

    assert asyncio.run(main()) == [b"v1", None]
    assert kv.get_many(["k1"]) == [b"v1"]
    kv.close()


def test_feature_rows_round_trip_with_view_metadata(url):
    store = OnlineStore(url)
    rows = {
        "u1": {
            "v__ctr": np.float64(0.12),
            "v__n": np.int64(3),
            "v__country": "kr",
            "v__missing": float("nan"),
        },
        "u2": {"v__ctr": 0.5, "v__n": 0, "v__country": None, "v__missing": None},
    }
    assert (
        store.write(
            "user_v", "user_id", rows, as_of="2026-01-02T00:00:00+00:00", extra={"version": 2}
        )
        == 2
    )
    got = store.read("user_v", ["u2", "nobody", "u1"])
    assert got[1] is None
    assert got[2] == {"v__ctr": 0.12, "v__n": 3, "v__country": "kr", "v__missing": None}
    assert got[0]["v__country"] is None
    info = store.view_info("user_v")
    assert info["entity_key"] == "user_id" and info["version"] == 2
    assert info["features"] == ["v__country", "v__ctr", "v__missing", "v__n"]
    assert store.views() == ["user_v"]
    assert asyncio.run(store.aread("user_v", ["u1"]))[0]["v__n"] == 3
    with pytest.raises(ValidationError, match="feature view"):
        store.write("../evil", "user_id", {})
    store.close()


def test_sqlite_store_is_shared_between_openers(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = open_kv(url), open_kv(url)
    a.set_many({"k": b"v"})
    assert b.get_many(["k"]) == [b"v"]
    a.close()
    b.close()


def test_unknown_scheme_is_refused_with_the_choices():
    with pytest.raises(ValidationError, match="redis://"):
        open_kv("mysql://x")
