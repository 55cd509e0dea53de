"""`loopml sim ...`: the simulated world as event data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

sim_app = typer.Typer(
    help="The simulated ad feed: generate logs with a known truth.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")


@sim_app.command("generate")
def generate(
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives identical events.")] = 0,
    days: Annotated[int, typer.Option(help="Days to simulate.")] = 14,
    impressions_per_day: Annotated[int, typer.Option(help="Impressions per day.")] = 100_000,
    out: Annotated[
        Path | None, typer.Option(help="Write <type>.parquet files here instead of the event log.")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Generate users, items, impressions, clicks and conversions into the event log."""
    from loopml.sim import World, WorldConfig

    world = World(WorldConfig(seed=seed, days=days, impressions_per_day=impressions_per_day))
    frames = world.generate(progress=not quiet)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for event_type, frame in frames.items():
            frame.to_parquet(out / f"{event_type}.parquet", index=False)
        typer.echo(f"wrote {len(frames)} files to {out}")
        return
    events = open_project(project).events
    for event_type, frame in frames.items():
        result = events.append(event_type, frame, source="sim")
        typer.echo(f"{event_type:12s} {result}")


@sim_app.command("info")
def info(seed: int = 0, days: int = 14) -> None:
    """The world's scheduled events: log-format change, preference shift, new segment."""
    from loopml.sim import World, WorldConfig

    world = World(WorldConfig(seed=seed, days=days))
    cfg = world.config
    out = console()
    out.print(f"days 0-{cfg.days - 1} from {cfg.start}; base click rate {cfg.base_ctr:.1%}")
    out.print(f"day {cfg.format_change_day}: impressions switch to schema v2 (adds `device`)")
    out.print(
        f"day {cfg.shift_day}: {cfg.shift_fraction:.0%} of users change tastes; segment "
        f"{cfg.new_segment!r} starts signing up"
    )
    out.print(f"fitted intercept {world.bias:.3f}")
