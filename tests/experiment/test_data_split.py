"""A run's data split: an image folder's val/ is its validation split when present (its
classes checked against train/'s, the budget's validation size sampled from it), a test/
folder is never read, and folders that cannot make a classifier are refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effscale.datasets.images import load_dataset
from effscale.errors import EffscaleError
from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings

# The grey level of every image says where it came from: train/ 10 + class, val/ 200 + class.
SHADES = {"train": 10, "val": 200, "test": 100}


def write_split(root: Path, split: str, classes: dict[str, int]) -> None:
    for label, (name, count) in enumerate(classes.items()):
        for i in range(count):
            path = root / split / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((12, 12, 3), SHADES[split] + label, np.uint8)).save(path)


def settings_for(root: Path, val_size: int = 6, train_size: int = 0) -> RunSettings:
    budget = get_budget("smoke").override(train_size=train_size, val_size=val_size,
                                          batch_size=4, resolution=8)
    return RunSettings(base="b0", dataset=str(root), budget=budget,
                       recipe=budget_recipe(budget))


class Said(RunEvents):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_a_folder_with_val_is_validated_on_val(tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"a": 10, "b": 10})
    write_split(tmp_path, "val", {"a": 3, "b": 3})
    write_split(tmp_path, "test", {"a": 2, "zebra": 2})  # never read: its class is not train's
    said = Said()
    train, val = load_data(settings_for(tmp_path), said, 8)
    assert len(train) == 20 and set(train.images.unique().tolist()) == {10, 11}
    assert len(val) == 6 and set(val.images.unique().tolist()) == {200, 201}
    assert val.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert said.lines[-1] == (f"data: 20 training images, 6 validation images from "
                              f"{tmp_path / 'val'}")


def test_the_budgets_validation_size_is_sampled_from_val(tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"a": 8, "b": 8})
    write_split(tmp_path, "val", {"a": 10, "b": 30})
    said = Said()
    train, val = load_data(settings_for(tmp_path, val_size=8), said, 8)
    assert len(train) == 16  # nothing held out of train/
    assert len(val) == 8 and val.labels.tolist() == [0, 0, 1, 1, 1, 1, 1, 1]  # stratified
    assert set(val.images.unique().tolist()) == {200, 201}
    assert said.lines[-1].endswith(f"from {tmp_path / 'val'} (of 40)")
    again = load_data(settings_for(tmp_path, val_size=8), RunEvents(), 8)[1]
    assert again.fingerprint == val.fingerprint  # the same seed draws the same sample


def test_without_val_part_of_train_is_held_out(tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"a": 10, "b": 10})
    said = Said()
    train, val = load_data(settings_for(tmp_path, val_size=4), said, 8)
    assert (len(train), len(val)) == (16, 4)
    assert set(val.images.unique().tolist()) == {10, 11}
    assert said.lines[-1] == ("data: 16 training images, 4 validation images held out from "
                              "the training split (no val/ folder)")


@pytest.mark.parametrize(("val", "message"), [
    ({"a": 2, "b": 2, "c": 2}, r"val: its classes must be train/'s \(2\): c not in train/$"),
    ({"a": 2}, r"val: its classes must be train/'s \(2\): b missing$"),
    ({}, r"val: its classes must be train/'s \(2\): no class folders$"),
])
def test_a_val_whose_classes_differ_is_refused(tmp_path: Path, val: dict[str, int],
                                               message: str) -> None:
    write_split(tmp_path, "train", {"a": 10, "b": 10})
    (tmp_path / "val").mkdir()
    write_split(tmp_path, "val", val)
    with pytest.raises(EffscaleError, match=message):
        load_data(settings_for(tmp_path), RunEvents(), 8)


def test_a_folders_test_split_is_never_read(tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"a": 2, "b": 2})
    write_split(tmp_path, "test", {"a": 2, "b": 2})
    with pytest.raises(EffscaleError, match=r"never reads a test/ folder"):
        load_dataset(str(tmp_path), "test")


def test_the_cli_refuses_a_mismatched_val_in_one_line(cli, tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"a": 10, "b": 10})
    write_split(tmp_path, "val", {"a": 2, "c": 2})
    code, out, err = cli("train", "configs/b0.yaml", "--dataset", tmp_path, "--quiet",
                         "--checkpoint", tmp_path / "b0.pt")
    assert code == 2 and out == ""
    assert err == (f"error: {tmp_path / 'val'}: its classes must be train/'s (2): c not in "
                   "train/; b missing\n")
    assert not (tmp_path / "b0.pt").exists()


def test_the_cli_refuses_a_one_class_folder_in_one_line(cli, tmp_path: Path) -> None:
    write_split(tmp_path, "train", {"only": 40})
    code, _, err = cli("train", "configs/b0.yaml", "--dataset", tmp_path, "--quiet",
                       "--checkpoint", tmp_path / "b0.pt")
    assert code == 2
    assert err == (f"error: {tmp_path}: one class (only): a classifier needs two or more "
                   "class folders\n")
    assert not (tmp_path / "b0.pt").exists()
