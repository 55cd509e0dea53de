"""Training runs and the model registry: `loopml runs ...`, `loopml models ...`."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

runs_app = typer.Typer(
    help="Training runs: what was trained on what, with which result.", no_args_is_help=True
)
models_app = typer.Typer(
    help="The model registry: versions, aliases, audit, rollback.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")


@runs_app.command("ls")
def runs_ls(limit: int = 20, project: ProjectOpt = None) -> None:
    """List recent runs with their headline metrics."""
    from rich.table import Table

    runs = open_project(project).runs.list_runs()[:limit]
    table = Table("run", "name", "status", "started", "roc_auc", "log_loss", "rows")
    for run in runs:
        m = (
            run.metrics.get("test", run.metrics.get("valid", {}))
            if isinstance(run.metrics, dict)
            else {}
        )
        table.add_row(
            run.run_id[:12],
            run.name,
            run.status,
            str(run.started_at)[:19],
            _fmt(m.get("roc_auc")),
            _fmt(m.get("log_loss")),
            str(run.params.get("n_train", "")),
        )
    console().print(table)


@runs_app.command("compare")
def runs_compare(a: str, b: str, project: ProjectOpt = None) -> None:
    """Parameters and metrics of two runs side by side (run ids or unique prefixes)."""
    frame = open_project(project).runs.compare(a, b)
    console().print(frame.to_string())


@models_app.command("ls")
def models_ls(project: ProjectOpt = None) -> None:
    """Every model with its latest version and aliases."""
    from rich.table import Table

    reg = open_project(project).registry
    table = Table("model", "versions", "aliases")
    for name in reg.list_models():
        versions = reg.list_versions(name)
        aliases = ", ".join(f"{k}->v{v}" for k, v in sorted(reg.aliases(name).items()))
        table.add_row(name, str(len(versions)), aliases or "-")
    console().print(table)


@models_app.command("show")
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@ALIAS or NAME@VERSION.")],
    project: ProjectOpt = None,
) -> None:
    """One version: hash, signature, metrics, lineage and the alias audit trail."""
    import json

    from loopml.registry.registry import parse_ref

    reg = open_project(project).registry
    name, version_ref = parse_ref(ref)
    mv = reg.get(name, version_ref)
    out = console()
    out.print(f"[bold]{mv.name}[/] v{mv.version}  flavour={mv.flavour}  sha256={mv.sha256}")
    out.print(f"created {mv.created_at}  run {mv.run_id}")
    out.print("inputs: " + ", ".join(f"{c.name}:{c.kind}" for c in mv.signature.inputs))
    out.print("metrics: " + json.dumps(mv.metrics, default=str)[:2000])
    out.print("lineage: " + json.dumps(mv.lineage, default=str)[:2000])
    for move in reg.alias_history(name)[-10:]:
        out.print(
            f"  {move.at}  {move.alias}: v{move.from_version} -> v{move.to_version}  "
            f"by {move.actor}  ({move.reason})"
        )


@models_app.command("alias")
def models_alias(
    name: str,
    alias: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit trail.")] = "",
    project: ProjectOpt = None,
) -> None:
    """Point ALIAS of model NAME at VERSION (atomic, audited)."""
    move = open_project(project).registry.set_alias(name, alias, version, reason=reason)
    typer.echo(f"{name}@{alias}: v{move.from_version} -> v{move.to_version}")


@models_app.command("rollback")
def models_rollback(
    name: str,
    alias: Annotated[str, typer.Option(help="Alias to roll back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why; recorded in the audit trail.")] = "rollback",
    project: ProjectOpt = None,
) -> None:
    """Move ALIAS back to the version it pointed at before its last move."""
    move = open_project(project).registry.rollback(name, alias, reason=reason)
    typer.echo(f"{name}@{alias}: v{move.from_version} -> v{move.to_version}")


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


def _admin_post(url: str, path: str, body: dict | None = None) -> dict:
    import os

    import httpx

    from loopml.core.errors import UnauthorizedError

    token = os.environ.get("LOOPML_ADMIN_TOKEN")
    if not token:
        raise UnauthorizedError("set LOOPML_ADMIN_TOKEN to the server's admin token")
    response = httpx.post(
        url.rstrip("/") + path,
        json=body or {},
        timeout=60,
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code >= 400:
        raise UnauthorizedError(f"{response.status_code}: {response.text[:500]}")
    return response.json()


@models_app.command("reload")
def models_reload(
    name: str,
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8080",
) -> None:
    """Ask a running server to reload NAME now (admin token from $LOOPML_ADMIN_TOKEN)."""
    typer.echo(_admin_post(url, f"/v1/admin/models/{name}/reload"))


@models_app.command("promote")
def models_promote(
    name: str,
    alias: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Recorded in the audit trail.")] = "",
    url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8080",
) -> None:
    """Move ALIAS through a running server's admin API (the server reloads at once)."""
    body = {"version": version, "reason": reason}
    typer.echo(_admin_post(url, f"/v1/admin/models/{name}/aliases/{alias}", body))
