"""Registries: a base and a dataset added by one plugin module (toy_plugin.py) work everywhere
a built-in one does: listed, built, loaded, named, derived and searched."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import toy_plugin
import yaml

import effscale
from effscale.datasets import registry
from effscale.datasets.images import load_dataset
from effscale.datasets.registry import (
    DATASET_HELP,
    dataset_help,
    dataset_label,
    dataset_names,
    native_size,
    register_dataset,
)
from effscale.errors import EffscaleError
from effscale.model import bases
from effscale.model.bases import base_names, get_base, register_base
from effscale.model.config import ScalingRules, load_config, save_config
from effscale.scaling.derive import PAPER_COEFFICIENTS, Coefficients, derive_config
from effscale.search.grid import budget_grid

# --------------------------------------------------------------------------- listed


def test_the_toy_plugin_is_listed_after_the_built_ins() -> None:
    assert base_names()[:3] == ("b0", "mobilenetv2", "resnet50") and "toy" in base_names()
    assert dataset_names()[:2] == ("cifar10", "synthetic") and "toy" in dataset_names()
    assert set(bases.BASES) == set(base_names())


def test_dataset_help_lists_every_source_and_the_folder() -> None:
    assert DATASET_HELP == dataset_help()
    assert DATASET_HELP.startswith("cifar10 (CIFAR-10, downloaded on first use), synthetic (")
    assert "toy (4 classes of 16 px noise)" in DATASET_HELP
    assert DATASET_HELP.endswith(", or a folder with train/<class>/* images.")


def test_unknown_names_list_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(EffscaleError, match=r"unknown base 'vgg' \(valid: b0, mobilenetv2, "
                                            r"resnet50, .*toy"):
        get_base("vgg")
    with pytest.raises(EffscaleError, match=r"unknown dataset 'imagenet': expected one of "
                                            r"cifar10, synthetic, .*toy"):
        load_dataset("imagenet", data_dir=tmp_path)


# --------------------------------------------------------------------------- the toy base


def test_toy_base_builds_with_its_measured_parameter_count() -> None:
    config = get_base("toy")
    assert (config.name, config.family, config.resolution) == ("toy", "toy", 32)
    assert [s.channels for s in config.stages] == [16, 32]
    model = effscale.build_model(config)
    assert sum(p.numel() for p in model.parameters()) == 51_262  # 1000 classes
    small = get_base("toy", num_classes=4)
    assert sum(p.numel() for p in effscale.build_model(small).parameters()) == 18_394
    assert effscale.count_flops(small, counter="torch", use_cache=False).params == 18_394


def test_toy_base_derives_and_round_trips(tmp_path: Path) -> None:
    paper = Coefficients(*PAPER_COEFFICIENTS)
    assert derive_config(paper, 0.0, base="toy").name == "toy"
    config = derive_config(paper, 2.0, base="toy", num_classes=4)
    assert config.name == "toy-phi2" and config.family == "toy"
    assert config.provenance is not None and config.provenance.base == "toy"
    assert config.resolution == 40  # 32 * 1.15**2 = 42.3, rounded to a multiple of 8
    save_config(config, tmp_path / "toy-phi2.yaml")
    assert load_config(tmp_path / "toy-phi2.yaml") == config  # family is free text


def test_register_base_refuses_duplicates_and_bad_names(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr(bases, "BASES", dict(bases.BASES))  # restored after the test
    with pytest.raises(ValueError, match="base 'toy' is already registered"):
        register_base("toy", toy_plugin.toy_base)
    for name in ("", "a/b", "-x", "two words"):
        with pytest.raises(ValueError, match="base name must be"):
            register_base(name, toy_plugin.toy_base)
    register_base("toy", lambda n: get_base("b0", n), replace=True)
    assert get_base("toy").name == "b0"
    register_base("broken", lambda n: {"name": "broken"})
    with pytest.raises(EffscaleError, match="base 'broken': its factory returned dict"):
        get_base("broken")


# --------------------------------------------------------------------------- the toy dataset


def test_toy_dataset_loads_at_any_size() -> None:
    train, test = load_dataset("toy"), load_dataset("toy", "test", image_size=12)
    assert train.images.shape == (320, 3, 32, 32) and test.images.shape == (80, 3, 12, 12)
    assert train.classes == toy_plugin.CLASSES and train.name == "toy"
    assert train.labels.bincount().tolist() == [80, 80, 80, 80]
    native = load_dataset("toy", image_size=16)
    assert native.images.shape[2:] == (16, 16)
    assert load_dataset("toy", seed=5, image_size=16).fingerprint == native.fingerprint


def test_native_size_comes_from_the_registry(tmp_path: Path) -> None:
    assert native_size("toy") == toy_plugin.NATIVE_SIZE == 16
    assert native_size("cifar10") == 32 and native_size("synthetic") == 32
    assert native_size(str(tmp_path)) is None  # a folder has none


def test_dataset_label_names_the_source_or_the_folder(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert [dataset_label(n) for n in ("toy", "cifar10", "synthetic")] == [
        "toy", "cifar10", "synthetic"]
    pets = tmp_path / "pets"
    pets.mkdir()
    assert dataset_label(str(pets)) == "pets" and dataset_label(f"{pets}/") == "pets"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dataset_label("~/pets") == "pets"
    monkeypatch.chdir(pets)
    assert dataset_label(".") == "pets"


def test_register_dataset_checks_its_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_SOURCES", dict(registry._SOURCES))  # restored after
    with pytest.raises(ValueError, match="dataset 'toy' is already registered"):
        register_dataset("toy", toy_plugin.load_toy, native_size=16, help="again")
    with pytest.raises(ValueError, match="dataset name must be"):
        register_dataset("data/toy", toy_plugin.load_toy, native_size=16, help="a path")
    with pytest.raises(ValueError, match="native_size must be a positive int or None"):
        register_dataset("toy2", toy_plugin.load_toy, native_size=0, help="zero")
    with pytest.raises(ValueError, match="help must be one non-empty line"):
        register_dataset("toy2", toy_plugin.load_toy, native_size=16, help="two\nlines")
    # A loader that ignores the requested size is caught by load_dataset.
    register_dataset("toy-fixed", lambda request: toy_plugin.load_toy(
        replace(request, image_size=16)), native_size=16, help="always 16 px")
    with pytest.raises(EffscaleError, match=r"dataset 'toy-fixed': its loader returned images "
                                            r"of shape \[320, 3, 16, 16\], not \[N, 3, 8, 8\]"):
        load_dataset("toy-fixed", image_size=8)


# --------------------------------------------------------------------------- search


@pytest.mark.slow
def test_smoke_search_with_the_toy_base_and_dataset(tmp_path: Path) -> None:
    """A search knows the toy only through the registries; settings built as
    effscale/cli/search.py builds them."""
    from effscale.experiment.budgets import get_budget
    from effscale.experiment.events import RunEvents
    from effscale.search.run import SearchSettings, run_search
    from effscale.train.trainer import Recipe

    budget = get_budget("smoke").override(resolution=12)  # 20 px is above toy's native 16
    settings = SearchSettings(
        base="toy", dataset="toy", budget=budget, grid=budget_grid(budget),
        recipe=Recipe(epochs=budget.epochs, batch_size=budget.batch_size),
        rules=ScalingRules(), device="cpu", flops_tolerance=budget.flops_tolerance,
        out=str(tmp_path / "run"), threads=1)
    outcome = run_search(settings, RunEvents())
    assert outcome.complete
    run = Path(outcome.run_dir)
    for name in ("settings.yaml", "trials.csv", "coefficients.yaml", "search.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "configs").iterdir()) == sorted(
        ["toy.yaml", *(f"toy-phi{phi}.yaml" for phi in range(1, 8))])
    written = yaml.safe_load((run / "settings.yaml").read_text())
    assert written["base"] == "toy" and written["dataset"] == "toy"
    rows = list(csv.DictReader((run / "trials.csv").open()))
    assert rows[0]["candidate"] == "base" and len(rows) >= 2
    assert all(row["state"] == "complete" for row in rows)
    coefficients = yaml.safe_load((run / "coefficients.yaml").read_text())
    assert coefficients["base"] == "toy" and coefficients["dataset"] == "toy"
    phi1 = load_config(run / "configs" / "toy-phi1.yaml")
    assert phi1.family == "toy" and phi1.num_classes == 4
    assert phi1.provenance is not None and phi1.provenance.base == "toy"
