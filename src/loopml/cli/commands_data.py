"""Event log and feature commands: ingest, sql, events, features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

events_app = typer.Typer(help="Inspect and repair the event log.", no_args_is_help=True)
features_app = typer.Typer(
    help="Feature views, training sets and the online store.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.add_typer(features_app, name="features")

    @app.command()
    def ingest(
        file: Annotated[Path, typer.Argument(help="CSV, JSON lines or Parquet file of events.")],
        event_type: Annotated[
            str | None,
            typer.Option("--type", "-t", help="Event type; else the file's event_type column."),
        ] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Validate and append events; invalid rows go to the dead-letter log with the reason."""
        proj = open_project(project)
        result = proj.events.ingest_file(str(file), event_type=event_type)
        out = console()
        out.print(
            f"accepted {result.accepted:,}  rejected {result.rejected:,}  "
            f"duplicates {result.duplicates:,}"
        )
        for reason, n in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:10]:
            out.print(f"  [yellow]{n:,}[/] {reason}")
        if result.rejected:
            out.print(
                f"dead letters: {result.dead_letter_path}  (see `loopml events dead-letters`)"
            )

    @app.command()
    def sql(
        query: Annotated[
            str, typer.Argument(help="SQL over the event views (impression, click, ...).")
        ],
        limit: Annotated[int, typer.Option(help="Rows to print.")] = 50,
        project: ProjectOpt = None,
    ) -> None:
        """Query the event log with DuckDB: one view per event type."""
        frame = open_project(project).events.sql(query)
        _print_frame(frame, limit)

    @events_app.command("dead-letters")
    def dead_letters(limit: int = 20, project: ProjectOpt = None) -> None:
        """Show rejected events, newest first: the reason, then the original row."""
        frame = open_project(project).events.dead_letters()
        out = console()
        if frame.empty:
            out.print("no dead letters: every ingested event was valid")
            return
        frame = frame.sort_values("received_at", ascending=False)
        for row in frame.head(limit).itertuples(index=False):
            out.print(
                f"[dim]{str(row.received_at)[:19]}[/] [bold]{row.event_type}[/] "
                f"from {row.source}: [yellow]{row.reason}[/]",
                highlight=False,
            )
            out.print(f"    {row.row}", highlight=False, soft_wrap=True)
        out.print(f"{len(frame):,} dead letters in all")

    @events_app.command("counts")
    def counts(project: ProjectOpt = None) -> None:
        """Events per type (duplicates counted once)."""
        for name, n in sorted(open_project(project).events.counts().items()):
            typer.echo(f"{name:12s} {n:>12,}")


@features_app.command("ls")
def features_ls() -> None:
    """The feature views of the catalog, with their versions and columns."""
    from loopml.features.views import default_catalog

    out = console()
    for view in default_catalog():
        out.print(
            f"[bold]{view.name}[/] v{view.version} (entity {view.entity}): {view.description}"
        )
        out.print("    " + ", ".join(view.columns), highlight=False)


@features_app.command("materialize")
def features_materialize(
    views: Annotated[
        list[str] | None, typer.Argument(help="Views to write (default: all).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="ISO time the values are as of (default: now).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write the latest feature values to the online store the server reads."""
    from loopml.features.materialize import materialize_project

    result = materialize_project(
        open_project(project).config, views or None, as_of=as_of, progress=not quiet
    )
    typer.echo(str(result))


def _print_frame(frame, limit: int) -> None:  # noqa: ANN001
    from rich.table import Table

    table = Table(show_lines=False)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.head(limit).itertuples(index=False):
        table.add_row(*[str(v) for v in row])
    out = console()
    out.print(table)
    if len(frame) > limit:
        out.print(f"... {len(frame) - limit:,} more rows (use --limit)")
