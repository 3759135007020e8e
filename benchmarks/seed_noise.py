"""How noisy is one proxy training, and what lowers it: seed std by epochs and validation size,
and whether pairing seeds across models (same data order) lowers the noise of a difference.

    python benchmarks/seed_noise.py --data-dir DIR                    # CIFAR-10, quick's recipe
    python benchmarks/seed_noise.py --data-dir DIR --epochs 3,6 --seeds 5 --jobs 2
    python benchmarks/seed_noise.py --quick                           # synthetic, a minute

Trains the b0 base (20 px proxy) and one phi=1 candidate (alpha 1, beta 1.111, gamma 1.3:
26 px) under ``--seeds`` seeds at each ``--epochs``, on quick's 10,000 training images, with
a 10,000-image held-out validation split scored at every ``--val-sizes`` prefix. Seed ``i``
is the same for both models, and the trainer draws its data order and flips from the seed
alone, so the two models of a seed see the same batches: a *paired* difference. Prints:

- per model, epochs and validation size: mean accuracy, seed std, and the binomial std
  ``sqrt(p (1 - p) / N)`` that a finite validation set alone would give;
- the candidate-minus-base difference: its std over paired seeds (same data order) and over
  unpaired ones (seed i against seed j != i), their ratio, and the smallest difference that
  ``n`` seeds a side detect with 80 % power (two-sided 5 %, pooled t);
- ratios against the baseline measured in the same run: 3 epochs (or the smallest asked
  for) at quick's 5,000 validation images.

Each training is stored in ``--out`` (JSON, written atomically) as it ends; a second run with
the same ``--out`` trains only what is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
import torch

from effscale import atomic
from effscale.experiment import stats
from effscale.experiment.budgets import get_budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.scaling.compound import scale_config
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import Recipe, proxy_config, train_config

BASE_PX = 20
MODELS = {"base": (1.0, 1.0, 1.0), "a1.00_b1.11_g1.300": (1.0, 1.111, 1.3)}


def _settings(args: argparse.Namespace) -> RunSettings:
    budget = get_budget("quick").override(val_size=max(args.val_sizes))
    dataset = "cifar10"
    if args.quick:
        budget = budget.override(train_size=512, val_size=max(args.val_sizes))
        dataset = "synthetic"
    return RunSettings(base="b0", dataset=dataset, budget=budget, recipe=Recipe(),
                       data_dir=args.data_dir)


def _train(job: tuple[argparse.Namespace, str, int, int, int]) -> dict:
    args, model, epochs, seed_index, threads = job
    torch.set_num_threads(threads)
    settings = _settings(args)
    train, val = load_data(settings, RunEvents(), 32)
    base = get_base("b0", len(train.classes))
    alpha, beta, gamma = MODELS[model]
    full = scale_config(base, depth=alpha, width=beta, resolution=gamma)
    px = round(BASE_PX * gamma)
    recipe = Recipe(epochs=epochs, batch_size=settings.budget.batch_size,
                    stem_stride=proxy_stem_stride(base, BASE_PX))
    config = proxy_config(full.replace(resolution=px), recipe, len(train.classes))
    started = time.perf_counter()
    result = train_config(config, train.images, train.labels, val.images, val.labels,
                          recipe=recipe, device=torch.device("cpu"), seed=1000 * seed_index)
    assert result.val_correct is not None
    return {"model": model, "epochs": epochs, "seed": seed_index, "px": px,
            "accuracy": result.val_accuracy, "seconds": round(time.perf_counter() - started, 1),
            "correct": stats.pack_correct(result.val_correct.numpy()),
            "val_size": len(val)}


def _key(record: dict) -> tuple[str, int, int]:
    return record["model"], record["epochs"], record["seed"]


def run(args: argparse.Namespace) -> list[dict]:
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.exists() else []
    done = {_key(r) for r in records}
    # Seed-major order: a run stopped early still has every model and schedule at n seeds.
    jobs = [(args, m, e, s, args.threads) for s, e, m in
            product(range(args.seeds), args.epochs, MODELS) if (m, e, s) not in done]
    print(f"{len(records)} trainings stored in {out}, {len(jobs)} to train "
          f"({args.jobs} at a time, {args.threads} thread(s) each)", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for record in pool.map(_train, jobs):
            records.append(record)
            atomic.write_text(out, json.dumps(records))
            print(f"  {record['model']} {record['epochs']} epochs seed {record['seed']}: "
                  f"{record['accuracy']:.2%} in {record['seconds']:.0f} s", flush=True)
    return records


def mde(std: float, n: int, df: int, se_examples: float = 0.0) -> float:
    """The smallest difference n seeds a side detect with 80 % power, two-sided 5 %."""
    if df < 1 or not std:
        return float("nan")
    se = math.sqrt(se_examples ** 2 + 2 * std ** 2 / n)
    return (stats.t_quantile(0.975, df) + stats.t_quantile(0.8, df)) * se


def report(records: list[dict], val_sizes: list[int]) -> None:
    by = {_key(r): r for r in records}
    epochs = sorted({r["epochs"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    print(f"\nseed noise over up to {len(seeds)} seeds (validation accuracy points)")
    print(f"{'model':20} {'epochs':>6} {'seeds':>5} {'val N':>6} {'mean':>7} {'seed std':>8} "
          f"{'binomial':>8} {'x base-line std':>15}")
    base_line: dict[str, float] = {}
    for model, e, n_val in product(MODELS, epochs, val_sizes):
        accs = [float(stats.unpack_correct(by[(model, e, s)]["correct"],
                                           by[(model, e, s)]["val_size"])[:n_val].mean())
                for s in seeds if (model, e, s) in by]
        if len(accs) < 2:
            continue
        std = stats.seed_std(accs)
        mean = float(np.mean(accs))
        base_line.setdefault(model, std)
        print(f"{model:20} {e:>6} {len(accs):>5} {n_val:>6} {mean:>7.2%} {std * 100:>8.2f} "
              f"{math.sqrt(mean * (1 - mean) / n_val) * 100:>8.2f} "
              f"{std / base_line[model] if base_line[model] else float('nan'):>15.2f}")
    print("\ncandidate - base, per epochs and validation size (points)")
    print(f"{'epochs':>6} {'pairs':>5} {'val N':>6} {'mean diff':>9} {'paired sd':>9} "
          f"{'unpaired sd':>11} "
          f"{'paired/unpaired':>15} {'MDE n=2':>8} {'n=3':>6} {'n=5':>6}")
    a, b = list(MODELS)
    for e, n_val in product(epochs, val_sizes):
        acc = {(m, s): float(stats.unpack_correct(by[(m, e, s)]["correct"],
                                                  by[(m, e, s)]["val_size"])[:n_val].mean())
               for m, s in product(MODELS, seeds) if (m, e, s) in by}
        common = [s for s in seeds if (a, s) in acc and (b, s) in acc]
        if len(common) < 2:
            continue
        paired = [acc[(b, s)] - acc[(a, s)] for s in common]
        unpaired = [acc[(b, s)] - acc[(a, t)] for s in common for t in common if s != t]
        sd_p, sd_u = stats.seed_std(paired), stats.seed_std(unpaired)
        pooled, _dof = stats.pooled_seed_noise([[acc[(m, s)] for s in common] for m in MODELS])
        mdes = [mde(pooled, n, 2 * (n - 1)) * 100 for n in (2, 3, 5)]
        print(f"{e:>6} {len(common):>5} {n_val:>6} {np.mean(paired) * 100:>+9.2f} "
              f"{sd_p * 100:>9.2f} "
              f"{sd_u * 100:>11.2f} {sd_p / sd_u if sd_u else float('nan'):>15.2f} "
              + " ".join(f"{m:>6.2f}" for m in mdes))
    seconds: dict[tuple[str, int], list[float]] = {}
    for r in records:
        seconds.setdefault((r["model"], r["epochs"]), []).append(r["seconds"])
    print("\nwall seconds per training (mean; x the base at the fewest epochs)")
    first = float(np.mean(seconds[(a, epochs[0])])) if (a, epochs[0]) in seconds else 1.0
    for (model, e), values in sorted(seconds.items()):
        mean = float(np.mean(values))
        print(f"  {model:20} {e:>3} epochs: {mean:6.0f} s  x{mean / first:.2f}")
    print("(unpaired sd is over seed i of one model against seed j != i of the other; a "
          "paired/unpaired ratio near 1 means a shared data order does not cancel noise)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="synthetic set, 1-2 epochs")
    parser.add_argument("--epochs", default="3,6,12")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--val-sizes", default="2500,5000,10000")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per training")
    parser.add_argument("--out", default="runs/seed_noise.json")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.epochs = [int(e) for e in args.epochs.split(",")]
    args.val_sizes = sorted(int(v) for v in args.val_sizes.split(","))
    if args.quick:
        args.epochs, args.val_sizes = [1, 2], [128, 256]
        args.seeds = min(args.seeds, 3)
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if not args.quick and not args.data_dir:
        parser.error("--data-dir DIR (the folder holding cifar-10-batches-py) or --quick")
    records = json.loads(Path(args.out).read_text()) if args.report_only else run(args)
    report(records, args.val_sizes)


if __name__ == "__main__":
    main()
