"""Rich rendering for the CLI: tables and formatted numbers. Library modules never print."""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # torch: not imported by `effscale --help`
    from effscale.model.flops import Complexity

# Data goes to stdout; messages, warnings and progress go to stderr.
# Piped output is not cut to 80 columns: tables stay whole in logs and files.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def print_json(doc: Any) -> None:
    """A command's ``--json`` result: exactly one JSON document on stdout (dates and paths as
    strings)."""
    out.print_json(data=doc, default=str)


def data_table(title: str, columns: Iterable[str], text: Collection[str] = ()) -> Table:
    """A table of figures: number columns right-aligned; the text columns named in ``text``
    (config paths, model names) left-aligned and folded when the table is too wide, never cut
    to an ellipsis, so a long path still names its file. Rich shrinks the widest columns
    first, so a long path folds before any header or figure has to wrap."""
    table = Table(title=title, title_justify="left")
    for name in columns:
        if name in text:
            table.add_column(name, justify="left", overflow="fold")
        else:
            table.add_column(name, justify="right")
    return table


def giga(value: float) -> str:
    return f"{value / 1e9:.3f} G"


def millions(value: float) -> str:
    return f"{value / 1e6:.3f} M"


def complexity_table(title: str, report: Complexity) -> Table:
    """Per-part table (stem, stages, head, classifier or decoder) plus a total row."""
    table = Table(title=title, title_justify="left")
    table.add_column("part")
    table.add_column("params", justify="right")
    table.add_column("FLOPs (total)", justify="right")
    table.add_column("FLOPs (conv+linear)", justify="right")
    for part in report.parts:
        table.add_row(part.name, f"{part.params:,}", giga(part.flops), giga(part.flops_conv_linear))
    table.add_section()
    if groups := report.groups():
        for group in groups:  # encoder / decoder subtotals of a UNet
            table.add_row(group.name, f"{group.params:,}", giga(group.flops),
                          giga(group.flops_conv_linear), style="italic")
        table.add_section()
    table.add_row("total", f"{report.params:,}", giga(report.flops),
                  giga(report.flops_conv_linear), style="bold")
    return table


def complexity_summary(report: Complexity) -> list[str]:
    """The headline lines under the table."""
    lines = [
        f"params        {report.params:,} ({millions(report.params)})",
        f"FLOPs         {giga(report.flops)}  (counter: {report.counter}, all counted ops)",
        f"FLOPs conv+fc {giga(report.flops_conv_linear)}  (as published figures count them)",
        f"activations   {report.activations:,} ({millions(report.activations)})",
        "FLOPs are multiply-adds: one multiply-add counts as one FLOP, as in the EfficientNet "
        "paper.",
    ]
    for group in report.groups():
        lines.insert(-1, f"{group.name:<13} params {group.params:,} ({millions(group.params)}), "
                         f"FLOPs {giga(group.flops)}, conv+fc {giga(group.flops_conv_linear)}")
    if report.uncounted_ops:
        ops = ", ".join(f"{name.removeprefix('aten::')}×{n}"
                        for name, n in report.uncounted_ops.items())
        lines.append(f"not counted   {ops}")
    return lines
