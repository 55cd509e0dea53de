"""Alert rules: conditions over consecutive windows, one alert per episode, webhook, trigger."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from loopml.core.errors import ValidationError
from loopml.monitor.alerts import AlertEngine, AlertRule, rules_from_config
from loopml.monitor.drift import check_drift
from loopml.monitor.profile import build_profile
from loopml.monitor.store import MonitorStore

RNG = np.random.default_rng(5)
REF = {name: RNG.normal(0, 1, 4000) for name in ("a", "b", "c")}


def _window(store: MonitorStore, day: int, shifted: tuple[str, ...] = ()) -> None:
    profile = build_profile(REF)
    rng = np.random.default_rng(day)
    cur = {n: rng.normal(1.0 if n in shifted else 0.0, 1, 4000) for n in REF}
    store.record_window(
        "ctr", 1, f"2026-01-{day:02d}", f"2026-01-{day + 1:02d}", check_drift(profile, cur)
    )


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()


@pytest.fixture
def store(tmp_path) -> MonitorStore:
    return MonitorStore(f"sqlite:///{tmp_path}/meta.db")


def test_psi_on_two_features_for_two_windows_fires_once_per_episode(store, webhook):
    url, received = webhook
    triggered = []
    rule = AlertRule(
        "psi-2x2",
        "drift",
        "psi",
        ">",
        0.2,
        min_columns=2,
        consecutive=2,
        webhook=url,
        job="retrain-ctr",
    )
    engine = AlertEngine(store, [rule], trigger=lambda job, why: triggered.append((job, why)))
    fired_per_day = []
    plan = [(), ("a",), ("a", "b"), ("a", "b"), ("a", "b", "c"), (), ("a", "b"), ("a", "b")]
    for day, shifted in enumerate(plan, start=1):
        _window(store, day, shifted)
        fired_per_day.append([a.rule for a in engine.evaluate("ctr")])
    # day 3 is the first of two; fires on day 4; stays quiet while still breaching; re-arms
    assert fired_per_day == [[], [], [], ["psi-2x2"], [], [], [], ["psi-2x2"]]
    assert [r["rule"] for r in received] == ["psi-2x2", "psi-2x2"]
    assert "psi > 0.2 on" in received[0]["message"]
    assert [job for job, _ in triggered] == ["retrain-ctr", "retrain-ctr"]
    stored = store.alerts("ctr")
    assert len(stored) == 2 and stored[0]["webhook"] == "204"
    assert stored[0]["job"].startswith("retrain-ctr")


def test_failing_webhook_is_recorded_and_does_not_raise(store):
    rule = AlertRule("any", "drift", "drifted", ">", 0.5, webhook="http://127.0.0.1:9/none")
    _window(store, 1, ("a",))
    (alert,) = AlertEngine(store, [rule]).evaluate("ctr")
    assert alert.webhook.startswith("error: ConnectError")
    assert store.alerts("ctr")[0]["webhook"].startswith("error:")


def test_performance_drop_against_a_baseline(store):
    rule = AlertRule("auc-drop", "performance", "auc", "drop", 0.03)
    engine = AlertEngine(store, [rule], baselines={"auc": 0.80})
    fired = []
    for day, value in enumerate([0.79, 0.78, 0.76, 0.75, 0.79], start=1):
        store.record_performance(
            "ctr",
            1,
            f"2026-01-{day:02d}",
            f"2026-01-{day + 1:02d}",
            [{"metric": "auc", "value": value, "n": 500}],
        )
        fired.append(bool(engine.evaluate("ctr")))
    assert fired == [False, False, True, False, False]


def test_ops_rule_reads_the_flat_summary(store):
    rule = AlertRule("errors", "ops", "error_rate", ">", 0.01, severity="critical")
    engine = AlertEngine(store, [rule])
    assert engine.evaluate("ctr", {"error_rate": 0.001}) == []
    (alert,) = engine.evaluate("ctr", {"error_rate": 0.05})
    assert alert.severity == "critical" and alert.value == 0.05
    assert engine.evaluate("ctr", {"error_rate": 0.06}) == []  # once an hour


def test_rules_are_validated_with_the_fix_in_the_message():
    with pytest.raises(ValidationError, match=r"unknown key; did you mean 'threshold'"):
        rules_from_config({"alerts": [{"name": "x", "treshold": 0.2}]})
    with pytest.raises(ValidationError, match="applies only to source"):
        AlertRule.from_dict({"name": "x", "op": "drop"})
    with pytest.raises(ValidationError, match="duplicate rule names"):
        rules_from_config({"alerts": [{"name": "x"}, {"name": "x"}]})
    assert [r.name for r in rules_from_config({})][:2] == ["feature-drift", "prediction-drift"]
