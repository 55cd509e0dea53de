"""`loopml bandit simulate`: bandit policies in closed loop with the simulated world.

Each round a user (drawn by the world's activity) requests one item from a fixed set
of candidates; the policy chooses, the world answers with a click drawn from its true
click probability, and the policy learns from it in blocks (feedback arrives with a
delay, as over a queue). Regret is measured against the world's true best candidate
for that user at that moment, using true probabilities, so it is free of click noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.serve.stream.bandits.policies import Policy, make_policy

if TYPE_CHECKING:
    from loopml.sim.world import World
    from loopml.storage.queues.base import Queue


@dataclass
class BanditResult:
    """Cumulative reward and regret of one policy over ``rounds``."""

    policy: str
    rounds: int
    clicks: int
    expected_reward: float  # sum of the true click probability of each chosen item
    regret: float  # sum over rounds of p(best candidate) - p(chosen)
    best_share: float  # fraction of rounds the oracle's choice was made
    curve: list[tuple[int, float]] = field(default_factory=list)  # (round, cumulative regret)

    @property
    def ctr(self) -> float:
        return self.clicks / self.rounds if self.rounds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "rounds": self.rounds,
            "clicks": self.clicks,
            "ctr": round(self.ctr, 5),
            "expected_reward": round(self.expected_reward, 3),
            "regret": round(self.regret, 3),
            "best_share": round(self.best_share, 4),
        }


def simulate_bandit(
    world: World,
    policy: Policy | str,
    rounds: int = 20_000,
    n_candidates: int = 10,
    block: int = 200,
    seed: int = 0,
    queue: Queue | None = None,
    day: int = 0,
) -> BanditResult:
    """Run ``policy`` against ``world`` for ``rounds`` requests.

    Same ``seed`` -> same candidates, users, times and click draws for every policy,
    so policies are compared on identical traffic. With ``queue``, requests, decisions
    and feedback travel through a :class:`BanditService` on that queue.
    """
    from loopml.serve.stream.bandits.service import DECISIONS, FEEDBACK, REQUESTS, BanditService

    policy = make_policy(policy, seed=seed) if isinstance(policy, str) else policy
    traffic = np.random.default_rng(seed)
    clicks_rng = np.random.default_rng(seed + 1)
    candidates = [str(c) for c in world.candidates(n_candidates, traffic)]
    cols = [c for c in ("segment", "age_band", "country") if c in world.users.columns]
    contexts = dict(
        zip(
            world.users["user_id"].astype(str),
            world.users[cols].astype(str).to_dict("records"),
            strict=True,
        )
    )
    start = world.day_start(day).value // 1000  # epoch microseconds
    span = 86_400_000_000
    service = BanditService(queue, policy, name=f"bandit-{policy.name}") if queue else None
    result = BanditResult(policy.name, 0, 0, 0.0, 0.0, 0.0)
    best_hits = 0
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        from loopml.core.errors import ValidationError

        raise ValidationError(f"block must be a positive integer, got {block!r}", field="block")
    for first in range(0, rounds, block):
        n = min(block, rounds - first)
        ts = np.datetime64(int(start + span * first / rounds), "us")
        who = world.sample_users(n, ts, traffic)
        ctx = [contexts[str(u)] for u in who]
        if service is None:
            chosen = [policy.select(candidates, c) for c in ctx]
        else:
            ids = [f"{policy.name}-{first + i}" for i in range(n)]
            queue.publish_many(
                REQUESTS,
                [
                    {"request_id": r, "candidates": candidates, "context": c}
                    for r, c in zip(ids, ctx, strict=True)
                ],
                [str(u) for u in who],
            )
            service.step(count=n)
            got = queue.consume(DECISIONS, "world", "world", count=n)
            queue.ack(DECISIONS, "world", got)
            by_id = {m.payload["request_id"]: m.payload["item_id"] for m in got}
            chosen = [by_id[r] for r in ids]
        p = world.true_ctr(who, chosen, 0, ts)
        clicked = clicks_rng.random(n) < p
        best = world.best_items(who, candidates, ts)
        p_best = world.true_ctr(who, best, 0, ts)
        if service is None:
            for c, arm, click in zip(ctx, chosen, clicked, strict=True):
                policy.update(arm, float(click), c)
        else:
            queue.publish_many(
                FEEDBACK,
                [{"request_id": r, "reward": float(c)} for r, c in zip(ids, clicked, strict=True)],
            )
            service.step(count=n)
        result.rounds += n
        result.clicks += int(clicked.sum())
        result.expected_reward += float(p.sum())
        result.regret += float((p_best - p).sum())
        best_hits += int((np.asarray(chosen) == best).sum())
        result.curve.append((result.rounds, result.regret))
    result.best_share = best_hits / result.rounds if result.rounds else 0.0
    return result


def compare_policies(
    world: World,
    policies: tuple[str, ...] = ("random", "epsilon_greedy", "ucb", "thompson", "linucb"),
    rounds: int = 20_000,
    n_candidates: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, BanditResult]:
    """Every policy on the same traffic (`loopml bandit simulate`)."""
    out = {}
    names = policies
    if progress:
        from rich.progress import track

        names = track(policies, description="simulating policies")
    for name in names:
        out[name] = simulate_bandit(world, name, rounds, n_candidates, seed=seed)
    return out


def plot_regret(results: dict[str, BanditResult], path: str) -> str:
    """Cumulative regret curves of several policies as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, r in results.items():
        ax.plot([c[0] for c in r.curve], [c[1] for c in r.curve], label=name)
    ax.set_xlabel("rounds")
    ax.set_ylabel("cumulative regret (true clicks lost)")
    ax.set_title("Bandits against the simulated world's best candidate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bandit_simulate(
    policies: tuple[str, ...] = ("random", "epsilon_greedy", "ucb", "thompson", "linucb"),
    rounds: int = 20_000,
    n_candidates: int = 10,
    seed: int = 1,
    world_seed: int = 0,
    plot: str | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """`loopml bandit simulate`: a table of every policy on the same traffic, plus a PNG.

    Each row has cumulative clicks, expected reward, regret against the world's true
    best candidate, and the regret relative to uniform random.
    """
    from loopml.sim.config import WorldConfig
    from loopml.sim.world import World

    world = World(
        WorldConfig(seed=world_seed, days=1, n_users=3000, n_items=200, impressions_per_day=1000)
    )
    results = compare_policies(world, policies, rounds, n_candidates, seed, progress)
    if plot:
        plot_regret(results, plot)
    base = results.get("random")
    rows = []
    for r in results.values():
        row = r.to_dict()
        if base is not None and base.regret > 0:
            row["regret_vs_random"] = round(r.regret / base.regret, 3)
        rows.append(row)
    return rows
