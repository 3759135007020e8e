"""The command line, driven through ``main_entry``: help, output, and one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from helpers import REPO

from effscale.cli.main import app
from effscale.model.config import load_config

Cli = Callable[..., tuple[int, str, str]]


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of a Typer group (typer vendors click: duck-type it)."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _command_paths(command, (*prefix, name))


COMMANDS = list(_command_paths(typer.main.get_command(app)))


def test_commands_are_registered() -> None:
    assert {("flops",), ("derive",)} <= set(COMMANDS)


def test_app_help(cli: Cli) -> None:
    code, out, err = cli("--help")
    assert code == 0, err
    assert out.startswith("Usage: effscale [OPTIONS] COMMAND")
    for (name, *_) in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_command_help(cli: Cli, command: tuple[str, ...]) -> None:
    code, out, err = cli(*command, "--help")
    assert code == 0, err
    assert out.startswith(f"Usage: effscale {' '.join(command)} [OPTIONS]")
    assert "--help" in out


def test_version(cli: Cli) -> None:
    code, out, _ = cli("--version")
    assert (code, out) == (0, "effscale 0.1.0\n")


# --------------------------------------------------------------------------- shared options

# Flags that genuinely mean different things in different commands: flag -> the aliases of
# effscale.cli.options that declare its meanings, each with its own help text. Any other flag
# that several commands share must read the same in all of them.
MEANINGS = {
    "--out": ("RunDirOut", "ReportOut", "ConfigDirOut"),  # a folder, of what differs
    "--checkpoint": ("CheckpointOut", "ImportedCheckpointOut"),  # train's; with the import's
    "--resolution": ("ProxyResolution", "TrainResolution"),  # flops: TrainResolution's text
    "--repeats": ("BaseRepeats", "ModelRepeats"),  # search: the base's seeds; compare: all
    # search: one target; compare: target(s), a curve; derive: values to write
    "--phi": ("PhiSearch", "PhiCurve", "Phis"),
    "--coefficients": ("CoefficientSets", "CoefficientsFile"),
    "--beta": ("BetaModeOpt", "BetaCoefficient"),  # search: solve|grid; derive: a float
    # derive: classifier outputs (or UNet classes); segment-demo: synthetic shapes + background
    "--num-classes": ("ClassifierClasses", "SegmentClasses"),
    "--runtime": ("RuntimesOpt", "RuntimeOpt"),  # cost: a comma list; search, compare, derive:
    # the one runtime latency is timed in
}


def _command(path: tuple[str, ...]) -> Any:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


def _flag(param: Any) -> str:
    """``--data-dir`` for an option, ``CONFIG`` for an argument."""
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return longs[0] if longs else param.name.upper()


def _help_by_flag() -> dict[str, dict[str, str]]:
    """flag -> {command: its help text}, over every command of the app."""
    found: dict[str, dict[str, str]] = {}
    for path in COMMANDS:
        for param in getattr(_command(path), "params", []):
            if getattr(param, "hidden", False):  # a retired spelling that only errors
                continue
            found.setdefault(_flag(param), {})[" ".join(path)] = param.help or ""
    return found


SHARED = {flag: helps for flag, helps in _help_by_flag().items() if len(helps) > 1}


def _drift(helps: dict[str, str]) -> str:
    return "; ".join(f"{command}: {text!r}" for command, text in sorted(helps.items()))


def test_a_shared_option_reads_the_same_in_every_command() -> None:
    drifted = {flag: _drift(helps) for flag, helps in SHARED.items()
               if flag not in MEANINGS and len(set(helps.values())) > 1}
    assert not drifted, "shared options whose help differs between commands (declare them " \
        "once in effscale/cli/options.py):\n" + "\n".join(f"{flag}: {why}"
                                                          for flag, why in drifted.items())


def _alias_help(name: str) -> str:
    from effscale.cli import options

    return typing.get_args(getattr(options, name))[1].help


@pytest.mark.parametrize("flag", list(MEANINGS))
def test_a_flag_with_several_meanings_has_one_text_per_meaning(flag: str) -> None:
    texts = {name: _alias_help(name) for name in MEANINGS[flag]}
    assert len(set(texts.values())) == len(texts), f"{flag}: two meanings with one text"
    used = SHARED.get(flag, {})
    assert len(set(used.values())) > 1, f"{flag} reads the same everywhere: drop it from MEANINGS"
    stray = {command: text for command, text in used.items() if text not in texts.values()}
    assert not stray, f"{flag}: help not from {', '.join(MEANINGS[flag])}: {_drift(stray)}"


def _annotation_infos(path: tuple[str, ...]) -> dict[str, Any]:
    """Parameter name -> the typer.Option/Argument object in its ``Annotated`` hint."""
    group, name = app, path[-1]
    for part in path[:-1]:  # a sub-app's command (weights import)
        group = next(g.typer_instance for g in group.registered_groups if g.name == part)
    info = next((c for c in group.registered_commands
                 if (c.name or c.callback.__name__.replace("_", "-")) == name), None)
    if info is None:  # a group (weights): no options of its own
        return {}
    hints = typing.get_type_hints(info.callback, include_extras=True)
    return {param: hint.__metadata__[0] for param, hint in hints.items()
            if hasattr(hint, "__metadata__")}


def test_shared_options_are_declared_once_in_the_options_module() -> None:
    from effscale.cli import options

    declared = {id(typing.get_args(alias)[1]) for alias in vars(options).values()
                if typing.get_origin(alias) is typing.Annotated}
    inline = []
    for path in COMMANDS:
        infos = _annotation_infos(path)
        for param in getattr(_command(path), "params", []):
            flag = _flag(param)
            if flag in SHARED and id(infos.get(param.name)) not in declared:
                inline.append(f"{' '.join(path)} {flag}")
    assert not inline, "shared options declared in a command instead of effscale.cli.options: " \
        + ", ".join(inline)


README = (REPO / "README.md").read_text()
# A help text quoted in the README: "- `--flag ...`: text" or "| `--flag ...` | text |".
_QUOTED = re.compile(r"^\s*(?:[-*]|\|)\s*`(--[a-z][a-z-]*)[^`]*`\s*[:|]\s*(.+?)\s*\|?\s*$",
                     re.MULTILINE)
# A command line in the README: `effscale CMD ...` up to a backtick, a comment or the line end
# (continuation lines joined).
_COMMAND_LINE = re.compile(r"\beffscale ([a-z][a-z-]*)([^`#\n]*)")


def test_the_readme_quotes_help_texts_as_the_cli_prints_them() -> None:
    helps = _help_by_flag()
    for flag, text in _QUOTED.findall(README):
        assert flag in helps, f"the README quotes {flag}, which no command has"
        assert text in helps[flag].values(), f"README on {flag}: {text!r}; the CLI: " \
            + _drift(helps[flag])


# Every documented command line (README.md and docs/, sub-commands included) is parsed
# against the CLI by tests/test_docs_site.py.


def test_search_help_lists_every_option_under_one_heading(cli: Cli) -> None:
    """search's 49 options were one flat list: now under the headings of SEARCH_PANELS, each
    option in exactly one of them."""
    from effscale.cli.options import SEARCH_PANELS

    code, out, err = cli("search", "--help")
    assert code == 0, err
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            current = sections.setdefault(line[:-1], [])
        elif current is not None and line.lstrip().startswith("-"):
            current.append(line.split()[0].rstrip(","))
    assert list(sections) == list(SEARCH_PANELS)
    params = [p for p in _command(("search",)).params if p.param_type_name == "option"]
    listed = {p.name for p in params} | {"help"}  # click adds -h/--help at parse time
    assert listed == {n for names in SEARCH_PANELS.values() for n in names}
    assert sum(len(names) for names in SEARCH_PANELS.values()) == len(listed) == 49
    assert sections["Output"][-1] == "-h"
    for param in params:
        where = [title for title, flags in sections.items() if param.opts[0] in flags]
        assert len(where) == 1, (param.opts[0], where)
    assert sections["Budget"][:2] == ["--budget", "--epochs"]


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.slow  # fvcore on B4 at 380 px
@pytest.mark.usefixtures("in_repo")
def test_flops_official_b4(cli: Cli) -> None:
    code, out, err = cli("flops", "configs/b4.yaml")
    assert code == 0, err
    assert "19,341,616" in out
    assert "4.394 G" in out  # conv+linear
    assert "4.493 G" in out  # fvcore's total with batch norm and pooling
    assert "stage7" in out and "classifier" in out


@pytest.mark.slow  # fvcore on full-size b0, twice (3 s)
@pytest.mark.usefixtures("in_repo")
def test_flops_json(cli: Cli) -> None:
    code, out, err = cli("flops", "configs/b0.yaml", "--resolution", "64", "--counter", "torch",
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"params", "flops", "flops_conv_linear", "activations", "resolution",
            "stages"} <= set(data)
    assert (data["params"], data["resolution"]) == (5_288_548, 64)
    assert data["flops_conv_linear"] == sum(s["flops_conv_linear"] for s in data["stages"])
    assert [s["name"] for s in data["stages"]][:2] == ["stem", "stage1"]


@pytest.mark.slow  # measures B0-B7 at full size (B7 at 592 px)
def test_derive_writes_loadable_configs(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "configs"
    code, stdout, err = cli("derive", "--phi", "0-7", "--out", out, "--counter", "torch")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [f"b{i}.yaml" for i in range(8)]
    configs = [load_config(out / f"b{i}.yaml") for i in range(8)]
    assert [c.resolution for c in configs] == [224, 256, 296, 344, 392, 448, 520, 592]
    assert "9,109,994" in stdout  # b1's parameters in the table
    assert stdout.strip().endswith(f"wrote 8 config(s) to {out}/")  # a result: stdout


def test_derive_warns_about_drift(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("derive", "--phi", "0", "--alpha", "1.5", "--beta", "1.5", "--gamma",
                       "1.5", "--out", tmp_path / "out", "--counter", "torch")
    assert code == 0
    assert "warning: alpha*beta^2*gamma^2 = 7.594" in err



def test_derive_shows_what_it_measures_on_a_terminal(cli: Cli, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 30: `derive --phi 7` measured for 35 s with nothing on the screen. On a terminal
    a spinner now names the size it is counting; off a terminal (pipes, logs) it prints
    nothing extra."""
    import io

    from rich.console import Console

    from effscale.cli import render

    screen = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=screen, force_terminal=True, width=120))
    code, _, err = cli("derive", "--phi", "0,1", "--out", tmp_path / "out", "--counter",
                       "torch")
    assert code == 0, err
    assert "measuring FLOPs at full size (torch): a model at 256 px" in screen.getvalue()



def test_flops_shows_what_it_counts_on_a_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    """`effscale flops configs/b4.yaml` traced for 18 s with nothing on the screen."""
    import io

    from rich.console import Console

    from effscale.cli import render

    screen = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=screen, force_terminal=True, width=120))
    code, _, err = cli("flops", "configs/b0.yaml", "--resolution", "64", "--counter", "torch")
    assert code == 0, err
    assert "counting b0's FLOPs at 64 px (torch)" in screen.getvalue()



@pytest.mark.parametrize("decided, label", [(True, "winner"), (False, "pick")])
def test_the_result_table_calls_only_a_decided_answer_the_winner(decided: bool, label: str
                                                                 ) -> None:
    """Issue 30: an undecided run's table still labelled its first row "winner" while the
    verdict below said UNDECIDED."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from effscale.cli.search import summary_table
    from effscale.experiment.rows import Row

    base = Row("base", {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}, accuracies=[0.8])
    top = Row("a1.00_b1.00_g1.400", {"alpha": 1.0, "beta": 1.0, "gamma": 1.4},
              accuracies=[0.88])
    selection = SimpleNamespace(base=base, winner=top, screening_pick=top, ranked=[top],
                                decided=decided)
    screen = io.StringIO()
    Console(file=screen, width=200).print(summary_table(selection))
    first = next(line for line in screen.getvalue().splitlines() if "a1.00_b1.00_g1.400" in line)
    assert first.split("│")[1].strip() == label


# --------------------------------------------------------------------------- bad input

VALID = (REPO / "configs" / "b0.yaml").read_text()

# (id, files to create in the working directory, arguments, a phrase the error must contain)
BAD_INPUT = [
    ("missing-file", {}, ["flops", "missing.yaml"], "missing.yaml: no such file"),
    ("directory", {"dir/x": ""}, ["flops", "dir"], "dir: is a directory"),
    ("empty-file", {"m.yaml": ""}, ["flops", "m.yaml"], "m.yaml: the document must be a mapping"),
    ("malformed-yaml", {"m.yaml": "name: [b0\n"}, ["flops", "m.yaml"], "malformed YAML at line"),
    ("unknown-key", {"m.yaml": VALID + "colour: red\n"}, ["flops", "m.yaml"],
     "m.yaml: unknown key colour"),
    ("wrong-type", {"m.yaml": VALID.replace("kernel: 5,", 'kernel: "5",', 1)}, ["flops", "m.yaml"],
     "m.yaml: stages[2].kernel must be an odd int >= 1, got the string '5'"),
    ("negative-resolution", {"m.yaml": VALID}, ["flops", "m.yaml", "--resolution", "-3"],
     "--resolution must be 8 or more, got -3"),
    ("bad-counter", {"m.yaml": VALID}, ["flops", "m.yaml", "--counter", "ptflops"],
     "--counter must be one of fvcore, torch, got ptflops"),
    ("unknown-option", {}, ["flops", "--bogus"], "No such option: --bogus"),
    ("unknown-command", {}, ["fly"], "No such command 'fly'"),
    ("unknown-base", {}, ["derive", "--base", "vgg", "--out", "out"], "unknown base 'vgg'"),
    ("alpha-below-1", {}, ["derive", "--alpha", "0.9", "--beta", "1.1", "--gamma", "1.1",
                           "--out", "out"], "--alpha must be a finite number >= 1, got 0.9"),
    ("phi-not-a-number", {}, ["derive", "--phi", "seven", "--out", "out"],
     "--phi must be a number"),
    ("alpha-without-beta", {}, ["derive", "--alpha", "1.2", "--out", "out"],
     "--alpha, --beta and --gamma go together"),
    ("coefficients-and-alpha", {"c.yaml": "alpha: 1.2\nbeta: 1.1\ngamma: 1.15\n"},
     ["derive", "--coefficients", "c.yaml", "--alpha", "1.2", "--out", "out"], "not both"),
    ("missing-coefficients", {}, ["derive", "--coefficients", "c.yaml", "--out", "out"],
     "c.yaml: no such file"),
    ("official-fraction", {}, ["derive", "--official", "--phi", "0.5", "--out", "out"],
     "--official covers phi 0-7"),
    ("official-b8", {}, ["derive", "--official", "--phi", "8", "--out", "out"],
     "--official covers phi 0-7"),
    ("search-time-not-a-duration", {}, ["search", "--dataset", "synthetic", "--time", "soon",
                                         "--out", "out"], "not a duration"),
    ("search-confirm-seeds-crossed", {}, ["search", "--dataset", "synthetic", "--confirm-seeds",
                                           "4", "--confirm-max-seeds", "3", "--out", "out"],
     "is below --confirm-seeds 4"),
    ("out-is-a-file", {"out": "x"}, ["derive", "--phi", "0", "--out", "out", "--counter", "torch"],
     "out: cannot create output directory"),
]


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("files", "argv", "phrase"), [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_exit_2(
    cli: Cli, files: dict[str, str], argv: list[str], phrase: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "work"
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    before = _tree(work)
    code, out, err = cli(*argv)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert phrase in lines[0]
    assert "Traceback" not in out + err
    assert _tree(work) == before  # nothing written, not even an empty out dir
    assert not (work / "out").is_dir()


@pytest.mark.slow  # measures every demo candidate at full size
def test_feasible_table_of_a_latency_search_names_its_cost_and_marks_uncertain_timings(
        ) -> None:
    """The table said "at equal full-size FLOPs" whatever the cost; it names the cost now,
    shows a left-out model's measured cost, and marks a ratio whose timing missed its spread
    bound with "!" (as `effscale cost` does); --dry-run --json carries the same notes."""
    from types import SimpleNamespace

    from helpers import NoisyLatency, demo_candidates
    from rich.console import Console

    from effscale.cli.search import feasible_document, feasible_table
    from effscale.experiment.budgets import budget_recipe, get_budget
    from effscale.model.config import ScalingRules
    from effscale.search.grid import budget_grid

    kept, skipped = demo_candidates(NoisyLatency())
    console = Console(width=250, record=True)
    console.print(feasible_table(kept, skipped, len(kept) - 1 + len(skipped)))
    text = console.export_text()
    assert "models at equal full-size latency from" in text and "FLOPs from" not in text
    # the same table heads a search at any --phi (-1 shrinks): it names no phi
    assert "distinct candidate models" in text and "φ=1" not in text
    marked = 0
    for c in kept:
        line = next(line for line in text.splitlines() if line.startswith(f"│ {c.key} "))
        assert (f"{c.cost_ratio:.3f} !" in line) == bool(c.cost_note), line
        marked += bool(c.cost_note)
    assert 0 < marked < len(kept)
    for s in skipped:
        if s.cost_ratio is not None:
            line = next(line for line in text.splitlines() if line.startswith(f"│ {s.key} "))
            assert f"{s.cost_ratio:.3f}" in line
    budget = get_budget("demo")
    settings = SimpleNamespace(base="b0", dataset="synthetic", counter="torch", cost="latency",
                               flops_tolerance=0.05, grid=budget_grid(budget),
                               rules=ScalingRules(), budget=budget, recipe=budget_recipe(budget))
    rows = {r["key"]: r for r in feasible_document(kept, skipped, settings)["candidates"]}
    assert all(rows[c.key]["cost_note"] == c.cost_note for c in kept)


@pytest.mark.parametrize(("text", "seconds"), [
    ("40m", 2400.0), ("1.5h", 5400.0), ("900s", 900.0), ("900", 900.0), (" 2M ", 120.0),
    ("none", None)])
def test_time_budget_reads_as_people_write_it(text: str, seconds: float | None) -> None:
    from effscale.cli.search import parse_duration

    assert parse_duration(text, "--time") == seconds


@pytest.mark.parametrize("text", ["0", "0m", "0.0h"])
def test_a_zero_time_budget_is_refused_in_one_line(cli: Cli, text: str) -> None:
    # "0" used to mean no limit, silently: a user who types 0 did not ask for no limit.
    code, out, err = cli("search", "--dataset", "synthetic", "--time", text, "--dry-run")
    assert code == 2 and out == ""
    assert err == (f"error: Invalid value for --time: {text!r}: must be positive ('none': "
                   "no limit)\n")


def test_the_search_says_what_each_stage_will_do_before_it_runs() -> None:
    from effscale.cli.search import stage_plan
    from effscale.experiment.budgets import get_budget

    quick = stage_plan(get_budget("quick"))
    assert quick.startswith("screening: every candidate once (3 epochs) chooses the winner")
    assert "the base and the screening's top 2 retrained for 6 epochs on fresh seeds, 3 to 4 " \
           "each" in quick and "55 min" in quick
    none = stage_plan(get_budget("quick").override(confirm_top=0))
    assert none.endswith("no confirmation stage, so the run cannot decide")


def test_the_command_list_is_each_commands_own_help() -> None:
    # `effscale --help` lists COMMANDS without importing the commands: each line must be
    # what the command's own help starts with.
    from effscale.cli.main import COMMANDS as LISTED

    group = typer.main.get_command(app)
    assert list(LISTED) == [path[0] for path in COMMANDS if len(path) == 1]
    for name, (_, line) in LISTED.items():
        assert group.commands[name].help.startswith(line), name


@pytest.mark.slow  # starts a fresh interpreter: a module already imported here would hide one
def test_help_imports_no_torch() -> None:
    # `effscale --help` took 2.4-3 s when every command (and torch) was imported to list them.
    code = ("import sys; from effscale.cli.main import main_entry; "
            "rc = [main_entry(a) for a in (['--help'], ['-h'], ['--version'])]; "
            "print(rc, sorted(m for m in ('torch', 'numpy', 'optuna') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[0, 0, 0] []"
    assert "Commands:" in result.stdout and "segment-demo" in result.stdout


@pytest.mark.slow  # starts two interpreters
@pytest.mark.parametrize("module", ["effscale.cli.main", "effscale.cli"])
def test_python_m_runs_the_command_line_once_without_a_warning(module: str) -> None:
    # effscale/cli/__init__.py imported effscale.cli.main, so `python -m effscale.cli.main`
    # (as the resilience tests start searches, and every --workers process spawned from such
    # a run) ran that module a second time, with runpy's "found in sys.modules" warning.
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module,
                             "--version"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("effscale ") and result.stderr == ""


@pytest.mark.parametrize("args", [["flops", "-h"], ["weights", "import", "-h"]])
def test_h_is_help_everywhere(cli: Cli, args: list[str]) -> None:
    code, out, _ = cli(*args)
    assert code == 0 and out.startswith(f"Usage: effscale {' '.join(args[:-1])} ")


DEMO_VERDICT = (
    "DECIDED: a1.00_b1.11_g1.300 beats the base by 12.75 points on 2 fresh confirmation seeds "
    "per model, unseen by the selection (95 % interval +8.15 to +17.35; adjusted p=0.002 over "
    "1 comparison(s) x 2 look(s)); confirmation seed std 1.43% on 2 degree(s) of freedom")


def test_the_verdict_reads_in_one_line_with_the_details_below() -> None:
    # It was one 470-character line: answer, interval, runner-up, seed std and procedure.
    from types import SimpleNamespace

    from effscale.cli.search import verdict_lines

    vs = SimpleNamespace(margin=0.1275, low=0.0815, high=0.1735, testable=True)
    decision = SimpleNamespace(vs_base=vs, winner=SimpleNamespace(candidate="a1.00_b1.11_g1.300"),
                               signal=True, decided=True, shrinking=False)
    lines = verdict_lines(DEMO_VERDICT, decision)
    assert lines[0] == ("verdict: DECIDED: a1.00_b1.11_g1.300, +12.75 points over the base "
                        "(95 % interval +8.15 to +17.35)")
    assert lines[1].startswith("  DECIDED: a1.00_b1.11_g1.300 beats the base by 12.75 points")
    assert lines[1].endswith("x 2 look(s))")  # the "; " inside the parentheses is no break
    assert lines[2:] == ["  confirmation seed std 1.43% on 2 degree(s) of freedom"]
    undecided = SimpleNamespace(**{**vars(decision), "signal": False, "decided": False})
    assert verdict_lines("UNDECIDED: x; y", undecided)[0].endswith("+17.35), within the noise")
    assert verdict_lines("NO SIGNAL: the base reached 17%; use a larger budget") == [
        "verdict: NO SIGNAL: the base reached 17%", "  use a larger budget"]
