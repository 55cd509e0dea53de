"""Sticky assignment, the policy objects, team draft, guardrails and spec validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml.core.errors import ValidationError
from loopml.rollout.assignment import bucket
from loopml.rollout.guardrails import ArmWindow, Guardrails, judge
from loopml.rollout.interleaving import credit, team_draft
from loopml.rollout.policies import POLICIES, ABPolicy, BanditPolicy, CanaryPolicy, policy_for
from loopml.rollout.records import POLICY_KINDS, Experiment, ExperimentSpec

UNITS = [f"u{i}" for i in range(20_000)]


def test_buckets_are_sticky_uniform_and_independent_per_experiment():
    first = np.array([bucket("exp-a", u) for u in UNITS])
    again = np.array([bucket("exp-a", u) for u in UNITS])
    other = np.array([bucket("exp-b", u) for u in UNITS])
    assert np.array_equal(first, again)
    counts = np.histogram(first, bins=10, range=(0, 1))[0] / len(UNITS)
    assert np.all(np.abs(counts - 0.1) < 0.012)
    # another experiment splits the same users independently of this one
    both = np.mean((first < 0.5) & (other < 0.5))
    assert abs(both - 0.25) < 0.015


def test_the_bucket_function_is_pinned():
    """Stored assignments, and every user's experience so far, depend on these values:
    a change to the hash would silently move users of running experiments between arms."""
    assert bucket("exp1", "u42") == 0.5518947602439481
    assert bucket("checkout-test", "user-1") == 0.5290546907887257


def test_ab_split_follows_the_weights_and_each_unit_keeps_its_arm():
    policy = ABPolicy(("production", "b", "c"), (0.8, 0.1, 0.1))
    arms = np.array([policy.choose(bucket("e", u), None) for u in UNITS])
    shares = np.bincount(arms, minlength=3) / len(UNITS)
    assert shares == pytest.approx([0.8, 0.1, 0.1], abs=0.012)
    assert all(
        policy.choose(bucket("e", u), None) == a for u, a in zip(UNITS[:500], arms, strict=False)
    )


def test_canary_ramp_only_adds_units_as_it_climbs():
    ramp = (1, 5, 25, 50, 100)
    served = []
    for stage in range(len(ramp)):
        p = CanaryPolicy(("production", "challenger"), ramp, stage)
        served.append({u for u in UNITS if p.choose(bucket("c", u), None) == 1})
    for small, big in zip(served, served[1:], strict=False):
        assert small <= big
    assert len(served[1]) / len(UNITS) == pytest.approx(0.05, abs=0.006)
    assert len(served[-1]) == len(UNITS)


def test_bandit_shifts_draws_to_the_arm_with_more_successes():
    rng = np.random.default_rng(0)
    truth = [0.05, 0.08, 0.12]
    p = BanditPolicy(("1", "2", "3"))
    picks = []
    for _ in range(3000):
        arm = p.choose(0.0, rng)
        p.observe(arm)
        p.reward(arm, float(rng.random() < truth[arm]))
        picks.append(arm)
    assert np.mean(np.array(picks[-1000:]) == 2) > 0.6


def test_every_policy_kind_builds_from_a_stored_experiment():
    assert set(POLICIES) == set(POLICY_KINDS)
    for kind in POLICY_KINDS:
        spec = ExperimentSpec("e", "m", kind, ("production", "challenger")).checked()
        assert policy_for(Experiment(spec)).kind == kind


@settings(max_examples=60, deadline=None)
@given(st.permutations(list(range(12))), st.permutations(list(range(12))), st.integers(0, 10**6))
def test_team_draft_is_a_fair_merge(rank_a, rank_b, seed):
    order, teams = team_draft(rank_a, rank_b, np.random.default_rng(seed))
    assert sorted(order) == list(range(12))
    assert abs(teams.count(0) - teams.count(1)) <= 1
    # each team contributes its items in its own preference order
    for team, ranking in ((0, rank_a), (1, rank_b)):
        picked = [item for item, t in zip(order, teams, strict=False) if t == team]
        assert picked == sorted(picked, key=ranking.index)


def test_team_draft_of_identical_rankings_is_that_ranking():
    order, _ = team_draft([3, 1, 2, 0], [3, 1, 2, 0], np.random.default_rng(1))
    assert order == [3, 1, 2, 0]
    with pytest.raises(ValidationError, match="same items"):
        team_draft([0, 1], [0, 2], np.random.default_rng(1))


def test_credit_goes_to_the_team_with_more_clicks():
    assert credit([0]) == 0 and credit([1, 1, 0]) == 1 and credit([]) == -1


def _window(n, errors=0, latency=2.0, clicks=None):
    return ArmWindow(n, errors, np.full(n, latency), n, clicks if clicks is not None else n // 20)


def test_guardrails_roll_back_on_errors_latency_or_a_worse_metric():
    rails = Guardrails(min_requests=100)
    champion = _window(5000)
    errors = judge(champion, _window(30, errors=6), rails)
    assert errors.action == "rollback" and "error rate" in errors.reason
    slow = judge(champion, _window(30, latency=40.0), rails)
    assert slow.action == "rollback" and "p99 latency" in slow.reason
    worse = judge(_window(5000, clicks=500), _window(2000, clicks=20), rails)
    assert worse.action == "rollback" and "online metric" in worse.reason
    assert judge(champion, _window(30), rails).action == "hold"
    assert judge(champion, _window(150), rails).action == "advance"


def test_two_errors_in_few_requests_do_not_trip_the_error_guardrail():
    assert judge(_window(5000), _window(10, errors=2), Guardrails()).action == "hold"


def test_guardrails_from_json_refuse_unknown_keys_and_negative_values():
    assert Guardrails.from_dict({"max_error_rate": 0.05}).max_error_rate == 0.05
    with pytest.raises(ValidationError, match="did you mean 'max_error_rate'"):
        Guardrails.from_dict({"max_errors_rate": 0.05})
    with pytest.raises(ValidationError, match=">= 0"):
        Guardrails.from_dict({"min_requests": -1})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"weights": (1.0,)}, "weights"),
        ({"ramp": (5, 1)}, "ramp"),
        ({"policy": "canary", "arms": ("a", "b", "c")}, "arms"),
        ({"arms": ("a", "a")}, "arms"),
        ({"arms": ("../x", "b")}, "arm"),
        ({"alpha": 0.0}, "alpha"),
        ({"mde": 0.0}, "mde"),
        ({"mde": float("nan")}, "mde"),
    ],
)
def test_bad_specs_name_the_field(changes, field):
    base = {"name": "e", "model": "m", "policy": "ab", "arms": ("production", "challenger")}
    with pytest.raises(ValidationError) as info:
        ExperimentSpec(**{**base, **changes}).checked()
    assert info.value.fields["field"] == field


def test_spec_round_trips_through_json_and_refuses_unknown_settings():
    spec = ExperimentSpec.from_dict(
        {"name": "e", "model": "m", "policy": "canary", "arms": "production,2", "ramp": "10,100"}
    )
    assert spec.ramp == (10.0, 100.0) and spec.arms == ("production", "2")
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValidationError, match="did you mean 'weights'"):
        ExperimentSpec.from_dict({**spec.to_dict(), "weight": [1, 1]})
