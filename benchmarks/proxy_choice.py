"""Which proxy for b0 on 32 px images: the input size and stem stride, measured.

    python benchmarks/proxy_choice.py --data-dir DIR    # CIFAR-10: 10,000 images, 3 epochs
    python benchmarks/proxy_choice.py --quick           # synthetic, 512 images, 1 epoch

Trains the b0 base once per proxy design (the search's trainer and recipe, seed 0) and prints
its final feature-map size, FLOPs at the proxy, training throughput and validation accuracy,
each as a ratio to the plain proxy (CIFAR's own 32 px, b0's stride-2 stem) measured in the
same run.
"""

from __future__ import annotations

import argparse
import time

import torch

from effscale.experiment.budgets import get_budget
from effscale.experiment.data import load_data
from effscale.experiment.events import RunEvents
from effscale.experiment.settings import RunSettings
from effscale.model.bases import get_base
from effscale.model.flops import count_flops
from effscale.train.proxy import final_map_size
from effscale.train.trainer import Recipe, proxy_config, train_config

DESIGNS = [(32, 2, "native size, stride-2 stem"), (20, 2, "smaller input only"),
           (20, 1, "effscale's proxy")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = "cifar10" if args.data_dir and not args.quick else "synthetic"
    budget = get_budget("quick")
    if args.quick:
        budget = budget.override(train_size=512, val_size=256, epochs=1)
    settings = RunSettings(base="b0", dataset=dataset, budget=budget, recipe=Recipe(),
                           data_dir=args.data_dir)
    train, val = load_data(settings, RunEvents(), 32)
    base = get_base("b0", len(train.classes))
    print(f"b0 on {dataset}: {len(train)} train / {len(val)} val images, {budget.epochs} "
          f"epochs, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for px, stride, note in DESIGNS:
        recipe = Recipe(epochs=budget.epochs, batch_size=budget.batch_size, stem_stride=stride)
        config = proxy_config(base.replace(resolution=px), recipe, len(train.classes))
        flops = count_flops(config, px, "torch").flops_conv_linear
        start = time.perf_counter()
        result = train_config(config, train.images, train.labels, val.images, val.labels,
                              recipe=recipe, device=torch.device("cpu"))
        wall = time.perf_counter() - start
        rows.append((px, stride, note, final_map_size(base, px, stride), flops,
                     result.images_per_second, result.val_accuracy, wall))
        print(f"  {px} px, stem stride {stride}: val acc {result.val_accuracy:.2%} in "
              f"{wall:.0f} s", flush=True)
    ref = rows[0]
    print(f"\n{'proxy':<22}{'final map':>10}{'MFLOPs':>9}{'× ref':>7}{'img/s':>8}{'× ref':>7}"
          f"{'val acc':>9}{'wall s':>8}")
    for px, stride, note, final, flops, speed, acc, wall in rows:
        label = f"{px} px, stride {stride}"
        print(f"{label:<22}{f'{final}×{final}':>10}{flops / 1e6:>9.1f}{flops / ref[4]:>7.2f}"
              f"{speed:>8.0f}{speed / ref[5]:>7.2f}{acc:>9.2%}{wall:>8.0f}  {note}")


if __name__ == "__main__":
    main()
