"""Serving settings read from ``loopml.toml``: ``[online]`` and one ``[models.<name>]`` each.

Parameter-based serving (seed 000): a model's decision threshold, an on/off switch and
its fallback live in configuration, so changing them needs no retraining::

    [online]
    grpc_port = 8081            # 0 turns gRPC off; default serve.port + 1
    reload_interval_s = 2.0     # how often aliases are polled for hot reload
    cache_max_entries = 10000
    cache_ttl_s = 300.0
    log_flush_s = 5.0           # prediction log: seconds between appends to the event log
    log_seal_s = 10.0           # ... and between seals: spooled rows become queryable

    [models.ctr]
    alias = "production"        # what unversioned requests get
    threshold = 0.5             # label = probability >= threshold
    enabled = true              # false: answer the fallback (or 503)
    fallback = 0.03             # e.g. the class prior, flagged as a fallback
    route_by = "header:x-device"      # condition-based serving ...
    routes = { mobile = "ctr_mobile", beta = "ctr@staging" }   # ... value -> model[@ref]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from loopml.core.config import check_known
from loopml.core.errors import ConfigError
from loopml.core.names import check_name


@dataclass(frozen=True)
class ModelSettings:
    """How one model is served."""

    alias: str = "production"
    enabled: bool = True
    threshold: float = 0.5
    fallback: float | tuple[float, ...] | None = None
    cache: bool = True
    timeout_ms: float | None = None
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    max_queue_rows: int = 4096
    breaker_failures: int = 5
    breaker_reset_s: float = 5.0
    feature_views: tuple[str, ...] = ()
    route_by: str | None = None
    routes: dict[str, str] = field(default_factory=dict)
    log_sample_rate: float | None = None

    def route_source(self) -> tuple[str, str] | None:
        """``("header", "x-device")`` or ``("field", "device")`` from ``route_by``."""
        if not self.route_by:
            return None
        kind, _, key = self.route_by.partition(":")
        return kind, key.lower() if kind == "header" else key


@dataclass(frozen=True)
class OnlineSettings:
    """Server-wide settings beyond ``[serve]``."""

    grpc_port: int | None = None
    reload_interval_s: float = 2.0
    cache_max_entries: int = 10_000
    cache_ttl_s: float = 300.0
    max_jobs: int = 64
    job_ttl_s: float = 3600.0
    threads: int = 2
    log_flush_s: float = 5.0
    log_seal_s: float = 10.0
    models: tuple[str, ...] = ()


_NUMBER = (int, float)


def online_settings(section: dict[str, Any], port: int) -> OnlineSettings:
    """Validate ``[online]``; the gRPC port defaults to ``port + 1``."""
    known = {f.name for f in fields(OnlineSettings)}
    check_known(section, known, "online")
    values = dict(section)
    if "models" in values:
        values["models"] = tuple(check_name(m, "online.models") for m in values["models"])
    for key in ("reload_interval_s", "cache_ttl_s", "job_ttl_s", "log_flush_s", "log_seal_s"):
        if key in values:
            values[key] = _positive(values[key], f"online.{key}")
    for key in ("cache_max_entries", "max_jobs", "threads"):
        if key in values:
            values[key] = _count(values[key], f"online.{key}")
    grpc = values.get("grpc_port", port + 1 if port else 0)
    if not isinstance(grpc, int) or isinstance(grpc, bool) or not 0 <= grpc < 65536:
        raise ConfigError(
            f"online.grpc_port must be a port number (0 = off), got {grpc!r}",
            key="online.grpc_port",
        )
    values["grpc_port"] = grpc
    return OnlineSettings(**values)


def model_settings(name: str, section: dict[str, Any]) -> ModelSettings:
    """Validate ``[models.<name>]`` (missing table: defaults)."""
    raw = section.get(name, {})
    where = f"models.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"[{where}] must be a table, got {raw!r}", key=where)
    known = {f.name for f in fields(ModelSettings)}
    check_known(raw, known, where)
    values = dict(raw)
    if "alias" in values:
        values["alias"] = check_name(values["alias"], f"{where}.alias")
    for key in ("enabled", "cache"):
        if key in values and not isinstance(values[key], bool):
            raise ConfigError(
                f"{where}.{key} must be true or false, got {values[key]!r}", key=f"{where}.{key}"
            )
    if "threshold" in values:
        t = values["threshold"]
        if not isinstance(t, _NUMBER) or isinstance(t, bool) or not 0.0 <= t <= 1.0:
            raise ConfigError(
                f"{where}.threshold must be a number in [0, 1], got {t!r}", key=f"{where}.threshold"
            )
        values["threshold"] = float(t)
    if "fallback" in values:
        values["fallback"] = _fallback(values["fallback"], f"{where}.fallback")
    for key in ("timeout_ms", "max_wait_ms", "breaker_reset_s"):
        if key in values:
            values[key] = _positive(values[key], f"{where}.{key}", allow_zero=key == "max_wait_ms")
    for key in ("max_batch_size", "max_queue_rows", "breaker_failures"):
        if key in values:
            values[key] = _count(values[key], f"{where}.{key}")
    if "feature_views" in values:
        values["feature_views"] = tuple(
            check_name(v, f"{where}.feature_views") for v in values["feature_views"]
        )
    if "log_sample_rate" in values:
        rate = values["log_sample_rate"]
        if not isinstance(rate, _NUMBER) or not 0.0 <= rate <= 1.0:
            raise ConfigError(
                f"{where}.log_sample_rate must be in [0, 1], got {rate!r}",
                key=f"{where}.log_sample_rate",
            )
    _routes(values, where)
    return ModelSettings(**values)


def _routes(values: dict[str, Any], where: str) -> None:
    route_by = values.get("route_by")
    if route_by is not None:
        kind, _, key = str(route_by).partition(":")
        if kind not in ("header", "field") or not key:
            raise ConfigError(
                f"{where}.route_by must be 'header:<name>' or 'field:<name>', got {route_by!r}",
                key=f"{where}.route_by",
            )
    routes = values.get("routes", {})
    if not isinstance(routes, dict):
        raise ConfigError(
            f'{where}.routes must be a table of value = "model[@ref]"', key=f"{where}.routes"
        )
    for value, target in routes.items():
        parse_target(target, f"{where}.routes.{value}")
    values["routes"] = {str(k): str(v) for k, v in routes.items()}


def parse_target(target: Any, where: str) -> tuple[str, str | None]:
    """``"ctr"`` -> ``("ctr", None)``; ``"ctr@staging"`` -> ``("ctr", "staging")``.

    >>> parse_target("ctr@3", "routes")
    ('ctr', '3')
    """
    if not isinstance(target, str):
        raise ConfigError(f'{where} must be "model" or "model@alias", got {target!r}', key=where)
    name, _, ref = target.partition("@")
    try:
        check_name(name, where)
        if ref:
            check_name(ref, where)
    except Exception as exc:
        raise ConfigError(f"{where} = {target!r}: {exc}", key=where) from None
    return name, ref or None


def _fallback(value: Any, key: str) -> float | tuple[float, ...]:
    if isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in value)
    ):
        return tuple(float(v) for v in value)
    raise ConfigError(
        f"{key} must be a number (binary/regression) or a list of class probabilities, got "
        f"{value!r}",
        key=key,
    )


def _positive(value: Any, key: str, allow_zero: bool = False) -> float:
    ok = isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key} must be a positive number, got {value!r}", key=key)
    return float(value)


def _count(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}", key=key)
    return value
