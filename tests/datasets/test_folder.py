"""Image folders as Pillow users expect them: 16-bit, EXIF orientation, transparency, every
format Pillow opens, unreadable files skipped with one warning; decoded once into a mapped
cache that later loads and subsets share. Every file these tests read, they write."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effscale.datasets import cache, folder
from effscale.datasets.images import holdout_split, load_dataset
from effscale.errors import EffscaleError


def save(path: Path, image: Image.Image, **options: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def solid(colour: tuple[int, ...], size: tuple[int, int] = (20, 20), mode: str = "RGB"):
    return Image.new(mode, size, colour)


def messages_of(root: Path, split: str = "train", **kwargs: object):
    messages: list[str] = []
    data = load_dataset(str(root), split, progress=messages.append, **kwargs)
    return data, messages


def warnings_in(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("warning:")]


def datasets_dir(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "datasets").glob("*"))


# --- reading one image ------------------------------------------------------------------------


def test_16_bit_grey_png_is_scaled_not_saturated(tmp_path: Path) -> None:
    grey = np.full((16, 16), 32768, dtype=np.uint16)  # mid-grey of 0..65535
    path = save(tmp_path / "train" / "a" / "grey16.png", Image.fromarray(grey))
    assert Image.open(path).mode == "I;16"  # really a 16-bit file
    ramp = np.tile(np.array([0, 257 * 64, 65535], dtype=np.uint16).repeat(6), (18, 1))
    save(tmp_path / "train" / "b" / "ramp16.png", Image.fromarray(ramp))
    data = load_dataset(str(tmp_path), image_size=16)
    assert data.images[0].unique().tolist() == [128]  # round(32768 * 255 / 65535), not 255
    values = data.images[1, 0, 8].tolist()  # a row across the ramp: 0 | 64 | 255
    assert values[0] == 0 and values[8] == 64 and values[-1] == 255


def test_16_bit_tiff_is_scaled_too(tmp_path: Path) -> None:
    grey = np.full((16, 16), 16384, dtype=np.uint16)  # a quarter: 63.75 -> 64
    save(tmp_path / "train" / "a" / "grey16.tif", Image.fromarray(grey))
    assert load_dataset(str(tmp_path), image_size=8).images.unique().tolist() == [64]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:16, :16] = 255  # bright top-left quadrant as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: top-left -> top-right
    save(tmp_path / "train" / "a" / "rotated.jpg", Image.fromarray(pixels), exif=exif,
         quality=95)
    image = load_dataset(str(tmp_path), image_size=16).images[0].float()
    top_left, top_right = image[:, :8, :8].mean(), image[:, :8, 8:].mean()
    bottom_left = image[:, 8:, :8].mean()
    assert top_right > 230 and top_left < 25 and bottom_left < 25


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    save(tmp_path / "train" / "a" / "half.png", solid((255, 0, 0, 128), mode="RGBA"))
    save(tmp_path / "train" / "b" / "clear.png", solid((0, 0, 0, 0), mode="RGBA"))
    data = load_dataset(str(tmp_path), image_size=8)
    half = data.images[0, :, 4, 4].tolist()  # red at alpha 128/255 over white
    assert half[0] == 255 and all(abs(v - 127) <= 1 for v in half[1:])
    assert data.images[1].unique().tolist() == [255]  # fully transparent black reads white


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = solid(0, mode="P")
    image.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    save(tmp_path / "train" / "a" / "p.png", image, transparency=0)
    assert load_dataset(str(tmp_path), image_size=8).images.unique().tolist() == [255]


def test_every_format_pillow_opens_is_read(tmp_path: Path) -> None:
    train = tmp_path / "train"
    save(train / "a" / "lossless.webp", solid((10, 200, 30)), lossless=True)
    save(train / "b" / "scan.tif", solid((200, 40, 90)))
    save(train / "c" / "old.bmp", solid((5, 5, 250)))
    first, second = solid((255, 0, 0)).convert("P"), solid((0, 0, 255)).convert("P")
    save(train / "d" / "anim.gif", first, save_all=True, append_images=[second])
    assert Image.open(train / "d" / "anim.gif").n_frames == 2
    buffer = io.BytesIO()  # a PNG whose name does not say so: Pillow decides, not the suffix
    solid((0, 250, 250)).save(buffer, "PNG")
    (train / "e").mkdir()
    (train / "e" / "no_suffix").write_bytes(buffer.getvalue())
    data, messages = messages_of(tmp_path, image_size=8)
    assert data.classes == ("a", "b", "c", "d", "e") and data.labels.tolist() == [0, 1, 2, 3, 4]
    centres = [data.images[i, :, 4, 4].tolist() for i in range(5)]
    assert centres == [[10, 200, 30], [200, 40, 90], [5, 5, 250], [255, 0, 0], [0, 250, 250]]
    assert not warnings_in(messages)


def test_corrupt_file_is_skipped_with_one_warning_line(tmp_path: Path) -> None:
    train = tmp_path / "train"
    for i in range(3):
        save(train / "a" / f"{i}.png", solid((0, 255, 0)))
    save(train / "b" / "ok.webp", solid((255, 0, 0)), lossless=True)
    (train / "b" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)
    (train / "b" / "notes.txt").write_text("labelling notes")  # quietly ignored
    (train / "b" / "meta.json").write_text("{}")
    data, messages = messages_of(tmp_path, image_size=8)
    assert data.labels.tolist() == [0, 0, 0, 1]
    warned = warnings_in(messages)
    assert len(warned) == 1 and "\n" not in warned[0]
    assert "skipped 1 unreadable image file " in warned[0] and "corrupt.jpg" in warned[0]
    assert "notes.txt" not in warned[0] and "meta.json" not in warned[0]


def test_many_unreadable_files_are_counted_and_the_first_few_named(tmp_path: Path) -> None:
    save(tmp_path / "train" / "a" / "ok.png", solid((1, 2, 3)))
    for i in range(7):
        (tmp_path / "train" / "a" / f"bad{i}.png").write_bytes(b"nope")
    messages = messages_of(tmp_path, image_size=8)[1]
    (warned,) = warnings_in(messages)
    assert "skipped 7 unreadable image files" in warned and "and 4 more" in warned
    assert "bad0.png" in warned and "bad6.png" not in warned


def test_class_left_empty_after_skipping_is_a_one_line_error(
        tmp_path: Path, cache_dir: Path) -> None:
    save(tmp_path / "train" / "cats" / "ok.png", solid((1, 2, 3)))
    good = io.BytesIO()
    solid((1, 2, 3), size=(64, 64)).save(good, "PNG")
    (tmp_path / "train" / "dogs").mkdir()
    (tmp_path / "train" / "dogs" / "truncated.png").write_bytes(good.getvalue()[:60])
    (tmp_path / "train" / "dogs" / "empty.jpg").write_bytes(b"")
    with pytest.raises(EffscaleError) as err:
        load_dataset(str(tmp_path), image_size=8)
    message = str(err.value)
    assert "\n" not in message and "dogs: no readable images" in message
    assert "all 2 files" in message
    assert not [p for p in datasets_dir(cache_dir) if not p.is_dir()]  # nothing half-written


# --- the cache ------------------------------------------------------------------------------


def write_pets(root: Path, count: int = 4) -> Path:
    for i in range(count):
        save(root / "train" / "cat" / f"{i}.png", solid((200, 10 * i, 0), size=(24, 20)))
        save(root / "train" / "dog" / f"{i}.jpg", solid((0, 10 * i, 200), size=(20, 24)))
    return root


def test_second_load_maps_the_cache_without_decoding(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_pets(tmp_path / "pets")
    (root / "train" / "dog" / "broken.png").write_bytes(b"broken")
    first, messages = messages_of(root, image_size=16)
    assert any(m.startswith("decoding images: 9 of 9") for m in messages)
    files = datasets_dir(cache_dir)
    stamps = [p.stat().st_mtime_ns for p in files]

    def fail(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(folder, "read_image", fail)
    second, again = messages_of(root, image_size=16)
    assert [p.stat().st_mtime_ns for p in datasets_dir(cache_dir)] == stamps
    assert second.fingerprint == first.fingerprint and torch.equal(second.images, first.images)
    assert not any("decoding" in m for m in again)
    assert warnings_in(again) == warnings_in(messages)  # still told about the broken file
    images = next(p for p in files if p.name.endswith(".images.npy"))
    if Path("/proc/self/maps").exists():  # the pixels are pages of the cache file
        assert mapped_file(second.images.data_ptr()) == str(images)


def test_cache_is_a_uint8_npy_of_the_decoded_rows_with_the_content_fingerprint(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_pets(tmp_path / "pets")
    mapped = load_dataset(str(root), image_size=12)
    (images,) = (p for p in datasets_dir(cache_dir) if p.name.endswith(".images.npy"))
    on_disk = np.load(images, mmap_mode="r")
    assert on_disk.dtype == np.uint8 and on_disk.shape == (8, 3, 12, 12)
    monkeypatch.setenv("EFFSCALE_NO_CACHE", "1")
    fresh = load_dataset(str(root), image_size=12)  # decoded in memory, not mapped
    assert torch.equal(fresh.images, mapped.images) and fresh.fingerprint == mapped.fingerprint


def test_changed_file_invalidates_the_cache(tmp_path: Path, cache_dir: Path) -> None:
    root = write_pets(tmp_path / "pets")
    first = load_dataset(str(root), image_size=8)
    old = set(datasets_dir(cache_dir))
    path = root / "train" / "cat" / "0.png"
    stat = path.stat()
    save(path, solid((0, 0, 0), size=(24, 20)))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_dataset(str(root), image_size=8)
    assert second.fingerprint != first.fingerprint
    assert second.images[0].unique().tolist() == [0] and first.images[0, 0, 0, 0] == 200
    assert not old & set(datasets_dir(cache_dir)) and len(datasets_dir(cache_dir)) == len(old)
    third = load_dataset(str(root), image_size=16)  # another size: its own entry
    assert third.images.shape[2:] == (16, 16)


def test_unwritable_cache_decodes_in_memory(tmp_path: Path, monkeypatch) -> None:
    root = write_pets(tmp_path / "pets")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("EFFSCALE_CACHE_DIR", str(blocked))
    data, messages = messages_of(root, image_size=8)
    assert len(data) == 8 and any("could not cache" in m for m in messages)


# --- subsets share memory -----------------------------------------------------------------------


def test_consecutive_subset_is_a_view(tmp_path: Path) -> None:
    data = load_dataset(str(write_pets(tmp_path / "pets")), image_size=8)
    part = data.subset(range(2, 6), ":mid")
    assert np.shares_memory(part.images.numpy(), data.images.numpy())
    assert part.images.untyped_storage().data_ptr() == data.images.untyped_storage().data_ptr()
    assert torch.equal(part.images, data.images[2:6]) and part.labels.tolist() == [0, 0, 1, 1]


def test_scattered_subsets_are_mapped_from_one_shared_cache_file(
        tmp_path: Path, cache_dir: Path) -> None:
    data = load_dataset(str(write_pets(tmp_path / "pets", count=10)), image_size=8)
    train, val = holdout_split(data, 4, seed=0)  # as the search does
    small = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:5])
    subsets = sorted(p for p in datasets_dir(cache_dir) if ".subset-" in p.name)
    assert len(subsets) == 6  # images + labels of each
    for part in (train, val, small):
        assert not np.shares_memory(part.images.numpy(), data.images.numpy())
        if Path("/proc/self/maps").exists():  # the pixels are pages of a subset file
            assert mapped_file(part.images.data_ptr()) in {str(p) for p in subsets}
    stamps = {p: p.stat().st_ino for p in subsets}
    again_train = holdout_split(load_dataset(str(tmp_path / "pets"), image_size=8), 4,
                                seed=0)[0]
    assert {p: p.stat().st_ino for p in subsets} == stamps  # mapped again, not rewritten
    assert torch.equal(again_train.images, train.images)
    assert torch.equal(val.images, data.images[torch.as_tensor(
        sorted(set(range(len(data))) - set(_rows_of(train, data))))])


def mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process, from /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if start <= address < end:
            return fields[5] if len(fields) == 6 else None
    return None


def _rows_of(part, whole) -> list[int]:
    flat = whole.images.reshape(len(whole), -1)
    return [int((flat == row.reshape(-1)).all(1).nonzero()[0]) for row in part.images]


def test_old_subsets_are_pruned_to_the_budget(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_dataset(str(write_pets(tmp_path / "pets", count=10)), image_size=8)
    for seed in range(4):
        holdout_split(data, 4, seed=seed)

    def subsets() -> list[Path]:
        return [p for p in datasets_dir(cache_dir) if p.name.endswith(".images.npy")
                and ".subset-" in p.name]

    assert len(subsets()) == 8  # all used just now: kept whatever the budget
    monkeypatch.setattr(cache, "SUBSET_BUDGET", 1)
    monkeypatch.setattr(cache, "SUBSET_FRESH_S", 0)
    holdout_split(data, 4, seed=4)
    (entry,) = (p for p in datasets_dir(cache_dir)
                if p.name.endswith(".images.npy") and ".subset-" not in p.name)
    assert sum(p.stat().st_size for p in subsets()) <= entry.stat().st_size
    assert 1 <= len(subsets()) <= 2 and all((p.parent / p.name.replace(
        ".images.", ".labels.")).exists() for p in subsets())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.slow  # starts a subprocess
def test_worker_taking_the_search_subsets_adds_no_private_copy(tmp_path: Path,
                                                               cache_dir: Path) -> None:
    root = tmp_path / "big"
    for i in range(300):
        save(root / "train" / str(i % 3) / f"{i}.png", solid((i % 256, 7, 9), size=(8, 8)))
    # The search's main process decodes and writes the subsets before it starts workers.
    holdout_split(load_dataset(str(root), image_size=128), 30, seed=0)  # 14.7 MB decoded
    program = f"""
import json, torch
from effscale.datasets.images import holdout_split, load_dataset

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024

data = load_dataset({str(root)!r}, image_size=128)
before = anon()
train, val = holdout_split(data, 30, seed=0)
# every pixel read, as training does (numpy's sum: torch's casts each chunk to int64 first)
total = sum(int(part.images[i:i + 16].numpy().sum()) for part in (train, val)
            for i in range(0, len(part), 16))
print(json.dumps({{"grown": anon() - before, "size": data.images.numel(), "total": total}}))
"""
    env = {**os.environ, "EFFSCALE_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["size"] == 300 * 3 * 128 * 128
    # Copying the subsets (the old subset()) added 8 MB here; mapping them adds ~0.1 MB.
    assert report["grown"] < 0.2 * report["size"], report
