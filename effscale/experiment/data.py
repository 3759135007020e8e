"""A run's data: the training subset and the held-out validation split (never the test
split), drawn from the dataset by the run's seed and budget."""

from __future__ import annotations

from pathlib import Path

import torch

from effscale.datasets.images import ImageData, holdout_split, load_dataset
from effscale.errors import EffscaleError
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings


def load_data(settings: RunSettings, events: RunEvents, image_size: int
              ) -> tuple[ImageData, ImageData]:
    """The split every model of the run trains and is validated on.

    ``image_size`` is the size generated or decoded images come at (a dataset with a native
    size ignores it); models then see their input downsampled, never upsampled.
    """
    budget = settings.budget
    data_dir = Path(settings.data_dir) if settings.data_dir else None
    data = load_dataset(settings.dataset, "train", data_dir, image_size=image_size,
                        seed=settings.seed, progress=events.message)
    train, val = holdout_split(data, min(budget.val_size, len(data) // 5) or 1, settings.seed)
    if budget.train_size and budget.train_size < len(train):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))
        train = train.subset(order[: budget.train_size], f":{budget.train_size}")
    if len(train) < settings.recipe.batch_size:
        raise EffscaleError(f"{settings.dataset}: {len(train)} training images is fewer than "
                            f"one batch ({settings.recipe.batch_size}); lower --batch-size")
    return train, val
