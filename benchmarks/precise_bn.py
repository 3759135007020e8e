"""Precise batch-norm statistics: what a validation reads with and without them, measured.

    python benchmarks/precise_bn.py                       # synthetic, the demo budget, 3 seeds
    python benchmarks/precise_bn.py --data-dir DIR --budget quick --seeds 2   # CIFAR-10

Trains the b0 base and the φ = 1 candidate α 1, β 1.111, γ 1.3 with the budget's data and
recipe, once per seed, and validates after every epoch twice from the same weights: with the
running statistics the training left, and with statistics recomputed on 512 training images
(effscale.train.precise_bn). Batch norms normalise by batch statistics while training, so
the two readings come from one training. Prints, per model and epoch, the mean accuracy and
the seed std of each reading, and the precise reading's std as a ratio to the running one.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from dataclasses import replace

import torch

from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.scaling.compound import scale_config
from effscale.train.precise_bn import recompute_bn_stats
from effscale.train.proxy import proxy_stem_stride
from effscale.train.trainer import ProxyTrainer, evaluate, normalize, proxy_config

MODELS = {"base": (1.0, 1.0, 1.0), "a1.00_b1.11_g1.300": (1.0, 1.111, 1.3)}
SAMPLE = 512


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def readings(trainer: ProxyTrainer) -> tuple[float, float]:
    """(running, precise) validation accuracy of the trainer's current weights."""
    running = trainer.result.val_accuracy
    model = copy.deepcopy(trainer.model)
    order = torch.randperm(len(trainer.train), generator=torch.Generator().manual_seed(7919))
    size = trainer.recipe.batch_size
    batches = [normalize(trainer.train.batch(order[i:i + size])[0], trainer.device)
               .contiguous(memory_format=torch.channels_last) for i in range(0, SAMPLE, size)]
    recompute_bn_stats(model, batches)
    precise, _ = evaluate(model, trainer.val.images, trainer.val.labels, trainer.device)
    return running, precise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--budget", default="demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = "cifar10" if args.data_dir and args.dataset == "synthetic" else args.dataset
    budget = get_budget(args.budget)
    recipe = replace(budget_recipe(budget), precise_bn=0)
    settings = RunSettings(base="b0", dataset=dataset, budget=budget, recipe=recipe,
                           data_dir=args.data_dir)
    train, val = load_data(settings, RunEvents(), 32)
    base = get_base("b0", len(train.classes))
    print(f"{dataset}, budget {budget.name}: {len(train)} training / {len(val)} validation "
          f"images, {budget.epochs} epochs, {args.seeds} seeds; precise = {SAMPLE} images")
    for name, (alpha, beta, gamma) in MODELS.items():
        px = round(budget.resolution * gamma)
        model_recipe = replace(recipe, stem_stride=proxy_stem_stride(base, budget.resolution))
        full = scale_config(base, depth=alpha, width=beta, resolution=gamma)
        config = proxy_config(full.replace(resolution=px), model_recipe, len(train.classes))
        per_epoch: list[list[tuple[float, float]]] = [[] for _ in range(budget.epochs)]
        for seed in range(args.seeds):
            trainer = ProxyTrainer(config, train.images, train.labels, val.images, val.labels,
                                   recipe=model_recipe, device=torch.device("cpu"),
                                   seed=1000 + seed)
            for epoch in range(budget.epochs):
                trainer.run_epoch()
                per_epoch[epoch].append(readings(trainer))
        for epoch, pairs in enumerate(per_epoch, 1):
            running = [100 * r for r, _ in pairs]
            precise = [100 * p for _, p in pairs]
            ratio = sd(precise) / sd(running) if sd(running) else float("nan")
            print(f"{name:20s} {px} px epoch {epoch}: running {statistics.mean(running):6.2f} "
                  f"± {sd(running):5.2f}   precise {statistics.mean(precise):6.2f} "
                  f"± {sd(precise):5.2f}   std ratio {ratio:4.2f}   per seed "
                  + " ".join(f"{r:.1f}/{p:.1f}" for r, p in zip(running, precise)))


if __name__ == "__main__":
    main()
