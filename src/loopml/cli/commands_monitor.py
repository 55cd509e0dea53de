"""`loopml monitor`, `loopml alerts`, `loopml jobs` and `loopml retrain`: closing the loop."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

monitor_app = typer.Typer(
    help="Drift, delayed-label performance and ops metrics.", no_args_is_help=True
)
alerts_app = typer.Typer(help="Alerts fired by the monitoring rules.", no_args_is_help=True)
jobs_app = typer.Typer(
    help="Scheduled jobs: batch prediction, materialisation, drift, retraining.",
    no_args_is_help=True,
)
retrain_app = typer.Typer(
    help="Retrain a model, gate it against the champion, promote it.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(retrain_app, name="retrain")


@monitor_app.command("drift")
def drift(
    model: str,
    window: Annotated[str | None, typer.Option(help="Window length, e.g. 1d or 6h.")] = None,
    end: Annotated[str | None, typer.Option(help="Window end (ISO; default: now).")] = None,
    version: Annotated[
        int | None, typer.Option(help="Model version (default: production).")
    ] = None,
    plot: Annotated[str | None, typer.Option(help="Write the drift-over-time plot here.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Test the latest window of logged predictions against the version's reference profile."""
    from loopml.monitor.actions import drift as run

    console().print(
        run(open_project(project).config, model, window=window, end=end, version=version, plot=plot)
    )


@monitor_app.command("performance")
def performance(
    model: str,
    days: float = 7.0,
    end: Annotated[str | None, typer.Option(help="Window end (ISO; default: now).")] = None,
    slice_: Annotated[list[str] | None, typer.Option("--slice", help="Column to slice by.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Metrics once delayed labels arrive, per window and slice, beside the click rate."""
    from loopml.monitor.actions import performance as run

    out = run(
        open_project(project).config,
        model,
        days=days,
        end=end,
        slices=tuple(slice_) if slice_ else None,
    )
    console().print(out.to_string() if hasattr(out, "to_string") else out)


@monitor_app.command("summary")
def summary(
    model: Annotated[str | None, typer.Argument()] = None,
    metrics_url: Annotated[
        str | None, typer.Option(help="A running server's /metrics URL.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Ops metrics (requests, latency, errors, cache, CPU, memory), drift and alerts at a glance."""
    from loopml.monitor.actions import summary as run

    typer.echo(run(open_project(project).config, model, metrics_url))


@alerts_app.command("ls")
def alerts_ls(
    model: Annotated[str | None, typer.Argument()] = None,
    limit: int = 50,
    project: ProjectOpt = None,
) -> None:
    """Fired alerts, newest first."""
    from rich.table import Table

    from loopml.monitor.actions import alerts

    rows = alerts(open_project(project).config, model, limit)
    table = Table("fired_at", "rule", "severity", "message", "webhook", "job")
    for row in rows:
        table.add_row(
            *[
                str(row.get(c, ""))
                for c in ("fired_at", "rule", "severity", "message", "webhook", "job")
            ]
        )
    console().print(table)


@jobs_app.command("add")
def jobs_add(
    name: str,
    kind: Annotated[
        str,
        typer.Argument(
            help="batch_prediction, feature_materialization, drift_check, performance, retrain "
            "or call."
        ),
    ],
    schedule: Annotated[str | None, typer.Option(help='Cron expression, e.g. "0 3 * * *".')] = None,
    param: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    max_retries: int = 2,
    retry_delay: float = 60.0,
    replace: bool = False,
    project: ProjectOpt = None,
) -> None:
    """Add (or with --replace, change) a job."""
    from loopml.jobs.actions import add_job, parse_params

    spec = add_job(
        open_project(project).config,
        name,
        kind,
        schedule=schedule,
        params=parse_params(param or []),
        max_retries=max_retries,
        retry_delay_s=retry_delay,
        replace=replace,
    )
    typer.echo(f"job {spec.name} ({spec.kind}) next run {spec.next_run_at}")


@jobs_app.command("ls")
def jobs_ls(project: ProjectOpt = None) -> None:
    """Every job with its schedule and next run."""
    from loopml.jobs.actions import list_jobs

    for spec in list_jobs(open_project(project).config):
        typer.echo(
            f"{spec.name:24s} {spec.kind:24s} {spec.schedule or '(manual)':16s} "
            f"next {spec.next_run_at}"
        )


@jobs_app.command("run")
def jobs_run(name: str, project: ProjectOpt = None) -> None:
    """Run a job now (one run at a time per job across processes)."""
    from loopml.jobs.actions import run_job

    record = run_job(open_project(project).config, name)
    typer.echo(
        f"{record.job} run {record.id}: {record.status}"
        + (f" ({record.error})" if record.error else "")
    )
    if record.status != "succeeded":
        raise typer.Exit(1)


@jobs_app.command("history")
def jobs_history(
    name: Annotated[str | None, typer.Argument()] = None,
    limit: int = 20,
    project: ProjectOpt = None,
) -> None:
    """Past runs: attempt, trigger, status, timing, error."""
    from loopml.jobs.actions import history

    for r in history(open_project(project).config, name, limit):
        typer.echo(
            f"{r.id:5d} {r.job:20s} attempt {r.attempt} {r.trigger:9s} {r.status:10s} "
            f"{r.started_at} {r.error or ''}"
        )


@jobs_app.command("start")
def jobs_start(poll: float = 5.0, project: ProjectOpt = None) -> None:
    """Run the scheduler until interrupted (cron schedules, retries, leases)."""
    from loopml.jobs.actions import start

    def report(records) -> None:  # noqa: ANN001
        for r in records:
            typer.echo(f"{r.job} run {r.id}: {r.status}")

    start(open_project(project).config, poll_s=poll, on_tick=report)


@retrain_app.command("run")
def retrain(
    model: Annotated[str, typer.Argument(help="Model to retrain.")],
    stateful: Annotated[bool, typer.Option(help="Warm start from the current version.")] = False,
    approve: Annotated[bool, typer.Option(help="Promote at once if the gate passes.")] = False,
    train_days: Annotated[int | None, typer.Option(help="Days of training data.")] = None,
    holdout_days: Annotated[
        int | None, typer.Option(help="Most recent labelled days for the gate.")
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Gate metric, e.g. roc_auc.")] = None,
    min_improvement: Annotated[
        float | None, typer.Option(help="Margin the candidate must win by.")
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Retrain MODEL, backtest it against the champion on the latest labelled window, promote."""
    from loopml.jobs.actions import retrain_now

    settings = {
        k: v
        for k, v in {
            "train_days": train_days,
            "holdout_days": holdout_days,
            "metric": metric,
            "min_improvement": min_improvement,
        }.items()
        if v is not None
    }
    result = retrain_now(
        open_project(project).config, model, stateful=stateful, approve_now=approve, **settings
    )
    typer.echo(str(result))


@retrain_app.command("approve")
def retrain_approve(
    model: str, version: Annotated[int | None, typer.Argument()] = None, project: ProjectOpt = None
) -> None:
    """Promote a candidate that passed the gate and waits for manual approval."""
    from loopml.jobs.actions import approve_candidate

    typer.echo(str(approve_candidate(open_project(project).config, model, version)))
