"""Micro-batching never mixes up responses; the batcher isolates bad requests and sheds load."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from loopml.core.errors import ValidationError
from loopml.serve.online.batcher import Batcher, OverloadedError, run_batch


def test_concurrent_requests_each_get_their_own_answer(served):
    """Many concurrent requests with distinct inputs, on a batched and a direct model."""
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(240, 4))
    models = ["kind" if i % 2 else "ctr" for i in range(len(rows))]

    async def main() -> list[dict]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=served.url, limits=limits, timeout=30) as client:

            async def one(model, row):
                body = {"features": {f"f{i}": float(v) for i, v in enumerate(row)}}
                r = await client.post(f"/v1/models/{model}/predict", json=body)
                assert r.status_code == 200, r.text
                return r.json()

            return await asyncio.gather(*(one(m, r) for m, r in zip(models, rows, strict=True)))

    answers = asyncio.run(main())
    frame = pd.DataFrame(rows, columns=["f0", "f1", "f2", "f3"])
    ctr = served.ctr.predict_proba(frame)[:, 1]
    kind = served.kind.predict_proba(frame)
    for i, answer in enumerate(answers):
        assert answer["model"] == models[i]
        expected = kind[i] if models[i] == "kind" else ctr[i]
        np.testing.assert_allclose(answer["prediction"], expected, rtol=1e-9)
    metrics = httpx.get(f"{served.url}/metrics").text
    assert _metric(metrics, 'loopml_batch_rows_sum{model="kind"}') >= len(rows) // 2


def test_data_plane_coalesces_concurrent_requests(tmp_path):
    """Requests that arrive together share model calls, and each gets exactly its rows."""
    from loopml.core.config import ProjectConfig
    from loopml.core.signature import Signature
    from loopml.predict.flavours import predictor_for
    from loopml.serve.online.app import create_app
    from loopml.serve.online.repository import StaticSource

    from .conftest import make_project, train_models

    X, _, kind = train_models()
    predictor = predictor_for(
        kind, Signature.infer(X, task="multiclass", classes=(0, 1, 2)), "sklearn", name="kind"
    )
    root = make_project(
        tmp_path / "proj", "[online]\ngrpc_port = 0\n[models.kind]\ncache = false\n"
    )
    app = create_app(ProjectConfig.load(root), StaticSource({"kind": predictor}))
    rows = np.random.default_rng(5).normal(size=(64, 4))

    async def main():
        state = app.state
        await state.startup()
        try:
            while not state.repository.ready:
                await asyncio.sleep(0.01)
            model = await state.repository.get("kind")
            results = await asyncio.gather(
                *(
                    state.dataplane.infer("kind", {f"f{k}": [row[k]] for k in range(4)})
                    for row in rows
                )
            )
            return results, model.batcher.batches
        finally:
            await state.shutdown()

    results, calls = asyncio.run(main())
    expected = kind.predict_proba(pd.DataFrame(rows, columns=["f0", "f1", "f2", "f3"]))
    for i, result in enumerate(results):
        np.testing.assert_allclose(result.outputs["probabilities"][0], expected[i], rtol=1e-9)
    assert calls < len(rows) // 4  # 64 requests, a handful of model calls


def _metric(text: str, name: str) -> float:
    return next(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name))


def test_run_batch_isolates_a_failing_request():
    def predict(cols):
        if (cols["x"] < 0).any():
            raise ValidationError("x must be >= 0", field="x")
        return cols["x"] * 10

    items = [
        ({"x": np.array([1.0])}, 1),
        ({"x": np.array([-1.0, 2.0])}, 2),
        ({"x": np.array([3.0])}, 1),
    ]
    out = run_batch(predict, items)
    np.testing.assert_array_equal(out[0], [10.0])
    assert isinstance(out[1], ValidationError)
    np.testing.assert_array_equal(out[2], [30.0])


@pytest.mark.parametrize("inline", [True, False])
def test_batcher_coalesces_and_splits_in_order(inline):
    calls: list[int] = []

    def predict(cols):
        calls.append(len(cols["x"]))
        if not inline:
            time.sleep(0.01)
        return cols["x"] + 0.5

    async def main():
        b = Batcher(predict, max_batch_size=16, max_wait_s=0.002, inline=inline)
        values = [np.array([float(i)]) for i in range(40)]
        return await asyncio.gather(*(b.submit({"x": v}, 1) for v in values))

    out = asyncio.run(main())
    assert [float(o[0]) for o in out] == [i + 0.5 for i in range(40)]
    assert max(calls) > 1 and max(calls) <= 16 and sum(calls) == 40


def test_full_queue_is_refused_not_queued():
    async def main():
        b = Batcher(
            lambda c: (time.sleep(0.05), c["x"])[1],
            max_batch_size=2,
            max_queue_rows=4,
            inline=False,
        )
        tasks = [asyncio.ensure_future(b.submit({"x": np.array([1.0])}, 1)) for _ in range(10)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(main())
    refused = [o for o in out if isinstance(o, OverloadedError)]
    served = [o for o in out if isinstance(o, np.ndarray)]
    assert refused and served and len(refused) + len(served) == 10
