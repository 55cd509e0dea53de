"""A bounded load test on loopback: zero errors and flat memory."""

from __future__ import annotations

import asyncio
import gc

import httpx
import numpy as np
import psutil

ROUNDS, PER_ROUND, CONCURRENCY = 3, 200, 16


def test_bounded_load_has_no_errors_and_flat_memory(served):
    rng = np.random.default_rng(11)
    process = psutil.Process()

    async def round_(client: httpx.AsyncClient) -> list[int]:
        rows = rng.normal(size=(PER_ROUND, 4))
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> int:
            async with sem:
                if i % 2:
                    body = {"features": {f"f{k}": float(v) for k, v in enumerate(rows[i])}}
                    r = await client.post("/v1/models/ctr/predict", json=body)
                else:
                    inputs = [
                        {
                            "name": f"f{k}",
                            "shape": [1],
                            "datatype": "FP64",
                            "data": [float(rows[i, k])],
                        }
                        for k in range(4)
                    ]
                    r = await client.post("/v2/models/ctr/infer", json={"inputs": inputs})
                return r.status_code

        return await asyncio.gather(*(one(i) for i in range(PER_ROUND)))

    async def main() -> tuple[list[int], list[float]]:
        statuses: list[int] = []
        rss: list[float] = []
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=served.url, limits=limits, timeout=30) as client:
            for _ in range(ROUNDS):
                statuses += await round_(client)
                gc.collect()
                rss.append(process.memory_info().rss / 2**20)
        return statuses, rss

    statuses, rss = asyncio.run(main())
    assert statuses.count(200) == ROUNDS * PER_ROUND, {s: statuses.count(s) for s in set(statuses)}
    # after warm-up (round 1), memory stays flat: bounded cache, bounded log buffer
    assert rss[-1] - rss[1] < 10.0, rss
