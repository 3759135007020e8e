"""The run's optuna storage: a journal file (repaired, with an ``flock``) or a storage URL.

Note:
    The journal's write lock is an ``flock``, which the kernel drops with a killed writer, and
    a torn record a killed writer leaves is cut off before the journal is read.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage

from effscale import atomic
from effscale.errors import EffscaleError
from effscale.experiment.heartbeat import GRACE_S, HEARTBEAT_S
from effscale.experiment.queue import requeue_stale

JOURNAL_NAME = "study.journal"
CONNECT_TIMEOUT_S = 5


def repair_journal(path: Path) -> int:
    """Cut torn records (a writer killed mid-append) out of a journal file.

    A torn record is either the last line without its newline, or a line where a later
    append was glued onto a torn one (``{"op_c{"op_code": ...}``); the glued record is kept.
    Returns how many torn pieces were cut; they are kept beside the journal as ``.torn``.
    """
    if not path.is_file():
        return 0
    data = path.read_bytes()
    kept, torn = [], []
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        last = number == len(lines) - 1
        if last and not line:
            break
        if not last and _parses(line):
            kept.append(line)
            continue
        start = line.rfind(b'{"op_code"')
        if not last and start > 0 and _parses(line[start:]):
            kept.append(line[start:])
            torn.append(line[:start])
        else:
            torn.append(line)
    if not torn:
        return 0
    atomic.write_bytes(path.parent / (path.name + ".torn"), b"\n".join(torn) + b"\n")
    atomic.write_bytes(path, b"".join(line + b"\n" for line in kept))
    return len(torn)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


class FlockLock:
    """The journal's write lock as ``flock`` on a side file.

    optuna's own file locks are files that a killed writer leaves behind, stalling every
    other worker for their 30 s grace period; the kernel drops an ``flock`` with its process.
    ``JournalFileBackend`` only calls ``acquire()`` and ``release()`` on its lock object, so
    this needs no base class from optuna (whose lock base class is in a private module).
    """

    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._local = threading.local()

    def acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._local.fd = fd
        return True

    def release(self) -> None:
        fd = getattr(self._local, "fd", None)
        if fd is not None:
            self._local.fd = None
            os.close(fd)  # closing drops the lock


def open_storage(url: str | None, run_dir: Path,
                 notice: Callable[[str], None] | None = None) -> BaseStorage:
    """The run's storage: a journal file in ``run_dir`` (default) or any optuna storage URL.

    RDB storages (PostgreSQL, MySQL, SQLite) get optuna's heartbeat, recorded by
    :class:`~effscale.experiment.heartbeat.Heartbeat`, so that trials of a worker that died
    on any machine are failed and their items enqueued again. A server that cannot be
    reached fails within seconds.
    """
    if url is None:
        return _journal_storage(run_dir / JOURNAL_NAME, notice)
    url = _driver_url(url)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith(("postgresql", "mysql")):
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    for attempt in range(3):
        try:
            return _rdb_storage(url, engine_kwargs)
        except Exception as exc:
            # Machines starting at once race to create optuna's schema on an empty database;
            # the loser sees "already exists" and finds the schema there on a second try.
            if "already exists" in str(exc) and attempt < 2:
                time.sleep(1.0 + attempt)
                continue
            text = " ".join(str(exc).split())
            first = (text.split(" (Background on this error")[0] or exc.__class__.__name__)
            raise EffscaleError(f"cannot open storage {_redact(url)}: {first[:300]}",
                                1) from None
    raise AssertionError("unreachable")


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> BaseStorage:
    with warnings.catch_warnings():
        # The heartbeat is what recovers dead workers on RDB storages: not news to our users.
        warnings.filterwarnings("ignore", "Argument ``heartbeat_interval`` is an experimental",
                                ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S, heartbeat_stale_trial_callback=requeue_stale)


def _journal_storage(path: Path, notice: Callable[[str], None] | None) -> BaseStorage:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    lock = FlockLock(path.parent / ".journal.lock")
    if path.is_file():  # under the writers' lock: a record being appended is not torn
        lock.acquire()
        try:
            cut = repair_journal(path)
        finally:
            lock.release()
    else:
        cut = 0
    if cut and notice is not None:
        notice(f"{path}: cut {cut} torn record(s) left by a killed writer (kept in "
               f"{path.name}.torn)")
    try:
        backend = JournalFileBackend(str(path), lock_obj=lock)
        storage = JournalStorage(backend)
    except (ValueError, KeyError) as exc:
        raise EffscaleError(f"{path}: damaged study journal ({exc})", 1) from None
    except OSError as exc:
        raise EffscaleError(f"{path}: cannot open the study journal ({exc.strerror})",
                            1) from None
    return storage


def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 when that is what is
    installed, and say what to install when neither is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise EffscaleError(f"--storage {url!r} is not a URL (e.g. postgresql://user:pass@host/db)")
    if scheme not in ("postgresql", "postgres"):
        return url
    for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql")):
        if importlib.util.find_spec(module) is not None:
            return f"{dialect}://{rest}"
    raise EffscaleError("PostgreSQL storage needs a driver: pip install 'psycopg[binary]'", 1)


def _redact(url: str) -> str:
    """Hide a password in a storage URL before printing it."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
