"""README.md and docs/: every ``effscale`` command line parses against the current CLI, every
relative link in the README exists, and the docs site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from effscale.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)")
INLINE = re.compile(r"`(effscale [^`]+)`")


def command_lines(text: str) -> list[str]:
    """``effscale …`` lines of shell blocks (continuations joined, prompts and trailing
    comments dropped) and inline ``effscale …`` code spans; output blocks are skipped."""
    found, fence, pending = [], None, ""
    for line in text.splitlines():
        if (match := FENCE.match(line.strip())) is not None:
            fence = None if fence is not None else match.group(1)
            continue
        if fence in ("bash", "console", "sh", "shell"):
            line = pending + line.strip().removeprefix("$ ")
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            for part in re.split(r"\s*(?:&&|;)\s*", line):
                if part.startswith("effscale "):
                    found.append(re.sub(r"\s+#.*$", "", part))
        elif fence is None:
            found += INLINE.findall(line)
    return found


ALL = [(page.relative_to(ROOT).as_posix(), line) for page in PAGES
       for line in command_lines(page.read_text())]


def test_the_pages_hold_commands() -> None:
    pages = {page for page, _ in ALL}
    assert "README.md" in pages and "docs/search.md" in pages
    assert len(ALL) >= 30


class Unparsed(Exception):
    """A documented command line the current CLI would reject."""


PLACEHOLDER_ERRORS = ("does not exist", "No such file")  # DIR, RUN, CKPT in the docs


def _check(param: Any, ctx: Any, value: str) -> None:
    """Convert ``value`` as the CLI would (types, choices, ranges); a path that does not
    exist here is a placeholder, not an error."""
    try:
        param.process_value(ctx, [value] if param.multiple else value)
    except Exception as exc:
        if not any(text in str(exc) for text in PLACEHOLDER_ERRORS):
            raise Unparsed(f"{param.opts[0] if param.opts else param.name} {value!r}: {exc}") \
                from exc


def _parse(args: list[str]) -> None:
    """Resolve the subcommand(s), then check every option name, every value (converted as
    the CLI converts it) and the number of positional arguments, without running anything."""
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="effscale")
    command, rest = group, list(args)
    while hasattr(command, "get_command"):
        while rest and rest[0] in ("--debug",):
            rest.pop(0)
        if not rest:
            raise Unparsed("no command")
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise Unparsed(f"no command {rest[0]!r}")
        ctx = sub.context_class(sub, info_name=rest[0], parent=ctx)
        command, rest = sub, rest[1:]
    options = {o: p for p in command.params for o in [*p.opts, *p.secondary_opts]
               if o.startswith("-")}
    arguments = [p for p in command.params if not any(o.startswith("-") for o in p.opts)]
    positional, i = [], 0
    while i < len(rest):
        token = rest[i]
        if token.startswith("-") and token != "-":
            name, has_value, value = token.partition("=")
            if name in ("--help", "--debug"):
                i += 1
                continue
            param = options.get(name)
            if param is None:
                raise Unparsed(f"no option {name!r}")
            if not param.is_flag and not param.count:
                if not has_value:
                    i += 1
                    if i >= len(rest):
                        raise Unparsed(f"{name} needs a value")
                    value = rest[i]
                _check(param, ctx, value)
        else:
            positional.append(token)
        i += 1
    if any(a.nargs < 0 for a in arguments):
        return
    if len(positional) > sum(a.nargs for a in arguments):
        raise Unparsed(f"unexpected arguments {positional}")
    for param, value in zip(arguments, positional):
        _check(param, ctx, value)


@pytest.mark.parametrize(("page", "line"), ALL, ids=[f"{p}:{c[:60]}" for p, c in ALL])
def test_every_documented_command_parses(page: str, line: str) -> None:
    try:
        _parse(shlex.split(line)[1:])
    except Unparsed as exc:
        pytest.fail(f"{page}: `{line}`: {exc}")


@pytest.mark.parametrize("args", [
    ["flops", "configs/b0.yaml", "--no-such-option"], ["search", "--budget", "huge"],
    ["no-such-command"], ["flops", "a.yaml", "b.yaml"], ["search", "--confirm-top", "two"],
    ["search", "--data-dir"],
])
def test_the_parser_rejects_what_the_cli_rejects(args: list[str]) -> None:
    with pytest.raises(Unparsed):
        _parse(args)


def test_the_parser_accepts_what_the_cli_accepts() -> None:
    _parse(["cost", "a.yaml", "b.yaml", "--no-cache"])
    _parse(["search", "--budget=quick", "--dry-run", "--data-dir", "DIR"])


def test_readme_links_exist() -> None:
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` exactly as a user runs it: no ``-q``, which would drop the
    warnings (a broken anchor among them) that --strict turns into a failure."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(config), "-d", str(site)],
                          capture_output=True, text=True, cwd=config.parent, timeout=300)


@pytest.mark.slow  # starts a subprocess (mkdocs)
def test_the_docs_site_builds_strict(tmp_path: Path) -> None:
    result = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "search" / "index.html").exists()


@pytest.mark.slow
def test_the_docs_build_fails_on_a_broken_anchor(tmp_path: Path) -> None:
    # The docs test used to pass -q, which hid this warning: method.md linked an anchor
    # benchmarks.md did not have, and a user's `mkdocs build --strict` aborted.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\n[gone](other.md#no-such-heading)\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())  # the project's settings
    config["nav"] = ["index.md", "other.md"]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 1
    assert "does not contain an anchor '#no-such-heading'" in result.stderr
