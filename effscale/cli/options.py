"""The options that several commands share, each declared once: ``Annotated`` aliases with one
help text, and the choices behind them, built from the library's own registries.

A flag that means one thing everywhere has one help text, true in every command. Where only
its default differs between commands, the aliases share that text and say the default with
``show_default`` (``BudgetOpt``/``TrainBudget``). Where a flag genuinely means different things
(``--out``: a run directory, a report folder, a checkpoint file, a config folder), each
meaning is its own alias, named for it, with its own text. tests/cli/test_cli.py fails when a
shared flag's help differs between commands, or is declared outside this module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from effscale.datasets.registry import DATASET_HELP, native_size
from effscale.devices import DEVICES
from effscale.errors import EffscaleError
from effscale.experiment.budgets import (
    BUDGETS,
    DEFAULT_BUDGET,
    DEFAULT_BUDGETS,
    Budget,
    budget_recipe,
    default_budget,
    get_budget,
)
from effscale.experiment.pruning import PRUNERS
from effscale.experiment.workers import parse_devices, plan_workers
from effscale.model.bases import base_names
from effscale.model.cost import COSTS, DEFAULT_COST, RUNTIMES, check_runtime, cost_names
from effscale.model.flops import COUNTERS
from effscale.scaling.derive import PHI_BOUNDS
from effscale.search.grid import BETA_MODES
from effscale.train.segmentation import SHAPES


def choices(name: str, values: Iterable[str]) -> type[Enum]:
    """A str enum of ``values`` (member name = value), so Typer offers exactly those."""
    return Enum(name, {value: value for value in values}, type=str, module=__name__)


def runtime_list(text: str) -> list[str]:
    """``torch,onnxruntime`` -> the runtimes, each checked, in order, without repeats."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [name for name in names if name not in RUNTIMES]
    if bad or not names:
        raise typer.BadParameter(f"{bad[0] if bad else text!r}: not a runtime (valid: "
                                 f"{', '.join(RUNTIMES)})", param_hint="--runtime")
    return names


def runtime_for(cost: str, runtime: Enum) -> str:
    """``--runtime``'s value, once it is known to apply to ``cost`` and its extra is
    installed (:func:`~effscale.model.cost.check_runtime`): one line, exit 2, otherwise."""
    check_runtime(cost, runtime.value)
    return str(runtime.value)


def one_of(names: Iterable[str]) -> str:
    """``a, b or c``."""
    *rest, last = names
    return f"{', '.join(rest)} or {last}" if rest else last


BudgetName = choices("BudgetName", BUDGETS)
Pruner = choices("Pruner", PRUNERS)
Counter = choices("Counter", COUNTERS)
Cost = choices("Cost", cost_names())
Device = choices("Device", DEVICES)
BetaMode = choices("BetaMode", BETA_MODES)
Runtime = choices("Runtime", RUNTIMES)

# --budget's help is a few lines (it was 25, on three commands): the names and what each is
# for; the images, epochs, grid and measured times of each are in docs/budgets.md.
BUDGET_USES = {"smoke": "minutes: checks the plumbing", "demo": "minutes on a CPU",
               "quick": "about an hour on 2 cores", "standard": "hours",
               "full": "all images", "gpu": "GPUs, 64 px up"}
BUDGET_HELP = ("How much training: " + one_of(
    f"{name} ({BUDGET_USES[name]})" if name in BUDGET_USES else name for name in BUDGETS)
    + ". It sets images, epochs, proxy size, seeds and grid (options below override); "
      "in full: docs/budgets.md.")
DEFAULT_BUDGET_TEXT = ", ".join([*(f"{budget} for {dataset}"
                                   for dataset, budget in DEFAULT_BUDGETS.items()),
                                 f"{DEFAULT_BUDGET} otherwise"])
BASE_HELP = f"Base network: {one_of(base_names())}."
BUDGETS_DEFAULT = "the budget's"

# --------------------------------------------------------------------------- what to train

ConfigFile = Annotated[Path, typer.Argument(help="A model config YAML file.")]
RunDirectory = Annotated[Path | None, typer.Argument(help="A run directory.")]
Base = Annotated[str, typer.Option(help=BASE_HELP)]
BaseFromCoefficients = Annotated[str | None, typer.Option(
    help=BASE_HELP, show_default="the coefficients file's base, else b0")]
Dataset = Annotated[str, typer.Option(help=DATASET_HELP)]
DataDir = Annotated[Path | None, typer.Option(
    help="Where cifar10 is looked up / downloaded (default: $EFFSCALE_DATA_DIR or the effscale "
         "cache).")]
AllowUpsampling = Annotated[bool, typer.Option(
    help="Let proxy inputs exceed the dataset's native size (upsampled pixels).")]

# --num-classes: derive's classifier outputs (or UNet classes), segment-demo's synthetic classes.
ClassifierClasses = Annotated[int, typer.Option(min=1, help="Classifier outputs.")]
SegmentClasses = Annotated[int, typer.Option(
    min=2, max=len(SHAPES) + 1,
    help=f"Classes including background (shapes: {', '.join(SHAPES)}).")]

InitCheckpoint = Annotated[Path | None, typer.Option(
    "--init", help="Start from this effscale checkpoint's weights (e.g. from `effscale weights "
                   "import`) instead of from scratch: its stem and stages must fit the config; "
                   "a classifier for another class count, or a UNet's decoder, starts fresh.")]

# --------------------------------------------------------------------------- budget overrides

# search and compare: the budget depends on the dataset; train: a fixed default.
BudgetOpt = Annotated[BudgetName | None, typer.Option(
    help=BUDGET_HELP, show_default=DEFAULT_BUDGET_TEXT)]
TrainBudget = Annotated[BudgetName, typer.Option(help=BUDGET_HELP)]

EPOCHS_HELP = "Passes over the training images."
Epochs = Annotated[int | None, typer.Option(min=1, help=EPOCHS_HELP,
                                            show_default=BUDGETS_DEFAULT)]
DemoEpochs = Annotated[int, typer.Option(min=1, help=EPOCHS_HELP)]  # segment-demo: no budget
TrainSize = Annotated[int | None, typer.Option(min=1, help="Training images.",
                                               show_default=BUDGETS_DEFAULT)]
ValSize = Annotated[int | None, typer.Option(min=1, help="Held-out validation images.",
                                             show_default=BUDGETS_DEFAULT)]
BatchSize = Annotated[int | None, typer.Option(min=2, help="Batch size.",
                                               show_default=BUDGETS_DEFAULT)]
DemoBatchSize = Annotated[int, typer.Option(min=2, help="Batch size.")]
Seed = Annotated[int, typer.Option(
    help="Seed for the data (split, subset or generated images) and the training.")]

# --resolution: the proxy base size the grid scales (search, compare), or the input size
# itself (train: trained at; flops: measured at).
ProxyResolution = Annotated[int | None, typer.Option(
    min=8, help="Proxy base input size in px: each model trains at it × its resolution "
                "multiplier (γ); the cost is always measured at the base's full size, e.g. "
                "224 px for b0.", show_default=BUDGETS_DEFAULT)]
INPUT_RESOLUTION_HELP = "Input size in px."
TrainResolution = Annotated[int | None, typer.Option(
    min=8, help=INPUT_RESOLUTION_HELP, show_default="the budget's proxy size")]
MeasuredResolution = Annotated[int | None, typer.Option(
    min=8, help=INPUT_RESOLUTION_HELP, show_default="the config's")]

# --repeats: search seeds the base (and --repeat-top's candidates), compare every model.
BaseRepeats = Annotated[int | None, typer.Option(
    min=1, help="Seeds for the base, to measure seed-to-seed noise.",
    show_default=BUDGETS_DEFAULT)]
ModelRepeats = Annotated[int | None, typer.Option(min=1, help="Seeds per model.",
                                                  show_default=BUDGETS_DEFAULT)]

# --------------------------------------------------------------------------- scaling

CounterOpt = Annotated[Counter, typer.Option(
    help="FLOP counter: fvcore (traces a real forward pass) or torch (conv+linear on the "
         "meta device: fast and light for big models; used anyway when fvcore is missing or "
         "cannot trace).")]
# --phi: the search's one target, compare's target(s), derive's list of configs to write.
PhiSearch = Annotated[float, typer.Option(
    help="The candidates' cost: 2^φ × the base's at full size (1: twice, the paper's setup; "
         "-1: half, a search for shrinking, with α, β, γ ≤ 1 on the grid and β solved down to "
         "the width-only point). coefficients.yaml holds α = depth^(1/φ) (and β, γ alike), so "
         f"derive applies it at any φ; {PHI_BOUNDS}.")]
PhiCurve = Annotated[str, typer.Option(
    help="Target: 2^φ × the base's cost (1: ≈2×, -1: half). Several values (1,2,3 or a range "
         "1-3) make a scaling curve: every model at every φ, one figure and a test per φ; "
         f"{PHI_BOUNDS}.")]
Phis = Annotated[str, typer.Option(
    help="Compound coefficient(s) to write: one value (7, 0.5, -1), a range (0-7) or a comma "
         f"list; {PHI_BOUNDS}.")]
# --coefficients: compare's repeatable, named sets; derive's one file.
CoefficientSets = Annotated[list[str] | None, typer.Option(
    help="A coefficients.yaml (from a search) to compare, as PATH or NAME=PATH; repeat for "
         "several sets. A file's model is named NAME, else after the file (its folder's name "
         "for coefficients.yaml). Default: the paper's 1.2/1.1/1.15.")]
CoefficientsFile = Annotated[Path | None, typer.Option(
    help="A coefficients.yaml written by `effscale search`.")]
# --beta: search's way of choosing β, derive's width coefficient.
BetaModeOpt = Annotated[BetaMode, typer.Option(
    "--beta", help="solve: for each (α, γ), β solved so the full-size model measures 2× the "
                   "base's FLOPs; grid: NNI's α/β/γ grid under --tolerance, then filtered on "
                   "measured full-size FLOPs.")]
BetaCoefficient = Annotated[float | None, typer.Option(help="Width coefficient (>= 1).")]
# --cost: what models are made equal in (search, compare) or matched on (derive), and shown.
COST_HELP = (f"What a model costs, measured on the full-size model: {one_of(COSTS)} (default "
             f"{DEFAULT_COST}: conv+linear FLOPs). The "
             + " and ".join(n for n in COSTS if COSTS[n].timed)
             + " costs are timed on this device (median until the spread is under 5 %) and "
               "cached per device: CPU model, threads, torch version, GPU.")
CostOpt = Annotated[Cost, typer.Option(help=COST_HELP)]
RUNTIME_HELP = (f"What runs the model that latency times: {one_of(RUNTIMES)} (the model "
                "exported to ONNX, as it ships; needs the deploy extra). Cached per runtime.")
RuntimesOpt = Annotated[str, typer.Option(
    "--runtime", help=RUNTIME_HELP + " A comma list shows them side by side.")]
# search, compare and derive: the one runtime a latency cost is timed in (part of a run's
# identity); `cost` takes a list of them.
RuntimeOpt = Annotated[Runtime, typer.Option(
    "--runtime", help=RUNTIME_HELP + " Only with a latency cost (--cost latency; derive: "
                                     "--match latency).")]
CostBatch = Annotated[int | None, typer.Option(
    min=1, help="Batch size of the timed costs: latency's (default 1) and train-step's "
                "(default: the training batch size, 64 without a budget).")]

# --------------------------------------------------------------------------- where it runs

DeviceOpt = Annotated[Device, typer.Option(help="auto uses CUDA when present.")]
Workers = Annotated[int | None, typer.Option(
    min=1, help="Worker processes on this machine.",
    show_default="2 on a CPU (at most its cores ÷ --threads), one per GPU × --workers-per-device")]
Devices = Annotated[str | None, typer.Option(
    help="CUDA GPUs to spread the workers over: auto (every visible GPU) or a comma list such "
         "as 0,1. Consecutive workers share a GPU: --devices 0,1 --workers 4 runs two on each.",
    show_default="--device")]
WorkersPerDevice = Annotated[int | None, typer.Option(
    min=1, help="Workers (candidates in flight) on each device; several keep a large GPU busy "
                "with small proxies.", show_default="1, or --workers ÷ the devices")]
THREADS_HELP = "Torch threads per training process (1 can be faster on a busy machine)."
Threads = Annotated[int | None, typer.Option(
    min=1, help=THREADS_HELP,
    show_default="OMP_NUM_THREADS when set, else the available cores ÷ --workers")]
TrainThreads = Annotated[int | None, typer.Option(
    min=1, help=THREADS_HELP, show_default="OMP_NUM_THREADS when set, else the available cores")]
DemoThreads = Annotated[int | None, typer.Option(min=1, help=THREADS_HELP,
                                                 show_default="torch's")]
Storage = Annotated[str | None, typer.Option(
    help="Optuna storage URL (e.g. postgresql://...) shared by many machines.")]
# The default study name differs (search and report: effscale; compare: effscale-compare), so
# that a search and a comparison can share one --storage: the help says so.
StudyName = Annotated[str, typer.Option(
    help="Optuna study name, within --storage or else the run directory's own journal "
         "(default: effscale for search and report, effscale-compare for compare, so both "
         "can share one --storage).")]
Resume = Annotated[Path | None, typer.Option(help="Continue this run directory.")]

# --------------------------------------------------------------------------- output

# --out is a folder in every command (search, compare, report, derive); a command that writes
# one file (train, weights import) names it with --checkpoint.
RunDirOut = Annotated[Path | None, typer.Option(
    help="A folder: the run directory (default: a new one under runs/, named after the time, "
         "base and dataset).")]
ReportOut = Annotated[Path | None, typer.Option(
    help="A folder: where to write the outputs (default: the run directory, or "
         "./report-<study>).")]
CheckpointOut = Annotated[Path | None, typer.Option(
    "--checkpoint", help="The checkpoint file to write (default: <config name>-<dataset>.pt).")]
DERIVE_OUT = Path("runs/derive")
ConfigDirOut = Annotated[Path, typer.Option(
    help="A folder: where the bPHI.yaml files are written (default: runs/derive/; the shipped "
         "configs/ is written only when named here).", show_default=False)]
ImportedCheckpointOut = Annotated[Path | None, typer.Option(
    "--checkpoint", help="The checkpoint file to write, with the config and the imported "
                         "weights (for train --init, export and effscale.load_checkpoint).",
    show_default=False)]
# --out as a file, before it meant a folder everywhere: refused with the new name, not hidden
# behind typer's "No such option".
FileOut = Annotated[Path | None, typer.Option("--out", hidden=True)]


def refuse_file_out(out: Path | None) -> None:
    """The one-line error for ``train``/``weights import`` given ``--out``."""
    if out is not None:
        raise EffscaleError(f"--out names a folder in effscale; this command writes one file: "
                            f"give it as --checkpoint {out}")
Quiet = Annotated[bool, typer.Option(help="No progress output.")]
DryRun = Annotated[bool, typer.Option(
    help="Build and measure the models, show them and stop: nothing is trained or written.")]
# --json: every command's result (with --dry-run: what would run), one document on stdout.
AsJson = Annotated[bool, typer.Option(
    "--json", help="Print the result (with --dry-run: the plan) as one JSON document on "
                   "stdout instead of tables; progress and messages go to stderr.")]
KeepWeights = Annotated[bool, typer.Option(
    help="Keep each model's trained weights (its first seed) in RUN/weights/<model>.pt, for "
         "`effscale cam`.")]
HtmlReport = Annotated[bool, typer.Option(
    "--html", help="Also write report.html: the run on one self-contained page (partial "
                   "results while it runs).")]


# --------------------------------------------------------------------------- help panels

# `effscale search --help`: its options under headings (effscale.cli.panels), each option in
# exactly one; tests/cli/test_cli.py checks that every option is listed once.
SEARCH_PANELS: dict[str, tuple[str, ...]] = {
    "What to search": ("phi", "base", "cost", "runtime", "cost_batch", "counter", "beta_mode",
                       "alpha_max", "beta_max", "gamma_max", "step", "gamma_step",
                       "resolution_step", "tolerance", "flops_tolerance"),
    "Data": ("dataset", "data_dir", "allow_upsampling"),
    "Budget": ("budget", "epochs", "train_size", "val_size", "batch_size", "resolution",
               "time_budget", "pruner"),
    "Statistics": ("repeats", "repeat_top", "confirm_top", "confirm_factor", "confirm_seeds",
                   "confirm_max_seeds", "ladder_rungs", "ladder_time", "seed"),
    "Where it trains": ("device", "devices", "workers", "workers_per_device", "threads"),
    "Runs and storage": ("out", "resume", "storage", "study", "keep_weights"),
    "Output": ("dry_run", "as_json", "quiet", "help"),
}


# --------------------------------------------------------------------------- option groups


@dataclass
class RunOptions:
    """The options search and compare share: what they train on and how much of it (base,
    dataset, budget and its overrides), and where and how they run (seed, counter, devices,
    run directory, storage, output)."""

    base: Base = "b0"
    dataset: Dataset = "synthetic"
    data_dir: DataDir = None
    budget: BudgetOpt = None
    epochs: Epochs = None
    train_size: TrainSize = None
    val_size: ValSize = None
    batch_size: BatchSize = None
    resolution: ProxyResolution = None
    allow_upsampling: AllowUpsampling = False

    seed: Seed = 0
    counter: CounterOpt = Counter.fvcore
    device: DeviceOpt = Device.auto
    workers: Workers = None
    devices: Devices = None
    workers_per_device: WorkersPerDevice = None
    threads: Threads = None
    out: RunDirOut = None
    resume: Resume = None
    storage: Storage = None
    quiet: Quiet = False
    dry_run: DryRun = False

    def preset(self) -> Budget:
        """The chosen budget before overrides (the dataset's default when none was given)."""
        return get_budget(self.budget.value if self.budget else default_budget(self.dataset))

    def chosen_budget(self, **more: object) -> Budget:
        """The chosen budget with its proxy base size set from the dataset's native size by
        the budget's rule, and every override given on the command line."""
        return self.preset().for_data(native_size(self.dataset)).override(
            epochs=self.epochs, train_size=self.train_size, val_size=self.val_size,
            batch_size=self.batch_size, resolution=self.resolution, **more)

    def data_dir_text(self) -> str | None:
        return str(self.data_dir) if self.data_dir else None

    def out_text(self) -> str | None:
        return str(self.out) if self.out else None

    def resume_text(self) -> str | None:
        return str(self.resume) if self.resume else None


GROUPS = (RunOptions,)


def grouped(command: Callable[..., None]) -> Callable[..., None]:
    """Let a command take whole option groups: a parameter annotated with a group class
    (``run: RunOptions``) stands for the group's fields, each a Typer option declared once
    above, and the command receives one group instance. Typer reads the signature this
    returns."""
    signature = inspect.signature(command, eval_str=True)
    parameters, groups = [], {}
    for param in signature.parameters.values():
        if param.annotation in GROUPS:
            group = param.annotation
            groups[param.name] = group
            hints = get_type_hints(group, include_extras=True)
            parameters += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                             default=f.default, annotation=hints[f.name])
                           for f in fields(group)]
        else:
            parameters.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def run(**values: Any) -> None:
        for name, group in groups.items():
            values[name] = group(**{f.name: values.pop(f.name) for f in fields(group)})
        command(**values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    del run.__wrapped__  # Typer must read the signature above, not the command's own
    return run


def settings_fields(run: RunOptions, budget: Budget) -> dict[str, Any]:
    """The :class:`~effscale.experiment.settings.RunSettings` fields the options give, for
    ``budget`` (its recipe included). ``--devices`` is checked here (an error on a machine
    without CUDA) and the workers counted by :func:`~effscale.experiment.workers.plan_workers`."""
    devices = parse_devices(run.devices, run.device.value)
    workers, per_device = plan_workers(run.workers, devices, run.workers_per_device,
                                       run.device.value, run.threads)
    return dict(
        base=run.base, dataset=run.dataset, budget=budget, recipe=budget_recipe(budget),
        data_dir=run.data_dir_text(), allow_upsampling=run.allow_upsampling, seed=run.seed,
        device=run.device.value, counter=run.counter.value, out=run.out_text(),
        storage=run.storage, workers=workers, devices=devices, workers_per_device=per_device,
        threads=run.threads)
