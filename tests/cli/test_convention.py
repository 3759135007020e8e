"""One CLI convention (issue 21): results on stdout, messages on stderr; --json everywhere;
the same default for the same option; --debug anywhere; errors in effscale's own words."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO

Cli = Callable[..., tuple[int, str, str]]
B0 = str(REPO / "configs" / "b0.yaml")


# --------------------------------------------------------------------------- --debug


@pytest.mark.parametrize("argv", [["--debug", "flops", B0], ["flops", "--debug", B0],
                                  ["flops", B0, "--debug"]], ids=["before", "after", "last"])
def test_debug_is_accepted_before_or_after_the_command(cli: Cli, argv: list[str]) -> None:
    code, out, err = cli(*argv)
    assert code == 0, err
    assert "5,288,548" in out


def test_debug_after_the_command_shows_the_traceback(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("flops", tmp_path / "missing.yaml", "--debug")
    assert code == 2
    assert "Traceback" in err and err.splitlines()[-1].endswith("missing.yaml: no such file")


def test_run_with_debug_is_advice_that_works(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error says "run with --debug"; doing so after the command shows the
    traceback instead of failing to parse."""
    from effscale.cli import flops

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(flops, "count_flops", broken)
    code, _, err = cli("flops", B0)
    assert code == 1 and "run with --debug" in err and "Traceback" not in err
    code, _, err = cli("flops", B0, "--debug")
    assert code == 1 and "Traceback" in err and "RuntimeError: boom" in err


def test_debug_after_double_dash_is_an_argument() -> None:
    from effscale.cli.main import split_debug

    assert split_debug(["flops", "--", "--debug"]) == (["flops", "--", "--debug"], False)
    assert split_debug(["flops", "--debug", "x"]) == (["flops", "x"], True)


# --------------------------------------------------------------------------- error wording

WORDING = [
    (["flops", B0, "--resolution", "3"], "error: --resolution must be 8 or more, got 3"),
    (["flops", B0, "--resolution", "abc"], "error: --resolution must be a whole number, got abc"),
    (["flops", B0, "--counter", "foo"], "error: --counter must be one of fvcore, torch, got foo"),
    (["cam", "run", "--rows", "100"], "error: --rows must be 64 or less, got 100"),
    (["search", "--epochs", "0"], "error: --epochs must be 1 or more, got 0"),
    (["search", "--flops-tolerance", "x"], "error: --flops-tolerance must be a number, got x"),
    (["derive", "--num-classes", "0"], "error: --num-classes must be 1 or more, got 0"),
    (["segment-demo", B0, "--num-classes", "9"], "error: --num-classes must be 5 or less, got 9"),
]


@pytest.mark.parametrize(("argv", "line"), WORDING, ids=[" ".join(a[:1] + a[-2:-1])
                                                         for a, _ in WORDING])
def test_a_rejected_value_is_named_in_plain_words(cli: Cli, argv: list[str], line: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert err.splitlines() == [line]
    assert "Input should" not in err and "Value error" not in err


def test_unknown_dataset_says_any_image_format_is_read(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("train", B0, "--dataset", tmp_path / "nowhere")
    assert code == 2
    assert "*.png" not in err and "any format Pillow reads" in err


# --------------------------------------------------------------------------- one name per concept


def test_segment_demo_names_its_class_count_as_derive_does(cli: Cli,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """segment-demo said --classes where derive says --num-classes: one name now, the old one
    still accepted (hidden from the help, with a note)."""
    from effscale.cli import segment
    from effscale.errors import EffscaleError

    def stop(*_: object, num_classes: int, **__: object) -> None:
        raise EffscaleError(f"would train {num_classes} classes")

    monkeypatch.setattr(segment, "train_segmentation", stop)
    code, out, _ = cli("segment-demo", "--help")
    assert code == 0 and "--num-classes" in out
    assert "--classes" not in out.replace("--num-classes", "")
    code, _, err = cli("segment-demo", B0, "--num-classes", "3")
    lines = [line for line in err.splitlines() if line]  # the closed progress bar's newline
    assert (code, lines) == (2, ["error: would train 3 classes"])
    code, _, err = cli("segment-demo", B0, "--classes", "2")
    lines = [line for line in err.splitlines() if line]
    assert (code, lines) == (2, ["note: --classes is now --num-classes",
                                 "error: would train 2 classes"])


# --------------------------------------------------------------------------- defaults

# Shared flags whose default differs between commands on purpose; each command's help shows
# its own default, and the shared help text says why.
DEFAULTS_DIFFER = {
    "--study": "search/report vs compare: two studies can share one --storage",
    "--budget": "train: one quick training; search and compare: per dataset",
    "--base": "derive: the coefficients file's base",
    "--epochs": "segment-demo has no budget",
    "--batch-size": "segment-demo has no budget",
}


def test_the_same_option_has_the_same_default_everywhere() -> None:
    import typer
    from test_cli import MEANINGS

    from effscale.cli.main import app

    defaults: dict[str, dict[str, object]] = {}
    shows: dict[str, list[object]] = {}
    for name, command in typer.main.get_command(app).commands.items():
        for param in command.params:
            longs = [o for o in param.opts if o.startswith("--")]
            if longs:
                defaults.setdefault(longs[0], {})[name] = repr(param.default)
                shows.setdefault(longs[0], []).append(param.show_default)
    differ = {flag: by_command for flag, by_command in defaults.items()
              if len(set(by_command.values())) > 1 and flag not in MEANINGS}
    assert set(differ) <= set(DEFAULTS_DIFFER), differ
    for flag in differ:
        assert all(show is not False for show in shows[flag]), flag
    # fvcore, the project's FLOPs counter, on every command (cost said torch).
    assert set(defaults["--counter"].values()) == {"<Counter.fvcore: 'fvcore'>"}


def test_study_help_says_its_default_differs() -> None:
    from test_cli import SHARED

    assert all("effscale-compare for compare" in text for text in SHARED["--study"].values())


# --------------------------------------------------------------------------- derive and phi


def test_derive_by_default_leaves_the_configs_folder_alone(cli: Cli, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """`effscale derive --phi 8` in a checkout wrote configs/b8.yaml beside the shipped
    configs; it writes under runs/derive/ now."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "b0.yaml").write_text("shipped\n")
    code, _, err = cli("derive", "--phi", "8", "--counter", "torch")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "configs").iterdir()] == ["b0.yaml"]
    assert (tmp_path / "configs" / "b0.yaml").read_text() == "shipped\n"
    assert (tmp_path / "runs" / "derive" / "b8.yaml").is_file()


# --out is a folder in every command; train and weights import write one file: --checkpoint.
def test_out_is_a_folder_in_every_command(cli: Cli, tmp_path: Path) -> None:
    """Issue 30: `--out` was a folder for search/derive/report and a file for train and weights
    import. It is a folder wherever it is offered now; the two commands that write one
    checkpoint name it with --checkpoint, and an --out given to them is refused in one line
    that says so."""
    from test_cli import SHARED

    helps = SHARED["--out"]
    assert {"search", "report", "derive", "compare"} <= set(helps)
    assert not {"train", "weights import"} & set(helps)  # hidden there
    for command, text in helps.items():
        assert text.startswith("A folder"), f"{command} --out: {text!r}"
    assert {"train", "weights import"} <= set(SHARED["--checkpoint"])
    for argv in (["train", "configs/b0.yaml"],
                 ["weights", "import", "w.pt", "configs/b0.yaml"]):
        code, out, err = cli(*argv, "--out", tmp_path / "b0.pt")
        assert code == 2 and out == ""
        assert err.strip() == (f"error: --out names a folder in effscale; this command writes "
                               f"one file: give it as --checkpoint {tmp_path / 'b0.pt'}")
    getting_started = (REPO / "docs" / "getting-started.md").read_text()
    assert "`--out` is a folder in every command" in getting_started


def test_derive_help_says_where_it_writes(cli: Cli) -> None:
    from test_cli import SHARED

    assert "default: runs/derive/" in SHARED["--out"]["derive"]


@pytest.mark.parametrize("argv", [
    ["derive", "--phi", "100"], ["derive", "--phi", "0-12"], ["derive", "--phi", "-5"],
    ["derive", "--phi", "1,11"], ["compare", "--phi", "11", "--dry-run"],
    ["compare", "--phi", "nan", "--dry-run"], ["compare", "--phi", "-100", "--dry-run"]],
    ids=" ".join)
def test_phi_out_of_bounds_is_refused_at_once(cli: Cli, argv: list[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: --phi ") and "out of range: -4 <= φ <= 10" in line
    assert time.monotonic() - started < 5  # nothing built or measured
    assert list(tmp_path.iterdir()) == []


def test_phi_help_says_the_bounds() -> None:
    from test_cli import SHARED

    assert all("-4 <= φ <= 10" in text for text in SHARED["--phi"].values())


# --------------------------------------------------------------------------- preflight

SLOW_WORK = ("measured FLOPs", "feasible set", "candidate models")


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_search_out_that_is_a_file_fails_before_measuring(cli: Cli, tmp_path: Path,
                                                          dry_run: bool) -> None:
    """`search --dry-run --out FILE` measured every candidate and printed a table first."""
    (tmp_path / "file").write_text("x")
    code, out, err = cli("search", "--counter", "torch", "--out", tmp_path / "file",
                         *(["--dry-run"] if dry_run else []))
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == f"error: --out {tmp_path / 'file'}: cannot write there: " \
        "it exists and is not a directory"
    assert not any(word in err for word in SLOW_WORK), err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("argv", [["search"], ["search", "--dry-run"], ["compare"],
                                  ["compare", "--dry-run"]], ids=" ".join)
def test_an_out_that_cannot_be_created_fails_first_with_exit_2(cli: Cli, argv: list[str]
                                                                ) -> None:
    """/proc/effscale-run passed the old permission check (os.access) and failed after the
    measuring with exit 1: the preflight now tries to make it."""
    code, out, err = cli(*argv, "--counter", "torch", "--out", "/proc/effscale-run")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == "error: --out /proc/effscale-run: cannot write there " \
        "(No such file or directory)"
    assert not any(word in err for word in SLOW_WORK), err


def test_the_preflight_tries_the_directory_and_leaves_nothing(tmp_path: Path) -> None:
    from effscale.experiment.rundir import check_writable_place

    check_writable_place(tmp_path / "a" / "b" / "run")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep").write_text("")
    check_writable_place(tmp_path / "run")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["keep"]


# --------------------------------------------------------------------------- stdout / --json

RESULT_COMMANDS = ["flops", "cost", "derive", "search", "report", "compare", "cam", "train",
                   "segment-demo"]


@pytest.mark.parametrize("command", RESULT_COMMANDS)
def test_every_command_with_a_result_takes_json_with_one_help(command: str) -> None:
    import typer

    from effscale.cli.main import app
    from effscale.cli.options import AsJson

    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    assert "as_json" in params, f"{command}: no --json"
    assert params["as_json"].help == AsJson.__metadata__[0].help


def test_search_dry_run_prints_its_table_on_stdout(cli: Cli, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The feasible set is a dry run's result: it went to stderr, and stdout was empty."""
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("search", "--base", "tiny", "--dry-run", "--budget", "smoke",
                         "--counter", "torch")
    assert code == 0, err
    assert out.startswith("feasible set: ") and "│ base " in out
    assert "feasible set" not in err and "measured FLOPs of" in err
    assert err.splitlines()[-1].startswith("dry run: ")
    assert list(tmp_path.iterdir()) == []  # the preflight's probe left nothing behind


def test_search_dry_run_json_is_one_document_with_progress_on_stderr(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    code, out, err = cli("search", "--base", "tiny", "--dry-run", "--json", "--budget",
                         "smoke", "--counter", "torch")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["budget"] == "smoke" and doc["candidates"][0]["key"] == "base"
    assert "measured FLOPs of" in err


@pytest.mark.slow  # 20 s or more on 2 shared cores
def test_compare_dry_run_json_is_the_plan(cli: Cli, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.chdir(tmp_path)
    code, out, err = cli("compare", "--dry-run", "--json", "--budget", "smoke", "--counter",
                         "torch")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["trainings"] == 5
    assert [m["model"] for m in doc["models"]] == ["base", "compound", "depth", "width",
                                                   "resolution"]
    assert all(abs(m["flops_ratio_full"] - 2) < 0.25 for m in doc["models"][1:])
    assert err.splitlines()[-1].startswith("dry run: 5 trainings")


def test_derive_lists_the_written_files_on_stdout(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("derive", "--phi", "0", "--counter", "torch", "--out", tmp_path)
    assert code == 0, err
    assert out.splitlines()[-1] == f"wrote 1 config(s) to {tmp_path}/"
    assert "wrote" not in err


# --------------------------------------------------------------------------- help labels


def _help(cli: Cli, command: str) -> str:
    code, out, err = cli(command, "--help")
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", RESULT_COMMANDS)
def test_help_labels_read_as_words(cli: Cli, command: str) -> None:
    """Help showed {config}, <list[Path]>, <int range>, <str>: the parser's type names."""
    import re

    text = _help(cli, command)
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage, usage
    rows = [line for line in text.splitlines() if re.match(r"\s{2}(--|[A-Z])", line)]
    assert rows
    labels = [line for line in rows if re.search(r"<[a-z][^>]*>", line.split("  ")[1])]
    assert not labels, labels


def test_argument_labels_are_their_names(cli: Cli) -> None:
    assert _help(cli, "flops").startswith("Usage: effscale flops [OPTIONS] CONFIG\n")
    assert _help(cli, "cost").startswith("Usage: effscale cost [OPTIONS] CONFIGS...\n")
    assert "  --phi PHI " in _help(cli, "derive")
    assert "  --epochs N " in _help(cli, "train")


@pytest.mark.parametrize("command", ["search", "compare", "train"])
def test_budget_help_is_a_few_lines_pointing_at_the_docs(cli: Cli, command: str) -> None:
    from effscale.experiment.budgets import BUDGETS

    lines = _help(cli, command).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  --budget"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("  --"))
    text = " ".join(" ".join(lines[start:end]).split())
    assert end - start <= 10, text  # it was 25 lines
    assert "docs/budgets.md" in text and all(name in text for name in BUDGETS)
