"""Regenerate ``configs/complexity.json``, the golden complexity of every shipped config.

Run ``python tests/update_golden.py`` after a change that is meant to change parameters or
FLOPs, and commit the new file with that change; ``tests/model/test_flops.py`` checks it.
"""

from __future__ import annotations

import json
import sys

from helpers import GOLDEN, GOLDEN_FIELDS, REPO, shipped_configs

from effscale.model.config import load_config
from effscale.model.flops import count_flops


def measure(path: str) -> dict[str, int]:
    """The golden fields of one config, measured with fvcore (never from the cache)."""
    report = count_flops(load_config(REPO / path), use_cache=False)
    if report.counter != "fvcore" or report.note:
        raise SystemExit(f"{path}: not measured with fvcore ({report.note})")
    return {name: getattr(report, name) for name in GOLDEN_FIELDS}


def main() -> None:
    golden = {}
    for path in shipped_configs():
        golden[path] = measure(path)
        print(f"{path}: {golden[path]}", file=sys.stderr)
    GOLDEN.write_text(json.dumps(golden, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN.relative_to(REPO)} ({len(golden)} configs)", file=sys.stderr)


if __name__ == "__main__":
    main()
