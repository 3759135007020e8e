"""The base networks that compound scaling starts from: a registry of name -> config factory.

A factory takes the class count and returns a plain :class:`~effscale.model.config.ModelConfig`.
Adding a base is one file in this package (its factory) and one ``register_base`` line at the
bottom of this one; code outside the package (a plugin, a test) calls :func:`register_base`
itself. Registration is per process: a plugin module named in ``$EFFSCALE_PLUGINS`` or
declared as an ``effscale.plugins`` entry point is imported by every command and every
spawned ``--workers`` process (:mod:`effscale.plugins`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from effscale.errors import EffscaleError
from effscale.model.bases.efficientnet import efficientnet_b0
from effscale.model.bases.mobilenetv2 import mobilenetv2
from effscale.model.bases.resnet import resnet50
from effscale.model.config import ModelConfig

BaseFactory = Callable[[int], ModelConfig]

# name -> factory, in registration order (the order error messages and help list them in).
BASES: dict[str, BaseFactory] = {}

# A base name becomes part of file and directory names (``runs/<stamp>-<base>-<data>``,
# ``configs/<base>-phi2.yaml``): letters, digits, '.', '_' and '-', starting with a letter
# or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def register_base(name: str, factory: BaseFactory, *, replace: bool = False) -> None:
    """Make ``factory`` available as base ``name`` (``get_base``, ``--base``, derive, search).

    A name already registered is refused unless ``replace`` is true.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"base name must be letters, digits, '.', '_' or '-' (starting with a "
                         f"letter or digit), got {name!r}")
    if not callable(factory):
        raise TypeError(f"base {name!r}: factory must be callable, got {factory!r}")
    if name in BASES and not replace:
        raise ValueError(f"base {name!r} is already registered (pass replace=True to replace it)")
    BASES[name] = factory


def base_names() -> tuple[str, ...]:
    """Every registered base, in registration order."""
    return tuple(BASES)


def get_base(name: str, num_classes: int = 1000) -> ModelConfig:
    """The named base config; an unknown name's error lists the valid ones."""
    if name not in BASES:
        raise EffscaleError(f"unknown base {name!r} (valid: {', '.join(BASES)})")
    config = BASES[name](num_classes)
    if not isinstance(config, ModelConfig):
        raise EffscaleError(f"base {name!r}: its factory returned {type(config).__name__}, "
                            "not a ModelConfig")
    return config


register_base("b0", efficientnet_b0)
register_base("mobilenetv2", mobilenetv2)
register_base("resnet50", resnet50)

__all__ = ["BASES", "BaseFactory", "base_names", "efficientnet_b0", "get_base", "mobilenetv2",
           "register_base", "resnet50"]
