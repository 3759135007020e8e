"""A run's data: the training subset and the validation split (never the test split), drawn
from the dataset by the run's seed and budget.

An image folder with a ``val/`` folder is validated on ``val/`` (its classes must be
``train/``'s; the budget's validation size is sampled from it); otherwise the validation
images are held out from the training split. A ``test/`` folder is never read.
"""

from __future__ import annotations

from pathlib import Path

import torch

from effscale.datasets import folder
from effscale.datasets.images import ImageData, holdout_split, load_dataset, sample
from effscale.datasets.registry import get_dataset
from effscale.errors import EffscaleError
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings


def val_folder(dataset: str) -> Path | None:
    """The ``val/`` folder a run on ``dataset`` validates on, or ``None`` (then it holds its
    validation images out of the training split)."""
    if get_dataset(dataset) is not None:
        return None
    root = Path(dataset).expanduser()
    return root / "val" if root.is_dir() and folder.has_val(root) else None


def load_data(settings: RunSettings, events: RunEvents, image_size: int
              ) -> tuple[ImageData, ImageData]:
    """The split every model of the run trains and is validated on; says which in one
    ``events.message`` line.

    ``image_size`` is the size generated or decoded images come at (a dataset with a native
    size ignores it); models then see their input downsampled, never upsampled.
    """
    budget = settings.budget
    data_dir = Path(settings.data_dir) if settings.data_dir else None
    val_dir = val_folder(settings.dataset)
    if val_dir is not None:
        folder.check_val_classes(val_dir.parent)  # before decoding anything
    data = load_dataset(settings.dataset, "train", data_dir, image_size=image_size,
                        seed=settings.seed, progress=events.message)
    if len(data.classes) < 2:
        raise EffscaleError(f"{settings.dataset}: one class ({data.classes[0]}): a classifier "
                            "needs two or more class folders")
    if val_dir is not None:
        whole = load_dataset(settings.dataset, "val", data_dir, image_size=image_size,
                             seed=settings.seed, progress=events.message)
        train, val = data, sample(whole, budget.val_size, settings.seed)
        source = f"from {val_dir}" + (f" (of {len(whole)})" if len(val) < len(whole) else "")
    else:
        train, val = holdout_split(data, min(budget.val_size, len(data) // 5) or 1,
                                   settings.seed)
        source = "held out from the training split" + (
            " (no val/ folder)" if get_dataset(settings.dataset) is None else "")
    if budget.train_size and budget.train_size < len(train):
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(settings.seed))
        train = train.subset(order[: budget.train_size], f":{budget.train_size}")
    if len(train) < settings.recipe.batch_size:
        raise EffscaleError(f"{settings.dataset}: {len(train)} training images is fewer than "
                            f"one batch ({settings.recipe.batch_size}); lower --batch-size")
    events.message(f"data: {len(train)} training images, {len(val)} validation images "
                   f"{source}")
    return train, val
