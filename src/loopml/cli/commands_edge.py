"""`loopml export ...`: pattern 3, bundles that predict on the client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loopml.cli.options import ProjectOpt, console, open_project

export_app = typer.Typer(
    help="Export models to run on clients (ONNX, browser).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("edge")
def export_edge_cmd(
    ref: Annotated[str, typer.Argument(help="MODEL@ALIAS or MODEL@VERSION.")],
    out: Annotated[Path, typer.Option(help="Bundle directory to write.")],
    web: Annotated[bool, typer.Option(help="Add a browser page using onnxruntime-web.")] = False,
    compress: Annotated[str | None, typer.Option(help="quantize,prune,distill or all.")] = None,
    max_size: Annotated[
        str | None, typer.Option(help="e.g. 500KB: ship the smallest variant under it.")
    ] = None,
    max_metric_loss: Annotated[
        float | None, typer.Option(help="Max ROC-AUC loss vs the original.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Client target name for the inventory.")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="Held-out rows (Parquet/CSV) for parity.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column in --data.")] = None,
    tolerance: Annotated[float, typer.Option(help="Max |probability difference| allowed.")] = 1e-4,
    force: Annotated[bool, typer.Option(help="Overwrite an existing bundle directory.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Convert to ONNX with preprocessing, prove parity, optionally compress, write a bundle."""
    from loopml.serve.edge.export import export_edge, parse_size

    result = export_edge(
        open_project(project).config,
        ref,
        out,
        web=web,
        compress=compress,
        max_size=parse_size(max_size),
        max_metric_loss=max_metric_loss,
        target=target,
        data=str(data) if data else None,
        label=label,
        tolerance=tolerance,
        force=force,
        progress=not quiet,
    )
    typer.echo(result.summary())


@export_app.command("list")
def export_list(
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this target.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Every exported bundle: model version, target, compression, hash, when."""
    from loopml.registry.bundles import BundleInventory

    out = console()
    for record in BundleInventory.from_config(open_project(project).config).list(model, target):
        out.print(record.to_dict(), highlight=False)


@export_app.command("verify")
def export_verify(
    directory: Path,
    sha256: Annotated[str | None, typer.Option(help="Expected bundle hash.")] = None,
) -> None:
    """Check every file of a bundle against its recorded sha256 (non-zero exit on tamper)."""
    from loopml.serve.edge.loader import load_bundle

    bundle = load_bundle(directory, expected_sha256=sha256)
    typer.echo(f"ok: {directory} sha256={bundle.sha256}")
