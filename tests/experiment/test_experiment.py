"""The experiment engine (effscale.experiment): checks before slow work, the run directory,
and the Ctrl-C path search and compare now share."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from effscale.errors import EffscaleError
from effscale.experiment.rundir import (
    check_run_dir,
    check_writable_place,
    fingerprint,
    resolve_run_dir,
    write_settings,
)

Cli = Callable[..., tuple[int, str, str]]
SMOKE = ("--dataset", "synthetic", "--budget", "smoke", "--counter", "torch", "--threads", "1")
SLOW_WORK = ("measured FLOPs", "feasible set", "candidate models")


@pytest.mark.parametrize("command", ["search", "compare"])
def test_an_unwritable_out_is_refused_before_any_flops_are_counted(cli: Cli, tmp_path: Path,
                                                                    command: str) -> None:
    """Before 0.2 the run directory was checked after every candidate's FLOPs were counted,
    under a table of them."""
    (tmp_path / "file").write_text("")
    code, out, err = cli(command, *SMOKE, "--out", tmp_path / "file" / "run")
    assert code == 2  # a usage error, as every other bad --out (was 1)
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "cannot write" in last and err.count("error") == 1, err
    assert not any(word in err + out for word in SLOW_WORK), err


@pytest.mark.parametrize("command", ["search", "compare"])
def test_an_unreachable_storage_is_refused_before_any_flops_are_counted(cli: Cli,
                                                                         command: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = cli(command, *SMOKE, "--storage", "postgresql://u:p@127.0.0.1:1/x")
    assert code == 1
    assert "127.0.0.1:1" in err and "u:p" not in err
    assert not any(word in err + out for word in SLOW_WORK), err
    assert not [w for w in caught if "heartbeat_interval" in str(w.message)]


def test_a_resume_that_is_not_a_run_is_refused_first(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("compare", *SMOKE, "--resume", tmp_path)
    assert code == 2 and "not an effscale run" in err
    assert not any(word in err + out for word in SLOW_WORK), err


def test_writable_place_checks_create_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "run"
    check_writable_place(target)
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(EffscaleError, match="f is not a directory"):
        check_writable_place(tmp_path / "f" / "run")
    with pytest.raises(EffscaleError, match="exists and is not a directory"):
        check_writable_place(tmp_path / "f")


def test_run_dir_resolution_resumes_only_the_same_identity(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.chdir(tmp_path)
    identity = {"base": "b0", "seed": 0}
    default = Path("runs/new")
    assert resolve_run_dir(identity, out=None, resume=None, storage=None,
                           default=default) == (default, False)
    unfinished = Path("runs/old")
    unfinished.mkdir(parents=True)
    write_settings(unfinished, {"fingerprint": fingerprint(identity), "identity": identity},
                   "running")
    assert resolve_run_dir(identity, out=None, resume=None, storage=None,
                           default=default) == (unfinished, True)
    # Another identity starts afresh; a shared storage never picks up a local run.
    assert resolve_run_dir({**identity, "seed": 1}, out=None, resume=None, storage=None,
                           default=default) == (default, False)
    assert resolve_run_dir(identity, out=None, resume=None, storage="sqlite:///x.db",
                           default=default) == (default, False)
    with pytest.raises(EffscaleError, match=r"seed: 0 -> 1"):
        check_run_dir(unfinished, fingerprint({**identity, "seed": 1}), {**identity, "seed": 1})
