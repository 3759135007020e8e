"""torchvision and timm models for the tests, importable on a CPU-only torch.

The torchvision wheels on PyPI are built against CUDA torch: with the CPU build their C++ ops
(nms, roi_align ...) do not load, and ``import torchvision`` then fails while registering
fake kernels for them. The models the tests need use none of those ops, so that registration
module is stood in for before the import. Random initialisation only: nothing is downloaded.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch


def torchvision_models() -> types.ModuleType:
    try:
        import torchvision
    except RuntimeError:  # the ops library did not load: see the module docstring
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations")
        import torchvision
    except ImportError:
        pytest.skip("torchvision is not installed (pip install -e '.[dev]')")
    return torchvision.models


def timm_module() -> types.ModuleType:
    torchvision_models()  # timm imports torchvision
    try:
        import timm
    except ImportError:
        pytest.skip("timm is not installed (pip install -e '.[dev]')")
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
