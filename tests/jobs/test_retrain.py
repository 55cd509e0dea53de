"""Retraining after the world shifted: the gate, promotion modes, and crash safety."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.jobs.world import DAYS

from loopml.core.config import ProjectConfig
from loopml.core.errors import ConflictError
from loopml.jobs.retrain import RetrainSpec, approve, retrain
from loopml.jobs.scheduler import Scheduler
from loopml.jobs.store import JobSpec
from loopml.registry.registry import Registry
from loopml.sim import WorldConfig

REPO = Path(__file__).resolve().parents[2]
NOW = WorldConfig().start_datetime + dt.timedelta(days=DAYS)


def _state(cfg: ProjectConfig) -> tuple[list[int], dict[str, int], int]:
    reg = Registry.from_config(cfg)
    moves = len(reg.alias_history("ctr"))
    return [v.version for v in reg.list_versions("ctr")], reg.aliases("ctr"), moves


def test_stale_champion_is_beaten_registered_and_promoted(champion_cfg):
    result = retrain(champion_cfg, RetrainSpec("ctr", train_days=3), now=NOW)
    assert result.gate.passed and result.gate.margin > 0
    assert result.gate.challenger > result.gate.champion
    assert (result.version, result.promoted, result.mode) == (2, True, "stateless")
    reg = Registry.from_config(champion_cfg)
    assert reg.aliases("ctr") == {"production": 2}
    move = reg.alias_history("ctr", "production")[-1]
    assert move.actor == "loopml-retrain" and "gate passed: roc_auc" in move.reason
    v2 = reg.get("ctr", 2)
    assert v2.metrics["gate"]["margin"] == pytest.approx(result.gate.margin)
    assert v2.lineage["parent_version"] == 1 and v2.lineage["retrain"]["mode"] == "stateless"


def test_a_rejected_candidate_changes_nothing(champion_cfg):
    before = _state(champion_cfg)
    result = retrain(champion_cfg, RetrainSpec("ctr", train_days=3, min_improvement=0.5), now=NOW)
    assert not result.gate.passed and result.version is None
    assert "registry unchanged" in str(result)
    assert _state(champion_cfg) == before


def test_manual_promotion_waits_for_approval(champion_cfg):
    spec = RetrainSpec("ctr", train_days=3, promotion="manual")
    result = retrain(champion_cfg, spec, now=NOW)
    reg = Registry.from_config(champion_cfg)
    assert result.approval == "pending" and not result.promoted
    assert reg.aliases("ctr") == {"production": 1, "challenger": 2}
    with pytest.raises(ConflictError, match="no passed evaluation gate"):
        approve(champion_cfg, "ctr", 1)
    approve(champion_cfg, "ctr", actor="ana")
    assert reg.aliases("ctr")["production"] == 2
    assert reg.alias_history("ctr", "production")[-1].actor == "ana"


def test_rollout_promotion_hands_the_candidate_to_a_canary(champion_cfg):
    from loopml.rollout.store import ExperimentStore

    result = retrain(champion_cfg, RetrainSpec("ctr", train_days=3, promotion="rollout"), now=NOW)
    assert result.approval == "rollout:ctr-retrain-v2" and not result.promoted
    experiment = ExperimentStore.from_config(champion_cfg).get("ctr-retrain-v2")
    assert experiment.running and experiment.spec.policy == "canary"
    assert experiment.spec.arms == ("production", "challenger")
    assert Registry.from_config(champion_cfg).aliases("ctr") == {"production": 1, "challenger": 2}


def test_stateful_retrain_continues_the_champions_boosting(champion_cfg):
    result = retrain(
        champion_cfg,
        RetrainSpec("ctr", stateful=True, train_days=3, boost_rounds=20, min_improvement=-1.0),
        now=NOW,
    )
    assert result.mode == "stateful" and "continued boosting" in result.note
    from loopml.predict.flavours import load_predictor

    reg = Registry.from_config(champion_cfg)
    old = load_predictor(reg, "ctr", 1).model.booster.num_trees()
    new = load_predictor(reg, "ctr", result.version).model.booster.num_trees()
    assert new == old + 20


def _retrain_job(sched: Scheduler, dataset: str) -> None:
    sched.add(
        JobSpec(
            "retrain-ctr",
            "retrain",
            None,
            {"model": "ctr", "train_days": 3, "now": NOW.isoformat(), "dataset": dataset},
            max_retries=2,
            retry_delay_s=0,
        )
    )


def test_an_exception_in_a_scheduled_retrain_changes_nothing_and_is_retried(champion_cfg):
    before = _state(champion_cfg)
    (champion_cfg.root / "fail-once").write_text("x")
    sched = Scheduler(champion_cfg)
    _retrain_job(sched, "tests.jobs.targets:flaky_dataset")
    first = sched.run_now("retrain-ctr")
    assert first.status == "failed" and "planned failure" in first.error
    assert _state(champion_cfg) == before
    (second,) = sched.tick()
    assert (second.status, second.attempt, second.trigger) == ("succeeded", 2, "retry")
    assert second.result["version"] == 2 and second.result["promoted"]
    assert Registry.from_config(champion_cfg).aliases("ctr") == {"production": 2}


def test_a_killed_retrain_process_changes_nothing_and_is_retried(champion_cfg):
    before = _state(champion_cfg)
    root = champion_cfg.root
    (root / "hang").write_text("x")
    _retrain_job(Scheduler(champion_cfg), "tests.jobs.targets:hanging_dataset")
    code = (
        "import sys\n"
        "from loopml.core.config import ProjectConfig\n"
        "from loopml.jobs.scheduler import Scheduler\n"
        f"Scheduler(ProjectConfig.load({str(root)!r}), lease_ttl=1.0).run_now('retrain-ctr')\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    try:
        deadline = time.monotonic() + 60
        while not (root / "started").exists():
            assert time.monotonic() < deadline and child.poll() is None, "retrain never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert _state(champion_cfg) == before  # killed mid-job: registry and aliases untouched
    (root / "hang").unlink()
    sched = Scheduler(champion_cfg, lease_ttl=1.0)
    time.sleep(1.2)  # the dead process's lease expires
    (done,) = sched.tick()
    history = sched.store.history("retrain-ctr")
    assert [r.status for r in history] == ["succeeded", "crashed"]
    assert done.attempt == 2 and done.result["promoted"]
    assert Registry.from_config(champion_cfg).aliases("ctr") == {"production": 2}
