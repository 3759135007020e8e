"""Weight import: torchvision's and timm's models, randomly initialised, give the same logits
as the effscale config they are imported into; a file that does not fit is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deploy_reference import randomised, timm_module, torchvision_models
from helpers import REPO

from effscale.model.builder import build_model
from effscale.model.checkpoint import load_checkpoint
from effscale.model.config import load_config
from effscale.model.deploy.weights import WeightsMismatch, import_weights, map_state_dict

SIZE = 64  # every model here takes it: 2x2 final maps


def _image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _logits_agree(reference: torch.nn.Module, config_file: str, tmp_path: Path,
                  **changes: object) -> None:
    source = tmp_path / "source.pt"
    torch.save(reference.state_dict(), source)
    config = load_config(REPO / config_file).replace(**changes)
    imported = import_weights(source, config)
    assert imported.mapping.by == "order"
    with torch.no_grad():
        torch.testing.assert_close(imported.model(_image()), reference(_image()),
                                   rtol=1e-5, atol=1e-5)


TORCHVISION = [
    ("efficientnet_b0", "configs/b0.yaml", {}),
    ("efficientnet_b4", "configs/b4.yaml", {}),
    pytest.param("efficientnet_b7", "configs/b7.yaml", {"bn_eps": 1e-3},
                 marks=pytest.mark.slow),  # ~10 s to build twice on 2 busy cores
    ("resnet50", "configs/resnet50.yaml", {}),
    ("mobilenet_v2", "configs/mobilenetv2.yaml", {}),
]


@pytest.mark.parametrize(("name", "config_file", "changes"), TORCHVISION)
def test_a_torchvision_model_imports_to_the_same_logits(
        name: str, config_file: str, changes: dict, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = randomised(getattr(torchvision_models(), name)())
    _logits_agree(reference, config_file, tmp_path, **changes)


@pytest.mark.parametrize(("name", "changes"), [
    ("efficientnet_b0", {}),
    ("tf_efficientnet_b0", {"bn_eps": 1e-3, "padding": "same"}),
])
def test_a_timm_model_imports_to_the_same_logits(name: str, changes: dict,
                                                 tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = randomised(timm_module().create_model(name, pretrained=False))
    _logits_agree(reference, "configs/b0.yaml", tmp_path, **changes)


@pytest.mark.parametrize("wrong", [{"bn_eps": 1e-5, "padding": "same"},
                                   {"bn_eps": 1e-3, "padding": "symmetric"}])
def test_tf_weights_need_both_their_epsilon_and_same_padding(wrong: dict) -> None:
    torch.manual_seed(0)
    reference = randomised(timm_module().create_model("tf_efficientnet_b0", pretrained=False))
    model = build_model(load_config(REPO / "configs/b0.yaml").replace(**wrong))
    state, _ = map_state_dict(reference.state_dict(), model.state_dict())
    model.load_state_dict(state)
    with torch.no_grad():
        assert (model.eval()(_image()) - reference(_image())).abs().max() > 1e-4


def test_an_effscale_state_dict_maps_by_name(tmp_path: Path) -> None:
    config = load_config(REPO / "configs/b0.yaml")
    model = build_model(config)
    source = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in model.state_dict().items()}},
               source)
    imported = import_weights(source, config)
    assert imported.mapping.by == "name"
    for name, tensor in model.state_dict().items():
        assert torch.equal(imported.model.state_dict()[name], tensor)


def test_a_mismatched_file_is_refused_in_one_line_naming_the_tensor(cli, tmp_path: Path
                                                                    ) -> None:
    torch.manual_seed(0)
    reference = torchvision_models().mobilenet_v2()
    source, out = tmp_path / "mobilenet_v2.pt", tmp_path / "b0.pt"
    torch.save({"state_dict": reference.state_dict()}, source)
    code, stdout, err = cli("weights", "import", source, REPO / "configs/b0.yaml",
                            "--checkpoint", out)
    assert code != 0 and stdout == ""
    assert err.count("\n") == 1, err
    # b0's first block has squeeze-excite where MobileNetV2's goes on to its projection.
    assert err.startswith(f"error: {source}: tensor features.1.conv.1.weight [16, 32, 1, 1] "
                          "does not fit the model's backbone.stages.0.0.body.1.reduce.weight "
                          "[8, 32, 1, 1]"), err
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


def test_a_short_file_names_the_first_model_tensor_without_a_source(tmp_path: Path) -> None:
    model = build_model(load_config(REPO / "configs/mobilenetv2.yaml"))
    state = dict(list(model.state_dict().items())[:-1])  # the classifier's bias missing
    renamed = {f"x.{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(state.items())}
    with pytest.raises(WeightsMismatch, match=r"nothing for the model's classifier\.bias "
                                              r"\[1000\] \(tensor 262, matched by order\)"):
        map_state_dict(renamed, model.state_dict())


def test_the_cli_writes_a_checkpoint_that_loads(cli, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = randomised(timm_module().create_model("tf_efficientnet_b0", pretrained=False))
    source, out = tmp_path / "tf_b0.pt", tmp_path / "out" / "b0-tf.pt"
    torch.save(reference.state_dict(), source)
    code, stdout, err = cli("weights", "import", source, REPO / "configs/b0.yaml",
                            "--checkpoint", out, "--bn-eps", "1e-3", "--padding", "same")
    assert code == 0, err
    assert "matched by order" in stdout and str(out) in stdout
    config, model = load_checkpoint(out)
    assert (config.bn_eps, config.padding) == (1e-3, "same")
    with torch.no_grad():
        torch.testing.assert_close(model(_image()), reference(_image()), rtol=1e-5, atol=1e-5)
