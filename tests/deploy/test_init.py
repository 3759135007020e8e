"""Fine-tuning from an imported checkpoint: `effscale train --init` and the Eff-UNet encoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import REPO

from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.checkpoint import save_checkpoint
from effscale.model.config import Head, load_config
from effscale.model.deploy.weights import load_init
from effscale.train.trainer import ProxyTrainer, Recipe

TINY = ("--dataset", "synthetic", "--train-size", "64", "--val-size", "32", "--batch-size",
        "32", "--resolution", "16", "--threads", "1", "--quiet")


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """An 'imported' b0 (1000 classes, eps 1e-3) with random weights, as a checkpoint."""
    config = load_config(REPO / "configs/b0.yaml").replace(bn_eps=1e-3)
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "b0-imported.pt"
    save_checkpoint(path, config, model)
    return path, model


def _same(a: dict, b: dict, prefix_a: str, prefix_b: str) -> int:
    names = [k for k in a if k.startswith(prefix_a)]
    for name in names:
        assert torch.equal(a[name], b[prefix_b + name[len(prefix_a):]]), name
    return len(names)


def test_the_trainer_starts_from_the_checkpoint_with_a_fresh_classifier(imported) -> None:
    path, source = imported
    config = load_config(REPO / "configs/b0.yaml").replace(
        bn_eps=1e-3, num_classes=10, resolution=16)
    images = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    labels = torch.zeros(4, dtype=torch.long)
    trainer = ProxyTrainer(config, images, labels, images, labels, recipe=Recipe(batch_size=2),
                           device=torch.device("cpu"), init=path)
    ours = trainer.model.state_dict()
    assert _same(source.state_dict(), ours, "backbone.", "backbone.") > 300
    assert _same(source.state_dict(), ours, "head.", "head.") == 6  # conv, BN (4 + counter)
    assert ours["classifier.weight"].shape == (10, 1280)  # fresh, for 10 classes


def test_an_eff_unet_encoder_starts_from_a_classifier_checkpoint(imported) -> None:
    path, source = imported
    config = load_config(REPO / "configs/b0.yaml").replace(
        bn_eps=1e-3, num_classes=3, head=Head(type="unet"))
    model = build_model(config)
    fresh = load_init(model, path, config)
    assert _same(source.state_dict(), model.state_dict(), "backbone.", "encoder.") > 300
    assert fresh and all(name.startswith(("decoder.", "final.")) for name in fresh)


def test_another_epsilon_or_architecture_is_refused_in_one_line(imported) -> None:
    path, _ = imported
    b0 = load_config(REPO / "configs/b0.yaml")
    with pytest.raises(EffscaleError, match=r"built with bn_eps 0\.001, the config says 1e-05"):
        load_init(build_model(b0), path, b0)
    b1 = load_config(REPO / "configs/b1.yaml").replace(bn_eps=1e-3)
    with pytest.raises(EffscaleError, match=r"another architecture") as caught:
        load_init(build_model(b1), path, b1)
    assert "\n" not in str(caught.value)


@pytest.mark.slow  # trains a classifier and an Eff-UNet end to end (5 s)
def test_train_init_fine_tunes_and_segment_demo_takes_the_encoder(cli, imported,
                                                                  tmp_path: Path) -> None:
    path, _ = imported
    config = tmp_path / "b0-eps.yaml"
    config.write_text((REPO / "configs/b0.yaml").read_text() + "bn_eps: 1.0e-3\n")
    code, out, err = cli("train", config, *TINY, "--epochs", "1", "--init", path, "--json",
                         "--checkpoint", tmp_path / "tuned.pt")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 1
    code, out, err = cli("train", REPO / "configs/b0.yaml", *TINY, "--init", path)
    assert code != 0 and err.count("\n") == 1 and "bn_eps" in err
    code, out, err = cli("segment-demo", config, "--images", "8", "--size", "32", "--epochs",
                         "1", "--batch-size", "4", "--threads", "1", "--init", path, "--json")
    assert code == 0, err
