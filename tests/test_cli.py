"""The command line, driven through ``main_entry``: help, output, and one-line errors."""

from __future__ import annotations

import json
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


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


@pytest.mark.usefixtures("in_repo")
def test_flops_official_b4(cli: Cli) -> None:
    code, out, err = cli("flops", "configs/official/b4.yaml")
    assert code == 0, err
    assert "19,341,616" in out
    assert "4.394 G" in out  # conv+linear
    assert "4.493 G" in out  # fvcore's total with batch norm and pooling
    assert "stage7" in out and "classifier" in out


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


def test_derive_writes_loadable_configs(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "configs"
    code, stdout, err = cli("derive", "--phi", "0-7", "--out", out, "--counter", "torch")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [f"b{i}.yaml" for i in range(8)]
    configs = [load_config(out / f"b{i}.yaml") for i in range(8)]
    assert [c.resolution for c in configs] == [224, 256, 296, 344, 392, 448, 520, 592]
    assert "9,109,994" in stdout  # b1's parameters in the table
    assert err.strip().endswith(f"wrote 8 config(s) to {out}/")


def test_derive_warns_about_drift(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("derive", "--phi", "0", "--alpha", "1.5", "--beta", "1.5", "--gamma",
                       "1.5", "--out", tmp_path / "out", "--counter", "torch")
    assert code == 0
    assert "warning: alpha*beta^2*gamma^2 = 7.594" in err


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
     "Invalid value for '--resolution'"),
    ("bad-counter", {"m.yaml": VALID}, ["flops", "m.yaml", "--counter", "ptflops"],
     "Invalid value for '--counter'"),
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
