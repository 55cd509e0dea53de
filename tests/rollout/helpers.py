"""Rankers of known quality built from the simulated world's truth, a real data plane to
serve them, and the closed loop (request -> ranking -> world's clicks -> feedback)."""

from __future__ import annotations

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from loopml.core.signature import ColumnSpec, Signature
from loopml.predict.predictor import Predictor
from loopml.sim import World, WorldConfig

TS = "2026-01-05T20:00Z"
SLATE = 5
SIGNATURE = Signature((ColumnSpec("user_id", "category"), ColumnSpec("item_id", "category")))
_TRUTH: Truth | None = None


class Truth:
    """The world's true click rate of every (user, item, slot) at one hour, as a table.

    Built once from :meth:`World.true_ctr` so the closed loop costs array lookups only.
    """

    def __init__(self) -> None:
        self.world = World(
            WorldConfig(seed=11, n_users=1000, n_items=120, days=1, impressions_per_day=2000)
        )
        w = self.world
        self.user_ids = w.users["user_id"].to_numpy(dtype=object)
        self.item_ids = w.items["item_id"].to_numpy(dtype=object)
        self.user_row = {u: i for i, u in enumerate(self.user_ids)}
        self.item_row = {v: i for i, v in enumerate(self.item_ids)}
        nu, ni = len(self.user_ids), len(self.item_ids)
        users = np.repeat(self.user_ids, ni * SLATE)
        items = np.tile(np.repeat(self.item_ids, SLATE), nu)
        slots = np.tile(np.arange(SLATE), nu * ni)
        self.ctr = w.true_ctr(users, items, slots, TS).reshape(nu, ni, SLATE)

    def any_click_rate(self, scorer: TruthScorer, n: int, seed: int, candidates: int = 20) -> float:
        """The exact expected share of feed requests with a click when ``scorer`` ranks:
        ``1 - prod(1 - ctr)`` over the slate, averaged over ``n`` simulated requests."""
        rng = np.random.default_rng(seed)
        users = np.array([self.user_row[u] for u in self.users(n, rng)])
        cands = np.argsort(rng.random((n, len(self.item_ids))), axis=1)[:, :candidates]
        scores = scorer.table[users[:, None], cands]
        slate = np.take_along_axis(cands, np.argsort(-scores, axis=1)[:, :SLATE], axis=1)
        p = self.ctr[users[:, None], slate, np.arange(SLATE)[None, :]]
        return float(np.mean(1.0 - np.prod(1.0 - p, axis=1)))

    def users(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.world.sample_users(n, TS, rng)

    def clicks(self, user: str, items: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = self.user_row[user]
        rows = np.fromiter((self.item_row[i] for i in items), dtype=np.int64, count=len(items))
        p = self.ctr[u, rows, np.arange(len(items))]
        return rng.random(len(items)) < p


def truth() -> Truth:
    """The small world and its truth table, built once per test process."""
    global _TRUTH
    if _TRUTH is None:
        _TRUTH = Truth()
    return _TRUTH


class TruthScorer(Predictor):
    """Scores (user, item) by the world's true click logit blurred by Gaussian noise.

    ``noise=0`` is the oracle; larger noise is a worse model. Scores are fixed per
    (user, item), as a trained model's would be.
    """

    flavour = "sim"

    def __init__(self, noise: float, seed: int, version: int = 1) -> None:
        super().__init__(SIGNATURE, "ranker", version)
        t = truth()
        self.noise = noise
        self.user_row, self.item_row = t.user_row, t.item_row
        p = t.ctr[:, :, 0]
        logit = np.log(p / (1 - p))
        logit = logit + noise * np.random.default_rng(seed).normal(size=logit.shape)
        self.table = 1.0 / (1.0 + np.exp(-logit))

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        u = np.fromiter((self.user_row.get(x, -1) for x in columns["user_id"]), np.int64)
        i = np.fromiter((self.item_row.get(x, -1) for x in columns["item_id"]), np.int64)
        ok = (u >= 0) & (i >= 0)
        out = np.full(len(u), 0.5)
        out[ok] = self.table[u[ok], i[ok]]
        return out


class BrokenScorer(TruthScorer):
    """A challenger that fails every call (a bad deploy)."""

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        raise RuntimeError("model file is corrupt: feature 'item_id' has no embedding")


class SlowScorer(TruthScorer):
    """A correct challenger that takes ``delay_s`` per call (e.g. an oversized model)."""

    def __init__(self, noise: float, seed: int, delay_s: float, version: int = 1) -> None:
        super().__init__(noise, seed, version)
        self.delay_s = delay_s

    def _predict(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        time.sleep(self.delay_s)
        return super()._predict(columns)


async def dataplane(
    versions: dict[int, Any], aliases: dict[str, int], settings: dict | None = None
):
    """A real data plane serving ``ranker`` at these versions (no cache, no log)."""
    from loopml.serve.online.dataplane import DataPlane
    from loopml.serve.online.metrics import Metrics
    from loopml.serve.online.repository import ModelRepository, StaticSource
    from loopml.serve.online.settings import model_settings

    section = {"ranker": settings or {}}

    def settings_for(name: str):
        return model_settings(name, section)

    repo = ModelRepository(
        StaticSource({"ranker": versions}, {"ranker": aliases}),
        settings_for,
        max_batch_size=64,
        max_wait_ms=1.0,
        executor=ThreadPoolExecutor(2),
    )
    await repo.start()
    return DataPlane(repo, settings_for, metrics=Metrics())


class Feed:
    """The closed loop: a user asks for a feed, the ranker orders candidates, the world
    clicks, the clicks go back to the experiment -- as feedback through the router, or,
    with ``log``, only as impression and click events written to the event log (what
    ``POST /v1/events`` does), for the experiment to join itself."""

    def __init__(
        self,
        router: Any,
        experiment: str,
        seed: int,
        *,
        candidates: int = 20,
        slate: int = 5,
        log: Any = None,
    ) -> None:
        self.router = router
        self.experiment = experiment
        self.rng = np.random.default_rng(seed)
        self.truth = truth()
        self.candidates = candidates
        self.slate = slate
        self.log = log
        self.seed = seed
        self.pending: list[dict[str, Any]] = []
        self.impressions: list[dict[str, Any]] = []
        self.requests = 0
        self.clicks = 0

    async def step(self, unit: bool = True) -> Any:
        t = self.truth
        user = t.users(1, self.rng)[0]
        cands = t.item_ids[self.rng.choice(len(t.item_ids), self.candidates, replace=False)]
        headers = {"x-unit-id": str(user)} if unit else {}
        res = await self.router.infer(
            "ranker", {"user_id": [user] * len(cands), "item_id": cands}, headers=headers
        )
        order = np.argsort(-np.asarray(res.outputs["probability"]), kind="stable")[: self.slate]
        shown = cands[order]
        clicked = t.clicks(user, shown, self.rng)
        if self.log is None:
            for item in shown[clicked]:
                self.pending.append({"request_id": res.request_id, "metric": "click", "item": item})
        else:
            now = datetime.datetime.now(datetime.UTC)
            for slot, (item, hit) in enumerate(zip(shown, clicked, strict=True)):
                imp = f"imp-{self.seed}-{self.requests}-{slot}"
                self.impressions.append(
                    {
                        "event_id": imp,
                        "ts": now,
                        "request_id": res.request_id,
                        "user_id": str(user),
                        "item_id": str(item),
                        "position": slot,
                    }
                )
                if hit:
                    self.pending.append(
                        {
                            "event_id": f"click-{imp}",
                            "ts": now,
                            "impression_id": imp,
                            "user_id": str(user),
                            "item_id": str(item),
                        }
                    )
        self.requests += 1
        self.clicks += int(clicked.sum())
        return res

    async def run(
        self, n: int, *, send_every: int = 100, tick_every: int | None = None, unit: bool = True
    ) -> None:
        for i in range(1, n + 1):
            await self.step(unit)
            if i % send_every == 0:
                await self.send()
            if tick_every and i % tick_every == 0:
                await self.send()
                await self.router.tick()
        await self.send()

    async def send(self) -> None:
        if self.log is not None:
            if self.impressions:
                rows, self.impressions = self.impressions, []
                assert self.log.append("impression", rows).rejected == 0
            if self.pending:
                rows, self.pending = self.pending, []
                assert self.log.append("click", rows).rejected == 0
            return
        if self.pending:
            rows, self.pending = self.pending, []
            out = await self.router.feedback(self.experiment, rows)
            if out["rejected"]:
                raise AssertionError(f"feedback rejected: {out['reasons']}")
