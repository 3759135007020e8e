"""Full grid against rung-synchronous successive halving on the same search.

    python benchmarks/search_cost.py --data-dir DIR    # quick budget on a CIFAR-10 copy
    python benchmarks/search_cost.py --quick           # synthetic, tiny sizes (~1-2 min)

Prints, for each: training epochs spent, wall time, the winner, and the time that is not
training (data loading, FLOP counting, model building, study bookkeeping; the per-epoch
validation passes count as training). Any budget value can be overridden for a demo
(--epochs, --train-size ...). ``--out DIR`` keeps both run directories (DIR/none,
DIR/halving) with their coefficients, configs and plots.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna

from effscale.experiment.budgets import budget_recipe, get_budget
from effscale.experiment.events import RunEvents
from effscale.experiment.storage import open_storage
from effscale.search.grid import budget_grid
from effscale.search.run import SearchSettings, run_search


def one(pruner: str, args: argparse.Namespace, out: Path) -> dict:
    budget = get_budget(args.budget).override(
        pruner=pruner, epochs=args.epochs, train_size=args.train_size, val_size=args.val_size,
        batch_size=args.batch_size, repeats=args.repeats,
        transfer_top=0)  # the pruners are compared on the grid alone
    tolerance = budget.flops_tolerance
    grid = budget_grid(budget)
    settings = SearchSettings(
        base="b0", dataset=args.dataset, budget=budget, grid=grid, recipe=budget_recipe(budget),
        data_dir=args.data_dir, flops_tolerance=tolerance, counter=args.counter,
        out=str(out), threads=args.threads)
    start = time.perf_counter()
    outcome = run_search(settings, RunEvents())
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=settings.study, storage=open_storage(None, out))
    trials = study.get_trials(deepcopy=False)
    epochs = sum(len(t.intermediate_values) for t in trials)
    train = sum(float(t.user_attrs.get("train_seconds", 0.0))
                + float(t.user_attrs.get("val_seconds", 0.0)) for t in trials)
    selection = outcome.result.selection if outcome.result is not None else None
    winner = selection.winner if selection else None
    return {"pruner": pruner, "epochs": epochs, "wall": wall, "train": train,
            "winner": winner.candidate if winner else "-",
            "acc": winner.mean if winner else float("nan"),
            "base_std": getattr(selection.base, "std", float("nan"))
            if selection and selection.base else float("nan"),
            "trials": len(trials),
            "tied": list(selection.tied) if selection else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="synthetic data, 512 train / 256 val images, 3 epochs")
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--val-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--counter", default="torch")
    parser.add_argument("--out", default=None, help="keep the two run directories here")
    args = parser.parse_args()
    if args.dataset is None:
        args.dataset = "cifar10" if args.data_dir else "synthetic"
    if args.quick:
        args.train_size = args.train_size or 512
        args.val_size = args.val_size or 256
        args.epochs = args.epochs or 3
        args.repeats = args.repeats or 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        for pruner in ("halving", "none"):  # halving first: its row is the one in question
            rows.append(one(pruner, args, root / pruner))
            r = rows[-1]
            print(f"{pruner:<8} {r['trials']:>3} trials {r['epochs']:>4} epochs "
                  f"{r['wall']:>8.1f} s wall, overhead {1 - r['train'] / r['wall']:>6.1%}, "
                  f"winner {r['winner']} ({r['acc']:.2%}; base seed std {r['base_std']:.2%})",
                  flush=True)
    halving, grid = rows
    same = grid["winner"] == halving["winner"]
    verdict = ("the same winner" if same else
               "a winner the full grid finds statistically tied with its own" if
               halving["winner"] in grid["tied"] else
               "a DIFFERENT winner, separated from the full grid's by its own statistics")
    print(f"halving: {grid['epochs'] / max(1, halving['epochs']):.2f}x fewer epochs, "
          f"{grid['wall'] / halving['wall']:.2f}x less wall time; {verdict}")


if __name__ == "__main__":
    main()
