"""The ``loopml`` command. Each command imports its heavy libraries when it runs,
so ``loopml --help`` stays fast."""

from __future__ import annotations

import sys

import typer

from loopml.cli import (
    commands_data,
    commands_edge,
    commands_models,
    commands_monitor,
    commands_project,
    commands_rollout,
    commands_serve,
    commands_sim,
    commands_stream,
)

app = typer.Typer(
    name="loopml",
    help="The whole life of a production ML model: logs -> features -> training -> registry "
    "-> serving (batch, online, edge, stream) -> rollout -> monitoring -> retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

commands_project.register(app)
commands_data.register(app)
commands_models.register(app)
commands_serve.register(app)
commands_sim.register(app)
commands_edge.register(app)
commands_stream.register(app)
commands_rollout.register(app)
commands_monitor.register(app)


def main() -> None:
    """Entry point: run the app; turn loopml errors into one clear line and exit code."""
    from loopml.core.errors import ConfigError, LoopmlError

    try:
        app()
    except LoopmlError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc.message}", highlight=False)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)


if __name__ == "__main__":
    main()
