"""Project configuration: one ``loopml.toml`` whose stores are URLs.

The embedded defaults need no services. Switching a store to PostgreSQL, Redis or
object storage is a URL change. Invalid configuration fails at load time with the
key, the value received and the fix, so a typo never surfaces as a late stack trace.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopml.core.errors import ConfigError, ValidationError, did_you_mean
from loopml.core.names import check_name

CONFIG_FILE = "loopml.toml"

_SQL_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_KV_SCHEMES = ("memory", "sqlite", "redis")
_QUEUE_SCHEMES = ("sqlite", "redis")


@dataclass(frozen=True)
class StorageConfig:
    """Where each store lives. Relative paths are relative to the project root."""

    metadata: str = "sqlite:///.loopml/metadata.db"
    artifacts: str = ".loopml/artifacts"
    events: str = ".loopml/events"
    predictions: str = "sqlite:///.loopml/predictions.db"
    online: str = "sqlite:///.loopml/online.db"
    cache: str = "memory://"
    queue: str = "sqlite:///.loopml/queue.db"


@dataclass(frozen=True)
class ServeConfig:
    """Online service settings (pattern 2)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1_048_576
    admin_token_env: str = "LOOPML_ADMIN_TOKEN"
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    timeout_ms: float = 1000.0
    log_sample_rate: float = 1.0


@dataclass(frozen=True)
class ProjectConfig:
    """A loaded, validated ``loopml.toml`` plus the directory it lives in.

    >>> cfg = ProjectConfig.from_dict({"project": {"name": "ctr"}}, root="/tmp/p")
    >>> cfg.name, cfg.url("metadata")
    ('ctr', 'sqlite:////tmp/p/.loopml/metadata.db')
    """

    root: Path
    name: str = "loopml"
    storage: StorageConfig = field(default_factory=StorageConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    sections: dict[str, Any] = field(default_factory=dict)

    # -- loading ---------------------------------------------------------------------
    @classmethod
    def load(cls, root: str | Path = ".") -> ProjectConfig:
        """Load ``loopml.toml`` from ``root`` (a directory or the file itself)."""
        path = Path(root)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.exists():
            raise ConfigError(
                f"no {CONFIG_FILE} at {path.parent.resolve()}: run `loopml init "
                f"{path.parent}` to create a project, or pass --project DIR",
                key="project",
            )
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
        return cls.from_dict(data, root=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path) -> ProjectConfig:
        """Validate a parsed TOML document."""
        root = Path(root).resolve()
        data = dict(data)
        project = _table(data.pop("project", {}), "project")
        check_known(project, {"name"}, "project")
        try:
            name = check_name(project.get("name", "loopml"), "project.name")
        except ValidationError as exc:
            raise ConfigError(exc.message, key="project.name") from None
        storage = _section(StorageConfig, data.pop("storage", {}), "storage")
        serve = _section(ServeConfig, data.pop("serve", {}), "serve")
        cfg = cls(root=root, name=name, storage=storage, serve=serve, sections=data)
        cfg._validate_urls()
        return cfg

    def _validate_urls(self) -> None:
        s = self.storage
        _scheme(s.metadata, "storage.metadata", _SQL_SCHEMES)
        _scheme(s.predictions, "storage.predictions", _SQL_SCHEMES)
        _scheme(s.online, "storage.online", _KV_SCHEMES)
        _scheme(s.cache, "storage.cache", _KV_SCHEMES)
        _scheme(s.queue, "storage.queue", _QUEUE_SCHEMES)
        if self.serve.workers < 1:
            raise ConfigError(
                f"serve.workers must be >= 1, got {self.serve.workers}", key="serve.workers"
            )
        if not 0.0 <= self.serve.log_sample_rate <= 1.0:
            raise ConfigError(
                f"serve.log_sample_rate must be in [0, 1], got {self.serve.log_sample_rate}",
                key="serve.log_sample_rate",
            )

    # -- resolved locations ------------------------------------------------------------
    def url(self, store: str) -> str:
        """The store's URL with relative SQLite paths made absolute against the root."""
        try:
            raw = getattr(self.storage, store)
        except AttributeError:
            names = [f.name for f in dataclasses.fields(StorageConfig)]
            raise ConfigError(f"unknown store {store!r}; {did_you_mean(store, names)}") from None
        if raw.startswith("sqlite:///") and not raw.startswith("sqlite:////"):
            rel = raw.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                return f"sqlite:///{(self.root / rel).resolve()}"
        return raw

    def path(self, store: str) -> str:
        """A filesystem location or fsspec URL (artifacts, events), absolute if local."""
        raw = getattr(self.storage, store)
        if "://" in raw and not raw.startswith("file://"):
            return raw
        local = raw.removeprefix("file://")
        return str((self.root / local).resolve())

    def section(self, name: str) -> dict[str, Any]:
        """An extra table (e.g. ``[monitor]``, ``[jobs]``) that a floor above reads."""
        return dict(self.sections.get(name, {}))

    @property
    def state_dir(self) -> Path:
        """Where embedded stores keep their files."""
        return self.root / ".loopml"

    def admin_token(self) -> str | None:
        """The admin bearer token, read from the environment variable named in config."""
        return os.environ.get(self.serve.admin_token_env) or None


def default_toml(name: str) -> str:
    """The text ``loopml init`` writes: every store on its embedded default."""
    s = StorageConfig()
    v = ServeConfig()
    return f"""# loopml project. Each store is a URL: edit one to move it to a real service.
#   metadata / predictions : sqlite:///path  |  postgresql+psycopg://user@127.0.0.1:5432/db
#   artifacts / events     : a local path    |  any fsspec URL (s3://bucket/prefix, ...)
#   online / cache         : memory://  |  sqlite:///path  |  redis://127.0.0.1:6379/0
#   queue                  : sqlite:///path  |  redis://127.0.0.1:6379/0

[project]
name = "{name}"

[storage]
metadata = "{s.metadata}"
artifacts = "{s.artifacts}"
events = "{s.events}"
predictions = "{s.predictions}"
online = "{s.online}"
cache = "{s.cache}"
queue = "{s.queue}"

[serve]
host = "{v.host}"
port = {v.port}
workers = {v.workers}
max_body_bytes = {v.max_body_bytes}
admin_token_env = "{v.admin_token_env}"
max_batch_size = {v.max_batch_size}
max_wait_ms = {v.max_wait_ms}
timeout_ms = {v.timeout_ms}
log_sample_rate = {v.log_sample_rate}
"""


def init_project(directory: str | Path, name: str | None = None, force: bool = False) -> Path:
    """Create ``directory/loopml.toml`` with embedded defaults; refuse to overwrite."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    path = root / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it", key="project")
    project_name = check_name(name or root.resolve().name, "project.name")
    path.write_text(default_toml(project_name))
    (root / ".loopml").mkdir(exist_ok=True)
    return path


# -- helpers ---------------------------------------------------------------------------
def _table(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"[{key}] must be a table, got {type(value).__name__}", key=key)
    return value


def check_known(table: Mapping[str, Any], allowed: Iterable[str], section: str) -> None:
    """Refuse a key of ``[section]`` that is not in ``allowed``, naming the nearest valid one.

    Every settings table of loopml (``[serve]``, ``[online]``, ``[models.*]``,
    ``[stream]``...) goes through this, so a typo reads the same everywhere.
    """
    allowed = set(allowed)
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{section}.{key}: unknown key; {did_you_mean(key, sorted(allowed))}",
                key=f"{section}.{key}",
            )


def _section(kind: type, value: Any, section: str) -> Any:
    table = _table(value, section)
    fields = {f.name: f for f in dataclasses.fields(kind)}
    check_known(table, fields, section)
    clean: dict[str, Any] = {}
    for key, item in table.items():
        default = fields[key].default
        expected = type(default)
        if expected is float and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if not isinstance(item, expected) or isinstance(item, bool) != isinstance(default, bool):
            raise ConfigError(
                f"{section}.{key} must be {expected.__name__}, got {item!r}; "
                f"e.g. {key} = {default!r}",
                key=f"{section}.{key}",
            )
        clean[key] = item
    return kind(**clean)


def _scheme(url: str, key: str, allowed: tuple[str, ...]) -> None:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in allowed:
        raise ConfigError(
            f"{key} = {url!r}: unsupported scheme {scheme or '(none)'!r}; "
            f"use one of {', '.join(s + '://' for s in allowed)}",
            key=key,
        )
