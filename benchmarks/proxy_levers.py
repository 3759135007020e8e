"""Every speed lever of a proxy training, each as a ratio to today's trainer in the same run.

    python benchmarks/proxy_levers.py --data-dir /work/data      # full: over 40 min, 2 cores
    python benchmarks/proxy_levers.py --quick                    # seconds: a smoke check
    python benchmarks/proxy_levers.py --parts procs,compile,accuracy --train-size 2000 \
        --data-dir /work/data                                    # the rest: 22 min

Models: b0 and two phi=1 candidates of the quick grid, a width+resolution one
(a1.00_b1.11_g1.300, trained at 26 px) and a depth one (a1.80_b1.00_g1.000, 20 px); b0 at
every proxy size the budgets use (20, 23, 26, 28 px), stem stride 1 as the search trains it.
Today's trainer (fp32, channels_last, batch 64, one process with every core) is the
baseline of each row, measured in the same run on the same random uint8 images:

- ``compile``: torch.compile (inductor) of the model; its compile time (the first epoch's
  extra wall time, training and evaluation graphs) amortised over one screening training
  (3 epochs x 10,000 images), and the compile of a second instance of the same model and of
  another candidate in the same process (does the cache help across candidates of one run);
- ``2 procs x 1 thread``: two processes training at once, one thread each, the pair's img/s
  against one process with 2 threads (``--workers 2 --threads 1``);
- ``batch 128/256``: img/s, and the quick recipe's validation accuracy at equal epochs with
  the learning rate scaled linearly (``--data-dir``: 4,000 CIFAR-10 training images and
  2,000 held out, 3 epochs, 2 seeds);
- ``bf16``: bf16 autocast on the CPU (the CPU's avx512_bf16 / amx flags are printed);
- ``data``: the share of a step spent gathering, normalising and augmenting the uint8
  batch, from an in-memory tensor and from the memory-mapped cache's pages.

Achieved FLOP/s = forward FLOPs x 3 x img/s against this machine's fp32 matmul rate, as
``train_throughput.py`` reports it. Timings on a shared machine are contaminated: run it on
idle cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import matmul_rate

from effscale.experiment.budgets import get_budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.model.cost import cpu_model
from effscale.model.flops import count_flops
from effscale.scaling.compound import scale_config
from effscale.train.levers import compiler_problem, cpu_flags, linear_lr
from effscale.train.trainer import (
    ProxyTrainer,
    Recipe,
    augment,
    normalize,
    proxy_config,
    train_config,
)

CPU = torch.device("cpu")
SCREENING_IMAGES = 3 * 10_000  # one quick screening training
PARTS = ("throughput", "procs", "compile", "accuracy")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def models(quick: bool) -> list[tuple[str, object, int]]:
    """(name, config as trained, px): b0 at every proxy size, then the two candidates."""
    recipe = Recipe(stem_stride=1)
    base = get_base("b0", 10)

    def at(config, px: int):
        return proxy_config(config.replace(resolution=px), recipe, 10)

    sizes = (20,) if quick else (20, 23, 26, 28)
    rows = [("b0", at(base, px), px) for px in sizes]
    if not quick:
        rows.append(("a1.00_b1.11_g1.300", at(scale_config(base, depth=1.0, width=1.111,
                                                            name="w"), 26), 26))
        rows.append(("a1.80_b1.00_g1.000", at(scale_config(base, depth=1.8, width=1.0,
                                                            name="d"), 20), 20))
    return rows


def images_for(n: int, native: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 3, native, native), dtype=torch.uint8,
                          generator=generator),
            torch.randint(0, 10, (n,), generator=generator))


def timed(config, recipe: Recipe, steps: int, warmup: int) -> tuple[float, float]:
    """(steady training img/s, wall seconds of setup + the warm-up epoch with its
    validation): a warm-up epoch of ``warmup`` steps, then a timed one of ``steps``."""
    batch = recipe.batch_size
    images, labels = images_for((steps + warmup) * batch)
    start = time.perf_counter()
    trainer = ProxyTrainer(config, images, labels, images[:256], labels[:256],
                           recipe=replace(recipe, epochs=2), device=CPU)
    trainer.steps = warmup
    trainer.run_epoch()
    first = time.perf_counter() - start
    trainer.steps = steps
    trainer.run_epoch()
    return steps * batch / trainer.result.epoch_seconds[-1], first


def _pair_worker(config, recipe: Recipe, steps: int, warmup: int, out) -> None:
    torch.set_num_threads(1)
    out.put(timed(config, recipe, steps, warmup)[0])


def pair_of_processes(config, recipe: Recipe, steps: int, warmup: int) -> float:
    """Two spawned processes, one thread each, timed at once: the pair's img/s."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    procs = [context.Process(target=_pair_worker, args=(config, recipe, steps, warmup, queue))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    return sum(results)


def data_share(config, recipe: Recipe, steps: int) -> tuple[float, float]:
    """Seconds a step spends on its data (gather, normalize, augment, channels_last) from an
    in-memory tensor and from a memory-mapped file (the dataset cache's pages)."""
    n = max(steps, 4) * recipe.batch_size
    images, _ = images_for(n, config.resolution)
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.npy"
        np.save(path, images.numpy())
        with warnings.catch_warnings():  # read-only pages, as the dataset cache maps them
            warnings.simplefilter("ignore", UserWarning)
            mapped = torch.from_numpy(np.load(path, mmap_mode="r"))
        out = []
        for source in (images, mapped):
            order = torch.randperm(n, generator=generator)
            start = time.perf_counter()
            for step in range(n // recipe.batch_size):
                index = order[step * recipe.batch_size:(step + 1) * recipe.batch_size]
                batch = augment(normalize(source[index], CPU), recipe, generator)
                batch.contiguous(memory_format=torch.channels_last)
            out.append((time.perf_counter() - start) / (n // recipe.batch_size))
    return out[0], out[1]


def accuracy(settings: RunSettings, config_of, recipe: Recipe, seeds: int) -> list[float]:
    train, val = load_data(settings, RunEvents(), 32)
    config = config_of(len(train.classes))
    return [train_config(config, train.images, train.labels, val.images, val.labels,
                         recipe=recipe, device=CPU, seed=seed).val_accuracy
            for seed in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="b0 at 20 px, few steps")
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 for the accuracy rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also in --quick")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=None,
                        help="accuracy subset (default 4,000; --quick 256)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of {', '.join(PARTS)} (default: all); every "
                             "part measures its own baseline in this run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if unknown := parts - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))} (valid: {', '.join(PARTS)})")
    torch.set_num_threads(args.threads)
    steps, warmup = (args.steps or (2 if args.quick else 10)), (1 if args.quick else 3)
    flags = cpu_flags()
    peak = matmul_rate(CPU, seconds=0.5 if args.quick else 2.0)
    print(f"cpu {cpu_model()}, {args.threads} threads, torch {torch.__version__}; flags: "
          + " ".join(f"{f}={'yes' if f in flags else 'no'}" for f in FLAGS))
    print(f"fp32 matmul {peak / 1e9:.1f} GFLOP/s; {steps} timed steps after {warmup} warm-up; "
          "baseline: today's trainer (fp32, channels_last, batch 64, 1 process)")
    head = f"{'lever':<27}{'model':<20}{'px':>4}{'img/s':>9}{'× today':>9}  note"
    print(head + "\n" + "-" * len(head))
    today = Recipe(stem_stride=1)
    rows = models(args.quick)

    def say(lever: str, name: str, px: int, ips: float, base: float, note: str = "") -> None:
        print(f"{lever:<27}{name:<20}{px:>4}{ips:>9.1f}{ips / base:>8.2f}x  {note}".rstrip(),
              flush=True)

    for name, config, px in rows if "throughput" in parts else []:
        base_ips, _ = timed(config, today, steps, warmup)
        flops = 2 * count_flops(config, px, "torch").flops_conv_linear * 3 * base_ips
        say("today (baseline)", name, px, base_ips, base_ips,
            f"{flops / 1e9:.2f} GFLOP/s = {flops / peak:.1%} of matmul")
        for batch in (128, 256):
            ips, _ = timed(config, replace(today, batch_size=batch), steps, warmup)
            say(f"batch {batch}", name, px, ips, base_ips)
        ips, _ = timed(config, replace(today, precision="bf16"), steps, warmup)
        say("bf16 autocast", name, px, ips, base_ips,
            "native bf16" if flags & {"avx512_bf16", "amx_bf16"} else "no native bf16")
        step_s = today.batch_size / base_ips
        memory, mapped = data_share(config, today, steps)
        print(f"{'data on the fly':<27}{name:<20}{px:>4}{'':>9}{'':>9}  "
              f"{memory * 1e3:.1f} ms/step in memory ({memory / step_s:.1%} of the step), "
              f"{mapped * 1e3:.1f} ms memory-mapped ({mapped / step_s:.1%})", flush=True)
    name, config, px = rows[0]
    base_ips, _ = timed(config, today, steps, warmup)
    if args.threads >= 2 and not args.quick and "procs" in parts:
        pair = pair_of_processes(config, today, steps, warmup)
        say("2 procs x 1 thread", name, px, pair, base_ips, "the pair's img/s vs 1 x 2")
    if (args.compile or not args.quick) and "compile" in parts:
        if problem := compiler_problem(CPU):
            print(f"{'compile':<27}{name:<20}{px:>4}  skipped: {problem}")
        else:
            compiled = replace(today, compile=True)
            for label, (cname, cconfig, cpx) in (("compile", rows[0]),
                                                  ("compile, same model again", rows[0]),
                                                  ("compile, next candidate", rows[-1])):
                ips, first = timed(cconfig, compiled, steps, warmup)
                ref_ips, ref_first = timed(cconfig, today, steps, warmup)
                extra = max(0.0, first - ref_first)
                amortised = (SCREENING_IMAGES / ref_ips) / (extra + SCREENING_IMAGES / ips)
                say(label, cname, cpx, ips, ref_ips,
                    f"compile {extra:.0f} s; over one screening training {amortised:.2f}x")
    print("channels_last: already the trainer's default (train_throughput.py measures it "
          "against a plain NCHW loop)")
    if "accuracy" not in parts:
        return
    quick_budget = get_budget("quick")
    size = args.train_size or (256 if args.quick else 4000)
    dataset = "cifar10" if args.data_dir and not args.quick else "synthetic"
    budget = quick_budget.override(train_size=size, val_size=size // 2)
    epochs, seeds = (1, 1) if args.quick else (quick_budget.epochs, 2)
    settings = RunSettings(base="b0", dataset=dataset, budget=budget, recipe=today,
                           data_dir=args.data_dir)
    print(f"\naccuracy at equal epochs ({dataset}, {size} train / {size // 2} val images, "
          f"{epochs} epochs, {seeds} seed(s), b0 at 20 px, lr scaled linearly from 64)")
    reference = None
    for batch in (64, 128, 256):
        recipe = replace(today, epochs=epochs, batch_size=batch, lr=linear_lr(batch, today.lr))
        start = time.perf_counter()
        accs = accuracy(settings, lambda k, r=recipe: proxy_config(
            get_base("b0", k).replace(resolution=20), r, k), recipe, seeds)
        mean = sum(accs) / len(accs)
        reference = reference if reference is not None else mean
        print(f"  batch {batch:>3} lr {recipe.lr:.4f}: val acc {mean:.2%} "
              f"({' '.join(f'{a:.2%}' for a in accs)}), {mean - reference:+.2%} vs batch 64, "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
