"""The ``effscale`` command line: the app, its global options and the entry point.

Each command lives in its own module and registers itself with ``register(app)``; the options
they share are declared once, in :mod:`effscale.cli.options`. A command's module (and torch
with it) is imported only when that command runs or shows its help: ``effscale --help`` and
``--version`` list the commands from :data:`COMMANDS` without importing any of them.
"""

from __future__ import annotations

import sys
import traceback
from importlib import import_module
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from effscale import __version__
from effscale.cli import render
from effscale.cli.messages import usage_message
from effscale.cli.metavars import name_metavars
from effscale.errors import EffscaleError
from effscale.plugins import load_plugins

# command -> (the module that registers it, its one-line help as `effscale --help` lists it;
# tests/cli/test_cli.py checks each line against the command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "flops": ("effscale.cli.flops", "Parameters, FLOPs and activations of a config, per "
              "stage, measured at batch 1."),
    "cost": ("effscale.cli.cost", "One table of what each config costs at its own (full) "
             "resolution on this device."),
    "derive": ("effscale.cli.derive", "Write the config for each phi: depth alpha^phi, width "
               "beta^phi, resolution gamma^phi."),
    "search": ("effscale.cli.search", "The φ=1 grid search over α (depth), β (width), γ "
               "(resolution) at 2× the base's FLOPs."),
    "report": ("effscale.cli.search", "Write a search's outputs (coefficients, trials.csv, "
               "configs, plot) from its study, at any"),
    "compare": ("effscale.cli.compare", "Compound scaling against depth-, width- and "
                "resolution-only scaling at equal FLOPs."),
    "cam": ("effscale.cli.cam", "Class activation maps: for the same validation images, what "
            "the base, the depth-,"),
    "train": ("effscale.cli.train", "Train one config exactly as `effscale search` trains a "
              "candidate, and save a checkpoint."),
    "segment-demo": ("effscale.cli.segment", "Train CONFIG as an Eff-UNet on synthetic shapes "
                     "and compare its mIoU with a baseline."),
    "export": ("effscale.cli.export", "Export a config or checkpoint to ONNX, with a dynamic "
               "batch axis, and check it."),
    "weights": ("effscale.cli.weights", "Published weights (torchvision, timm) in effscale "
                "models."),
}
_REGISTERED: set[str] = set()  # modules whose register(app) has run


class LazyGroup(TyperGroup):
    """The top-level group: a command's module is imported when the command is looked up,
    except while the group's own help is written, which lists :data:`COMMANDS` as they are."""

    listing = False

    @property
    def commands(self) -> dict[str, Any]:  # every command, each module imported
        for name in COMMANDS:
            self.get_command(None, name)  # type: ignore[arg-type]
        return self._commands

    @commands.setter
    def commands(self, value: Any) -> None:  # those registered by earlier lookups
        self._commands = {name: name_metavars(command) for name, command in value.items()}

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self.listing:
            return typer.core.TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])
        if cmd_name not in self._commands:
            module = COMMANDS[cmd_name][0]
            if module not in _REGISTERED:
                import_module(module).register(app)
                _REGISTERED.add(module)
            built = typer.main.get_group(app)._commands  # type: ignore[attr-defined]
            for name, command in built.items():
                self._commands.setdefault(name, name_metavars(command))
        return self._commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    cls=LazyGroup, add_completion=False, no_args_is_help=True,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
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
        load_plugins()  # before the commands are built: their --base/--dataset help lists them
        command = name_metavars(typer.main.get_command(app))  # the group's own options
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
