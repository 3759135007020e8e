"""`effscale cam`: the kept weights are the trained models, the grid has one row per image and
one column per model, the images are the run's own; and the Eff-UNet mask overlay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import run_cli
from PIL import Image

from effscale.errors import EffscaleError
from effscale.model.checkpoint import read_checkpoint
from effscale.report.cam_grid import (
    CAPTION,
    GAP,
    HEADER,
    TILE,
    class_colours,
    grid_size,
    mask_overlay,
    pick_images,
    validation_split,
)
from effscale.report.load import open_run_study, read_settings_file
from effscale.train.segmentation import make_shapes_dataset
from effscale.train.trainer import evaluate, resize_images

MODELS = ["base", "depth", "width", "resolution", "compound"]  # the paper's Fig. 7 order


@pytest.mark.slow
def test_compare_keeps_the_trained_weights_of_each_model(smoke_compare: Path) -> None:
    study = open_run_study(smoke_compare)
    val = validation_split(read_settings_file(smoke_compare))
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        key, seed = trial.params["item"].split("@")
        assert seed == "0"  # one seed per model here; seed 0's weights are kept
        checkpoint = read_checkpoint(smoke_compare / "weights" / f"{key}.pt")
        assert checkpoint.meta["val_accuracy"] == trial.value
        # the checkpoint is the trained model: it scores what the run recorded
        images = resize_images(val.images, checkpoint.config.resolution)
        model = checkpoint.build().to(memory_format=torch.channels_last)  # as evaluated
        accuracy, _ = evaluate(model, images, val.labels, torch.device("cpu"))
        assert accuracy == pytest.approx(trial.value, abs=1e-9), key
    assert sorted(p.stem for p in (smoke_compare / "weights").glob("*.pt")) == sorted(MODELS)


@pytest.mark.slow
def test_cam_draws_the_grid_and_adds_it_to_the_report(smoke_compare: Path) -> None:
    code, stdout, stderr = run_cli("cam", smoke_compare, "--rows", "3")
    assert code == 0, stderr
    assert f"3 validation images × {', '.join(MODELS)}" in stdout
    with Image.open(smoke_compare / "cam.png") as image:
        # an image column and one per model; a header row and three image rows
        assert image.size == grid_size(3, 6) == (GAP + 6 * (TILE + GAP),
                                                  HEADER + 3 * (TILE + CAPTION + GAP))
    text = (smoke_compare / "report.html").read_text()
    assert '<section id="cam">' in text and "class activation maps" in text

    code, stdout, stderr = run_cli("cam", smoke_compare, "--rows", "2", "--models",
                                   "compound,base")
    assert code == 0, stderr
    with Image.open(smoke_compare / "cam.png") as image:
        assert image.size == grid_size(2, 3)
    code, _, stderr = run_cli("cam", smoke_compare, "--models", "taller")
    assert code != 0 and "no weights for taller" in stderr


@pytest.mark.slow
def test_the_images_are_the_runs_own_validation_split(smoke_compare: Path) -> None:
    settings = read_settings_file(smoke_compare)
    val = validation_split(settings)
    assert len(val) == settings["val_images"]
    first, again = pick_images(val.labels, 5, seed=0), pick_images(val.labels, 5, seed=0)
    assert first.tolist() == again.tolist() and len(set(first.tolist())) == 5
    assert len(set(val.labels[first].tolist())) == 5  # one class at a time
    assert pick_images(val.labels, 5, seed=1).tolist() != first.tolist()
    other = {**settings, "identity": {**settings["identity"], "seed": 7}}
    with pytest.raises(EffscaleError, match="not the run's"):
        validation_split(other)


def test_mask_overlay_colours_each_class_and_leaves_background_alone() -> None:
    data = make_shapes_dataset(4, size=32, num_classes=4, seed=0)
    image = ((data.images[0] * 0.3 + 0.5).clamp(0, 1) * 255).round().byte()
    image = image.permute(1, 2, 0).numpy()
    mask = data.masks[0].numpy()
    out = mask_overlay(image, mask, 4, alpha=0.5)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out[mask == 0] == image[mask == 0]).all()
    colours = class_colours(4).astype(float)
    for k in np.unique(mask[mask > 0]):
        expected = np.round(image[mask == k] * 0.5 + colours[k] * 0.5)
        assert (out[mask == k] == expected).all()
    assert len({tuple(c) for c in class_colours(4)}) == 4


def test_a_settings_file_without_identity_is_refused(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump({"base": "b0"}))
    with pytest.raises(EffscaleError, match="no identity"):
        validation_split(read_settings_file(tmp_path))
