"""Bases and datasets from outside the package, known to every command and worker process.

A plugin is a module that calls :func:`effscale.model.bases.register_base` and/or
:func:`effscale.datasets.registry.register_dataset` when it is imported. Registration is per
process, so effscale imports the plugins itself, before the command line is built (the
``--base`` and ``--dataset`` help list them) and again in every spawned ``--workers``
process (a worker that did not would not know the base it is asked to train):

- the modules named in ``$EFFSCALE_PLUGINS`` (comma-separated, importable on ``sys.path``:
  ``EFFSCALE_PLUGINS=mynets effscale search --base mynet``), then
- the entry points of group ``effscale.plugins`` of the installed distributions (a package
  declares ``[project.entry-points."effscale.plugins"] mynets = "mynets"`` in its
  pyproject.toml and is found once installed).

A plugin that fails to import stops the command with one line naming it.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from effscale.errors import EffscaleError

ENV = "EFFSCALE_PLUGINS"
GROUP = "effscale.plugins"

_loaded: list[str] = []  # what this process imported, in order (each once)


def plugin_modules() -> list[tuple[str, str]]:
    """``(where it is named, module)`` for every plugin: ``$EFFSCALE_PLUGINS`` first, then
    the ``effscale.plugins`` entry points, each module once."""
    named = [(ENV, name.strip()) for name in os.environ.get(ENV, "").split(",") if name.strip()]
    named += [(f"entry point {point.name!r}", point.module)
              for point in entry_points(group=GROUP)]
    seen: set[str] = set()
    return [(where, module) for where, module in named
            if not (module in seen or seen.add(module))]


def load_plugins() -> tuple[str, ...]:
    """Import every plugin not imported yet in this process; returns all loaded so far."""
    for where, module in plugin_modules():
        if module in _loaded:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin's own error, whatever it is, is one line
            raise EffscaleError(f"plugin {module!r} (from {where}) failed to import: "
                                f"{exc.__class__.__name__}: {exc}") from exc
        _loaded.append(module)
    return tuple(_loaded)
