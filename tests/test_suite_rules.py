"""The suite's own rules: a test that starts a process is marked slow (tests/conftest.py), no
two test modules share a file name, and under pytest-xdist the slow tests go out first."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest


def test_an_unmarked_test_cannot_start_a_process() -> None:
    with pytest.raises(AssertionError, match=r"mark it @pytest\.mark\.slow"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.slow
def test_a_slow_test_can() -> None:
    assert subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                          text=True, check=True).stdout == "42\n"


def test_no_two_test_modules_share_a_name() -> None:
    """The test folders have no __init__.py, so pytest imports each module by its file name:
    a second tests/*/test_recorded.py failed the whole run at collection ("import file
    mismatch"), in CI and not in the runs of one folder."""
    names = Counter(p.name for p in Path(__file__).parent.rglob("*.py")
                    if p.name != "conftest.py")
    assert [name for name, count in names.items() if count > 1] == []


class _Item:
    """What the ordering hook reads of a collected test."""

    def __init__(self, name: str, slow: bool = False, fixtures: tuple[str, ...] = ()) -> None:
        self.name, self.slow, self.fixturenames = name, slow, ["tmp_path", *fixtures]

    def get_closest_marker(self, name: str) -> object:
        return object() if name == "slow" and self.slow else None


def test_under_xdist_slow_tests_are_handed_out_first(monkeypatch: pytest.MonkeyPatch,
                                                     pytestconfig: pytest.Config) -> None:
    """The first user of each shared run, the other slow tests, the shared runs' other users,
    then the fast tests, each in collection order; no reordering outside pytest-xdist."""
    # tests/conftest.py as pytest loaded it (``import conftest`` may find tests/report's)
    root = str(Path(__file__).with_name("conftest.py"))
    conftest = next(plugin for plugin in pytestconfig.pluginmanager.get_plugins()
                    if getattr(plugin, "__file__", None) == root)

    items = [_Item("fast1"), _Item("slow1", slow=True),
             _Item("report1", slow=True, fixtures=("smoke_search", "smoke_search_run")),
             _Item("fast2"), _Item("report2", slow=True, fixtures=("smoke_search_run",)),
             _Item("slow2", slow=True), _Item("cam1", slow=True, fixtures=("smoke_compare",))]
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    unchanged = list(items)
    conftest.pytest_collection_modifyitems(None, unchanged)  # type: ignore[arg-type]
    assert unchanged == items
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    conftest.pytest_collection_modifyitems(None, items)  # type: ignore[arg-type]
    assert [item.name for item in items] == [
        "report1", "cam1", "slow1", "slow2", "report2", "fast1", "fast2"]
