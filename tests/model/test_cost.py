"""The cost registry: counted costs, timed costs with a fake timer (nothing is timed here), the
spread-based stopping rule, the cache key (config content + device fingerprint), correlations,
training memory, and ``effscale cost --json``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import REPO, FakeTimer

from effscale.cli import options
from effscale.errors import EffscaleError
from effscale.model import cost
from effscale.model.bases import get_base
from effscale.model.cost import (
    CostMeter,
    CostOptions,
    cache_key,
    cost_names,
    device_fingerprint,
    get_cost,
    measure_cost,
)
from effscale.model.cost_memory import training_memory
from effscale.model.cost_timing import TimingPlan, relative_spread, time_repeated
from effscale.model.flops import count_flops

SMALL = get_base("b0", 10).replace(resolution=32)  # builds fast; never run by a fake timer


class FakeClock:
    """Each reading one ``step`` later than the last."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


# --------------------------------------------------------------------------- the registry


def test_the_registry_offers_every_cost_and_the_cli_its_names() -> None:
    assert cost_names() == ("flops", "params", "activations", "latency", "train-step")
    assert [c.value for c in options.Cost] == list(cost_names())
    assert [get_cost(n).timed for n in cost_names()] == [False, False, False, True, True]
    assert get_cost("latency").match_tolerance == 0.05 and get_cost("flops").match_tolerance \
        == 0.03
    with pytest.raises(EffscaleError, match="unknown cost 'energy'"):
        get_cost("energy")


def test_counted_costs_are_the_complexity_figures() -> None:
    complexity = count_flops(SMALL, counter="torch")
    assert measure_cost(SMALL, "flops").value == complexity.flops_conv_linear
    assert measure_cost(SMALL, "params").value == complexity.params
    assert measure_cost(SMALL, "activations").value == complexity.activations
    assert measure_cost(SMALL, "flops").timing is None


def test_latency_is_the_median_of_the_fake_timings_after_warm_up() -> None:
    timer = FakeTimer([9.0, 9.0, 0.010, 0.012, 0.011, 0.010, 0.011])
    plan = TimingPlan(warmup=2, min_repeats=5, spread=0.5)
    measured = measure_cost(SMALL, "latency", CostOptions(plan=plan, threads=1), timer,
                            use_cache=False)
    assert measured.value == pytest.approx(0.011)  # the warm-up's 9 s are not counted
    assert measured.unit == "s" and measured.batch == 1
    assert measured.timing.samples == pytest.approx((0.010, 0.012, 0.011, 0.010, 0.011))
    assert measured.timing.converged and measured.note == ""
    assert measured.device["threads"] == 1 and measured.device["device"] == "cpu"
    assert timer.calls == 7


def test_train_step_runs_at_the_training_batch_with_a_fake_timer() -> None:
    timer = FakeTimer([0.5])
    plan = TimingPlan(warmup=0, min_repeats=3)
    measured = measure_cost(SMALL, "train-step", CostOptions(plan=plan), timer, use_cache=False)
    assert (measured.value, measured.batch) == (0.5, cost.TRAIN_BATCH)
    measured = measure_cost(SMALL, "train-step", CostOptions(batch=4, plan=plan), timer,
                            use_cache=False)
    assert measured.batch == 4


def test_cost_meter_measures_each_distinct_config_once() -> None:
    timer = FakeTimer([0.2])
    meter = CostMeter("latency", CostOptions(plan=TimingPlan(warmup=0, min_repeats=3)), timer,
                      use_cache=False)
    assert meter(SMALL) == 0.2 and meter(SMALL.replace(name="other")) == 0.2
    assert timer.calls == 3  # the renamed config is the same model
    assert meter.name == "latency" and meter.unit == "s" and meter.batch == 1


# --------------------------------------------------------------------------- stopping rule


def test_stops_as_soon_as_the_spread_is_within_the_bound() -> None:
    timer = FakeTimer([1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    timing = time_repeated(lambda: None, TimingPlan(warmup=0, min_repeats=3, spread=0.05),
                           timer)
    # IQR/median of the first n samples: 0.5, 0.67, 1.0, 0.75, 0.5, 0.25 for n = 3..8, then
    # 0.0 at n = 9: the first n whose spread is <= 5 %.
    assert timing.converged and timing.repeats == 9 and timing.median == 1.0
    assert relative_spread(timing.samples) <= 0.05


def test_gives_up_at_the_repeat_limit_and_says_so() -> None:
    timer = FakeTimer([1.0, 2.0] * 50)
    timing = time_repeated(lambda: None,
                           TimingPlan(warmup=1, min_repeats=5, max_repeats=12, spread=0.05),
                           timer)
    assert not timing.converged and timing.stopped_by == "repeat limit"
    assert timing.repeats == 12 and timer.calls == 13
    assert "could not get the spread (IQR/median) to 5% or below" in timing.note()
    assert "after 12 repeats" in timing.note() and "median is shown anyway" in timing.note()


def test_gives_up_at_the_time_limit_and_says_so() -> None:
    timer = FakeTimer([1.0, 3.0] * 100)
    timing = time_repeated(lambda: None,
                           TimingPlan(warmup=0, min_repeats=3, spread=0.01, max_seconds=10),
                           timer, clock=FakeClock(1.0))
    assert not timing.converged and timing.stopped_by == "time limit"
    assert timing.repeats < 200 and timing.seconds >= 10
    assert "(time limit)" in timing.note()


def test_fewer_than_three_calls_never_claim_a_spread() -> None:
    timing = time_repeated(lambda: None, TimingPlan(warmup=0, min_repeats=1, max_repeats=1),
                           FakeTimer([0.3]))
    assert not timing.converged and timing.median == 0.3
    assert "too few to measure a spread" in timing.note()


def test_a_bad_plan_is_refused() -> None:
    with pytest.raises(EffscaleError, match="timing plan"):
        TimingPlan(min_repeats=10, max_repeats=5)
    with pytest.raises(EffscaleError, match="must be > 0"):
        TimingPlan(spread=0)


# --------------------------------------------------------------------------- the cache


def test_cache_key_is_config_content_plus_device() -> None:
    device = device_fingerprint("cpu", 2)
    options = CostOptions()
    key = cache_key(SMALL, "latency", options, device)
    renamed = SMALL.replace(name="elsewhere", provenance=None)
    assert cache_key(renamed, "latency", options, device) == key
    assert cache_key(SMALL.replace(resolution=40), "latency", options, device) != key
    assert cache_key(SMALL, "latency", options, device_fingerprint("cpu", 1)) != key
    assert cache_key(SMALL, "latency", CostOptions(batch=8), device) != key
    assert cache_key(SMALL, "train-step", options, device) != key
    assert cache_key(SMALL, "latency", options, {**device, "torch": "0.0"}) != key
    assert {"cpu", "cores", "threads", "torch", "device"} <= set(device)


def test_cached_latency_is_reused_on_this_device_and_missed_with_other_threads(
        cache_dir: Path) -> None:
    plan = TimingPlan(warmup=0, min_repeats=3)
    first = measure_cost(SMALL, "latency", CostOptions(plan=plan, threads=1), FakeTimer([0.1]))
    assert len(list((cache_dir / "costs").glob("*.json"))) == 1
    again = FakeTimer([0.7])
    cached = measure_cost(SMALL.replace(name="x"), "latency", CostOptions(plan=plan, threads=1),
                          again)
    assert cached == replace(first, cached=True) and again.calls == 0 and not first.cached
    other = FakeTimer([0.7])
    missed = measure_cost(SMALL, "latency", CostOptions(plan=plan, threads=2), other)
    assert missed.value == 0.7 and other.calls == 3 and missed.device["threads"] == 2
    assert len(list((cache_dir / "costs").glob("*.json"))) == 2
    assert not list((cache_dir / "costs").glob("*effscale-tmp*"))


@pytest.mark.parametrize("change", [
    {"warmup": 0}, {"min_repeats": 3}, {"max_repeats": 20}, {"spread": 0.1},
    {"max_seconds": 3.0}])
def test_the_cache_key_holds_every_timing_setting(change: dict) -> None:
    # The key used to hold the spread bound alone: a `--max-seconds 3` timing was reused by
    # a plain `cost` that would have timed for up to 30 s.
    device = device_fingerprint("cpu", 1)
    key = cache_key(SMALL, "latency", CostOptions(), device)
    assert cache_key(SMALL, "latency", CostOptions(plan=TimingPlan(**change)), device) != key


def test_an_unsettled_timing_is_not_cached(cache_dir: Path) -> None:
    plan = TimingPlan(warmup=0, min_repeats=3, max_repeats=4)
    noisy = measure_cost(SMALL, "latency", CostOptions(plan=plan), FakeTimer([0.1, 0.2, 0.4]))
    assert not noisy.timing.converged  # 4 repeats, 70 % spread: the repeat limit stopped it
    assert not list((cache_dir / "costs").glob("*.json"))
    again = FakeTimer([0.3])
    retimed = measure_cost(SMALL, "latency", CostOptions(plan=plan), again)
    assert again.calls == 3 and retimed.value == 0.3 and not retimed.cached
    assert len(list((cache_dir / "costs").glob("*.json"))) == 1  # settled: stored


def test_the_cost_command_says_cached(cli: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost, "cpu_timer", FakeTimer([0.02]))
    args = ("cost", REPO / "configs" / "b0.yaml", "--device", "cpu", "--warmup", "0",
            "--min-repeats", "3", "--max-repeats", "3", "--no-memory", "--threads", "1")
    code, _, err = cli(*args)
    assert code == 0 and "cached" not in err
    code, out, err = cli(*args)
    assert code == 0
    assert "configs/b0.yaml batch 1: cached (a settled timing from an earlier run" in err
    code, out, _ = cli(*args, "--json")
    assert json.loads(out)["rows"][0]["latency"][0]["cached"] is True


def test_a_damaged_cache_entry_is_measured_again(cache_dir: Path) -> None:
    plan = TimingPlan(warmup=0, min_repeats=3)
    measure_cost(SMALL, "latency", CostOptions(plan=plan), FakeTimer([0.1]))
    (entry,) = (cache_dir / "costs").glob("*.json")
    entry.write_text("{not json")
    assert measure_cost(SMALL, "latency", CostOptions(plan=plan), FakeTimer([0.4])).value == 0.4


# --------------------------------------------------------------------------- the rest


def test_training_memory_of_a_small_model() -> None:
    memory = training_memory(SMALL, batch=2)
    weights = 4 * count_flops(SMALL, counter="torch").params
    assert memory.batch == 2 and memory.method
    if memory.bytes is not None:  # Linux with /proc/self/clear_refs
        assert memory.bytes >= 2 * weights  # weights and momentum at least
        assert "VmHWM" in memory.method


def test_cost_command_json_on_b0_with_a_fake_timer(cli: Callable,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    timer = FakeTimer([0.02])
    monkeypatch.setattr(cost, "cpu_timer", timer)
    code, out, err = cli("cost", REPO / "configs" / "b0.yaml", "--json", "--device", "cpu",
                         "--warmup", "0", "--min-repeats", "3", "--max-repeats", "3",
                         "--no-memory", "--threads", "1")
    assert code == 0, err
    doc = json.loads(out)
    (row,) = doc["rows"]
    assert (row["name"], row["resolution"], row["params"]) == ("b0", 224, 5_288_548)
    assert row["flops"] == 385_814_752 and row["activations"] == 6_748_036
    (latency,) = row["latency"]
    assert latency["median_s"] == 0.02 and latency["repeats"] == 3 and latency["converged"]
    assert latency["batch"] == 1 and latency["threads"] == 1 and row["train_memory"] is None
    assert doc["device"]["threads"] == 1 and doc["correlation"]["n"] == 1
    assert doc["correlation"]["flops_latency"] == {"pearson": None, "spearman": None}
    assert timer.calls == 3


def test_cost_command_table_with_a_second_batch(cli: Callable, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    monkeypatch.setattr(cost, "cpu_timer", FakeTimer([0.02]))
    monkeypatch.chdir(REPO)  # short paths: the table's width does not depend on the checkout
    configs = [Path("configs") / name for name in ("b0.yaml", "mobilenetv2.yaml")]
    code, out, err = cli("cost", *configs, "--device", "cpu", "--warmup", "0",
                         "--min-repeats", "3", "--max-repeats", "3", "--no-memory",
                         "--cost-batch", "4")
    assert code == 0, err
    assert "latency b4" in out and "mobilenetv2" in out
    assert "needs 3 or more configs (got 2)" in out


def test_cost_table_folds_a_long_config_path_instead_of_cutting_it(
        cli: Callable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A config path too long for the table was cut to "/tmp/…/b0.…": the row no longer said
    which file it was. The path column folds now (the widest column, so it gives way first),
    and every figure stays whole."""
    monkeypatch.setattr(cost, "cpu_timer", FakeTimer([0.02]))
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "configs"
    deep.mkdir(parents=True)
    config = deep / "b0.yaml"
    config.write_text((REPO / "configs" / "b0.yaml").read_text())
    code, out, err = cli("cost", config, config, "--device", "cpu", "--warmup", "0",
                         "--min-repeats", "3", "--max-repeats", "3", "--no-memory",
                         "--cost-batch", "4")
    assert code == 0, err
    assert "…" not in out
    body = [line for line in out.splitlines() if line.startswith("│ ")]
    assert "".join(line.split("│")[1].strip() for line in body) == str(config) * 2
    assert out.count("20.00 ms") == 4  # two configs × two batches, none cut


def test_cost_notes_name_the_config_file_not_its_name_field(
        cli: Callable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every config `derive --phi 1` writes is named b1: a note that said "b1 batch 1" could
    not tell the reader which row of the table it was about."""
    seconds = itertools.cycle([0.01, 0.03])  # a spread that never settles
    monkeypatch.setattr(cost, "cpu_timer", lambda fn: next(seconds))
    paths = []
    for folder in ("wide", "deep"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "b1.yaml")
        paths[-1].write_text((REPO / "configs" / "b0.yaml").read_text())
    code, out, err = cli("cost", *paths, "--device", "cpu", "--warmup", "0", "--min-repeats",
                         "8", "--max-repeats", "8", "--no-memory", "--no-cache")
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: ")]  # caveats: stderr
    assert "note: " not in out
    assert [n.split(" batch 1:")[0] for n in notes] == [f"note: {p}" for p in paths]
