"""Class activation maps (CAM, Zhou et al. 2016) of a classifier, and predicted masks of an
Eff-UNet: what a trained model looks at.

A :class:`~effscale.model.classifier.ClassifierNet` ends in the head conv, global average
pooling and one linear layer (dropout is the identity in eval mode), so for the features
``F`` (``C x h x w``) after the head conv and the classifier's weights ``W`` and bias ``b``::

    logit_k = W_k . mean_xy F[:, x, y] + b_k = mean_xy CAM_k(x, y) + b_k
    CAM_k(x, y) = sum_c W[k, c] F[c, x, y]

The CAM is therefore exact for this architecture: the spatial mean of the map of class ``k``
plus its bias *is* the model's logit for ``k``, with no gradient, no approximation and no
extra dependency. (Grad-CAM on this head weights ``F`` by ``W[k] / (h w)``, the gradient of
the logit: the same map scaled by ``1 / (h w)``, then clipped at zero.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from effscale.errors import EffscaleError


@dataclass(frozen=True)
class CamResult:
    """``maps``: ``(N, K, h, w)``, the CAM of every class at the final feature map's size;
    ``logits``: ``(N, K)``, the model's own outputs for the same images;
    ``predicted``: ``(N,)``, the argmax class of each image."""

    maps: torch.Tensor
    logits: torch.Tensor
    predicted: torch.Tensor

    def of_predicted(self) -> torch.Tensor:
        """``(N, h, w)``: each image's map for its predicted class."""
        return self.maps[torch.arange(len(self.predicted)), self.predicted]


def has_cam(model: nn.Module) -> bool:
    """Whether ``model`` ends in a head conv, global pooling and one linear layer."""
    return all(isinstance(getattr(model, name, None), nn.Module)
               for name in ("backbone", "head", "pool", "classifier")) \
        and isinstance(model.classifier, nn.Linear) \
        and isinstance(model.pool, nn.AdaptiveAvgPool2d)


@torch.no_grad()
def class_activation_maps(model: nn.Module, images: torch.Tensor) -> CamResult:
    """The exact CAM of every class for ``images`` (normalized, ``(N, 3, H, W)``).

    ``model`` is put in eval mode (batch norm uses its running statistics, dropout is off).
    """
    if not has_cam(model):
        raise EffscaleError(f"{type(model).__name__}: a class activation map needs a head conv, "
                            "global average pooling and one linear classifier (a ClassifierNet)")
    model.eval()
    features = model.head(model.backbone(images)).float()  # (N, C, h, w)
    weight = model.classifier.weight.float()  # (K, C)
    maps = torch.einsum("kc,nchw->nkhw", weight, features)
    logits = model(images).float()
    return CamResult(maps, logits, logits.argmax(1))


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, h, w)`` maps resized to ``size x size`` (bilinear) and scaled to ``[0, 1]`` per
    map (a constant map reads 0)."""
    resized = F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear",
                            align_corners=False)[:, 0]
    low = resized.amin(dim=(1, 2), keepdim=True)
    span = resized.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (resized - low) / span.clamp_min(1e-12),
                       torch.zeros_like(resized))


@torch.no_grad()
def predicted_masks(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` int64: an Eff-UNet's predicted class per pixel (eval mode)."""
    model.eval()
    return model(images).argmax(1)
