"""Options shared by many commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

ProjectOpt = Annotated[
    Path,
    typer.Option(
        "--project",
        "-p",
        help="Project directory (holds loopml.toml). Defaults to $LOOPML_PROJECT or '.'.",
        show_default=False,
    ),
]


def default_project() -> Path:
    return Path(os.environ.get("LOOPML_PROJECT", "."))


def open_project(path: Path | None):  # noqa: ANN201 - returns loopml.project.Project
    from loopml.project import Project

    return Project.open(path if path is not None else default_project())


def console():  # noqa: ANN201
    from rich.console import Console

    return Console()
