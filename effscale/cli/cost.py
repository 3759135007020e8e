"""``effscale cost CONFIG...``: params, FLOPs, activations, training memory and latency on this
device, and how well FLOPs and activations predict the latency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from effscale.cli import options as opt
from effscale.cli import render
from effscale.experiment.stats import correlation
from effscale.model.config import load_config
from effscale.model.cost import (
    LATENCY_BATCH,
    CostOptions,
    Measured,
    device_fingerprint,
    measure_cost,
)
from effscale.model.cost_memory import Memory, training_memory
from effscale.model.cost_timing import SPREAD_SAMPLES, TimingPlan


def register(app: typer.Typer) -> None:
    app.command(name="cost", help=cost.__doc__)(cost)


def cost(
    configs: Annotated[list[Path], typer.Argument(help="Model config YAML files.")],
    device: opt.DeviceOpt = opt.Device.auto,
    threads: opt.DemoThreads = None,
    cost_batch: opt.CostBatch = None,
    counter: opt.CounterOpt = opt.Counter.fvcore,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls before timing.")] = 3,
    min_repeats: Annotated[int, typer.Option(min=1, help="Timed calls at least.")] = 7,
    max_repeats: Annotated[int, typer.Option(min=1, help="Timed calls at most.")] = 200,
    spread: Annotated[float, typer.Option(
        min=0.0001, help="Stop timing once IQR / median is at or below this.")] = 0.05,
    max_seconds: Annotated[float, typer.Option(
        min=0.001, help="Stop timing a config after this many seconds of timed calls, and "
                        "say the spread was not reached.")] = 30.0,
    memory: Annotated[bool, typer.Option(
        help="Measure the peak memory of one training step.")] = True,
    cache: Annotated[bool, typer.Option(
        help="Reuse latencies measured before on this device (same config, threads, torch).")
    ] = True,
    runtime: opt.RuntimesOpt = "torch",
    as_json: opt.AsJson = False,
) -> None:
    """One table of what each config costs at its own (full) resolution on this device.

    params, FLOPs (conv+linear multiply-adds), activations (outputs of conv and linear
    layers), the peak memory of one training step (SGD, at --cost-batch, default 1; on the
    CPU the peak resident memory of the step over what was resident before, plus weights and
    optimizer state; on CUDA torch.cuda.max_memory_allocated) and the latency of one forward
    pass at batch 1 (and at --cost-batch when it is above 1): warm-up calls, then timed calls
    until IQR / median <= --spread, or --max-seconds / --max-repeats, where it says it did
    not get there, in each --runtime (torch, onnxruntime: side by side). Latencies are cached
    by config content, device fingerprint and runtime. Under the
    table: Pearson's and Spearman's correlation of FLOPs and of activations with the latency
    across the rows (three or more configs).
    """
    if min_repeats > max_repeats:
        raise typer.BadParameter("must not exceed --max-repeats", param_hint="--min-repeats")
    plan = TimingPlan(warmup=warmup, min_repeats=min_repeats, max_repeats=max_repeats,
                      spread=spread, max_seconds=max_seconds)
    loaded = [(path, load_config(path)) for path in configs]
    fingerprint = device_fingerprint(device.value, threads)
    batches = [LATENCY_BATCH] + ([cost_batch] if cost_batch and cost_batch > 1 else [])
    runtimes = opt.runtime_list(runtime)
    rows = []
    for i, (path, config) in enumerate(loaded, 1):
        if not as_json:
            render.err.print(f"measuring {path} ({i}/{len(loaded)})", markup=False,
                             highlight=False)
        rows.append(_measure_row(path, config, device.value, threads, counter.value, plan,
                                 batches, (cost_batch or 1) if memory else None, cache,
                                 runtimes))
    doc = cost_document(rows, fingerprint, plan)
    if as_json:
        render.print_json(doc)
        return
    render.out.print(cost_table(doc))
    say = lambda text: render.out.print(text, markup=False, highlight=False)  # noqa: E731
    for line in correlation_lines(doc):
        say(line)
    for row in doc["rows"]:  # caveats: stderr, with the other messages
        for latency in row["latency"]:
            runtime = latency.get("runtime", "torch")
            where = "" if runtime == "torch" else f" in {runtime}"
            if latency["note"]:
                render.err.print(f"note: {row['path']} batch {latency['batch']}{where}: "
                                 f"{latency['note']}", markup=False, highlight=False)
            if latency["cached"]:
                render.err.print(f"note: {row['path']} batch {latency['batch']}{where}: cached "
                                 "(a settled timing from an earlier run on this device with "
                                 "these settings; --no-cache times it again)", markup=False,
                                 highlight=False)
    if memory and doc["rows"]:
        say(f"training memory: {doc['rows'][0]['train_memory']['method']}")
    say("device: " + ", ".join(f"{k} {v}" for k, v in fingerprint.items()))
    if runtimes != ["torch"]:
        say("runtimes: " + ", ".join(device_fingerprint(device.value, threads, r).get(
            "runtime", f"torch {fingerprint['torch']}") for r in runtimes))


def _measure_row(path: Path, config: Any, device: str, threads: int | None, counter: str,
                 plan: TimingPlan, batches: list[int], memory_batch: int | None,
                 cache: bool, runtimes: list[str] = ["torch"]) -> dict[str, Any]:  # noqa: B006
    counted = {name: measure_cost(config, name, CostOptions(counter=counter)).value
               for name in ("params", "flops", "activations")}
    latencies = [measure_cost(config, "latency", CostOptions(
        batch=batch, device=device, threads=threads, plan=plan, runtime=runtime),
        use_cache=cache) for runtime in runtimes for batch in batches]
    try:
        peak = training_memory(config, memory_batch, device, threads) if memory_batch else None
    except (RuntimeError, MemoryError, ValueError) as exc:  # too big, or 1x1 maps at batch 1
        peak = Memory(None, memory_batch or 1, f"not measured: {exc.__class__.__name__}: "
                                               f"{str(exc).splitlines()[0][:120]}")
    return {
        "path": str(path), "name": config.name, "resolution": config.resolution,
        "params": int(counted["params"]), "flops": int(counted["flops"]),
        "activations": int(counted["activations"]),
        "latency": [_latency_doc(m) for m in latencies],
        "train_memory": None if peak is None else {
            "bytes": peak.bytes, "batch": peak.batch, "method": peak.method},
    }


def _latency_doc(measured: Measured) -> dict[str, Any]:
    timing = measured.timing
    assert timing is not None
    return {"batch": measured.batch, "median_s": timing.median, "iqr_s": timing.iqr,
            "rel_spread": round(timing.rel_spread, 6), "repeats": timing.repeats,
            "warmup": timing.warmup, "converged": timing.converged, "note": timing.note(),
            "cached": measured.cached,
            "threads": (measured.device or {}).get("threads"),
            "runtime": (measured.device or {}).get("runtime", "torch").split(" ")[0]}


def cost_document(rows: list[dict[str, Any]], fingerprint: dict[str, Any], plan: TimingPlan
                  ) -> dict[str, Any]:
    """``cost --json``: the rows, the device, the timing plan, the correlations (batch 1)."""
    latency = [r["latency"][0]["median_s"] for r in rows]
    return {
        "device": fingerprint,
        "timing": {"warmup": plan.warmup, "min_repeats": plan.min_repeats,
                   "max_repeats": plan.max_repeats, "spread": plan.spread,
                   "max_seconds": plan.max_seconds, "statistic": "median; spread IQR/median"},
        "flops": "conv+linear multiply-adds at each config's own resolution",
        "rows": rows,
        "correlation": {
            "n": len(rows), "latency_batch": LATENCY_BATCH,
            "flops_latency": correlation([r["flops"] for r in rows], latency),
            "activations_latency": correlation([r["activations"] for r in rows], latency),
        },
    }


def cost_table(doc: dict[str, Any]) -> Table:
    rows = doc["rows"]
    first = rows[0] if rows else None
    runs = [(lat["batch"], lat.get("runtime", "torch")) for lat in first["latency"]] \
        if first else []
    several = len({runtime for _, runtime in runs}) > 1
    label = lambda batch, runtime: f"{runtime} b{batch}" if several \
        else f"latency b{batch}"  # noqa: E731
    columns = ["config", "px", "params", "GFLOPs", "activations", "train memory",
               label(*runs[0]) if runs else "latency b1", "± IQR",
               *(label(*run) for run in runs[1:]),
               "FLOPs ÷ first", "latency ÷ first"]
    table = render.data_table(
        f"what each config costs on this {doc['device']['device']} "
        f"({doc['device']['threads']} threads; full size, latency = median)", columns,
        text={"config"})
    for row in rows:
        lat = row["latency"]
        memory = row["train_memory"]
        memory_text = "" if memory is None else "n/a" if memory["bytes"] is None else \
            f"{memory['bytes'] / 2**20:,.0f} MiB (b{memory['batch']})"
        mark = "" if lat[0]["converged"] else " !"
        table.add_row(
            row["path"], str(row["resolution"]), f"{row['params'] / 1e6:.2f} M",
            f"{row['flops'] / 1e9:.3f}", f"{row['activations'] / 1e6:.2f} M", memory_text,
            f"{lat[0]['median_s'] * 1000:.2f} ms{mark}",
            f"{lat[0]['rel_spread']:.1%}" if lat[0]["repeats"] >= SPREAD_SAMPLES else "n/a",
            *(f"{m['median_s'] * 1000:.2f} ms" + ("" if m["converged"] else " !")
              for m in lat[1:]),
            f"{row['flops'] / first['flops']:.2f}",
            f"{lat[0]['median_s'] / first['latency'][0]['median_s']:.2f}")
    return table


def correlation_lines(doc: dict[str, Any]) -> list[str]:
    corr = doc["correlation"]
    if corr["n"] < 3:
        return [f"correlation with latency: needs 3 or more configs (got {corr['n']})"]
    lines = []
    for key, label in (("flops_latency", "FLOPs"), ("activations_latency", "activations")):
        c = corr[key]
        if c["pearson"] is None:
            lines.append(f"{label} vs latency (batch 1): undefined (a constant column)")
        else:
            lines.append(f"{label} vs latency (batch 1) over {corr['n']} configs: Pearson r = "
                         f"{c['pearson']:+.3f}, Spearman ρ = {c['spearman']:+.3f}")
    return lines
