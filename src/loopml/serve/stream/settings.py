"""Settings of a streaming learner, from ``[stream]`` in ``loopml.toml`` plus overrides.

Checked once, at start, so a typo fails before any message is consumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from loopml.core.config import check_known
from loopml.core.errors import ConfigError, did_you_mean
from loopml.core.names import check_name
from loopml.serve.stream.models import MODELS


@dataclass(frozen=True)
class StreamSettings:
    """One learner: what it learns, how often it commits and snapshots, which topics.

    >>> StreamSettings(commit_every=0)
    Traceback (most recent call last):
    ...
    loopml.core.errors.ConfigError: stream.commit_every must be >= 1, got 0
    """

    name: str = "ctr_stream"
    model: str = "logreg"
    model_params: dict[str, Any] = field(default_factory=dict)
    label_window_s: float = 1800.0
    mini_batch: int = 1
    consume_batch: int = 500
    #: events per stored queue entry when the producer publishes (Redis Streams pays its
    #: per-entry work once per pack; 1 = one entry per event; the SQLite queue ignores it)
    pack: int = 100
    commit_every: int = 5000
    commit_seconds: float = 5.0
    snapshot_every: int = 100_000
    snapshot_seconds: float = 300.0
    events_topic: str = "events"
    requests_topic: str = "prediction_requests"
    predictions_topic: str = "predictions"
    updates_topic: str = "model_updates"
    group: str = ""  # consumer group; empty means the learner's name
    snapshot_alias: str = ""  # when set, every snapshot moves this alias (e.g. "production")

    def __post_init__(self) -> None:
        check_name(self.name, "stream.name")
        if self.model not in MODELS:
            raise ConfigError(
                f"stream.model {self.model!r} is unknown; {did_you_mean(self.model, MODELS)}",
                key="stream.model",
            )
        for key in ("mini_batch", "consume_batch", "pack", "commit_every", "snapshot_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"stream.{key} must be >= 1, got {value!r}", key=f"stream.{key}")
        for key in ("label_window_s", "commit_seconds", "snapshot_seconds"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(
                    f"stream.{key} must be a number of seconds >= 0, got {value!r}",
                    key=f"stream.{key}",
                )
        for key in ("events_topic", "requests_topic", "predictions_topic", "updates_topic"):
            check_name(getattr(self, key), f"stream.{key}")
        if self.group:
            check_name(self.group, "stream.group")
        if self.snapshot_alias:
            check_name(self.snapshot_alias, "stream.snapshot_alias")

    @property
    def consumer_group(self) -> str:
        """Each learner reads the whole topic in its own group, unless told to share one."""
        return self.group or self.name

    @classmethod
    def from_config(cls, cfg: Any, **overrides: Any) -> StreamSettings:
        """``[stream]`` of the project, then non-None ``overrides`` on top."""
        table = dict(cfg.section("stream")) if cfg is not None else {}
        table.update({k: v for k, v in overrides.items() if v is not None})
        check_known(table, (f.name for f in dataclasses.fields(cls)), "stream")
        return cls(**table)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
