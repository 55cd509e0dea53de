"""`loopml init` and `loopml demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Annotated[Path, typer.Argument(help="Directory for the new project.")] = Path(
            "."
        ),
        name: Annotated[
            str | None, typer.Option(help="Project name (default: directory name).")
        ] = None,
        force: Annotated[bool, typer.Option(help="Overwrite an existing loopml.toml.")] = False,
    ) -> None:
        """Create a project with every store on its embedded default (no services needed)."""
        from loopml.core.config import init_project

        path = init_project(directory, name=name, force=force)
        typer.echo(f"wrote {path}; edit the [storage] URLs to move a store to a real service")

    @app.command()
    def demo(
        directory: Annotated[
            Path, typer.Option("--dir", help="Where to create the demo project.")
        ] = Path("loopml-demo"),
        days: Annotated[int, typer.Option(help="Simulated days of logs.")] = 14,
        impressions_per_day: Annotated[
            int, typer.Option(help="Impressions per simulated day.")
        ] = 100_000,
        seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 0,
        quick: Annotated[bool, typer.Option(help="A small world for a fast smoke run.")] = False,
    ) -> None:
        """Run the whole loop on the embedded default and write an HTML report."""
        from loopml.demo.scenario import run_demo

        run_demo(
            directory, days=days, impressions_per_day=impressions_per_day, seed=seed, quick=quick
        )
