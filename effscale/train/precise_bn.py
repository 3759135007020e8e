"""Precise batch-norm statistics: recompute every batch norm's running mean and variance from
the current weights before a validation.

A proxy trains for a few hundred steps at a high learning rate, so the running averages a
batch norm keeps (momentum 0.1) lag the weights they normalise: a b0 proxy on the synthetic
set that was right on most of an epoch's training batches could score chance on validation
after it (docs/method.md has the figures). Recomputing them on a fixed sample of training
images (the "precise BN" of pycls; Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021)
makes a validation measure the weights rather than the lag. Nothing else changes: the pass
runs without gradients, with dropout and drop-path off, and the training's random stream is
not touched.
"""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _NORMS)]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Replace every batch norm's running statistics by their exact average over ``batches``
    (already normalised inputs), and return how many batch norms were updated.

    The model is left in the mode it was in; each batch norm's momentum is restored.
    """
    norms = batch_norms(model)
    if not norms or not batches:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()  # dropout and drop-path off ...
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # ... and a cumulative average over the batches below
        m.train()
    try:
        for batch in batches:
            model(batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)
