"""The ``effscale`` command line: thin Typer commands over the library.

``app``, ``main_entry`` and ``run`` live in :mod:`effscale.cli.main` and are imported from
there on first use: a package that imported its own ``main`` on import made
``python -m effscale.cli.main`` (and every ``--workers`` process spawned from it) run that
module twice, with runpy's "found in sys.modules" RuntimeWarning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main_entry", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from effscale.cli import main

        return getattr(main, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
