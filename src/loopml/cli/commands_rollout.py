"""`loopml experiment ...`: testing in production (shadow, A/B, canary, interleaving, bandit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, open_project

experiment_app = typer.Typer(
    help="Route a model's traffic between versions and decide with statistics.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")


@experiment_app.command("start")
def start(
    name: str,
    model: Annotated[str, typer.Option(help="Model whose traffic is routed.")],
    policy: Annotated[str, typer.Option(help="ab, shadow, canary, interleave or bandit.")],
    arms: Annotated[
        str, typer.Option(help="Comma-separated aliases or versions; the first is control.")
    ] = "production,challenger",
    weights: Annotated[
        str | None, typer.Option(help="Comma-separated traffic weights (A/B/n).")
    ] = None,
    ramp: Annotated[
        str | None, typer.Option(help="Canary ramp in percent, e.g. 1,5,25,50,100.")
    ] = None,
    metric: Annotated[
        str,
        typer.Option(
            help="click, conversion, conversion_value (revenue per request) or any feedback metric."
        ),
    ] = "click",
    alpha: float = 0.05,
    mde: Annotated[
        float | None,
        typer.Option(
            help="Minimum detectable effect, absolute: a rate difference, or an amount in "
            "the metric's units (for the sample size)."
        ),
    ] = None,
    attribution_window: Annotated[
        float,
        typer.Option(
            help="Seconds after a request during which its user's logged events count for it."
        ),
    ] = 86_400.0,
    seed: int | None = None,
    project: ProjectOpt = None,
) -> None:
    """Start an experiment; running servers pick it up within a tick, no restart."""
    from loopml.rollout.manage import start_experiment

    out = start_experiment(
        open_project(project).config,
        name,
        model=model,
        policy=policy,
        arms=arms,
        weights=weights,
        ramp=ramp,
        metric=metric,
        alpha=alpha,
        mde=mde,
        seed=seed,
        attribution_window_s=attribution_window,
    )
    typer.echo(json.dumps(out, default=str, indent=2))


@experiment_app.command("join")
def join(
    name: str,
    full: Annotated[
        bool, typer.Option("--full", help="Read every event file again; adds only what is missing.")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Attribute the event log's clicks, conversions and feedback to the arms now."""
    from loopml.rollout.manage import join_experiment_events

    out = join_experiment_events(open_project(project).config, name, full=full)
    typer.echo(json.dumps(out, default=str, indent=2))


@experiment_app.command("status")
def status(
    name: Annotated[str | None, typer.Argument()] = None, project: ProjectOpt = None
) -> None:
    """Per-arm counts, rates with intervals, differences, z-test, always-valid p-value, latency."""
    from loopml.rollout.manage import experiment_status

    typer.echo(
        json.dumps(experiment_status(open_project(project).config, name), default=str, indent=2)
    )


@experiment_app.command("stop")
def stop(name: str, reason: str = "", project: ProjectOpt = None) -> None:
    """Stop routing; all traffic goes back to the model's default alias."""
    from loopml.rollout.manage import stop_experiment

    typer.echo(json.dumps(stop_experiment(open_project(project).config, name, reason), default=str))


@experiment_app.command("promote")
def promote(
    name: str,
    arm: Annotated[
        str | None, typer.Option(help="Arm to promote (default: the winner / challenger).")
    ] = None,
    reason: str = "",
    project: ProjectOpt = None,
) -> None:
    """Move the production alias to an arm's version (audited) and end the experiment."""
    from loopml.rollout.manage import promote_experiment

    out = promote_experiment(open_project(project).config, name, arm=arm, reason=reason)
    typer.echo(json.dumps(out, default=str))


@experiment_app.command("report")
def report(
    name: str,
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("experiment.html"),
    project: ProjectOpt = None,
) -> None:
    """An HTML report with plots: rates over time with intervals, traffic, latency."""
    from loopml.rollout.manage import report_experiment

    typer.echo(f"report: {report_experiment(open_project(project).config, name, out)}")
