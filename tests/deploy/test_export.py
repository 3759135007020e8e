"""ONNX export: onnxruntime gives torch's outputs (within 1e-4) for every base and an Eff-UNet,
at any batch; the deploy extra's absence is one line naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deploy_reference import randomised
from helpers import REPO, needs_modules

from effscale.errors import EffscaleError
from effscale.model.bases import get_base
from effscale.model.builder import build_model
from effscale.model.checkpoint import save_checkpoint
from effscale.model.config import Head, load_config
from effscale.model.deploy import onnx as deploy

pytestmark = needs_modules("onnxruntime", "onnxscript")

SIZE = 64

MODELS = [
    ("configs/b0.yaml", {}),
    # b1-b7 are b0's blocks (MBConv, SE, swish) in other numbers and widths: the graph's
    # operators are b0's, so b0 covers the scaled copies (b3 took 42 s to export here)
    ("configs/resnet50.yaml", {}),
    ("configs/mobilenetv2.yaml", {}),
    # the Eff-UNet also carries TF's "same" padding and batch-norm epsilon (imported
    # weights' convention): one export for both, each its own before (~20 s an export)
    ("configs/b0.yaml", {"head": Head(type="unet"), "num_classes": 3, "bn_eps": 1e-3,
                         "padding": "same"}),
]


@pytest.mark.slow  # 20 s or more on 2 shared cores
@pytest.mark.parametrize(("config_file", "changes"), MODELS)
def test_onnxruntime_gives_torchs_output(config_file: str, changes: dict,
                                         tmp_path: Path) -> None:
    config = load_config(REPO / config_file).replace(**changes)
    torch.manual_seed(0)
    model = randomised(build_model(config))
    path = tmp_path / "model.onnx"
    deploy.export(model, path, SIZE)
    checked = deploy.verify(path, model, SIZE)
    assert checked.batch == deploy.VERIFY_BATCH  # not the export's example batch of 2
    assert checked.max_abs_output > 1e-3  # a comparison of something
    assert checked.max_abs_diff <= 1e-4 * max(1.0, checked.max_abs_output)
    sess = deploy.session(str(path))
    one = sess.run(None, {"image": np.zeros((1, 3, SIZE, SIZE), np.float32)})[0]
    expected = (1, config.num_classes, SIZE, SIZE) if config.head.type == "unet" \
        else (1, config.num_classes)
    assert one.shape == expected


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_the_cli_exports_a_checkpoint_and_prints_the_difference(cli, tmp_path: Path) -> None:
    # the command's plumbing, on the tests' tiny base (the bases' graphs: the test above)
    config = get_base("tiny", num_classes=10)
    torch.manual_seed(0)
    checkpoint, out = tmp_path / "m.pt", tmp_path / "m.onnx"
    save_checkpoint(checkpoint, config, randomised(build_model(config)))
    code, stdout, err = cli("export", checkpoint, "--onnx", out, "--resolution", SIZE, "--json")
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["ok"] and doc["max_abs_diff"] <= 1e-4 and doc["resolution"] == SIZE
    assert out.is_file() and doc["bytes"] == out.stat().st_size


def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime: ImportError
    with pytest.raises(EffscaleError, match=r"^onnxruntime is missing: .*'deploy' extra "
                                            r"\(pip install -e \"\.\[deploy\]\"") as caught:
        deploy.require("onnxruntime")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("place", ["/proc/x/a.onnx", "{file}/a.onnx"])
def test_an_unwritable_onnx_path_is_one_line_before_any_export(cli, tmp_path: Path,
                                                               place: str) -> None:
    # It used to export for seconds, then end in "error: FileNotFoundError: ...".
    (tmp_path / "file").write_text("")
    target = place.format(file=tmp_path / "file")
    code, out, err = cli("export", "configs/b0.yaml", "--onnx", target)
    assert code == 2 and out == ""
    assert err.startswith(f"error: --onnx {Path(target).parent}: cannot write there")
    assert len(err.splitlines()) == 1 and "Error:" not in err
