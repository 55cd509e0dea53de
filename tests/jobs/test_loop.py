"""The closed loop on the simulated world: detect the shift, retrain, gate, promote.

(No false alarm before the shift is asserted by tests/monitor/test_sim_drift.py.)"""

from __future__ import annotations

from tests.jobs.world import DAYS, SHIFT_DAY, world_config

from loopml.jobs.loop import run_monitoring_loop
from loopml.monitor.store import MonitorStore
from loopml.registry.registry import Registry
from loopml.sim import World

FIRST = SHIFT_DAY  # days 5..7: the shift, its detection and promotion, the new version


def test_the_loop_detects_the_shift_then_retrains_and_promotes(champion_cfg, tmp_path):
    world = World(world_config())
    report = run_monitoring_loop(
        champion_cfg, world, range(FIRST, DAYS - 1), policy_requests=100, progress=False
    )
    assert [d.day for d in report.days] == list(range(FIRST, DAYS - 1))
    assert SHIFT_DAY <= report.detection_day <= SHIFT_DAY + 1
    assert report.promotion_day is not None and report.promotion_day >= report.detection_day
    promoted = report.days[report.promotion_day - FIRST]
    assert promoted.retrain["gate"]["passed"] and promoted.promoted == 2
    after = [d for d in report.days if d.day > report.promotion_day]
    assert after and all(d.version == 2 for d in after)
    assert Registry.from_config(champion_cfg).aliases("ctr")["production"] == 2
    # the timeline is stored: one drift window per day, per served version
    windows = MonitorStore.from_config(champion_cfg).windows("ctr")
    assert len(windows) == len(report.days)
    assert all(0 < d.policy_ctr <= d.oracle_ctr for d in report.days)
    assert "world shifts" in str(report) and "promoted" in str(report)
    path = tmp_path / "loop.png"
    report.figure().savefig(path)
    assert path.stat().st_size > 10_000
