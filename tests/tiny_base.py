"""``tiny``: a base for the tests that exercise a search's plumbing (resume, kill -9,
workers, failures, halving, confirmation), not what b0 learns.

Five MBConv blocks (b0 has 16) on channels wide enough for width to move in small steps
and repeats deep enough for depth to: with alpha up to 1.4 (``--alpha-max 1.4``) the smoke
grid keeps four candidates at 2x the base's full-size FLOPs within 5 %, as b0's default
smoke grid does (width, depth + width, resolution + width, resolution alone; six with the
default alpha range). A training step takes about a tenth of b0's. Registered as any plugin is
(:mod:`effscale.plugins`): tests/conftest.py imports it into the test processes, and the
subprocess tests name it in ``$EFFSCALE_PLUGINS`` (:data:`PLUGIN_ENV`).
"""

from __future__ import annotations

from pathlib import Path

from effscale.model.bases import register_base
from effscale.model.bases.stages import mbconv
from effscale.model.config import ModelConfig

NAME = "tiny"
# What a subprocess needs to know the base: the module on its path, named as a plugin.
PLUGIN_ENV = {"EFFSCALE_PLUGINS": __name__, "PYTHONPATH": str(Path(__file__).parent)}


def tiny_base(num_classes: int = 1000) -> ModelConfig:
    """Two MBConv stages (2 and 3 blocks; 48 and 96 channels) under a 32-channel stem, at
    96 px full size."""
    return ModelConfig(
        name=NAME, family=NAME, num_classes=num_classes, resolution=96,
        dropout=0.0, drop_path_rate=0.0, activation="relu",
        stem_channels=32, stem_kernel=3, stem_stride=2, stem_pool=False, head_channels=128,
        stages=(mbconv(2, 3, 2, 4, 48, 0.25), mbconv(3, 3, 2, 4, 96, 0.25)),
    )


register_base(NAME, tiny_base)
