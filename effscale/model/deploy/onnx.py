"""ONNX out: export with a dynamic batch axis, checked against torch in onnxruntime, and
onnxruntime sessions for the ``latency`` cost (``--runtime onnxruntime``).

Needs the ``deploy`` extra (onnx, onnxruntime, and onnxscript for torch's exporter):
``pip install -e ".[deploy]"``. The export is torch's own (``torch.onnx.export`` with
``dynamo=True``): the graph is the model's at one input size (``--resolution``, the
config's by default), any batch. A model built with ``padding: same`` has its padding worked
out for that size.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.checkpoint import read_checkpoint
from effscale.model.config import ModelConfig, load_config

EXTRA = "deploy"
EXTRA_MODULES = ("onnx", "onnxruntime", "onnxscript")  # what the extra installs
INPUT, OUTPUT = "image", "logits"
VERIFY_BATCH = 3  # not the export's example batch (2): the dynamic axis is exercised


def require(module: str) -> Any:
    """Import ``module`` of the deploy extra, or fail in one line naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EffscaleError(_missing(module), 1) from None


def check_extra(exit_code: int = 2) -> None:
    """Fail in one line naming the extra when a module of it is not installed, without
    importing any (a second's work saved where the check comes before the slow work)."""
    for module in EXTRA_MODULES:
        if importlib.util.find_spec(module) is None:
            raise EffscaleError(_missing(module), exit_code)


def _missing(module: str) -> str:
    return (f"{module} is missing: ONNX export and the onnxruntime runtime need effscale's "
            f"'{EXTRA}' extra (pip install -e \".[{EXTRA}]\", or pip install "
            f"{' '.join(EXTRA_MODULES)})")


def onnxruntime_version() -> str:
    return str(require("onnxruntime").__version__)


def load_model(path: str | os.PathLike[str]) -> tuple[ModelConfig, nn.Module, str]:
    """``(config, model in eval mode, what its weights are)`` from a config YAML (random
    weights, effscale's initialisation) or an effscale checkpoint."""
    file = Path(path)
    if file.suffix in (".yaml", ".yml"):
        config = load_config(file)
        return config, build_model(config).eval(), "random (a config file)"
    checkpoint = read_checkpoint(file)
    return checkpoint.config, checkpoint.build(), "from the checkpoint"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's progress lines go to stderr (stdout is for results), its warnings away."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def onnx_bytes(model: nn.Module, resolution: int, *, opset: int | None = None,
               dynamic_batch: bool = True, batch: int = 2) -> bytes:
    """The serialised ONNX model of ``model`` (eval mode) for ``resolution`` px inputs named
    ``image``, output ``logits``; batch dynamic unless ``dynamic_batch`` is false."""
    require("onnx")
    require("onnxscript")
    example = torch.randn(batch, 3, resolution, resolution,
                          generator=torch.Generator().manual_seed(0))
    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    model = model.eval()
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                model, (example,), dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                dynamic_shapes=shapes, opset_version=opset, verbose=False)
    except Exception as exc:
        raise EffscaleError(f"ONNX export failed ({exc.__class__.__name__}: "
                            f"{str(exc).strip().splitlines()[0][:200]})", 1) from None
    assert program is not None
    return program.model_proto.SerializeToString()


def session(model_bytes: bytes | str, threads: int | None = None, device: str = "cpu") -> Any:
    """An onnxruntime inference session (CPU, or CUDA where onnxruntime has it) with
    ``threads`` intra-op threads (torch's count by default) and one inter-op thread."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EffscaleError("--runtime onnxruntime on CUDA needs onnxruntime-gpu; this "
                                "onnxruntime runs on the CPU only (use --device cpu)")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(model_bytes, options, providers=providers)


def runner(model: nn.Module, image: torch.Tensor, threads: int | None = None,
           device: str = "cpu") -> Callable[[], object]:
    """A call that runs ``model``, exported for ``image``'s shape, on ``image`` in onnxruntime
    (what ``--runtime onnxruntime`` times)."""
    data = onnx_bytes(model.cpu(), image.shape[-1], dynamic_batch=False, batch=image.shape[0])
    sess = session(data, threads, device)
    feed = {INPUT: image.detach().cpu().numpy()}
    return lambda: sess.run(None, feed)


@dataclass(frozen=True)
class Verified:
    """How the ONNX file's output compares with torch's on the same random input."""

    batch: int
    max_abs_diff: float
    max_abs_output: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(1.0, self.max_abs_output)


def verify(path: str | os.PathLike[str], model: nn.Module, resolution: int,
           batch: int = VERIFY_BATCH) -> Verified:
    """Run the ONNX file and ``model`` on one random batch; the largest absolute difference."""
    image = torch.randn(batch, 3, resolution, resolution,
                        generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model.eval()(image).numpy()
    got = session(str(path)).run(None, {INPUT: image.numpy()})[0]
    if got.shape != expected.shape:
        raise EffscaleError(f"{path}: onnxruntime gave shape {list(got.shape)}, torch "
                            f"{list(expected.shape)}", 1)
    return Verified(batch, float(np.abs(got - expected).max()), float(np.abs(expected).max()))


def export(model: nn.Module, path: str | os.PathLike[str], resolution: int,
           opset: int | None = None) -> int:
    """Write ``model`` as ONNX to ``path`` (atomically); returns the file's size in bytes."""
    data = onnx_bytes(model, resolution, opset=opset)
    onnx = require("onnx")
    with _quiet():
        onnx.checker.check_model(onnx.load_model_from_string(data))
    atomic.write_bytes(path, data)
    return len(data)


__all__ = ["Verified", "export", "load_model", "onnx_bytes", "onnxruntime_version",
           "require", "runner", "session", "verify"]
