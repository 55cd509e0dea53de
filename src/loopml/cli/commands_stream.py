"""`loopml stream ...` (pattern 4) and `loopml bandit ...`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

stream_app = typer.Typer(
    help="Pattern 4: learn and predict in real time over a queue.", no_args_is_help=True
)
bandit_app = typer.Typer(help="Bandit policies against the simulated world.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(stream_app, name="stream")
    app.add_typer(bandit_app, name="bandit")


@stream_app.command("produce")
def produce(
    days: int = 3,
    impressions_per_day: int = 20_000,
    seed: int = 0,
    topic: str = "events",
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Publish simulated behaviour events onto the events topic."""
    from loopml.serve.stream.produce import produce_sim

    n = produce_sim(
        open_project(project).config,
        days=days,
        seed=seed,
        impressions_per_day=impressions_per_day,
        topic=topic,
        limit=limit,
        progress=True,
    )
    typer.echo(f"published {n:,} events to {topic!r}")


@stream_app.command("run")
def run(
    name: Annotated[str | None, typer.Option(help="Learner (and registry model) name.")] = None,
    model: Annotated[
        str | None, typer.Option(help="logreg, ftrl, hoeffding, hoeffding_adaptive, sgd.")
    ] = None,
    label_window: Annotated[float | None, typer.Option(help="Seconds to wait for a click.")] = None,
    mini_batch: Annotated[int | None, typer.Option(help="Examples per model update.")] = None,
    snapshot_every: Annotated[
        int | None, typer.Option(help="Register a snapshot every N events.")
    ] = None,
    snapshot_seconds: Annotated[float | None, typer.Option(help="... or every T seconds.")] = None,
    snapshot_alias: Annotated[str | None, typer.Option(help="Alias each snapshot moves.")] = None,
    warm_start: Annotated[
        str | None, typer.Option(help="Registry version/alias to continue from.")
    ] = None,
    max_events: Annotated[int | None, typer.Option(help="Stop after N events.")] = None,
    idle_timeout: Annotated[float | None, typer.Option(help="Stop after S idle seconds.")] = None,
    no_snapshots: bool = False,
    quiet: bool = False,
    project: ProjectOpt = None,
) -> None:
    """Consume events, join labels, learn, answer prediction requests, snapshot to the registry."""
    from loopml.serve.stream.runner import run_learner

    overrides = {
        k: v
        for k, v in {
            "name": name,
            "model": model,
            "label_window_s": label_window,
            "mini_batch": mini_batch,
            "snapshot_every": snapshot_every,
            "snapshot_seconds": snapshot_seconds,
            "snapshot_alias": snapshot_alias,
        }.items()
        if v is not None
    }
    report = run_learner(
        open_project(project).config,
        max_events=max_events,
        idle_timeout_s=idle_timeout,
        warm_start=warm_start,
        progress=not quiet,
        snapshots=not no_snapshots,
        **overrides,
    )
    typer.echo(str(report))


@stream_app.command("status")
def status(
    name: Annotated[str | None, typer.Option(help="Learner name.")] = None,
    plot: Annotated[
        str | None, typer.Option(help="Write the progressive-metric plot here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Position, lag, counts and progressive metrics of a learner."""
    from loopml.serve.stream.status import plot_stream, stream_status

    cfg = open_project(project).config
    info = stream_status(cfg, name)
    if as_json:
        typer.echo(json.dumps(info, default=str, indent=2))
    else:
        for key, value in info.items():
            typer.echo(f"{key:24s} {value}")
    if plot:
        typer.echo(f"plot: {plot_stream(cfg, plot, name)}")


@stream_app.command("batch")
def batch(
    name: str = "ctr_stream",
    model: str = "logreg",
    label_window: float = 1800.0,
    project: ProjectOpt = None,
) -> None:
    """Batch layer: retrain on the full event log (the speed layer's warm start)."""
    from loopml.serve.stream.layers import run_batch_layer

    mv = run_batch_layer(
        open_project(project).config, name=name, model=model, label_window_s=label_window
    )
    typer.echo(f"registered {mv.name} v{mv.version} (alias 'batch')")


@stream_app.command("compare")
def compare(out: str = "stream-vs-batch.png") -> None:
    """Streaming learner vs a daily batch retrain across the simulated preference shift."""
    from loopml.serve.stream.comparison import compare_stream_vs_daily_batch, plot_comparison

    result = compare_stream_vs_daily_batch(progress=True)
    typer.echo(result.summary())
    typer.echo(f"plot: {plot_comparison(result, out)}")


@bandit_app.command("simulate")
def simulate(
    policies: Annotated[
        str, typer.Option(help="Comma-separated policies.")
    ] = "random,epsilon_greedy,ucb,thompson,linucb",
    rounds: int = 20_000,
    candidates: int = 10,
    seed: int = 1,
    plot: Annotated[str | None, typer.Option(help="Write a cumulative-regret plot here.")] = None,
) -> None:
    """Each policy's reward and regret against the world's true best item."""
    from rich.table import Table

    from loopml.serve.stream.bandits.simulate import bandit_simulate

    rows = bandit_simulate(
        tuple(policies.split(",")), rounds=rounds, n_candidates=candidates, seed=seed, plot=plot
    )
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()])
    console().print(table)
