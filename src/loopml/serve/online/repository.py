"""The model repository: every model of the project, by name and alias, hot-reloaded.

Unversioned requests get each model's configured alias (``production`` unless
``[models.<name>] alias`` says otherwise; the latest version while the alias is not
set). Explicit versions or aliases (``/versions/3``, ``/versions/staging``) load on
first use and stay in a small LRU.

Hot reload: a background task asks the registry which version each alias points at
(one indexed query per model). When it moved, the new version is loaded and warmed in
a thread, then swapped in with one assignment. Requests already queued keep the old
version's batcher and finish on it, so a reload drops and fails nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, Protocol

from loopml.core.errors import NotFoundError, UnavailableError, did_you_mean
from loopml.core.names import check_name
from loopml.serve.online.model import LoadedModel, build
from loopml.serve.online.settings import ModelSettings

log = logging.getLogger("loopml.serve.online")

_EXTRA_VERSIONS = 8


class ModelSource(Protocol):
    """Where models come from: the registry, or predictors handed over in-process."""

    def list_models(self) -> list[str]: ...

    def resolve(self, name: str, ref: str) -> int: ...

    def load(self, name: str, version: int) -> Any: ...

    def versions(self, name: str) -> list[int]: ...


class RegistrySource:
    """Models from a :class:`loopml.registry.Registry`, loaded hash-verified."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def list_models(self) -> list[str]:
        return self.registry.list_models()

    def resolve(self, name: str, ref: str) -> int:
        return self.registry.resolve(name, ref)

    def load(self, name: str, version: int) -> Any:
        try:
            from loopml.predict import load_predictor
        except ImportError:  # the package root may not re-export it
            from loopml.predict.flavours import load_predictor

        return load_predictor(self.registry, name, version)

    def versions(self, name: str) -> list[int]:
        return [v.version for v in self.registry.list_versions(name)]


class StaticSource:
    """Predictors given directly: ``{name: predictor}`` or ``{name: {version: predictor}}``.

    For embedding the server in a program or a benchmark without a registry.
    """

    def __init__(self, models: Mapping[str, Any], aliases: Mapping[str, Mapping[str, int]] = {}):
        self.models: dict[str, dict[int, Any]] = {}
        for name, value in models.items():
            check_name(name, "model name")
            self.models[name] = (
                {int(k): v for k, v in value.items()} if isinstance(value, Mapping) else {1: value}
            )
        self.aliases = {n: dict(a) for n, a in aliases.items()}

    def list_models(self) -> list[str]:
        return sorted(self.models)

    def resolve(self, name: str, ref: str) -> int:
        versions = self.models.get(name)
        if versions is None:
            raise NotFoundError(
                f"model {name!r} not found; {did_you_mean(name, list(self.models))}"
            )
        if ref == "latest":
            return max(versions)
        if ref.lstrip("vV").isdigit() and int(ref.lstrip("vV")) in versions:
            return int(ref.lstrip("vV"))
        if ref in self.aliases.get(name, {}):
            return self.aliases[name][ref]
        raise NotFoundError(f"model {name!r} has no version or alias {ref!r}")

    def load(self, name: str, version: int) -> Any:
        return self.models[name][version]

    def versions(self, name: str) -> list[int]:
        return sorted(self.models.get(name, {}))


class ModelRepository:
    """Loaded models by name; unversioned entries follow their alias."""

    def __init__(
        self,
        source: ModelSource,
        settings_for: Callable[[str], ModelSettings],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        executor: Executor | None,
        only: tuple[str, ...] = (),
        on_batch: Callable[[str], Callable[[int], None]] | None = None,
        on_reload: Callable[[LoadedModel], None] | None = None,
    ) -> None:
        self.source = source
        self.settings_for = settings_for
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.executor = executor
        self.only = only
        self.on_batch = on_batch
        self.on_reload = on_reload
        self.default: dict[str, LoadedModel] = {}
        self.errors: dict[str, str] = {}
        self.ready = False
        self._extra: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        #: ``(name, version text)`` -> a loaded model, for requests pinned to a version;
        #: emptied whenever the loaded set changes
        self._pinned: dict[tuple[str, str], LoadedModel] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    # -- loading ---------------------------------------------------------------------------
    def _load_sync(self, name: str, version: int, ref: str | None) -> LoadedModel:
        settings = self.settings_for(name)
        predictor = self.source.load(name, version)
        return build(
            name,
            version,
            predictor,
            settings,
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            executor=self.executor,
            on_batch=self.on_batch(name) if self.on_batch else None,
            ref=ref,
        )

    def _default_ref(self, name: str) -> tuple[int, str]:
        alias = self.settings_for(name).alias
        try:
            return self.source.resolve(name, alias), alias
        except NotFoundError:
            return self.source.resolve(name, "latest"), "latest"

    async def start(self) -> None:
        """Load every model's default version; ready when all attempts are done."""
        names = await asyncio.to_thread(self._names)
        for name in names:
            await self.refresh(name)
        self.ready = True

    def _names(self) -> list[str]:
        names = self.source.list_models()
        return [n for n in names if n in self.only] if self.only else names

    async def refresh(self, name: str) -> LoadedModel | None:
        """Re-resolve ``name``'s alias and swap in the version it points at, if it moved."""
        try:
            version, ref = await asyncio.to_thread(self._default_ref, name)
            current = self.default.get(name)
            if current is not None and current.version == version:
                return current
            loaded = await asyncio.to_thread(self._load_sync, name, version, ref)
        except Exception as exc:  # noqa: BLE001 - one broken model must not stop the others
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            log.error("loading model %s failed: %s", name, exc)
            return None
        self.errors.pop(name, None)
        old = self.default.get(name)
        self.default[name] = loaded
        self._pinned.clear()
        if old is not None:
            log.info("model %s reloaded: v%s -> v%s", name, old.version, loaded.version)
        if self.on_reload is not None:
            self.on_reload(loaded)
        return loaded

    async def poll_forever(self, interval_s: float) -> None:
        """Follow alias moves and newly registered models until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                names = await asyncio.to_thread(self._names)
            except Exception as exc:  # noqa: BLE001 - the registry may be briefly unreachable
                log.warning("listing models failed: %s", exc)
                continue
            for name in names:
                await self.refresh(name)

    # -- lookup ----------------------------------------------------------------------------
    async def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The model serving ``name`` (at ``version``: a number or an alias)."""
        if version is None or version == "":
            found = self.default.get(name)
            if found is not None:  # a served name was checked when it was loaded
                return found
            check_name(name, "model name")
            return await self._missing(name)
        pinned = self._pinned.get((name, version))
        if pinned is not None:  # a request pinned to a loaded version (e.g. by a rollout)
            return pinned
        check_name(name, "model name")
        check_name(version, "model version")
        current = self.default.get(name)
        if current is not None and version in (str(current.version), f"v{current.version}"):
            self._pin(name, version, current)
            return current
        if version.isdigit():  # a loaded version needs no registry round trip
            hit = self._extra.get((name, int(version)))
            if hit is not None:
                self._extra.move_to_end((name, int(version)))
                self._pin(name, version, hit)
                return hit
        try:
            number = await asyncio.to_thread(self.source.resolve, name, version)
        except NotFoundError:
            await self.ensure_known(name)
            raise
        if current is not None and current.version == number:
            return current
        key = (name, number)
        if key in self._extra:
            self._extra.move_to_end(key)
            return self._extra[key]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._extra:
                loaded = await asyncio.to_thread(self._load_sync, name, number, version)
                self._extra[key] = loaded
                while len(self._extra) > _EXTRA_VERSIONS:
                    self._extra.popitem(last=False)
                self._pinned.clear()
        self._locks.pop(key, None)
        return self._extra[key]

    def _pin(self, name: str, version: str, model: LoadedModel) -> None:
        """Remember a numeric version's model until the loaded set changes (bounded)."""
        if len(self._pinned) < 256:
            self._pinned[(name, version)] = model

    async def ensure_known(self, name: str) -> None:
        names = await asyncio.to_thread(self._names)
        if name not in names:
            raise NotFoundError(
                f"model {name!r} is not served here; {did_you_mean(name, names)}", model=name
            )

    async def _missing(self, name: str) -> LoadedModel:
        if name in self.errors:
            raise UnavailableError(
                f"model {name!r} failed to load ({self.errors[name]}); fix it and move its alias "
                "or POST /v1/admin/models/{name}/reload",
                model=name,
            )
        await self.ensure_known(name)
        if not self.ready:
            raise UnavailableError(f"model {name!r} is still loading; retry shortly", model=name)
        loaded = await self.refresh(name)
        if loaded is None:
            raise UnavailableError(f"model {name!r} could not be loaded: {self.errors.get(name)}")
        return loaded

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "models": {n: m.describe() for n, m in sorted(self.default.items())},
            "errors": dict(self.errors),
        }
