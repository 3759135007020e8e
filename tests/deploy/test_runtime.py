"""Latency in a runtime: onnxruntime timings beside torch's, cached apart; torch's cache keys
and fingerprints are as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import needs_modules

from effscale.model.config import ModelConfig, Stage, save_config
from effscale.model.cost import (
    CostOptions,
    cache_key,
    cost_identity,
    device_fingerprint,
    measure_cost,
)
from effscale.model.cost_timing import TimingPlan

pytestmark = needs_modules("onnxruntime", "onnxscript")

TINY = ModelConfig(
    name="tiny", family="test", num_classes=3, resolution=32, dropout=0.0, drop_path_rate=0.0,
    activation="relu", stem_channels=8, stem_kernel=3, stem_stride=2, stem_pool=False,
    head_channels=0, stages=(Stage("mbconv", 1, 3, 2, 2.0, 16, 0.25),))
QUICK = TimingPlan(warmup=0, min_repeats=3, max_repeats=3)


def fake_timer(fn: object) -> float:
    fn()  # type: ignore[operator]
    return 0.001


def test_torch_fingerprints_are_unchanged_and_onnxruntime_is_keyed_apart() -> None:
    torch_fp = device_fingerprint("cpu", 1)
    assert "runtime" not in torch_fp and torch_fp == device_fingerprint("cpu", 1, "torch")
    ort_fp = device_fingerprint("cpu", 1, "onnxruntime")
    assert ort_fp["runtime"].startswith("onnxruntime ")
    keys = {runtime: cache_key(TINY, "latency", CostOptions(runtime=runtime),
                               device_fingerprint("cpu", None, runtime))
            for runtime in ("torch", "onnxruntime")}
    assert keys["torch"] != keys["onnxruntime"]
    identity = cost_identity("latency", CostOptions(runtime="onnxruntime"))
    assert identity["device"]["runtime"] == ort_fp["runtime"]
    # train-step trains in torch whatever the runtime
    assert "runtime" not in cost_identity("train-step", CostOptions(runtime="onnxruntime"))[
        "device"]


@pytest.mark.slow  # exports to ONNX (8 s)
def test_latency_runs_the_exported_model_in_onnxruntime(cache_dir: Path) -> None:
    options = CostOptions(runtime="onnxruntime", threads=1, plan=QUICK)
    measured = measure_cost(TINY, "latency", options, timer=fake_timer)
    assert measured.value == 0.001 and measured.device["runtime"].startswith("onnxruntime")
    again = measure_cost(TINY, "latency", options, timer=lambda fn: 1.0)  # from the cache
    assert again.value == 0.001
    fresh = measure_cost(TINY, "latency", CostOptions(threads=1, plan=QUICK),
                         timer=lambda fn: 0.5)
    assert fresh.value == 0.5  # torch's is its own entry


@pytest.mark.slow  # exports to ONNX (8 s)
def test_cost_shows_the_runtimes_side_by_side(cli, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    save_config(TINY, config)
    code, out, err = cli("cost", config, "--device", "cpu", "--threads", "1", "--no-memory",
                         "--warmup", "0", "--min-repeats", "3", "--max-repeats", "3",
                         "--runtime", "torch,onnxruntime", "--json")
    assert code == 0, err
    latency = json.loads(out)["rows"][0]["latency"]
    assert [(m["runtime"], m["batch"]) for m in latency] == [("torch", 1), ("onnxruntime", 1)]
    code, out, err = cli("cost", config, "--device", "cpu", "--no-memory", "--warmup", "0",
                         "--min-repeats", "3", "--max-repeats", "3",
                         "--runtime", "torch,onnxruntime")
    assert code == 0, err
    assert "torch b1" in out and "onnxruntime b1" in out and "runtimes: torch " in out


def test_an_unknown_runtime_is_one_line(cli, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    save_config(TINY, config)
    code, out, err = cli("cost", config, "--runtime", "torch,tensorrt")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "'tensorrt': not a runtime (valid: torch, onnxruntime)" in err
