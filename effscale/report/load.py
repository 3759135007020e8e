"""A run as the report reads it: its directory, its settings document and its study.

The study is the truth (a report is built from it while the run is going, from any
machine); the files in the run directory add what the study does not hold (plots written by
other commands, the CAM grid).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from effscale.errors import EffscaleError
from effscale.experiment.queue import progress_counts
from effscale.experiment.rundir import SETTINGS_FILE
from effscale.experiment.storage import JOURNAL_NAME, open_storage
from effscale.search.answer import SearchAnswer

DEFAULT_STUDIES = ("effscale", "effscale-compare")  # search's and compare's default names


@dataclass
class RunData:
    """A run: where it lives, its settings document, its study and how far it got."""

    run_dir: Path
    settings: dict[str, Any]
    study: optuna.Study
    counts: dict[str, int]
    status: str  # settings.yaml's status: "running", "complete" or "unknown"
    answer: SearchAnswer | None = None  # a search's, when its outputs were just written
    outputs_dir: Path | None = None  # where they were written (default: the run directory)

    @property
    def kind(self) -> str:
        """``compare`` or ``search``."""
        return "compare" if self.settings.get("command") == "compare" else "search"

    @property
    def finished(self) -> bool:
        """Every work item settled (so nothing below changes unless the run is extended)."""
        return self.counts["items"] > 0 and self.counts["settled"] == self.counts["items"]

    def file(self, name: str) -> Path | None:
        path = self.run_dir / name
        return path if path.is_file() else None

    def output(self, name: str) -> Path | None:
        """A file the search's outputs wrote (``report RUN --out DIR`` writes them into
        DIR, not into the run), or None."""
        path = (self.outputs_dir or self.run_dir) / name
        return path if path.is_file() else None


def read_settings_file(run_dir: Path) -> dict[str, Any]:
    """``RUN/settings.yaml`` as a mapping ({} when missing or damaged)."""
    try:
        doc = yaml.safe_load((run_dir / SETTINGS_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def open_run_study(run_dir: Path | None, storage: str | None = None,
                   study_name: str | None = None,
                   notice: Callable[[str], None] | None = None) -> optuna.Study:
    """The study of a run: in ``run_dir``'s journal, or ``study_name`` in ``storage``.

    When ``study_name`` is missing or one of the default names and the storage holds exactly
    one study, that one is taken (a compare run's study is ``effscale-compare``).
    """
    if storage is None:
        if run_dir is None:
            raise EffscaleError("give a run directory or --storage URL --study NAME")
        if not (run_dir / JOURNAL_NAME).is_file():
            raise EffscaleError(f"{run_dir}: its study is not in the run directory (no "
                                f"{JOURNAL_NAME}); give the run's --storage URL and --study NAME")
    backend = open_storage(storage, run_dir or Path("."), notice)
    names = optuna.study.get_all_study_names(backend)
    if study_name not in names:
        if (study_name is None or study_name in DEFAULT_STUDIES) and len(names) == 1:
            study_name = names[0]
        else:
            raise EffscaleError(f"no study named {study_name!r} in that storage (it holds: "
                                f"{', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=backend)


def load_run(run_dir: Path, study: optuna.Study, answer: SearchAnswer | None = None,
             outputs_dir: Path | None = None) -> RunData:
    """The run in ``run_dir`` with its study (settings from the study when the directory
    has none, as for a report of a shared storage written elsewhere) and, for a search whose
    outputs were just written (into ``outputs_dir``, default ``run_dir``), the answer they
    were written from (the page shows the same, and their plots)."""
    doc = read_settings_file(run_dir)
    settings = study.user_attrs.get("settings") or doc
    if not settings:
        raise EffscaleError(f"study {study.study_name!r} was not written by effscale")
    status = str(doc.get("status", "unknown"))
    return RunData(Path(run_dir), settings, study, progress_counts(study), status, answer,
                   Path(outputs_dir) if outputs_dir is not None else None)
