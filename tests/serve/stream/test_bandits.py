"""Each bandit beats uniform random against the simulated world's true best choice."""

from __future__ import annotations

import pytest

from loopml.core.errors import ValidationError
from loopml.serve.stream.bandits.policies import EpsilonGreedy, LinUCB, make_policy
from loopml.serve.stream.bandits.service import FEEDBACK, BanditService
from loopml.serve.stream.bandits.simulate import bandit_simulate, plot_regret, simulate_bandit
from loopml.sim.config import WorldConfig
from loopml.sim.world import World
from loopml.storage.queues import open_queue

ROUNDS, SEED = 8000, 1


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig(days=1, n_users=3000, n_items=200, impressions_per_day=1000))


@pytest.fixture(scope="module")
def random_result(world):
    return simulate_bandit(world, "random", ROUNDS, seed=SEED)


@pytest.mark.parametrize("name", ["epsilon_greedy", "ucb", "thompson", "linucb"])
def test_policy_beats_uniform_random_by_a_clear_margin(world, random_result, name) -> None:
    result = simulate_bandit(world, name, ROUNDS, seed=SEED)
    assert result.rounds == ROUNDS
    assert result.regret < 0.65 * random_result.regret, result.to_dict()
    assert result.expected_reward > 1.3 * random_result.expected_reward
    assert result.clicks > random_result.clicks
    assert result.best_share > 2 * random_result.best_share
    # regret grows more slowly at the end than at the start: the policy learnt
    first = result.curve[len(result.curve) // 4][1]
    last_quarter = result.curve[-1][1] - result.curve[3 * len(result.curve) // 4][1]
    assert last_quarter < first


def test_same_seed_same_run_and_the_queue_adds_no_error(world, tmp_path) -> None:
    in_memory = simulate_bandit(world, "thompson", 1200, seed=3)
    again = simulate_bandit(world, "thompson", 1200, seed=3)
    assert in_memory.to_dict() == again.to_dict()
    with open_queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        over_queue = simulate_bandit(world, "thompson", 1200, seed=3, queue=q)
        assert q.pending(FEEDBACK, "bandit-thompson") == 0
    assert over_queue.to_dict() == in_memory.to_dict()
    png = plot_regret({"thompson": in_memory}, str(tmp_path / "regret.png"))
    with open(png, "rb") as fh:
        assert fh.read(4) == b"\x89PNG"


def test_bandit_simulate_table_for_the_cli(tmp_path) -> None:
    rows = bandit_simulate(
        ("random", "thompson"), rounds=600, plot=str(tmp_path / "r.png"), progress=False
    )
    assert [r["policy"] for r in rows] == ["random", "thompson"]
    assert rows[0]["regret_vs_random"] == 1.0 and rows[1]["rounds"] == 600
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_redelivered_feedback_counts_once(tmp_path) -> None:
    with open_queue(f"sqlite:///{tmp_path / 'q.db'}") as q:
        service = BanditService(q, EpsilonGreedy(epsilon=0.0), name="b")
        q.publish("bandit_requests", {"request_id": "r1", "candidates": ["a", "b"]})
        service.step()
        decision = q.consume("bandit_decisions", "t", "t")[0].payload
        fb = {"request_id": "r1", "reward": 1.0}
        q.publish_many(FEEDBACK, [fb, fb, {"request_id": "nobody", "reward": 1.0}])
        service.step()
    assert service.policy.pulls_ == {decision["item_id"]: 1}
    assert service.counts_["duplicate_feedback"] == 1 and service.counts_["unknown"] == 1


def test_linucb_learns_that_different_users_prefer_different_items() -> None:
    policy = LinUCB(alpha=0.05, seed=0)
    for _ in range(300):
        policy.update("news", 1.0, {"segment": "a"})
        policy.update("sports", 0.0, {"segment": "a"})
        policy.update("news", 0.0, {"segment": "b"})
        policy.update("sports", 1.0, {"segment": "b"})
    assert policy.select(["news", "sports"], {"segment": "a"}) == "news"
    assert policy.select(["news", "sports"], {"segment": "b"}) == "sports"


def test_bad_policy_arguments_name_the_field() -> None:
    with pytest.raises(ValidationError, match="did you mean 'thompson'"):
        make_policy("thomson")
    with pytest.raises(ValidationError, match="epsilon must be in"):
        make_policy("epsilon_greedy", epsilon=2.0)
    with pytest.raises(ValidationError, match="candidates is empty"):
        make_policy("ucb").select([])
