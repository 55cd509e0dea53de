"""Serving commands: `loopml predict batch` (pattern 1) and the other patterns."""

from __future__ import annotations

from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

predict_app = typer.Typer(help="Score with a registered model.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(predict_app, name="predict")

    @app.command()
    def serve(
        host: Annotated[
            str | None, typer.Option(help="Bind address (default: [serve] host).")
        ] = None,
        port: Annotated[int | None, typer.Option(help="HTTP port (default: [serve] port).")] = None,
        workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
        project: ProjectOpt = None,
    ) -> None:
        """Pattern 2: serve every model of the project (V2 REST + gRPC, MLflow, JSON)."""
        from loopml.serve.online.app import run

        run(open_project(project).config, host=host, port=port, workers=workers)


@predict_app.command("batch")
def predict_batch(
    model: Annotated[str, typer.Argument(help="NAME or NAME@ALIAS (default alias: production).")],
    date: Annotated[
        str | None, typer.Option(help="Score date YYYY-MM-DD (default: day after the last event).")
    ] = None,
    population: Annotated[
        str, typer.Option(help="Who to score: active_users_x_top_items or active_users.")
    ] = "active_users_x_top_items",
    top_items: Annotated[int, typer.Option(help="Candidate items per user.")] = 20,
    chunk_size: Annotated[int, typer.Option(help="Rows per committed chunk.")] = 50_000,
    force: Annotated[
        bool, typer.Option(help="Rewrite every chunk even if already committed.")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Pattern 1: score a population and upsert it into the predictions table (resumable)."""
    from loopml.serve.batch.job import run_batch_job

    proj = open_project(project)
    result = run_batch_job(
        proj.config,
        model,
        score_date=date,
        population=population,
        top_items=top_items,
        chunk_size=chunk_size,
        force=force,
        progress=True,
    )
    console().print(
        f"job {result.job_id[:12]}: {result.rows:,} rows in {result.seconds:.1f}s "
        f"({result.rows_per_second:,.0f} rows/s); chunks written {result.chunks_written}, "
        f"already done {result.chunks_skipped}; table: {proj.config.storage.predictions}"
    )
