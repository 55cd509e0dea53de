"""Alert rules over stored monitoring results: record, call a webhook, trigger a job.

A rule names a source (``drift``, ``prediction``, ``quality``, ``performance`` or
``ops``), a metric, a comparison and how many columns and consecutive windows must
breach, e.g. "PSI > 0.2 on two features for two consecutive windows"::

    [[monitor.alerts]]
    name = "psi-2x2"
    source = "drift"
    metric = "psi"
    op = ">"
    threshold = 0.2
    min_columns = 2
    consecutive = 2
    job = "retrain-ctr"          # optional: run this job when it fires
    webhook = "https://hooks.example/loopml"   # optional

or "AUC drop > 0.03" (``source = "performance"``, ``metric = "auc"``, ``op = "drop"``).
A rule fires once per episode: on the window where its condition becomes true, not
again until it has been false. Webhook and trigger failures are recorded on the alert
and never stop the check that raised it.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from loopml.core.clock import utcnow
from loopml.core.errors import ValidationError, did_you_mean
from loopml.core.names import check_name
from loopml.monitor.store import MonitorStore

SOURCES = ("drift", "ops", "performance", "prediction", "quality")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_OP_NAMES = (*_OPS, "drop", "rise")
#: Statistics a drift rule can read per column, besides the verdict ``drifted``.
DRIFT_METRICS = ("drifted", "psi", "score", "jensenshannon", "wasserstein", "ks", "chisquare")

Trigger = Callable[[str, dict[str, Any]], Any]
Post = Callable[[str, dict[str, Any]], str]


@dataclass(frozen=True)
class AlertRule:
    """One rule; ``from_dict`` validates a ``[[monitor.alerts]]`` table.

    >>> AlertRule.from_dict({"name": "auc", "source": "performance", "metric": "auc",
    ...                      "op": "drop", "threshold": 0.03}).describe()
    'auc drop > 0.03 (1 window)'
    >>> AlertRule.from_dict({"name": "x", "source": "drfit"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    loopml.core.errors.ValidationError: monitor.alerts[x].source 'drfit' is unknown; ...
    """

    name: str
    source: str = "drift"
    metric: str = "drifted"
    op: str = ">"
    threshold: float = 0.0
    min_columns: int = 1
    columns: tuple[str, ...] = ()
    consecutive: int = 1
    model: str = "*"
    severity: str = "warning"
    baseline: float | None = None
    webhook: str | None = None
    job: str | None = None
    slice: str = "all"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertRule:
        names = list(cls.__dataclass_fields__)
        label = data.get("name", "?")
        for key in data:
            if key not in names:
                raise ValidationError(
                    f"monitor.alerts[{label}].{key}: unknown key; {did_you_mean(key, names)}",
                    field=f"monitor.alerts.{key}",
                )
        if "name" not in data:
            raise ValidationError(
                'every [[monitor.alerts]] table needs a name, e.g. name = "psi-2x2"',
                field="monitor.alerts.name",
            )
        values = dict(data)
        if "columns" in values:
            values["columns"] = tuple(values["columns"])
        rule = cls(**values)
        rule.validate()
        return rule

    def validate(self) -> None:
        check_name(self.name, "alert rule name")
        where = f"monitor.alerts[{self.name}]"
        for key, value, choices in (
            ("source", self.source, SOURCES),
            ("op", self.op, _OP_NAMES),
            ("severity", self.severity, ("critical", "info", "warning")),
        ):
            if value not in choices:
                raise ValidationError(
                    f"{where}.{key} {value!r} is unknown; {did_you_mean(value, list(choices))}",
                    field=f"monitor.alerts.{key}",
                )
        if self.source in ("drift", "prediction") and self.metric not in DRIFT_METRICS:
            raise ValidationError(
                f"{where}.metric {self.metric!r} is not a drift statistic; "
                f"{did_you_mean(self.metric, list(DRIFT_METRICS))}",
                field="monitor.alerts.metric",
            )
        if self.op in ("drop", "rise") and self.source != "performance":
            raise ValidationError(
                f"{where}.op {self.op!r} compares against a baseline and applies only to "
                'source = "performance"; use >, >=, < or <=',
                field="monitor.alerts.op",
            )
        for key in ("min_columns", "consecutive"):
            if int(getattr(self, key)) < 1:
                raise ValidationError(
                    f"{where}.{key} must be >= 1, got {getattr(self, key)}",
                    field=f"monitor.alerts.{key}",
                )

    def describe(self) -> str:
        cols = f" on {self.min_columns}+ columns" if self.source == "drift" else ""
        runs = f"{self.consecutive} window{'s' if self.consecutive > 1 else ''}"
        if self.op in ("drop", "rise"):
            return f"{self.metric} {self.op} > {self.threshold:g} ({runs})"
        return f"{self.metric} {self.op} {self.threshold:g}{cols} ({runs})"

    def applies_to(self, model: str) -> bool:
        return self.model in ("*", model)


DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("feature-drift", "drift", "drifted", ">", 0.5, min_columns=1, consecutive=2),
    AlertRule("prediction-drift", "prediction", "drifted", ">", 0.5, consecutive=2),
    AlertRule("data-quality", "quality", "failed", ">", 0.5),
    AlertRule("auc-drop", "performance", "auc", "drop", 0.03),
)


def rules_from_config(section: dict[str, Any]) -> list[AlertRule]:
    """The ``[[monitor.alerts]]`` rules of a ``[monitor]`` section (defaults when absent)."""
    tables = section.get("alerts")
    if tables is None:
        return list(DEFAULT_RULES)
    if not isinstance(tables, list):
        raise ValidationError(
            "monitor.alerts must be an array of tables ([[monitor.alerts]]), got "
            f"{type(tables).__name__}",
            field="monitor.alerts",
        )
    rules = [AlertRule.from_dict(t) for t in tables]
    seen = [r.name for r in rules]
    dupes = sorted({n for n in seen if seen.count(n) > 1})
    if dupes:
        raise ValidationError(f"monitor.alerts has duplicate rule names {dupes}", field="name")
    return rules


@dataclass
class Alert:
    """A fired rule: what breached, by how much, and what was done about it."""

    rule: str
    model: str
    message: str
    value: float | None
    severity: str = "warning"
    window_end: dt.datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    webhook: str | None = None
    job: str | None = None
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window_end"] = self.window_end.isoformat() if self.window_end else None
        return out


class AlertEngine:
    """Evaluate rules against a model's stored history and act on the ones that fire."""

    def __init__(
        self,
        store: MonitorStore,
        rules: list[AlertRule] | tuple[AlertRule, ...] = DEFAULT_RULES,
        *,
        trigger: Trigger | None = None,
        post: Post | None = None,
        baselines: dict[str, float] | None = None,
    ) -> None:
        self.store = store
        self.rules = list(rules)
        self.trigger = trigger
        self.post = post or post_webhook
        self.baselines = dict(baselines or {})

    def evaluate(self, model: str, ops: dict[str, float] | None = None) -> list[Alert]:
        """Check every rule for ``model`` now; record, post and trigger the ones that fire."""
        fired: list[Alert] = []
        for rule in self.rules:
            if not rule.applies_to(model):
                continue
            if rule.source == "ops":
                alert = self._ops(rule, model, ops or {})
            elif rule.source == "performance":
                alert = self._performance(rule, model)
            else:
                alert = self._windows(rule, model)
            if alert is not None:
                fired.append(self._act(rule, alert))
        return fired

    # -- conditions ----------------------------------------------------------------------
    def _windows(self, rule: AlertRule, model: str) -> Alert | None:
        history = self.store.windows(model, limit=rule.consecutive + 1)
        if len(history) < rule.consecutive:
            return None
        breaches = [self._window_breach(rule, w) for w in history]
        now = breaches[-rule.consecutive :]
        before = breaches[-rule.consecutive - 1 : -1] if len(breaches) > rule.consecutive else []
        if not all(b is not None for b in now):
            return None
        if len(before) == rule.consecutive and all(b is not None for b in before):
            return None  # already firing: one alert per episode
        value, what = now[-1]  # type: ignore[misc]
        last = history[-1]
        return Alert(
            rule.name,
            model,
            f"{model}: {what} for {rule.consecutive} window(s) (rule {rule.describe()})",
            value,
            rule.severity,
            last["end"],
            {"window_id": last["id"], "version": last["version"]},
        )

    def _window_breach(self, rule: AlertRule, window: dict[str, Any]) -> tuple[float, str] | None:
        report = json.loads(window["report"])
        if rule.source == "quality":
            failed = int(window["quality_failed"])
            checks = [c for c in report.get("quality", {}).get("checks", []) if c["failed"]]
            if rule.columns:
                checks = [c for c in checks if c["column"] in rule.columns]
                failed = len(checks)
            named = ", ".join(
                f"{c['check']} on {c['column']} ({c['value']:.3g})" for c in checks[:5]
            )
            return (failed, f"{failed} data-quality check(s) failed: {named}") if failed else None
        compare = _OPS[rule.op]
        cols = self.store.window_columns(window["id"])
        prediction = (report.get("prediction") or {}).get("column")
        if rule.source == "prediction":
            cols = [c for c in cols if c["column"] == prediction]
        else:
            cols = [c for c in cols if c["column"] != prediction]
            if rule.columns:
                cols = [c for c in cols if c["column"] in rule.columns]
            else:  # trend columns drift by construction: alert only when named
                unstable = set((report.get("meta") or {}).get("unstable", []))
                cols = [c for c in cols if c["column"] not in unstable]
        hits = []
        for c in cols:
            value = _drift_value(rule.metric, c)
            if value is not None and compare(value, rule.threshold):
                hits.append((c["column"], value))
        need = 1 if rule.source == "prediction" else rule.min_columns
        if len(hits) < need:
            return None
        hits.sort(key=lambda h: -h[1])
        named = ", ".join(f"{c}={v:.3g}" for c, v in hits[:5])
        return float(hits[0][1]), f"{rule.metric} {rule.op} {rule.threshold:g} on {named}"

    def _performance(self, rule: AlertRule, model: str) -> Alert | None:
        rows = self.store.performance_history(model, rule.metric, rule.slice)
        if len(rows) < rule.consecutive:
            return None
        baseline = rule.baseline if rule.baseline is not None else self.baselines.get(rule.metric)
        if baseline is None:
            baseline = rows[0]["value"]
        flags = [_perf_breach(rule, r["value"], baseline) for r in rows[-rule.consecutive - 1 :]]
        if not all(flags[-rule.consecutive :]):
            return None
        if len(flags) > rule.consecutive and all(flags[:-1]):
            return None  # already firing: one alert per episode
        last = rows[-1]
        return Alert(
            rule.name,
            model,
            f"{model}: {rule.metric} = {last['value']:.4g} vs baseline "
            f"{baseline:.4g} (rule {rule.describe()})",
            last["value"],
            rule.severity,
            last["end"],
            {"baseline": baseline, "version": last["version"]},
        )

    def _ops(self, rule: AlertRule, model: str, ops: dict[str, float]) -> Alert | None:
        value = ops.get(rule.metric)
        if value is None or not _OPS[rule.op](float(value), rule.threshold):
            return None
        recent = [a for a in self.store.alerts(model, limit=20) if a["rule"] == rule.name]
        if recent and (utcnow() - recent[0]["fired_at"]).total_seconds() < 3600:
            return None  # at most one ops alert per rule and hour
        return Alert(
            rule.name,
            model,
            f"{model}: {rule.metric} = {value:.4g} {rule.op} {rule.threshold:g}",
            float(value),
            rule.severity,
            utcnow(),
            {"ops": ops},
        )

    # -- actions -------------------------------------------------------------------------
    def _act(self, rule: AlertRule, alert: Alert) -> Alert:
        alert.id = self.store.record_alert({**alert.to_dict(), "window_end": alert.window_end})
        if rule.webhook:
            try:
                alert.webhook = self.post(rule.webhook, alert.to_dict())
            except Exception as exc:  # noqa: BLE001 - a failed hook must not stop monitoring
                alert.webhook = f"error: {type(exc).__name__}: {exc}"
        if rule.job and self.trigger is not None:
            try:
                result = self.trigger(rule.job, {"alert": alert.id, "rule": rule.name})
                alert.job = f"{rule.job}: {result}"
            except Exception as exc:  # noqa: BLE001
                alert.job = f"{rule.job}: error: {type(exc).__name__}: {exc}"
        elif rule.job:
            alert.job = f"{rule.job}: not triggered (no scheduler attached)"
        self.store.update_alert(alert.id, webhook=alert.webhook, job=alert.job)
        return alert


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str:
    """POST the alert as JSON; return ``"<status>"`` (raises on connection errors)."""
    import httpx

    response = httpx.post(url, json=payload, timeout=timeout)
    return str(response.status_code)


def _drift_value(metric: str, col: dict[str, Any]) -> float | None:
    if metric == "drifted":
        return 1.0 if col["drifted"] else 0.0
    if metric == "score":
        return col["score"]
    if metric == "psi":
        return col["psi"]
    stats = json.loads(col["stats"]) if isinstance(col["stats"], str) else col["stats"]
    value = stats.get("ks_pvalue" if metric == "ks" else metric)
    return None if value is None or value != value else float(value)


def _perf_breach(rule: AlertRule, value: float | None, baseline: float) -> bool:
    if value is None:
        return False
    if rule.op == "drop":
        return baseline - value > rule.threshold
    if rule.op == "rise":
        return value - baseline > rule.threshold
    return _OPS[rule.op](value, rule.threshold)
