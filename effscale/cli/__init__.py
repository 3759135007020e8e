"""The ``effscale`` command line: thin Typer commands over the library."""

from effscale.cli.main import app, main_entry, run

__all__ = ["app", "main_entry", "run"]
