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


@events_app.command("fields")
def events_fields(
    event_type: str,
    start: Annotated[str | None, typer.Option(help="First day (ISO).")] = None,
    end: Annotated[str | None, typer.Option(help="End day, exclusive (ISO).")] = None,
    project: ProjectOpt = None,
) -> None:
    """Fields stored for every event in the range: the feature set that survives a format change."""
    from loopml.logs.evolution import common_fields

    typer.echo(", ".join(common_fields(open_project(project).events, event_type, start, end)))


@events_app.command("backfill")
def events_backfill(
    event_type: str,
    field: str,
    fn: Annotated[
        str, typer.Option("--fn", help="module:function computing the field for old rows.")
    ],
    project: ProjectOpt = None,
) -> None:
    """Add FIELD to older partitions, computed by a backfill function (safe to re-run)."""
    import importlib

    from loopml.core.errors import ValidationError
    from loopml.logs.evolution import backfill

    module, _, attr = fn.partition(":")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValidationError(
            f"--fn {fn!r} cannot be imported ({exc}); give it as package.module:function",
            field="fn",
        ) from None
    typer.echo(str(backfill(open_project(project).events, event_type, field, func, progress=True)))


@features_app.command("build")
def features_build(
    start: Annotated[str, typer.Option(help="First impression time (ISO).")],
    end: Annotated[str, typer.Option(help="End time, exclusive (ISO).")],
    out: Annotated[Path, typer.Option(help="Parquet file to write.")],
    view: Annotated[
        list[str] | None, typer.Option(help="NAME or NAME:VERSION (default: all).")
    ] = None,
    label: Annotated[str, typer.Option(help="Label event type.")] = "click",
    label_window: Annotated[
        str, typer.Option(help="How long after the impression a label counts.")
    ] = "1h",
    project: ProjectOpt = None,
) -> None:
    """Build a point-in-time training set (features strictly before each impression)."""
    from loopml.features.training import build_training_set
    from loopml.features.views import default_catalog

    catalog = default_catalog()
    views = (
        list(catalog)
        if not view
        else [
            catalog.get(v.partition(":")[0], int(v.partition(":")[2]) if ":" in v else None)
            for v in view
        ]
    )
    frame = build_training_set(
        open_project(project).events,
        views,
        start=start,
        end=end,
        label=label,
        label_window=label_window,
        progress=True,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    typer.echo(f"{len(frame):,} rows, positive rate {frame['label'].mean():.4f} -> {out}")


@features_app.command("latest")
def features_latest(
    view: str,
    as_of: Annotated[str | None, typer.Option(help="ISO time (default: now).")] = None,
    entity: Annotated[list[str] | None, typer.Option(help="Entity ids (default: all).")] = None,
    limit: int = 20,
    project: ProjectOpt = None,
) -> None:
    """Feature values per entity as of a time: what the online store serves."""
    from loopml.features.training import latest_values
    from loopml.features.views import default_catalog

    frame = latest_values(open_project(project).events, default_catalog().get(view), as_of, entity)
    _print_frame(frame, limit)


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
