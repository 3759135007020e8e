"""effscale's proxy trainer against a plain PyTorch loop, on the same model and data.

    python benchmarks/train_throughput.py            # b0 and a phi=1 candidate at 32 and 37 px
    python benchmarks/train_throughput.py --quick    # b0 only, fewer steps (~1-2 min on 2 cores)
    python benchmarks/train_throughput.py --device cuda --batch-size 512   # on a GPU

The plain loop is what a first version would write: NCHW fp32, a DataLoader over a
TensorDataset of float images with per-sample random crop (padding 4 -> same size) + flip.
Achieved model FLOP/s = forward FLOPs x 3 x img/s with FLOPs counted as multiply-adds x 2,
set against this machine's fp32 matmul rate measured in the same run (on CUDA: the plain
loop stays fp32 NCHW with host-side data, effscale's trainer uses bf16 autocast and
channels_last, and the reference is the GPU's bf16 matmul rate).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from effscale.devices import resolve_device
from effscale.model.bases import get_base
from effscale.model.builder import build_model
from effscale.model.flops import count_flops
from effscale.scaling.compound import scale_config
from effscale.train.trainer import Recipe, proxy_config, train_config


def matmul_rate(device: torch.device, seconds: float = 2.0) -> float:
    """FLOP/s of a square matmul (2 FLOPs per multiply-add): fp32 1024^3 on a CPU, bf16
    8192^3 on CUDA."""
    cuda = device.type == "cuda"
    n, dtype = (8192, torch.bfloat16) if cuda else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10 if cuda else 1):
            a @ b
            runs += 1
        _sync(device)
    return runs * 2 * n**3 / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CropFlip(TensorDataset):
    def __getitem__(self, index: int):
        image, label = super().__getitem__(index)
        padded = F.pad(image, (4, 4, 4, 4))
        i, j = torch.randint(0, 9, (2,)).tolist()
        image = padded[:, i:i + image.shape[1], j:j + image.shape[2]]
        if torch.rand(()) < 0.5:
            image = image.flip(2)
        return image, label


def plain_loop(config, images: torch.Tensor, labels: torch.Tensor, steps: int,
               batch: int, device: torch.device) -> float:
    """img/s of a textbook loop; the first 2 steps are warm-up."""
    model = build_model(config).train().to(device)
    data = (images.float() / 255 - 0.45) / 0.25
    loader = DataLoader(CropFlip(data, labels), batch_size=batch, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    done, start = 0, 0.0
    while done < steps + 2:
        for x, y in loader:
            if done == 2:
                _sync(device)
                start = time.perf_counter()
            x, y = x.to(device), y.to(device)
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss.item()  # what a loop that logs every step does
            done += 1
            if done == steps + 2:
                break
    return steps * batch / (time.perf_counter() - start)


def effscale_loop(config, images: torch.Tensor, labels: torch.Tensor, steps: int,
                  batch: int, resolution: int, device: torch.device) -> float:
    """img/s of effscale's trainer (one epoch of ``steps`` steps, validation excluded)."""
    recipe = Recipe(epochs=1, batch_size=batch, crop_padding=4)
    n = steps * batch
    trained = proxy_config(config.replace(resolution=resolution), recipe, 10)
    result = train_config(trained, images[:n], labels[:n], images[:batch], labels[:batch],
                          recipe=recipe, device=device)
    return result.images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="b0 at 32 px only, few steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (6 if args.quick else 20)
    base = proxy_config(get_base("b0", 10), Recipe(), 10)
    models = [("b0", base)]
    if not args.quick:
        models.append(("a1.2 b1.1 (phi=1)", scale_config(base, depth=1.2, width=1.1,
                                                        name="phi1")))
    sizes = (32,) if args.quick else (32, 37)
    peak = matmul_rate(device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu, threads {torch.get_num_threads()}")
    print(f"{where}, batch {args.batch_size}, {steps} timed steps; "
          f"{'bf16' if device.type == 'cuda' else 'fp32'} matmul {peak / 1e9:.1f} GFLOP/s")
    print(f"{'model':<20} {'px':>4} {'plain img/s':>12} {'effscale img/s':>15} {'ratio':>6} "
          f"{'GFLOP/s':>8} {'% of matmul':>11}")
    for name, config in models:
        for px in sizes:
            images = torch.randint(0, 256, ((steps + 4) * args.batch_size, 3, px, px),
                                   dtype=torch.uint8)
            labels = torch.randint(0, 10, (images.shape[0],))
            plain = plain_loop(config.replace(resolution=px), images, labels, steps,
                               args.batch_size, device)
            fast = effscale_loop(config, images, labels, steps, args.batch_size, px, device)
            flops = 2 * count_flops(config, px, "torch").flops_conv_linear * 3 * fast
            print(f"{name:<20} {px:>4} {plain:>12.1f} {fast:>15.1f} {fast / plain:>5.2f}x "
                  f"{flops / 1e9:>8.2f} {flops / peak:>10.1%}", flush=True)


if __name__ == "__main__":
    main()
