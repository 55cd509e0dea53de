"""The kinds of work a job can do, as an explicit table of import paths.

Each kind is a function ``fn(ctx: JobContext) -> dict`` that reads its parameters from
``ctx.params`` and returns a small JSON-able result for the run history. Kinds are
resolved lazily, so defining or listing jobs never imports training or serving code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loopml.core.config import ProjectConfig
from loopml.core.errors import NotFoundError, ValidationError, did_you_mean
from loopml.jobs.store import JobSpec, RunRecord

KINDS: dict[str, str] = {
    "batch_prediction": "loopml.jobs.kinds:batch_prediction",
    "call": "loopml.jobs.kinds:call",
    "drift_check": "loopml.jobs.monitoring:drift_check",
    "feature_materialization": "loopml.jobs.kinds:feature_materialization",
    "performance": "loopml.jobs.monitoring:performance",
    "retrain": "loopml.jobs.retrain:retrain_job",
}


@dataclass
class JobContext:
    """What a running job gets: the project, its definition and this attempt."""

    config: ProjectConfig
    job: JobSpec
    run: RunRecord
    progress: bool = False

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params

    def param(self, name: str, default: Any = ...) -> Any:
        """A parameter, or a clear error naming the job and the missing key."""
        if name in self.params:
            return self.params[name]
        if default is ...:
            raise ValidationError(
                f"job {self.job.name!r} ({self.job.kind}) needs parameter {name!r}; redefine it "
                f"with `loopml jobs add {self.job.name} {self.job.kind} --param {name}=... "
                "--replace`",
                field=name,
            )
        return default


JobFunction = Callable[[JobContext], dict[str, Any] | None]


def check_kind(kind: str, kinds: dict[str, str] | None = None) -> str:
    table = KINDS if kinds is None else kinds
    if kind not in table:
        raise ValidationError(
            f"job kind {kind!r} is unknown; {did_you_mean(kind, sorted(table))}", field="kind"
        )
    return kind


def resolve(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValidationError(
            f"target {target!r} must look like 'package.module:function'", field="target"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise NotFoundError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise NotFoundError(f"module {module_name!r} has no {attr!r} (target {target!r})") from None


# -- kinds that live here ----------------------------------------------------------------
def call(ctx: JobContext) -> dict[str, Any]:
    """Run any importable function ``target`` with keyword arguments ``kwargs``.

    The function receives ``ctx`` when it accepts a parameter named ``ctx``.
    """
    import inspect

    fn = resolve(str(ctx.param("target")))
    kwargs = dict(ctx.param("kwargs", {}))
    if "ctx" in inspect.signature(fn).parameters:
        kwargs["ctx"] = ctx
    out = fn(**kwargs)
    return out if isinstance(out, dict) else {"returned": repr(out)[:500]}


def batch_prediction(ctx: JobContext) -> dict[str, Any]:
    """Pattern 1 on a schedule: score a population with ``model`` (``NAME@ALIAS``) into
    the predictions table; idempotent per (version, population, date)."""
    run = resolve("loopml.serve.batch.job:run_batch_job")
    result = run(
        ctx.config,
        str(ctx.param("model")),
        score_date=ctx.param("date", None),
        population=str(ctx.param("population", "active_users_x_top_items")),
        top_items=int(ctx.param("top_items", 20)),
        progress=ctx.progress,
    )
    return _plain(result)


def feature_materialization(ctx: JobContext) -> dict[str, Any]:
    """Refresh the online feature store from the event log (``views``: default all)."""
    materialize = resolve("loopml.features.materialize:materialize_project")
    result = materialize(ctx.config, ctx.param("views", None), progress=ctx.progress)
    return {"as_of": result.as_of.isoformat(), "written": dict(result.written)}


def _plain(result: Any) -> dict[str, Any]:
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if hasattr(result, "__dataclass_fields__"):
        from dataclasses import asdict

        return {
            k: v if isinstance(v, int | float | str | bool | None) else str(v)
            for k, v in asdict(result).items()
        }
    return {"result": repr(result)[:500]}
