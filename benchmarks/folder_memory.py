"""Memory of an image-folder load: decode once into the cache, then map it from workers.

    python benchmarks/folder_memory.py                 # 100,000 48x48 PNGs, 10 classes, 32 px
    python benchmarks/folder_memory.py --count 20000   # fewer images

Generates ``--count`` small PNGs (smooth colour ramps with a little noise) in a temporary
folder, then, each in a fresh process (spawned, so nothing is inherited):

1. baseline: Python with effscale's data module imported, nothing loaded;
2. load: ``load_dataset(folder, image_size=32)`` on an empty cache, i.e. decode and write
   the memory-mapped cache file; time and peak RSS (``ru_maxrss``);
3. reload: the same call again, which maps the cache;
4. what a search does: its own process first, then two workers at once, each loading
   (mapped), taking the search's train / val holdout split and a 10,000-image training
   subset, and reading every pixel of all three; while both workers still hold them, each
   reports its RssAnon (private memory), RssFile (mapped file pages, shared) and Pss (its
   proportional share).

Peak RSS includes the mapped file pages a process has touched; those are the OS page cache,
shared with every other process mapping the same file, and RssAnon is what is private.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

MB = 1 << 20


def generate(root: Path, count: int, size: int, classes: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for c in range(classes):
        (root / "train" / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        pixels = start + (end - start) * ramp[:, None, None] + rng.normal(0, 4, (size, size, 3))
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        image.save(root / "train" / f"class{i % classes}" / f"{i:06d}.png")


def memory() -> dict[str, float]:
    """ru_maxrss and the current RssAnon / RssFile / Pss of this process, in MB."""
    out = {"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for name, path in (("RssAnon", "/proc/self/status"), ("RssFile", "/proc/self/status"),
                       ("Pss", "/proc/self/smaps_rollup")):
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(f"{name}:"):
                    out[name] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def baseline(queue) -> None:
    import effscale.datasets.images  # noqa: F401

    queue.put(memory())


def load(folder: str, image_size: int, queue) -> None:
    from effscale.datasets.images import load_dataset

    start = time.perf_counter()
    messages: list[str] = []
    data = load_dataset(folder, image_size=image_size, progress=messages.append)
    seconds = time.perf_counter() - start
    queue.put({**memory(), "seconds": seconds, "rows": len(data),
               "array_mb": data.images.numel() / MB,
               "messages": [m for m in messages if not m.startswith("decoding images")]})


def worker(folder: str, image_size: int, train_size: int, barrier, queue) -> None:
    import torch

    from effscale.datasets.images import holdout_split, load_dataset

    start = time.perf_counter()
    data = load_dataset(folder, image_size=image_size)
    before = memory()
    # What effscale.search.run.load_data does, with the default val size and a quick-budget subset.
    train, val = holdout_split(data, min(5000, len(data) // 5) or 1, seed=0)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    small = train.subset(order[:train_size], f":{train_size}")
    split_seconds = time.perf_counter() - start
    total = 0
    for part in (train, val, small):
        for i in range(0, len(part), 1024):  # numpy's sum: no int64 copy of the chunk
            total += int(part.images[i:i + 1024].numpy().sum(dtype=np.uint64))
    barrier.wait()  # both workers hold their maps now
    after = memory()
    barrier.wait()
    queue.put({"before": before, "after": after, "seconds": split_seconds, "checksum": total,
               "rows": (len(train), len(val), len(small)),
               "subset_mb": sum(p.images.numel() for p in (train, val, small)) / MB})


def run(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="images to generate")
    parser.add_argument("--size", type=int, default=48, help="side of the generated PNGs")
    parser.add_argument("--image-size", type=int, default=32, help="size to load them at")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=10_000,
                        help="training subset the workers take (a quick-budget search's)")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="effscale-folder-", dir=args.dir))
    folder, cache = work / "images", work / "cache"
    os.environ["EFFSCALE_CACHE_DIR"] = str(cache)  # inherited by the spawned processes
    os.environ.pop("EFFSCALE_NO_CACHE", None)
    try:
        start = time.perf_counter()
        generate(folder, args.count, args.size, args.classes)
        disk = sum(p.stat().st_size for p in folder.rglob("*.png")) / MB
        print(f"generated {args.count} PNGs ({args.size}x{args.size}, {args.classes} classes, "
              f"{disk:.0f} MB) in {time.perf_counter() - start:.1f} s")

        base = run(baseline)
        print(f"baseline process (effscale.datasets.images imported): peak RSS "
              f"{base['maxrss']:.0f} MB, RssAnon {base['RssAnon']:.0f} MB")

        first = run(load, str(folder), args.image_size)
        print(f"load, empty cache (decode {first['rows']} images at {args.image_size} px into "
              f"the cache): {first['seconds']:.1f} s, peak RSS {first['maxrss']:.0f} MB "
              f"(+{first['maxrss'] - base['maxrss']:.0f} MB over baseline); decoded array "
              f"{first['array_mb']:.0f} MB")
        for message in first["messages"]:
            print(f"  message: {message}")
        cache_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / MB
        again = run(load, str(folder), args.image_size)
        print(f"load again (maps the cache, {cache_mb:.0f} MB on disk): "
              f"{again['seconds']:.2f} s, peak RSS {again['maxrss']:.0f} MB")

        context = multiprocessing.get_context("spawn")
        # The search's own process prepares (and so writes the subset files) before it starts
        # its workers: the same order here.
        main_report = run(worker, str(folder), args.image_size, args.train_size,
                          context.Barrier(1))
        print(f"search process alone (writes the subset files): subsets ready in "
              f"{main_report['seconds']:.2f} s, peak RSS {main_report['after']['maxrss']:.0f} MB, "
              f"RssAnon {main_report['after']['RssAnon']:.0f} MB")
        queue, barrier = context.Queue(), context.Barrier(2)
        workers = [context.Process(target=worker, args=(str(folder), args.image_size,
                                                        args.train_size, barrier, queue))
                   for _ in range(2)]
        start = time.perf_counter()
        for process in workers:
            process.start()
        reports = [queue.get() for _ in workers]
        for process in workers:
            process.join()
        print(f"2 workers at once ({time.perf_counter() - start:.1f} s), each: map the cache, "
              "take train/val/train-subset rows "
              f"{reports[0]['rows']} ({reports[0]['subset_mb']:.0f} MB of pixels), read every "
              "pixel:")
        for i, report in enumerate(sorted(reports, key=lambda r: r["seconds"])):
            b, a = report["before"], report["after"]
            print(f"  worker {i}: subsets ready in {report['seconds']:.2f} s; peak RSS "
                  f"{a['maxrss']:.0f} MB; RssAnon {b['RssAnon']:.0f} -> {a['RssAnon']:.0f} MB "
                  f"(private), RssFile {b['RssFile']:.0f} -> {a['RssFile']:.0f} MB (shared "
                  f"cache pages), Pss {a.get('Pss', float('nan')):.0f} MB")
        assert len({r["checksum"] for r in reports}) == 1
        subset_mb = sum(p.stat().st_size for p in cache.rglob("*.subset-*")) / MB
        print(f"cache folder after the workers: {cache_mb + subset_mb:.0f} MB "
              f"(dataset {cache_mb:.0f} MB + subsets {subset_mb:.0f} MB)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
