"""A project opened from its ``loopml.toml``: the stores, built lazily from their URLs.

This is the façade the CLI and the demo use; lower floors take their components
explicitly, so nothing below depends on it.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from loopml.core.config import ProjectConfig

if TYPE_CHECKING:
    from loopml.logs.eventlog import EventLog
    from loopml.registry.registry import Registry
    from loopml.serve.batch.table import PredictionTable
    from loopml.train.tracking import RunStore


class Project:
    """Everything a project has, opened on first use.

    >>> import tempfile
    >>> from loopml.core.config import init_project
    >>> root = init_project(tempfile.mkdtemp() + "/p", name="p").parent
    >>> Project.open(root).config.name
    'p'
    """

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config

    @classmethod
    def open(cls, root: str | Path = ".") -> Project:
        return cls(ProjectConfig.load(root))

    @property
    def root(self) -> Path:
        return self.config.root

    @cached_property
    def events(self) -> EventLog:
        from loopml.logs.eventlog import EventLog

        return EventLog.from_config(self.config)

    @cached_property
    def registry(self) -> Registry:
        from loopml.registry.registry import Registry

        return Registry.from_config(self.config)

    @cached_property
    def runs(self) -> RunStore:
        from loopml.train.tracking import RunStore

        return RunStore.from_config(self.config)

    @cached_property
    def predictions(self) -> PredictionTable:
        from loopml.serve.batch.table import PredictionTable

        return PredictionTable(self.config.url("predictions"))
