"""The class activation map grid of a run: the same validation images under each model whose
trained weights the run kept (``RUN/weights/<model>.pt``), as in the paper's Fig. 7.

Rows are images, columns the image itself, then the models (the base, depth-, width- and
resolution-only, then the compound model(s), the paper's order). Each map is the exact CAM of
the model's predicted class (:mod:`effscale.model.cam`), upsampled to the tile and laid over
the image; under it, the predicted class (green when right, red when wrong). An Eff-UNet's
column shows its predicted mask instead, one colour per class.

The images are drawn from the run's own validation split, rebuilt from its settings and
checked against the data fingerprint the run recorded.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from effscale.compare.recorded import RecordedCompare
from effscale.compare.settings import CompareSettings, CompoundSet
from effscale.datasets.images import ImageData
from effscale.datasets.registry import native_size
from effscale.errors import EffscaleError
from effscale.experiment.budgets import Budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.runner import WEIGHTS_DIR
from effscale.experiment.settings import RunSettings
from effscale.model.cam import class_activation_maps, has_cam, predicted_masks, upsample
from effscale.model.checkpoint import read_checkpoint
from effscale.model.config import ModelConfig
from effscale.search.grid import GridSpec, gamma_axis
from effscale.train.trainer import Recipe, normalize, resize_images

TILE = 96  # px of one image or map
GAP = 4  # px between tiles
HEADER = 20  # px of the column names
CAPTION = 14  # px of the prediction under each tile
FIRST = ("base", "depth", "width", "resolution", "fast")  # then everything else: compounds
COLORMAP = "jet"
BLEND = 0.5  # weight of the heat map over the image


@dataclass(frozen=True)
class CamModel:
    """A trained model of the run, as the grid shows it."""

    name: str
    config: ModelConfig
    model: nn.Module


def grid_size(rows: int, columns: int) -> tuple[int, int]:
    """``(width, height)`` in px of a grid of ``rows`` images and ``columns`` tiles each."""
    return GAP + columns * (TILE + GAP), HEADER + rows * (TILE + CAPTION + GAP)


def weight_files(run_dir: Path, names: list[str] | None = None) -> list[Path]:
    """The run's kept weights, base and single-dimension models first, then the rest (the
    compound models) by name; only ``names`` (in their order) when given."""
    folder = Path(run_dir) / WEIGHTS_DIR
    found = {p.stem: p for p in sorted(folder.glob("*.pt"))} if folder.is_dir() else {}
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise EffscaleError(f"{folder}: no weights for {', '.join(missing)} (there are: "
                                f"{', '.join(found) or 'none'})")
        return [found[n] for n in names]
    if not found:
        raise EffscaleError(f"{run_dir}: no trained weights kept (no {WEIGHTS_DIR}/*.pt): "
                            "`effscale compare` keeps them; a search with --keep-weights")
    order = [n for n in FIRST if n in found] + sorted(n for n in found if n not in FIRST)
    return [found[n] for n in order]


def load_models(paths: list[Path]) -> list[CamModel]:
    models = []
    for path in paths:
        checkpoint = read_checkpoint(path)
        models.append(CamModel(path.stem, checkpoint.config, checkpoint.build()))
    return models


def _run_settings(settings: dict[str, Any], data_dir: Path | None) -> tuple[RunSettings, int]:
    """The settings that rebuild the run's data split, and the size its images came at."""
    identity = settings.get("identity") or {}
    if "budget" not in identity or "recipe" not in identity:
        raise EffscaleError("the run's settings.yaml has no identity (budget and recipe): "
                            "written by another effscale version?")
    budget_fields = {f for f in Budget.__dataclass_fields__}
    budget = Budget(**{"description": "", **{k: v for k, v in identity["budget"].items()
                                             if k in budget_fields}})
    recipe = Recipe(**{k: v for k, v in identity["recipe"].items()
                       if k in Recipe.__dataclass_fields__})
    common = dict(base=settings["base"], dataset=settings["dataset"], budget=budget,
                  recipe=recipe, data_dir=str(data_dir) if data_dir else None,
                  seed=int(identity.get("seed", 0)),
                  allow_upsampling=bool(identity.get("allow_upsampling", False)))
    size = native_size(settings["dataset"])
    if settings.get("command") == "compare":
        recorded = RecordedCompare.from_document(settings)
        compounds = tuple(CompoundSet(c.name, (c.alpha, c.beta, c.gamma), c.source)
                          for c in recorded.compounds)
        run = CompareSettings(**common, phi=recorded.phi, compounds=compounds,
                              single=recorded.single)
        # as effscale.compare.run.Compare.prepare loads it
        return run, size or math.ceil(budget.resolution * max(1.0, run.gamma_max))
    grid = GridSpec(**settings["grid"])
    # as effscale.search.run.Search.prepare loads it
    return RunSettings(**common), size or max(px for _, px in gamma_axis(grid))


def validation_split(settings: dict[str, Any], data_dir: Path | None = None) -> ImageData:
    """The run's validation images, rebuilt from its settings document and checked against
    the data fingerprint it recorded."""
    run, size = _run_settings(settings, data_dir)
    train, val = load_data(run, RunEvents(), size)
    expected = (settings.get("identity") or {}).get("data_fingerprint")
    found = f"{train.fingerprint}/{val.fingerprint}"
    if expected and found != expected:
        raise EffscaleError(f"the data found is not the run's (fingerprint {found}, the run "
                            f"recorded {expected}): give --data-dir as the run had it")
    return val


def pick_images(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` indices into ``labels``: a seeded shuffle taken one class at a time in turn,
    so the images cover the classes; the same for every model."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    queues: dict[int, list[int]] = {}
    for index in order.tolist():
        queues.setdefault(int(labels[index]), []).append(index)
    picked: list[int] = []
    while len(picked) < min(count, len(labels)):
        for queue in queues.values():
            if queue and len(picked) < count:
                picked.append(queue.pop(0))
    return torch.tensor(picked, dtype=torch.int64)


def _tiles(images: torch.Tensor) -> np.ndarray:
    """uint8 ``(N, 3, H, W)`` -> ``(N, TILE, TILE, 3)`` uint8 for display."""
    big = F.interpolate(images.float(), size=(TILE, TILE), mode="bilinear",
                        align_corners=False)
    return big.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def heat_overlay(tile: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """``cam`` (``TILE x TILE`` in [0, 1]) as a colour map blended over ``tile``."""
    import matplotlib

    heat = matplotlib.colormaps[COLORMAP](cam)[..., :3] * 255
    return (tile * (1 - BLEND) + heat * BLEND).round().clip(0, 255).astype(np.uint8)


def class_colours(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8: one colour per class (tab10, cycled; class 0 grey)."""
    import matplotlib

    colours = np.array([matplotlib.colormaps["tab10"](i % 10)[:3]
                        for i in range(num_classes)]) * 255
    colours[0] = (128, 128, 128)
    return colours.round().astype(np.uint8)


def mask_overlay(image: np.ndarray, mask: np.ndarray, num_classes: int,
                 alpha: float = BLEND) -> np.ndarray:
    """A predicted (or true) segmentation ``mask`` (``H x W`` class ids) over ``image``
    (``H x W x 3`` uint8): class 0 (background) left as it is, class ``k`` blended with its
    colour from :func:`class_colours`."""
    colours = class_colours(num_classes).astype(np.float64)
    out = image.astype(np.float64)
    shown = mask > 0
    out[shown] = out[shown] * (1 - alpha) + colours[mask[shown]] * alpha
    return out.round().clip(0, 255).astype(np.uint8)


def model_tiles(entry: CamModel, images: torch.Tensor, tiles: np.ndarray
                ) -> tuple[np.ndarray, list[int]]:
    """What one model's column shows for ``images`` (uint8), and its predicted classes
    (empty for an Eff-UNet)."""
    x = normalize(resize_images(images, entry.config.resolution), torch.device("cpu"))
    if has_cam(entry.model):
        result = class_activation_maps(entry.model, x)
        maps = upsample(result.of_predicted(), TILE).numpy()
        return (np.stack([heat_overlay(t, m) for t, m in zip(tiles, maps)]),
                result.predicted.tolist())
    masks = predicted_masks(entry.model, x)[:, None].float()
    masks = F.interpolate(masks, size=(TILE, TILE), mode="nearest")[:, 0].long().numpy()
    classes = entry.config.num_classes
    return np.stack([mask_overlay(t, m, classes) for t, m in zip(tiles, masks)]), []


def _font(size: int = 11) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        return ImageFont.load_default()


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-1]
    return text


def cam_grid(images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...],
             models: list[CamModel]) -> bytes:
    """PNG bytes of the grid: one row per image (uint8 ``(N, 3, H, W)``), the image and then
    one column per model."""
    from PIL import Image, ImageDraw

    tiles = _tiles(images)
    columns = [("image", tiles, [])] + [(m.name, *model_tiles(m, images, tiles))
                                         for m in models]
    width, height = grid_size(len(images), len(columns))
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for col, (name, shown, predicted) in enumerate(columns):
        left = GAP + col * (TILE + GAP)
        draw.text((left, 4), _fit(draw, name, font, TILE), fill="black", font=font)
        for row in range(len(images)):
            top = HEADER + row * (TILE + CAPTION + GAP)
            canvas.paste(Image.fromarray(shown[row]), (left, top))
            truth = int(labels[row])
            if col == 0:
                text, colour = f"true: {classes[truth]}", "black"
            elif predicted:
                guess = predicted[row]
                text = classes[guess] if guess < len(classes) else str(guess)
                colour = (0, 128, 0) if guess == truth else (200, 0, 0)
            else:
                text, colour = "predicted mask", "black"
            draw.text((left, top + TILE + 1), _fit(draw, text, font, TILE), fill=colour,
                      font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
