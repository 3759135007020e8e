"""Dataset sources by name: how each is loaded, its native image size and a line of help.

A dataset spec is a registered name (``cifar10``, ``synthetic``) or else the path of an image
folder laid out as ``train/<class>/*`` (see :mod:`effscale.datasets.folder`). Adding a source is
one module with a loader and one ``register_dataset`` line at the bottom of this file; code
outside the package (a plugin, a test) calls :func:`register_dataset` itself. Registration is
per process: a plugin module named in ``$EFFSCALE_PLUGINS`` or declared as an
``effscale.plugins`` entry point is imported by every command and every spawned
``--workers`` process (:mod:`effscale.plugins`).

A loader takes a :class:`LoadRequest` and returns the decoded split as
:class:`~effscale.datasets.cache.Arrays` (uint8 [N, 3, S, S] images at exactly the requested
size S, int64 labels) and the class names; :func:`effscale.datasets.images.load_dataset` turns
them into an ``ImageData``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from effscale.datasets import cifar10, synthetic, synthetic_capacity
from effscale.datasets.source import DatasetSource, Loader

FOLDER_HELP = "a folder with train/<class>/* images"


# name -> source, in registration order (the order errors and help list them in).
_SOURCES: dict[str, DatasetSource] = {}

# A name is used in run-directory names and must not read as a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def register_dataset(name: str, load: Loader, *, native_size: int | None, help: str,
                     replace: bool = False) -> DatasetSource:
    """Make ``load`` available as dataset ``name`` (``load_dataset``, ``--dataset``).

    ``native_size`` is the side in px of the images as the source has them (the proxy never
    trains above it unless asked), ``None`` when they have none. A registered name takes
    precedence over a folder of the same name. A name already registered is refused unless
    ``replace`` is true.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"dataset name must be letters, digits, '.', '_' or '-' (starting with "
                         f"a letter or digit), got {name!r}")
    if not callable(load):
        raise TypeError(f"dataset {name!r}: load must be callable, got {load!r}")
    if native_size is not None and (isinstance(native_size, bool)
                                    or not isinstance(native_size, int) or native_size < 1):
        raise ValueError(f"dataset {name!r}: native_size must be a positive int or None, got "
                         f"{native_size!r}")
    if not isinstance(help, str) or not help.strip() or "\n" in help:
        raise ValueError(f"dataset {name!r}: help must be one non-empty line, got {help!r}")
    if name in _SOURCES and not replace:
        raise ValueError(f"dataset {name!r} is already registered (pass replace=True to "
                         "replace it)")
    source = DatasetSource(name, load, native_size, help.strip())
    _SOURCES[name] = source
    return source


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset name, in registration order."""
    return tuple(_SOURCES)


def get_dataset(spec: str) -> DatasetSource | None:
    """The source registered as ``spec``, or ``None`` (then ``spec`` is a folder path)."""
    return _SOURCES.get(spec)


def native_size(spec: str) -> int | None:
    """The dataset's native image size in px, or ``None`` when unknown (image folders)."""
    source = _SOURCES.get(spec)
    return source.native_size if source is not None else None


def dataset_label(spec: str) -> str:
    """The dataset part of a run-directory name: the registered name, else the folder's
    basename (``~/data/pets/`` -> ``pets``; ``.`` -> the current directory's name)."""
    if spec in _SOURCES:
        return spec
    return Path(os.path.abspath(os.path.expanduser(spec))).name or "folder"


def dataset_help() -> str:
    """``cifar10 (help), synthetic (help), or a folder with train/<class>/* images.``"""
    return ", ".join([*(f"{s.name} ({s.help})" for s in _SOURCES.values()),
                      f"or {FOLDER_HELP}."])


def __getattr__(name: str) -> Any:
    # DATASET_HELP is computed when imported, so it lists every source registered by then.
    if name == "DATASET_HELP":
        return dataset_help()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_dataset("cifar10", cifar10.load_source, native_size=cifar10.NATIVE_SIZE,
                 help="CIFAR-10, downloaded on first use")
register_dataset("synthetic", synthetic.load_source, native_size=synthetic.NATIVE_SIZE,
                 help="generated shapes and textures, no download")
register_dataset("synthetic-capacity", synthetic_capacity.load_source,
                 native_size=synthetic_capacity.NATIVE_SIZE,
                 help="negative control: coarse colour blobs, resolution cannot pay")
