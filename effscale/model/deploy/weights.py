"""Published weights mapped onto an effscale model: ``effscale weights import``.

A source is a state-dict file: ``torch.save(model.state_dict())`` of a torchvision or timm
model (or an effscale one), a checkpoint dict that holds one under ``state_dict``, ``model``
or their ``_ema`` variants, or a ``.safetensors`` file. It is mapped onto the model that a
config builds:

- **by name** when the source's tensor names are the model's own (an effscale state dict);
- **else by order**: both state dicts are walked in registration order, parameters and
  buffers alike (``num_batches_tracked`` skipped on both sides), and each pair must agree in
  shape and in kind (``weight``, ``bias``, ``running_mean``, ``running_var``).

torchvision's and timm's EfficientNet, MobileNetV2 and ResNet register their layers in the
order of effscale's blocks (expand, depthwise, squeeze-excite, project; conv then batch norm),
so the order is the mapping. The first tensor that does not fit refuses the whole import with
one line naming it in both models, and nothing is written. The config must describe what the
weights were trained with: batch-norm epsilon and momentum and the padding
(:class:`~effscale.model.config.ModelConfig`); the mapping cannot see those, and
``effscale weights import`` checks the logits of nothing but the shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from effscale.errors import EffscaleError
from effscale.model.builder import build_model
from effscale.model.checkpoint import save_checkpoint
from effscale.model.config import ModelConfig

SKIPPED = "num_batches_tracked"
KINDS = ("weight", "bias", "running_mean", "running_var")
CONTAINERS = ("state_dict", "model", "state_dict_ema", "model_ema")
_PREFIXES = ("module.", "_orig_mod.")


class WeightsMismatch(EffscaleError):
    """A source tensor that does not fit the model (or one left without a counterpart)."""


def _shape(tensor: torch.Tensor) -> str:
    return "[" + ", ".join(str(n) for n in tensor.shape) + "]"


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file (see the module docstring for what is read), with a
    ``module.`` (DataParallel) or ``_orig_mod.`` (torch.compile) prefix on every name removed.
    Nothing but tensors and plain data is unpickled."""
    file = Path(path)
    if not file.is_file():
        raise EffscaleError(f"{file}: no such file")
    if file.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise EffscaleError(f"{file}: reading .safetensors needs the safetensors package "
                                "(pip install safetensors)") from None
        payload: Any = load_file(str(file))
    else:
        try:
            payload = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EffscaleError(f"{file}: not a readable torch file ({exc.__class__.__name__}: "
                                f"{str(exc).splitlines()[0][:120]})") from None
    state = payload if _is_state_dict(payload) else next(
        (payload[key] for key in CONTAINERS
         if isinstance(payload, dict) and _is_state_dict(payload.get(key))), None)
    if state is None:
        raise EffscaleError(f"{file}: no state dict in it (expected a dict of tensors, or one "
                            f"under {', '.join(repr(k) for k in CONTAINERS)})")
    for prefix in _PREFIXES:
        if all(name.startswith(prefix) for name in state):
            state = {name[len(prefix):]: tensor for name, tensor in state.items()}
    return dict(state)


def _walk(state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Tensors in registration order, ``num_batches_tracked`` left out."""
    return [(name, t) for name, t in state.items() if name.rsplit(".", 1)[-1] != SKIPPED]


def _kind(name: str) -> str | None:
    last = name.rsplit(".", 1)[-1]
    return last if last in KINDS else None


@dataclass(frozen=True)
class Mapping:
    """How a source maps onto a model: ``by`` (``name`` or ``order``) and the source name of
    each model tensor, in the model's order."""

    by: str
    pairs: tuple[tuple[str, str], ...]  # (model name, source name)


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                   label: str = "source") -> tuple[dict[str, torch.Tensor], Mapping]:
    """``target`` with every tensor replaced by its counterpart in ``source`` (cast to the
    target's dtype), and the mapping used. Raises :class:`WeightsMismatch`, one line naming
    the first tensor that does not fit, in ``label`` (the source file) and in the model."""
    src, tgt = _walk(source), _walk(target)
    if {name for name, _ in src} == {name for name, _ in tgt}:
        by, lookup = "name", dict(src)
        pairs = [(name, name, lookup[name]) for name, _ in tgt]
    else:
        by = "order"
        pairs = [(t_name, s_name, s_tensor)
                 for (t_name, _), (s_name, s_tensor) in zip(tgt, src)]
    mapped = dict(target)
    total = len(tgt)
    for i, (t_name, s_name, s_tensor) in enumerate(pairs):
        t_tensor = target[t_name]
        kinds = _kind(s_name), _kind(t_name)
        if s_tensor.shape != t_tensor.shape or (by == "order" and None not in kinds
                                                 and kinds[0] != kinds[1]):
            raise WeightsMismatch(
                f"{label}: tensor {s_name} {_shape(s_tensor)} does not fit the model's "
                f"{t_name} {_shape(t_tensor)} (tensor {i + 1} of {total}, matched by {by})")
        mapped[t_name] = s_tensor.detach().to(dtype=t_tensor.dtype).clone()
    if by == "order" and len(src) != total:
        if len(src) < total:
            t_name, t_tensor = tgt[len(src)]
            raise WeightsMismatch(
                f"{label}: has {len(src)} tensors, the model {total}: nothing for the model's "
                f"{t_name} {_shape(t_tensor)} (tensor {len(src) + 1}, matched by order)")
        s_name, s_tensor = src[total]
        raise WeightsMismatch(
            f"{label}: tensor {s_name} {_shape(s_tensor)} has no counterpart: the model has "
            f"only {total} tensors (matched by order)")
    if by == "name":  # batch counters too, where both have them
        for name in target:
            if name.endswith(SKIPPED) and name in source:
                mapped[name] = source[name].clone()
    return mapped, Mapping(by, tuple((t, s) for t, s, _ in pairs))


@dataclass(frozen=True)
class Imported:
    """An import: the model with its new weights (eval mode) and how they were matched."""

    config: ModelConfig
    model: nn.Module
    mapping: Mapping
    source: str


def import_weights(source: str | os.PathLike[str], config: ModelConfig) -> Imported:
    """``config``'s model with the weights of the state-dict file ``source``."""
    state = read_state_dict(source)
    model = build_model(config)
    mapped, mapping = map_state_dict(state, model.state_dict(), str(source))
    model.load_state_dict(mapped)
    return Imported(config, model.eval(), mapping, str(source))


def save_imported(imported: Imported, out: str | os.PathLike[str]) -> None:
    """Write the imported model as an effscale checkpoint (config and weights), atomically."""
    save_checkpoint(out, imported.config, imported.model, {
        "imported_from": imported.source, "matched_by": imported.mapping.by,
        "tensors": len(imported.mapping.pairs)})


BODY = ("backbone.", "encoder.")  # a classifier's stem and stages; a UNet's


def load_init(model: nn.Module, path: str | os.PathLike[str], config: ModelConfig) -> list[str]:
    """Load checkpoint ``path`` into ``model`` (built from ``config``) to fine-tune from it,
    by name. The stem and stages must all fit (a classifier's backbone becomes a UNet's
    encoder); a head tensor that does not (a classifier for another class count, a UNet's
    decoder) keeps its fresh initialisation. Returns the names left fresh. Refuses, in one
    line, a checkpoint of another architecture or one built with another batch-norm epsilon
    or padding."""
    from effscale.model.checkpoint import read_checkpoint

    checkpoint = read_checkpoint(path)
    for key in ("bn_eps", "padding"):
        theirs, ours = getattr(checkpoint.config, key), getattr(config, key)
        if theirs != ours:
            raise EffscaleError(f"--init {path}: it was built with {key} {theirs}, the config "
                                f"says {ours}: set {key}: {theirs} in the config")
    state = dict(checkpoint.state_dict)
    target = model.state_dict()
    if any(k.startswith("encoder.") for k in target):
        state = {("encoder." + k[len("backbone."):] if k.startswith("backbone.") else k): v
                 for k, v in state.items()}
    loaded, fresh = {}, []
    for name, tensor in target.items():
        theirs = state.get(name)
        if theirs is not None and theirs.shape == tensor.shape:
            loaded[name] = theirs
        elif name.startswith(BODY):
            what = "missing there" if theirs is None else f"{_shape(theirs)} there"
            raise EffscaleError(f"--init {path}: the model's {name} {_shape(tensor)} does not "
                                f"fit the checkpoint ({what}): another architecture")
        else:
            fresh.append(name)
    extra = [k for k in state if k.startswith(BODY) and k not in target]
    if extra:
        raise EffscaleError(f"--init {path}: the checkpoint's {extra[0]} is not in the model: "
                            "another architecture")
    model.load_state_dict({**target, **loaded})
    return fresh


__all__ = ["Imported", "Mapping", "WeightsMismatch", "import_weights", "load_init",
           "map_state_dict", "read_state_dict", "save_imported"]
