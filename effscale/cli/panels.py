"""Options grouped under headings in a command's ``--help``: the app writes plain help
(``rich_markup_mode=None``), where Typer's ``rich_help_panel`` is ignored, so a command that
has many options gets a command class that writes one section per panel."""

from __future__ import annotations

from typing import Any, ClassVar

from typer.core import TyperCommand

_TERM_MAX = 30  # click's default: a longer option name puts its help on the next line

# panel title -> the parameter names (as the command's function names them) listed under it
Panels = dict[str, tuple[str, ...]]


class PanelledCommand(TyperCommand):
    """A command whose options are listed in :attr:`panels`' sections, in that order; an
    option no panel names is listed last, under "Other options"."""

    panels: ClassVar[Panels] = {}

    def format_options(self, ctx: Any, formatter: Any) -> None:
        records = {param.name: param.get_help_record(ctx) for param in self.get_params(ctx)}
        records = {name: record for name, record in records.items() if record is not None}
        sections = [(title, [records.pop(name) for name in names if name in records])
                    for title, names in self.panels.items()]
        sections.append(("Other options", list(records.values())))
        # one column for the help texts in every section (click sizes each list on its own)
        width = min(max((len(term) for _, rows in sections for term, _ in rows), default=0),
                    _TERM_MAX)
        for title, rows in sections:
            if rows:
                with formatter.section(title):
                    formatter.write_dl([(term.ljust(width), text) for term, text in rows],
                                       col_max=_TERM_MAX)


def panelled(panels: Panels) -> type[PanelledCommand]:
    """The command class (Typer's ``cls=``) that groups its options under ``panels``."""
    return type("PanelledCommand", (PanelledCommand,), {"panels": panels})
