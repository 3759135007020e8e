"""Precise batch-norm statistics (effscale.train.precise_bn) and the trainer's use of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from effscale.model.bases import get_base
from effscale.train.precise_bn import batch_norms, recompute_bn_stats
from effscale.train.trainer import Recipe, proxy_config, train_config


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Dropout(0.5), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))


def test_running_stats_become_the_exact_average_over_the_batches() -> None:
    net = small_net()
    first = net[1]
    first.running_mean.fill_(123.0)  # stale statistics from "training"
    first.running_var.fill_(0.001)
    batches = [torch.randn(8, 3, 6, 6) * 2 + 1 for _ in range(3)]
    net.train()
    assert recompute_bn_stats(net, batches) == 2
    with torch.no_grad():
        features = torch.cat([net[0](b) for b in batches])  # conv output, per channel
    expected_mean = features.mean(dim=(0, 2, 3))
    assert torch.allclose(first.running_mean, expected_mean, atol=1e-5)
    # equal batches: the average of the per-batch unbiased variances
    per_batch = torch.stack([net[0](b).detach().var(dim=(0, 2, 3), unbiased=True)
                             for b in batches])
    assert torch.allclose(first.running_var, per_batch.mean(0), atol=1e-4)
    assert first.momentum == 0.1 and net.training  # momentum and mode restored


def test_dropout_is_off_during_the_pass_and_eval_mode_is_kept() -> None:
    net = small_net().eval()
    batch = [torch.randn(4, 3, 5, 5)]
    recompute_bn_stats(net, batch)
    once = net[5].running_mean.clone()
    recompute_bn_stats(net, batch)  # dropout on would draw other masks -> other statistics
    assert torch.equal(once, net[5].running_mean) and not net.training
    assert recompute_bn_stats(nn.Linear(2, 2), batch) == 0


def _train(precise_bn: int):
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (96, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(96) % 3
    recipe = Recipe(epochs=2, batch_size=32, precise_bn=precise_bn, stem_stride=1)
    # the tests' small base (tests/tiny_base.py): batch norms in MBConv blocks, as b0's
    config = proxy_config(get_base("tiny", 3).replace(resolution=16), recipe, 3)
    result = train_config(config, images, labels, images[:48], labels[:48], recipe=recipe,
                          device=torch.device("cpu"), seed=5)
    return result


@pytest.mark.slow  # trains two models end to end (3 s)
def test_the_trainer_recomputes_statistics_without_touching_the_training() -> None:
    plain, precise = _train(0), _train(64)
    # batch norms normalise by batch statistics while training, so the trainings are the same
    assert plain.train_loss_per_epoch == precise.train_loss_per_epoch
    bn_plain, bn_precise = batch_norms(plain.model)[0], batch_norms(precise.model)[0]
    assert torch.equal(bn_plain.weight, bn_precise.weight)
    # ... and only the statistics the validation used differ
    assert not torch.allclose(bn_plain.running_mean, bn_precise.running_mean)
    assert bn_precise.momentum == bn_plain.momentum == 0.1
