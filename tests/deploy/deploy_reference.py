"""torchvision and timm models for the tests (random initialisation only: nothing is
downloaded), from the ``refs`` extra. Where ``import torchvision`` fails, the tests that need
it are skipped with the reason: a torchvision wheel built against another torch build (the
PyPI wheels are built against CUDA torch; with the CPU build their C++ ops do not load) does
not import, and nothing is stood in for it.
"""

from __future__ import annotations

import types

import pytest
import torch

INSTALL = ("pip install -e '.[refs]' torch==<your torch version>, so pip picks the "
           "torchvision built for it")


def torchvision_models() -> types.ModuleType:
    try:
        import torchvision
    except ImportError:
        pytest.skip(f"torchvision is not installed ({INSTALL})")
    except RuntimeError as err:  # its ops library did not load against this torch
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        pytest.skip(f"import torchvision fails: {reason} (a torchvision built for another "
                    f"torch than {torch.__version__}; {INSTALL})")
    return torchvision.models


def timm_module() -> types.ModuleType:
    torchvision_models()  # timm imports torchvision
    try:
        import timm
    except ImportError:
        pytest.skip(f"timm is not installed ({INSTALL})")
    return timm


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``model`` in eval mode with random batch-norm statistics and affine parameters too, so
    that a wrong epsilon, a swapped tensor or a skipped layer shows in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()
