"""Plugins (effscale/plugins.py): a module named in $EFFSCALE_PLUGINS or declared as an
``effscale.plugins`` entry point is imported once per process, before the command line is
built, and its bases work like the built-in ones. Spawned ``--workers`` processes import
them too: tests/experiment/test_resilience.py runs three workers on the tests' tiny base,
which only its plugin registers."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from effscale import plugins
from effscale.errors import EffscaleError
from effscale.model import bases

PLUGIN = '''
from effscale.model.bases import get_base, register_base
register_base("{name}", lambda num_classes=1000: get_base("b0", num_classes).replace(
    name="{name}", family="{name}", resolution=64))
'''


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``fresh(name)`` writes plugin module ``name`` (registering base ``name``) on the path;
    the registry, the loaded list and sys.modules are restored afterwards."""
    monkeypatch.setattr(bases, "BASES", dict(bases.BASES))
    monkeypatch.setattr(plugins, "_loaded", [])
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(plugins.ENV, raising=False)
    written: list[str] = []

    def write(name: str, source: str | None = None) -> str:
        (tmp_path / f"{name}.py").write_text(source or PLUGIN.format(name=name))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_a_module_named_in_the_environment_registers_its_base_once(
        fresh: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ENV, f" {fresh('mynet_a')} , ,{fresh('mynet_b')},mynet_a")
    assert plugins.plugin_modules() == [(plugins.ENV, "mynet_a"), (plugins.ENV, "mynet_b")]
    assert plugins.load_plugins() == ("mynet_a", "mynet_b")
    assert bases.base_names()[-2:] == ("mynet_a", "mynet_b")
    assert bases.get_base("mynet_a", 10).resolution == 64
    def no_second_import(name: str) -> None:
        raise AssertionError(f"{name} imported again")

    monkeypatch.setattr(plugins.importlib, "import_module", no_second_import)
    assert plugins.load_plugins() == ("mynet_a", "mynet_b")  # each imported once


def test_an_installed_entry_point_is_found(fresh: Callable[..., str], tmp_path: Path) -> None:
    fresh("mynet_ep")
    info = tmp_path / "mynets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mynets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[effscale.plugins]\nmine = mynet_ep\n")
    assert ("entry point 'mine'", "mynet_ep") in plugins.plugin_modules()
    plugins.load_plugins()
    assert "mynet_ep" in bases.base_names()


def test_the_command_line_knows_a_plugins_base(fresh: Callable[..., str], cli: Callable,
                                               monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv(plugins.ENV, fresh("mynet_cli"))
    code, stdout, stderr = cli("derive", "--base", "mynet_cli", "--phi", "1", "--counter",
                               "torch", "--out", tmp_path / "configs")
    assert code == 0, stderr
    assert "mynet_cli-phi1" in stdout
    assert [p.name for p in (tmp_path / "configs").iterdir()] == ["mynet_cli-phi1.yaml"]


@pytest.mark.parametrize("source, kind", [(None, "ModuleNotFoundError"),
                                          ("raise RuntimeError('no GPU here')", "RuntimeError")])
def test_a_plugin_that_fails_to_import_is_one_line_naming_it(
        fresh: Callable[..., str], cli: Callable, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, source: str | None, kind: str) -> None:
    name = "not_installed" if source is None else fresh("broken", source)
    monkeypatch.setenv(plugins.ENV, name)
    with pytest.raises(EffscaleError, match=rf"plugin '{name}' \(from EFFSCALE_PLUGINS\) "
                                            rf"failed to import: {kind}"):
        plugins.load_plugins()
    code, stdout, stderr = cli("derive", "--phi", "1", "--out", tmp_path / "none")
    assert code == 2 and stdout == "" and not (tmp_path / "none").exists()
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: plugin '{name}' (from EFFSCALE_PLUGINS) failed to import: {kind}")
