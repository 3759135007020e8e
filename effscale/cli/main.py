"""The ``effscale`` command line: the app, its global options and the entry point.

Each command lives in its own module and registers itself with ``register(app)``; the options
they share are declared once, in :mod:`effscale.cli.options`.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from effscale import __version__
from effscale.cli import render
from effscale.cli.messages import usage_message
from effscale.cli.metavars import name_metavars
from effscale.errors import EffscaleError

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Find and apply EfficientNet-style compound scaling coefficients.",
)


def _version(value: bool) -> None:
    if value:
        render.out.print(f"effscale {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show tracebacks on errors (also accepted after the command).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Find and apply EfficientNet-style compound scaling coefficients."""
    # --debug is read by main_entry, which catches the errors: accepted here so it parses.


def _register_commands() -> None:
    from effscale.cli import cam, compare, cost, derive, flops, search, segment, train

    for command in (flops, cost, derive, search, compare, cam, train, segment):
        command.register(app)
    from effscale.cli import export, weights  # deploy: one line each below

    weights.register(app)
    export.register(app)


_register_commands()


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there: the flag is global and may come
    before or after the command (``effscale flops --debug b0.yaml``); after ``--`` it is an
    argument like any other."""
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [a for a in argv[:end] if a != "--debug"] + argv[end:]
    return kept, len(kept) != len(argv)


def main_entry(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code. Every error is one line on stderr: usage errors
    exit 2, runtime failures exit 1, an interrupt 130; ``--debug`` (anywhere before ``--``)
    adds the traceback."""
    argv, debug = split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        command = name_metavars(typer.main.get_command(app))
        code = command.main(args=argv, prog_name="effscale", standalone_mode=False)
    except EffscaleError as exc:
        if debug:
            traceback.print_exc()
        render.err.print(f"error: {exc}", markup=False, highlight=False)
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        render.err.print("error: interrupted", markup=False)
        return 130
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            # A usage error from the argument parser (typer's vendored click).
            render.err.print(f"error: {usage_message(exc)}", markup=False, highlight=False)
            return int(exc.exit_code)
        if debug:
            traceback.print_exc()
        render.err.print(f"error: {exc.__class__.__name__}: {exc} (run with --debug for the "
                         "traceback)", markup=False, highlight=False)
        return 1
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main_entry())


if __name__ == "__main__":
    run()
