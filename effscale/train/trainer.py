"""The proxy trainer: one short, fast training run of one config on in-memory uint8 images.

Speed choices (measured on a 2-core CPU, see benchmarks/): images stay uint8 tensors and are
resized to the candidate's resolution once per run, not per step; augmentation is batched on
tensors; the model runs channels_last (oneDNN's NCHW depthwise conv is 1.4-2.8x slower on
small maps); losses are summed on-device and read once per epoch, so no step waits on a host
sync; evaluation runs under ``torch.inference_mode``.

On CUDA (none of it measured on a GPU yet; ``benchmarks/gpu_check.py`` measures it): autocast
in the precision the GPU computes natively (:mod:`effscale.train.precision`: bf16, or fp16
with a loss scaler), the images resident on the device when they fit (else gathered into
pinned memory, :mod:`effscale.train.placement`), ``cudnn.benchmark``.

``torch.compile`` and the precision are levers (:mod:`effscale.train.levers`): on request
(``Recipe.compile``, ``Recipe.precision``) or by the device's default, on a CPU as on CUDA;
the compile time is reported apart (``compile_seconds``, not in img/s; on the 2-core CPU it
took 140 s to compile at 32 px and gained nothing, so no device compiles by default).
Out-of-memory errors in evaluation are retried at smaller evaluation batches
(:mod:`effscale.train.memory`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from effscale.model.blocks import zero_init_residual_branches
from effscale.model.builder import build_model
from effscale.model.config import ModelConfig
from effscale.train.levers import wants_compile
from effscale.train.memory import Retry, retry_evaluation
from effscale.train.placement import DeviceData, cuda_device, to_device
from effscale.train.precise_bn import recompute_bn_stats
from effscale.train.precision import Precision, asked_precision, choose_precision

# Per-channel mean and std of CIFAR-10; close enough for any natural-image proxy.
_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1) * 255
_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1) * 255


@dataclass(frozen=True)
class Recipe:
    """How a proxy candidate is trained; recorded in every run's settings.

    The defaults are a recipe that learns from scratch in a few epochs on a 2-core CPU
    (AdamW, one-cycle, no stochastic depth or dropout during the proxy); see README.
    """

    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.0
    crop_padding: int = 0
    flip: bool = True
    proxy_regularization: bool = False
    zero_init_residual: bool = True
    stem_stride: int | None = None
    eval_batch_size: int = 500
    # Training images whose statistics replace the batch norms' running ones before each
    # validation (effscale.train.precise_bn); 0: the running statistics as trained.
    precise_bn: int = 0
    # Speed levers (effscale.train.levers): torch.compile (None: the device's default) and
    # the autocast precision (auto: the device's native one, effscale.train.precision).
    compile: bool | None = None
    precision: str = "auto"

    def to_dict(self) -> dict:
        """The recipe as recorded in a run's identity; a speed lever at its default is left
        out, so runs from before the levers existed keep their fingerprints."""
        data = asdict(self)
        for name, default in _QUIET_DEFAULTS.items():
            if data[name] == default:
                data.pop(name)
        return data


_QUIET_DEFAULTS = {"compile": None, "precision": "auto"}


@dataclass
class TrainResult:
    """What one training run measured. ``val_accuracy`` is after the last epoch."""

    val_accuracy: float
    val_accuracy_per_epoch: list[float]
    train_loss_per_epoch: list[float]
    train_accuracy_per_epoch: list[float]
    epoch_seconds: list[float]
    train_seconds: float
    images_per_second: float
    epochs_run: int
    resolution: int
    val_seconds: float = 0.0  # validation passes, not in train_seconds
    val_correct: torch.Tensor | None = None  # per validation example, after the last epoch
    compiled: bool = False
    compile_seconds: float = 0.0  # torch.compile's first-step extra, not in train_seconds
    precision: str = "fp32"  # bf16, fp16 (with a loss scaler) or fp32: see train.precision
    precision_reason: str = ""
    data_on: str = "host"  # device (resident), pinned or host: see train.placement
    eval_batch_size: int = 0  # the evaluation batch size finally used
    model: nn.Module | None = field(default=None, repr=False)  # the trained model


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


ProgressFn = Callable[[int, int, int, int], None]  # (epoch, epochs, step, steps)
EpochFn = Callable[[int, float], None]  # (epoch, validation accuracy); may raise to stop


def proxy_config(config: ModelConfig, recipe: Recipe, num_classes: int) -> ModelConfig:
    """The config actually trained: the dataset's class count, the recipe's stem stride, and
    no dropout/stochastic depth unless the recipe keeps them (they slow short runs down)."""
    changes: dict = {"num_classes": num_classes}
    if recipe.stem_stride is not None:
        changes["stem_stride"] = recipe.stem_stride
    if not recipe.proxy_regularization:
        changes.update(dropout=0.0, drop_path_rate=0.0)
    return config.replace(**changes)


def resize_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 images resized once (bilinear, antialiased), in chunks to bound memory."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    chunks = []
    for start in range(0, images.shape[0], 2048):
        batch = images[start:start + 2048].float()
        batch = F.interpolate(batch, size=(resolution, resolution), mode="bilinear",
                              align_corners=False, antialias=True)
        chunks.append(batch.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(chunks)


def augment(batch: torch.Tensor, recipe: Recipe, generator: torch.Generator) -> torch.Tensor:
    """Batched random flip and random crop (with zero padding) on a float batch."""
    n = batch.shape[0]
    if recipe.flip:
        flip = torch.rand(n, generator=generator) < 0.5
        batch = torch.where(flip.view(n, 1, 1, 1).to(batch.device), batch.flip(3), batch)
    pad = recipe.crop_padding
    if pad:
        size, dev = batch.shape[-1], batch.device
        padded = F.pad(batch, (pad, pad, pad, pad))
        ar = torch.arange(size, device=dev)
        rows = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(dev) + ar
        cols = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(dev) + ar
        batch = padded[torch.arange(n, device=dev).view(n, 1, 1, 1),
                       torch.arange(batch.shape[1], device=dev).view(1, -1, 1, 1),
                       rows.view(n, 1, size, 1), cols.view(n, 1, 1, size)]
    return batch


def normalize(batch_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A uint8 batch as normalized float32 on ``device`` (through pinned memory from the host
    to CUDA)."""
    mean, std = _mean_std(device)
    return (to_device(batch_uint8, device).float() - mean) / std


@functools.lru_cache(maxsize=16)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalization constants on ``device``, copied there once rather than every step."""
    return _MEAN.to(device), _STD.to(device)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW or SGD-nesterov; no weight decay on biases and norm weights."""
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=recipe.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=recipe.lr)


EvalHook = Callable[[int], None]  # called with the batch size before each evaluation batch


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device, batch_size: int = 500, *, precision: Precision | None = None,
             before_batch: EvalHook | None = None) -> tuple[float, torch.Tensor]:
    """Accuracy and the per-example correctness vector (on the CPU, for paired statistics).

    ``precision`` defaults to :func:`~effscale.train.precision.choose_precision`'s for
    ``device``; ``before_batch`` is called with the batch size before each batch (the
    fault-injection tests raise an out-of-memory error from it)."""
    precision = precision or choose_precision(device)
    model.eval()
    predicted = []
    for start in range(0, images.shape[0], batch_size):
        if before_batch is not None:
            before_batch(batch_size)
        batch = normalize(images[start:start + batch_size], device)
        batch = batch.contiguous(memory_format=torch.channels_last)
        with precision.autocast(device):
            logits = model(batch)
        predicted.append(logits.argmax(1))
    hits = torch.cat(predicted).cpu() == labels.cpu()  # one host sync per evaluation
    return hits.float().mean().item(), hits


def split_compile_time(first_step: float, epoch_seconds: float, steps: int) -> float:
    """``torch.compile``'s compile time: the first step's time above the mean of the epoch's
    other steps (0 for a one-step epoch, which has nothing to compare with)."""
    if steps < 2:
        return 0.0
    typical = (epoch_seconds - first_step) / (steps - 1)
    return max(0.0, first_step - typical)


def rebind_optimizer(optimizer: torch.optim.Optimizer, before: list[nn.Parameter],
                     after: list[nn.Parameter]) -> None:
    """Point ``optimizer`` (its groups and its state) at the parameters ``after`` where a
    move replaced the parameter objects ``before`` (in order) instead of moving them in
    place."""
    swap = {id(old): new for old, new in zip(before, after, strict=True) if old is not new}
    if not swap:
        return
    for group in optimizer.param_groups:
        group["params"] = [swap.get(id(param), param) for param in group["params"]]
    state = optimizer.state
    for old_param in [p for p in state if id(p) in swap]:
        state[swap[id(old_param)]] = state.pop(old_param)


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move the optimizer's per-parameter state (AdamW's moments, SGD's momentum) to
    ``device``. A non-capturable optimizer's ``step`` counter stays where torch keeps it (on
    the CPU), as ``Optimizer.load_state_dict`` does."""
    for group in optimizer.param_groups:
        keep_step = not (group.get("capturable") or group.get("fused"))
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and not (key == "step" and keep_step):
                    state[key] = value.to(device)


class ProxyTrainer:
    """One proxy training run that can be advanced an epoch at a time (successive halving
    pauses candidates between rungs, :meth:`offload`-ed off the GPU); :func:`train_config`
    runs it to the end.

    The one-cycle schedule spans ``recipe.epochs`` from the start, so a run paused after
    epoch k and continued is the same run as one trained straight through.

    ``on_oom`` hears each out-of-memory shrink of the evaluation batch; ``eval_hook`` is
    called before each evaluation batch (fault injection).
    """

    def __init__(self, config: ModelConfig, train_images: torch.Tensor,
                 train_labels: torch.Tensor, val_images: torch.Tensor, val_labels: torch.Tensor,
                 *, recipe: Recipe, device: torch.device, seed: int = 0,
                 compile_model: bool = False, on_oom: Callable[[Retry], None] | None = None,
                 eval_hook: EvalHook | None = None, init: Path | None = None) -> None:
        torch.manual_seed(seed)
        device = cuda_device(device)
        self.recipe, self.device = recipe, device
        self.on_oom, self.eval_hook = on_oom, eval_hook
        self.generator = torch.Generator().manual_seed(seed)
        resolution = config.resolution
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
        self.precision = asked_precision(recipe.precision, device)
        self.scaler = self.precision.grad_scaler(device)
        self.model = build_model(config).to(device)
        if recipe.zero_init_residual:
            zero_init_residual_branches(self.model)
        if init is not None:  # fine-tuning: the checkpoint's weights over the fresh ones
            from effscale.model.deploy.weights import load_init

            load_init(self.model, init, config)
        self.model = self.model.to(memory_format=torch.channels_last)
        # compile_model forces it; else the recipe's lever, else the device's default
        # (effscale.train.levers.DEVICE_DEFAULTS).
        self.compiled = compile_model or wants_compile(recipe.compile, device)
        self.forward = torch.compile(self.model) if self.compiled else self.model
        self.train = DeviceData(resize_images(train_images, resolution), train_labels, device)
        self.val = DeviceData(resize_images(val_images, resolution), val_labels, device)
        self.eval_batch_size = recipe.eval_batch_size
        # A fixed sample, drawn from its own stream so the training's is untouched.
        self.bn_sample = self.train.order(torch.randperm(
            len(self.train), generator=torch.Generator().manual_seed(seed + 7919)
        )[:recipe.precise_bn]) if recipe.precise_bn > 0 else None
        self.steps = max(1, len(self.train) // recipe.batch_size)  # no ragged batch
        self.optimizer = make_optimizer(self.model, recipe)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=recipe.lr, total_steps=self.steps * recipe.epochs,
            pct_start=recipe.warmup_fraction,
        )
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.offloaded = False
        result = self.result = TrainResult(0.0, [], [], [], [], 0.0, 0.0, 0, resolution)
        result.compiled = self.compiled
        result.precision, result.precision_reason = self.precision.name, self.precision.reason
        result.data_on, result.eval_batch_size = self.train.where, self.eval_batch_size

    @property
    def done(self) -> bool:
        return self.result.epochs_run >= self.recipe.epochs

    def run_epoch(self, progress: ProgressFn | None = None) -> float:
        """Train one epoch, validate, and return the validation accuracy."""
        recipe, device, model, epoch = self.recipe, self.device, self.model, self.result.epochs_run
        if self.offloaded:
            self.reload()
        model.train()
        start = time.perf_counter()
        first_step = 0.0
        order = self.train.order(torch.randperm(len(self.train), generator=self.generator))
        loss_sum = torch.zeros((), device=device)
        hit_sum = torch.zeros((), device=device)
        for step in range(self.steps):
            index = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
            images, target = self.train.batch(index)
            batch = augment(normalize(images, device), recipe, self.generator)
            batch = batch.contiguous(memory_format=torch.channels_last)
            with self.precision.autocast(device):
                logits = self.forward(batch)
                loss = self.loss_fn(logits.float(), target)
            self._step(loss)
            loss_sum += loss.detach()
            hit_sum += (logits.detach().argmax(1) == target).sum()
            if self.compiled and epoch == 0 and step == 0:  # the step that compiles
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                first_step = time.perf_counter() - start
            if progress is not None:
                progress(epoch, recipe.epochs, step + 1, self.steps)
        mean_loss = loss_sum.item() / self.steps  # the one host sync per epoch
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if not math.isfinite(mean_loss):
            raise DivergedError(f"training loss became {mean_loss} in epoch {epoch + 1}")
        self.optimizer.zero_grad(set_to_none=True)  # a paused run holds no gradients
        result = self.result
        if first_step:
            result.compile_seconds = split_compile_time(first_step, elapsed, self.steps)
            elapsed -= result.compile_seconds
        val_start = time.perf_counter()
        self._recompute_bn_stats()
        accuracy, hits = self._evaluate()
        result.val_seconds += time.perf_counter() - val_start
        result.val_correct = hits
        result.train_loss_per_epoch.append(mean_loss)
        result.train_accuracy_per_epoch.append(hit_sum.item() / (self.steps * recipe.batch_size))
        result.val_accuracy_per_epoch.append(accuracy)
        result.epoch_seconds.append(elapsed)
        result.val_accuracy, result.epochs_run = accuracy, epoch + 1
        result.train_seconds = sum(result.epoch_seconds)
        result.images_per_second = (result.epochs_run * self.steps * recipe.batch_size
                                    / result.train_seconds) if result.train_seconds else 0.0
        return accuracy

    def _step(self, loss: torch.Tensor) -> None:
        """Backward and optimizer step; through the loss scaler under fp16 (scale the loss,
        unscale the gradients, step unless they overflowed, update the scale)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.schedule.step()

    def _recompute_bn_stats(self) -> None:
        """Precise batch-norm statistics from ``recipe.precise_bn`` training images (no
        augmentation), when the recipe asks for them."""
        if self.bn_sample is None:
            return
        size = self.recipe.batch_size
        batches = []
        for start in range(0, len(self.bn_sample), size):
            images, _ = self.train.batch(self.bn_sample[start:start + size])
            batches.append(normalize(images, self.device)
                           .contiguous(memory_format=torch.channels_last))
        with self.precision.autocast(self.device):
            recompute_bn_stats(self.model, batches)

    def _evaluate(self) -> tuple[float, torch.Tensor]:
        """Validation at the evaluation batch size, halved on out-of-memory errors (the
        smaller size is kept for the rest of this training)."""

        def at(batch_size: int) -> tuple[float, torch.Tensor]:
            return evaluate(self.forward, self.val.images, self.val.labels, self.device,
                            batch_size, precision=self.precision, before_batch=self.eval_hook)

        outcome, self.eval_batch_size = retry_evaluation(at, self.eval_batch_size, self.device,
                                                         self.on_oom)
        self.result.eval_batch_size = self.eval_batch_size
        return outcome

    def offload(self) -> None:
        """Move the model and the optimizer's state to the CPU while the run is paused (a
        no-op on the CPU). The images stay where they are: successive halving shares one copy
        per input size between all candidates."""
        if self.device.type == "cpu" or self.offloaded:
            return
        self._place(torch.device("cpu"))
        self.offloaded = True

    def reload(self) -> None:
        """Move an :meth:`offload`-ed run back to its device (``run_epoch`` does it too)."""
        if not self.offloaded:
            return
        self._place(self.device)
        self.offloaded = False

    def _place(self, device: torch.device) -> None:
        before = list(self.model.parameters())
        self.model.to(device)  # CPU <-> CUDA moves parameters in place; other moves replace
        rebind_optimizer(self.optimizer, before, list(self.model.parameters()))
        move_optimizer_state(self.optimizer, device)
        if self.scaler is not None:  # its scale and growth tracker
            for name in ("_scale", "_growth_tracker"):
                value = getattr(self.scaler, name, None)
                if torch.is_tensor(value):
                    setattr(self.scaler, name, value.to(device))

    def finish(self) -> TrainResult:
        if self.offloaded:
            self.reload()
        self.result.model = self.model
        return self.result


def train_config(
    config: ModelConfig,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    *,
    recipe: Recipe,
    device: torch.device,
    seed: int = 0,
    progress: ProgressFn | None = None,
    on_epoch: EpochFn | None = None,
    compile_model: bool = False,
    on_oom: Callable[[Retry], None] | None = None,
    eval_hook: EvalHook | None = None,
    init: Path | None = None,
) -> TrainResult:
    """Train ``config`` from scratch on uint8 images and return validation accuracy per epoch.

    ``config`` is the model exactly as trained (:func:`proxy_config` applied by the caller):
    its ``resolution`` is the input size the images are resized to, its ``num_classes`` the
    dataset's.

    ``on_epoch`` is called after each epoch's validation (a pruner raises from it to stop).
    ``compile_model`` wraps the model in ``torch.compile`` on any device (without it,
    ``recipe.compile`` decides, else the device's default: :mod:`effscale.train.levers`).
    Raises :class:`DivergedError` when the loss stops being finite, and
    :class:`~effscale.train.memory.OutOfMemory` when evaluation runs out of memory even at
    the smallest batch (smaller evaluation batches are tried first; ``on_oom`` hears each).
    An out-of-memory error in a training step propagates: the callers retry the training
    with :func:`~effscale.train.memory.retry_training`. ``eval_hook``: see :func:`evaluate`.
    ``init``: an effscale checkpoint to start from instead of scratch
    (:func:`effscale.model.deploy.weights.load_init`).
    """
    trainer = ProxyTrainer(config, train_images, train_labels, val_images, val_labels,
                           recipe=recipe, device=device, seed=seed,
                           compile_model=compile_model, on_oom=on_oom, eval_hook=eval_hook,
                           init=init)
    while not trainer.done:
        accuracy = trainer.run_epoch(progress)
        if on_epoch is not None:
            on_epoch(trainer.result.epochs_run, accuracy)
    return trainer.finish()
