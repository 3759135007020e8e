"""optuna-dashboard on a finished run's journal, as the README opens it: every trial is served
with its state, accuracy, α, β, γ and measured cost; the server is stopped."""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from effscale.experiment.storage import JOURNAL_NAME
from effscale.report.load import open_run_study

DASHBOARD = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) \
    or shutil.which("optuna-dashboard")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("optuna_dashboard") is None or DASHBOARD is None,
                       reason="optuna-dashboard is not installed (pip install -e '.[dashboard]')"),
]
# Never through a proxy from the environment: the server is on this machine.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str) -> Any:
    with OPENER.open(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(url: str, process: subprocess.Popen, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"optuna-dashboard exited: {process.stderr.read()[-2000:]}")
        try:
            return get(url)
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_serves_every_trial_with_its_attributes(smoke_search: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [DASHBOARD, str(smoke_search / JOURNAL_NAME), "--host", "127.0.0.1", "--port",
         str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        studies = wait_for(f"{base}/api/studies", process)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["effscale"]
        detail = get(f"{base}/api/studies/{studies[0]['study_id']}")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
    assert process.returncode is not None
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # stopped: nothing listens there any more

    trials = open_run_study(smoke_search).get_trials(deepcopy=False)
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == [t.number for t in trials] and len(trials) == 9  # 5 + 4 confirming
    for trial in trials:
        got = served[trial.number]
        assert got["state"] == trial.state.name.capitalize() == "Complete"
        assert got["values"] == [trial.value]  # the validation accuracy
        assert [p["param_external_value"] for p in got["params"]] == [trial.params["item"]]
        attrs = {a["key"]: a["value"] for a in got["user_attrs"]}
        for name in ("alpha", "beta", "gamma", "flops", "flops_ratio", "proxy_flops_ratio",
                     "resolution", "candidate", "train_seconds"):
            assert name in attrs, name
            assert str(trial.user_attrs[name]) == str(attrs[name]), name
