"""The negative control (:mod:`effscale.datasets.synthetic_capacity`): every class is told
apart at the base's proxy size (and at the ladder's 14 px) from coarse features alone, and a
larger input holds no information a smaller one lacks, unlike the positive control's fine
textures (``tests/datasets/test_data.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from effscale.datasets import synthetic, synthetic_capacity
from effscale.datasets.images import load_dataset
from effscale.datasets.registry import native_size
from effscale.train.trainer import resize_images

NAME = "synthetic-capacity"


@pytest.mark.slow  # draws 15,000 images (4 s)
def test_it_is_registered_deterministic_balanced_and_sized() -> None:
    train, again = load_dataset(NAME, seed=3), load_dataset(NAME, seed=3)
    test = load_dataset(NAME, "test", seed=3)
    assert native_size(NAME) == 32
    assert torch.equal(train.images, again.images) and train.fingerprint == again.fingerprint
    count = len(synthetic_capacity.CLASSES)
    assert count == 20 and len(set(train.classes)) == count
    assert train.images.shape == (6000, 3, 32, 32) and len(test) == 1200
    assert train.labels.bincount().tolist() == [6000 // count] * count
    assert load_dataset(NAME, seed=4).fingerprint != train.fingerprint
    assert load_dataset(NAME, "test", image_size=20).images.shape == (1200, 3, 20, 20)


def decode(images: torch.Tensor) -> torch.Tensor:
    """The class read from coarse features alone: in the top and the bottom third of the
    image, the colour of the pixel farthest from that third's median colour (the blob's
    centre), as the nearest palette colour; the pair (upper, lower) is the class (the
    middle blob, a distractor, is left out)."""
    palette = torch.tensor(list(synthetic_capacity.COLOURS.values()), dtype=torch.float32)
    x = images.float()
    third = x.shape[-1] // 3
    found = []
    for part in (x[..., :third, :], x[..., -third:, :]):
        flat = part.flatten(2)  # [n, 3, pixels]
        median = flat.median(dim=2, keepdim=True).values
        peak = (flat - median).norm(dim=1).argmax(dim=1)  # [n]
        colour = flat.gather(2, peak[:, None, None].expand(-1, 3, 1))[..., 0]
        found.append(torch.cdist(colour, palette).argmin(dim=1))
    names = list(synthetic_capacity.COLOURS)
    lookup = {pair: k for k, pair in enumerate(synthetic_capacity.PAIRS)}
    return torch.tensor([lookup.get((names[u], names[v]), -1)
                         for u, v in zip(found[0].tolist(), found[1].tolist(), strict=True)])


def test_every_class_is_told_apart_from_coarse_features_at_the_proxy_sizes() -> None:
    """At the base's 20 px and the ladder's 14 px a hand-written reader of two colours and
    their vertical order names 99 % of the classes right (100 % measured; chance: 5 %);
    horizontal flips (the training's augmentation) change no class."""
    test = load_dataset(NAME, "test")
    for px in (14, 20, 32):
        accuracy = (decode(resize_images(test.images, px)) == test.labels).float().mean()
        assert accuracy > 0.99, (px, accuracy)
    flipped = decode(resize_images(test.images.flip(3), 20))
    assert (flipped == test.labels).float().mean() > 0.99


def test_no_single_feature_names_the_class() -> None:
    """Mean colour, nearest centroid, train -> test: about chance (5.9 % measured, chance
    5 %), where the two blobs and their order give 100 %."""
    train, test = load_dataset(NAME), load_dataset(NAME, "test")
    features = [d.images.float().mean(dim=(2, 3)) for d in (train, test)]
    count = len(synthetic_capacity.CLASSES)
    centroids = torch.stack([features[0][train.labels == c].mean(0) for c in range(count)])
    predicted = torch.cdist(features[1], centroids).argmin(1)
    assert (predicted == test.labels).float().mean() < 0.15


def _added_by_resolution(images: torch.Tensor, low: int, high: int) -> float:
    """How much a ``high`` px input holds that the ``low`` px one does not: the mean absolute
    difference (grey levels) between the image taken straight to ``high`` px and the ``low``
    px image interpolated up to ``high`` px."""
    straight = resize_images(images, high).float()
    through = torch.nn.functional.interpolate(resize_images(images, low).float(),
                                              size=(high, high), mode="bilinear",
                                              align_corners=False)
    return float((straight - through).abs().mean())


def test_a_larger_input_adds_no_information_here_and_much_in_the_positive_control() -> None:
    """From the base's 20 px to the γ 1.3 candidate's 26 px: on the capacity set a 26 px input
    is, to within 2 grey levels on average (1.3 measured, mostly pixel noise), the 20 px one
    interpolated; on the synthetic set's fine textures it differs by more than 8 levels
    (13.6 measured), what the textures lost at 20 px."""
    capacity = load_dataset(NAME, "test").images
    positive = load_dataset("synthetic", "test")
    fine = positive.images[torch.isin(positive.labels, torch.tensor(
        [synthetic.CLASSES.index(c) for c in synthetic.FINE_CLASSES]))]
    here = _added_by_resolution(capacity, 20, 26)
    there = _added_by_resolution(fine, 20, 26)
    assert here < 2.0 and there > 8.0, (here, there)
    assert _added_by_resolution(capacity, 14, 20) < 2.5  # the ladder's rung loses little too


def test_the_blobs_have_no_detail_finer_than_a_14_px_input_keeps() -> None:
    sigma_px = synthetic_capacity.SIGMA[0] * 14
    # a Gaussian's spectrum at the 14 px Nyquist frequency (0.5 cycles/px): exp(-(pi s)^2 / 2)
    assert sigma_px > 0.95 and np.exp(-((np.pi * sigma_px) ** 2) / 2) < 0.01
