"""effscale's CUDA path measured on this machine's GPU, in one table (under 8 minutes).

    python benchmarks/gpu_check.py              # everything: about 3-5 minutes
    python benchmarks/gpu_check.py --no-search  # the throughput rows only

What it measures, all in the same run on GPU 0 (``--device`` picks another):

1. the roofline: bf16 and fp16 dense matmul FLOP/s (8192^3, 2 FLOPs per multiply-add);
2. training throughput (img/s, the second of two epochs, so cuDNN autotuning and warm-up are
   excluded) of b0 and a phi=1 model (alpha 1.2, beta 1.1) at 32 and 64 px, batch 128:
   effscale's trainer (the precision it chooses, images resident on the GPU, channels_last,
   one host sync per epoch) against a plain PyTorch loop on the same GPU (fp32 NCHW, a
   DataLoader over host tensors with per-sample crop and flip, ``.item()`` every step, as in
   ``benchmarks/train_throughput.py``); model FLOP/s = forward FLOPs x 3 x img/s, and MFU =
   model FLOP/s / the matmul rate of the trainer's precision;
3. a quick search on the synthetic set (the demo grid: base + 3 candidates, 10 epochs,
   ``--pruner none``) with 1 and then 4 candidates in flight on the GPU
   (``--workers-per-device 1`` and ``4``): wall time and the images trained per second over
   the training window (first training's start to last training's end), all trainings
   together.

Without a CUDA GPU it says so in one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

EXIT_NO_GPU = 2
SEARCH = ["search", "--dataset", "synthetic", "--budget", "demo", "--repeats", "1",
          "--pruner", "none", "--epochs", "10", "--train-size", "1500", "--val-size", "500",
          "--counter", "torch", "--quiet"]


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of a square 8192^3 matmul in ``dtype`` (2 FLOPs per multiply-add)."""
    n = 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    torch.cuda.synchronize(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            a @ b
            runs += 1
        torch.cuda.synchronize(device)
    return runs * 2 * n**3 / (time.perf_counter() - start)


def effscale_rate(config, images: torch.Tensor, labels: torch.Tensor, batch: int,
                  device: torch.device) -> tuple[float, str, str]:
    """img/s of effscale's trainer in its second epoch, its precision and data placement."""
    from effscale.train.trainer import ProxyTrainer, Recipe

    recipe = Recipe(epochs=2, batch_size=batch, crop_padding=4)
    trainer = ProxyTrainer(config, images, labels, images[:batch], labels[:batch],
                           recipe=recipe, device=device)
    trainer.run_epoch()
    trainer.run_epoch()
    result = trainer.result
    steps = len(trainer.train) // batch
    return steps * batch / result.epoch_seconds[1], result.precision, result.data_on


def search_rate(per_device: int, device: torch.device, work: Path) -> tuple[float, float, int]:
    """``effscale search`` on the synthetic set with ``per_device`` workers on ``device``:
    (wall seconds, images trained per second over the training window, trainings)."""
    import optuna

    from effscale.experiment.storage import open_storage

    out = work / f"search-{per_device}"
    command = [sys.executable, "-m", "effscale.cli", *SEARCH, "--devices",
               str(device.index or 0), "--workers-per-device", str(per_device), "--out",
               str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"gpu_check: the search with {per_device} in flight failed: "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="effscale", storage=open_storage(None, out))
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state == optuna.trial.TrialState.COMPLETE]
    images = sum(t.user_attrs["images_per_second"] * t.user_attrs["train_seconds"]
                 for t in trials)
    window = (max(t.datetime_complete for t in trials)
              - min(t.datetime_start for t in trials)).total_seconds()
    return wall, images / window, len(trials)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__[__doc__.index("What it measures"):],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", type=int, default=0, help="CUDA device index (default 0)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    parser.add_argument("--no-search", action="store_true",
                        help="skip the two quick searches (rows 3)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU is available (torch {torch.__version__}, CUDA "
              f"{torch.version.cuda or 'not built'}); run it on a machine with one",
              file=sys.stderr)
        raise SystemExit(EXIT_NO_GPU)

    from train_throughput import plain_loop

    from effscale.model.bases import get_base
    from effscale.model.flops import count_flops
    from effscale.scaling.compound import scale_config
    from effscale.train.precision import choose_precision
    from effscale.train.trainer import Recipe, proxy_config

    device = torch.device("cuda", args.device)
    torch.cuda.set_device(device)
    started = time.perf_counter()
    chosen = choose_precision(device)
    rates = {"bf16": matmul_rate(device, torch.bfloat16),
             "fp16": matmul_rate(device, torch.float16)}
    roof = rates.get(chosen.name, rates["fp16"])
    rows: list[tuple[str, ...]] = [
        (f"matmul {name} 8192³", "", "", f"{rate / 1e12:.1f}", "(roofline)" if rate == roof
         else "", "") for name, rate in rates.items()]

    base = proxy_config(get_base("b0", 10), Recipe(), 10)
    models = [("b0", base), ("α1.2 β1.1 (φ=1)", scale_config(base, depth=1.2, width=1.1,
                                                             name="phi1"))]
    batch, steps = args.batch_size, args.steps
    for name, config in models:
        for px in (32, 64):
            images = torch.randint(0, 256, ((steps + 4) * batch, 3, px, px), dtype=torch.uint8)
            labels = torch.randint(0, 10, (images.shape[0],))
            flops = 2 * 3 * count_flops(config, px, "torch").flops_conv_linear
            plain = plain_loop(config.replace(resolution=px), images, labels, steps, batch,
                               device)
            fast, precision, data_on = effscale_rate(config.replace(resolution=px),
                                                     images[:steps * batch],
                                                     labels[:steps * batch], batch, device)
            for loop, rate, note in (("plain loop (fp32, DataLoader)", plain, ""),
                                     (f"effscale ({precision}, data on {data_on})", fast,
                                      f"{fast / plain:.2f}× plain")):
                rows.append((f"{name} {px} px, {loop}", f"{rate:,.0f}", note,
                             f"{flops * rate / 1e12:.2f}", f"{flops * rate / roof:.1%}", ""))
            print(f"  {name} {px} px done", file=sys.stderr, flush=True)

    if not args.no_search:
        with tempfile.TemporaryDirectory() as work:
            single = None
            for per_device in (1, 4):
                wall, rate, trainings = search_rate(per_device, device, Path(work))
                single = single or rate
                rows.append((f"search, {per_device} in flight ({trainings} trainings)",
                             f"{rate:,.0f}", f"{rate / single:.2f}× 1 in flight"
                             if per_device > 1 else "", "", "", f"{wall:.0f} s wall"))
                print(f"  search with {per_device} in flight done", file=sys.stderr,
                      flush=True)

    props = torch.cuda.get_device_properties(device)
    print(f"\n{props.name} (compute capability {props.major}.{props.minor}, "
          f"{props.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}; trainer precision {chosen.name} ({chosen.reason}); batch "
          f"{batch}, {steps} steps per epoch; MFU against the {chosen.name} matmul rate; "
          f"{time.perf_counter() - started:.0f} s in all\n")
    header = ("measurement", "img/s", "vs", "TFLOP/s", "MFU", "wall")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
