"""A run's directory: where it is, whether it resumes an earlier run, its settings file.

A run directory holds ``settings.yaml`` (the run's settings document, its identity and its
fingerprint, with a ``status``), the journal of its study unless ``--storage`` is given, and
the outputs. The fingerprint is a hash of the identity: the part of the settings that must
match for a run to continue another (data, budget, recipe, grid ... never the devices).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.experiment.queue import describe_differences

SETTINGS_FILE = "settings.yaml"
RUNS = Path("runs")


def fingerprint(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def stamped_run_dir(*parts: str) -> Path:
    """``runs/<date>-<time>-<parts joined by ->``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return RUNS / "-".join([stamp, *parts])


def find_resumable(runs: Path, run_fingerprint: str) -> Path | None:
    """The newest unfinished run under ``runs`` whose settings have this fingerprint."""
    if not runs.is_dir():
        return None
    matches = []
    for settings_file in runs.glob(f"*/{SETTINGS_FILE}"):
        try:
            doc = yaml.safe_load(settings_file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("fingerprint") == run_fingerprint \
                and doc.get("status") != "complete":
            matches.append(settings_file.parent)
    return max(matches, key=lambda p: p.stat().st_mtime) if matches else None


def check_run_dir(run_dir: Path, run_fingerprint: str, identity: dict[str, Any]) -> None:
    """Refuse a run dir that belongs to a different run."""
    settings_file = run_dir / SETTINGS_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise EffscaleError(f"{run_dir}: exists and is not a directory")
    if not settings_file.is_file():
        if run_dir.is_dir() and any(p for p in run_dir.iterdir() if not p.name.startswith(".")):
            raise EffscaleError(f"{run_dir}: not empty and not an effscale run; "
                                "choose another --out")
        return
    try:
        doc = yaml.safe_load(settings_file.read_text()) or {}
    except yaml.YAMLError:
        raise EffscaleError(f"{settings_file}: damaged settings file") from None
    if doc.get("fingerprint") != run_fingerprint:
        raise EffscaleError(
            f"{run_dir} belongs to a different run "
            f"({describe_differences(doc.get('identity') or {}, identity)}); "
            "choose another --out, or repeat the original settings to resume")


def resolve_run_dir(identity: dict[str, Any], *, out: str | None, resume: str | None,
                    storage: str | None, default: Path) -> tuple[Path, bool]:
    """``--resume`` / ``--out`` / the newest unfinished run with this identity / ``default``;
    and whether the run continues an earlier one."""
    run_fp = fingerprint(identity)
    if resume:
        run_dir = Path(resume)
        check_resume(run_dir)
        check_run_dir(run_dir, run_fp, identity)
        return run_dir, True
    if out:
        run_dir = Path(out)
        check_run_dir(run_dir, run_fp, identity)
        return run_dir, (run_dir / SETTINGS_FILE).is_file()
    if storage is None and (found := find_resumable(RUNS, run_fp)) is not None:
        return found, True
    return default, False


def check_resume(run_dir: Path) -> None:
    if not (run_dir / SETTINGS_FILE).is_file():
        raise EffscaleError(f"--resume {run_dir}: not an effscale run (no {SETTINGS_FILE})")


def check_writable_place(path: Path, flag: str = "--out") -> None:
    """Before any slow work, and for a dry run too: prove that ``path`` is (or can become) a
    directory this process can write a file in, by doing it: the missing directories are
    made, a probe file is written and removed, and the directories made are removed again,
    so nothing is left behind. A failure is a usage error (exit 2) in one line."""
    if path.exists() and not path.is_dir():
        raise EffscaleError(f"{flag} {path}: cannot write there: it exists and is not a "
                            "directory")
    nearest = path
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if not nearest.is_dir():
        raise EffscaleError(f"{flag} {path}: cannot write there: {nearest} is not a directory")
    made: list[Path] = []
    try:
        for directory in reversed([path, *path.parents][:len(path.parts) - len(nearest.parts)]):
            directory.mkdir()
            made.append(directory)
        probe = path / f".effscale-write-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EffscaleError(f"{flag} {path}: cannot write there "
                            f"({exc.strerror or exc.__class__.__name__})") from None
    finally:
        for directory in reversed(made):
            try:
                directory.rmdir()
            except OSError:
                pass  # something else wrote there meanwhile: it is not ours to remove


def ensure_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and prove a file can be written in it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".effscale-write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise EffscaleError(f"{run_dir}: cannot write the run directory ({exc.strerror})",
                            1) from None


def write_settings(run_dir: Path, doc: dict[str, Any], status: str) -> None:
    atomic.write_text(run_dir / SETTINGS_FILE,
                      yaml.safe_dump({**doc, "status": status}, sort_keys=False))


SETTINGS_ATTR = "settings"  # the study's copy of the settings document (settings.yaml's)


def run_settings(study: Any) -> dict[str, Any]:
    """The settings document a run stored in its study when it started (the one home of
    that key: the engine writes it, the search's stages and pages read it)."""
    settings = study.user_attrs.get(SETTINGS_ATTR)
    if settings is None:
        raise EffscaleError(f"study {study.study_name!r} holds no effscale settings: not a "
                            "run of this tool, or one that never started")
    return settings


def store_settings(study: Any, doc: dict[str, Any]) -> None:
    """Store ``doc`` (as JSON round-trips it) as the run's settings, once: a resumed run
    keeps the document it started with."""
    if SETTINGS_ATTR not in study.user_attrs:
        study.set_user_attr(SETTINGS_ATTR, json.loads(json.dumps(doc)))
