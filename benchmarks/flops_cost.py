"""Time and peak memory of `effscale flops` on the official b0, b4 and b7, each in a fresh
process (honest peak RSS), then the same call again (served from the disk cache).

    python benchmarks/flops_cost.py            # b0, b4, b7 with fvcore and torch
    python benchmarks/flops_cost.py --quick    # b0 and b7, fvcore only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(config: str, counter: str, env: dict[str, str]) -> tuple[float, float, int]:
    """(seconds inside the command, peak RSS in MB, exit code) of one `effscale flops` in a
    fresh process (interpreter start-up and imports are reported once, separately)."""
    code = ("import resource, sys, time; from effscale.cli.main import main_entry; "
            "t = time.perf_counter(); "
            f"rc = main_entry(['flops', {config!r}, '--counter', {counter!r}, '--json']); "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
            " file=sys.stderr); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        return 0.0, 0.0, done.returncode
    seconds, peak = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(peak) / 1024, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    configs = ("b0", "b7") if args.quick else ("b0", "b4", "b7")
    counters = ("fvcore",) if args.quick else ("fvcore", "torch")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "EFFSCALE_CACHE_DIR": cache}
        start = time.perf_counter()
        idle = subprocess.run([sys.executable, "-c", "import resource, effscale.cli.main; print("
                               "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                              env=env, capture_output=True, text=True)
        startup = time.perf_counter() - start
        base_rss = int(idle.stdout.strip()) / 1024
        print(f"python + import effscale: {startup:.2f} s (not in the times below), "
              f"{base_rss:.0f} MB (in the peaks below)")
        print(f"{'config':<8} {'counter':<8} {'first s':>8} {'peak MB':>8} {'cached s':>9} "
              f"{'cached MB':>9}")
        for name in configs:
            for counter in counters:
                path = f"configs/{name}.yaml"
                first = run(path, counter, env)
                again = run(path, counter, env)
                print(f"{name:<8} {counter:<8} {first[0]:>8.2f} {first[1]:>8.0f} "
                      f"{again[0]:>9.2f} {again[1]:>9.0f}" +
                      ("" if first[2] == again[2] == 0 else "  (failed)"), flush=True)


if __name__ == "__main__":
    main()
