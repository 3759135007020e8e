"""Worker liveness: the heartbeat a running trial keeps, and how old it may grow.

Note:
    A worker is dead when its process is gone (same machine) or its heartbeat is older than
    ``GRACE_S`` (any machine: optuna's heartbeat on RDB storages, a system attribute on a
    journal).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

import optuna
from optuna.storages import BaseStorage

from effscale.experiment import optuna_adapter as adapter

# A running trial whose heartbeat is older than GRACE_S is taken to be from a dead worker.
HEARTBEAT_S = int(os.environ.get("EFFSCALE_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("EFFSCALE_GRACE_S", "60"))


def is_rdb(storage: BaseStorage) -> bool:
    """Whether optuna's own heartbeat covers ``storage`` (RDB); a journal needs ours.

    Asked of what a study holds, not of what was opened: ``optuna.create_study`` wraps an
    ``RDBStorage`` in a cache that is no ``RDBStorage`` itself but passes the heartbeat on, so
    the test is for a storage with a heartbeat interval set (optuna's own criterion).
    """
    interval = getattr(storage, "get_heartbeat_interval", None)
    return callable(interval) and interval() is not None


class Heartbeat:
    """A background thread that keeps the current trial's heartbeat fresh.

    On RDB storages it records optuna's heartbeat (what ``fail_stale_trials`` reads); on a
    journal it writes the ``effscale_heartbeat`` system attribute. ``watch_parent`` makes
    an extra ``--workers`` process interrupt itself when the search that started it is gone.
    """

    def __init__(self, study: optuna.Study, watch_parent: bool = False) -> None:
        self.study = study
        self.trial: optuna.Trial | None = None
        self._parent = os.getppid() if watch_parent else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="effscale-heartbeat",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def start(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.beat()

    def stop_beating(self) -> None:
        """The trial finished: no heartbeat until the next ``start``."""
        self.trial = None

    def beat(self) -> None:
        trial = self.trial
        if trial is None:
            return
        with contextlib.suppress(Exception):  # a finished trial or a blip: the next beat retries
            if is_rdb(adapter.storage_of(self.study)):
                adapter.record_heartbeat(self.study, trial)
            else:
                adapter.set_system_attr(self.study, trial, "effscale_heartbeat", time.time())

    def _run(self) -> None:
        import signal

        last = time.monotonic()
        while not self._stop.wait(1.0):
            if self._parent is not None and os.getppid() != self._parent:
                os.kill(os.getpid(), signal.SIGINT)  # our search was killed: release and stop
                return
            if time.monotonic() - last >= HEARTBEAT_S:
                last = time.monotonic()
                self.beat()
