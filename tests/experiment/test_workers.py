"""Extra worker processes: an error in one is one logged line and its exit code."""

from __future__ import annotations

import pytest


def test_a_worker_process_error_is_one_logged_line_and_its_exit_code(
        caplog: pytest.LogCaptureFixture) -> None:
    from effscale.errors import EffscaleError
    from effscale.experiment.workers import exit_worker

    with caplog.at_level("ERROR", logger="effscale"), pytest.raises(SystemExit) as stop:
        exit_worker(EffscaleError("storage went away"))
    assert stop.value.code == EffscaleError("x").exit_code
    [record] = caplog.records
    assert record.getMessage().endswith(": storage went away")
    assert record.getMessage().startswith("error: worker ")
