"""The suite's own rules: a test that starts a process is marked slow (tests/conftest.py), and
no two test modules share a file name."""

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
