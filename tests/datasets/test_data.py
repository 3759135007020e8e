"""Datasets: CIFAR-10 files (tiny fakes in the official layout), synthetic, image folders,
the decode cache and holdout splits. Every file these tests read, they write themselves."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import socket
import tarfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from effscale.datasets import cifar10, synthetic
from effscale.datasets.images import ImageData, holdout_split, load_dataset
from effscale.datasets.registry import dataset_names
from effscale.errors import EffscaleError

ROWS = 20  # images per fake CIFAR-10 batch (the real ones hold 10,000)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cifar10, "BATCH_ROWS", ROWS)


def write_batch(path: Path, seed: int, rows: int = ROWS, low: int = 0, high: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"fake", b"filenames": [b"x.png"] * rows,
             b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(low, high, rows)]}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return batch


def write_cifar(root: Path, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in the official layout: ``root/cifar-10-batches-py``."""
    folder = root / cifar10.DIRNAME
    folder.mkdir(parents=True)
    names = [*cifar10.SPLIT_FILES["train"], *cifar10.SPLIT_FILES["test"]]
    for i, name in enumerate(names):
        write_batch(folder / name, seed * 100 + i)
    meta = {b"num_cases_per_batch": ROWS, b"label_names": [c.encode() for c in CIFAR_CLASSES]}
    (folder / cifar10.META).write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_tarball(tmp_path: Path) -> Path:
    folder = write_cifar(tmp_path / "source")
    archive = tmp_path / "tarball" / cifar10.ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=cifar10.DIRNAME)
    return archive


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "datasets").glob("*"))


# --- CIFAR-10 -----------------------------------------------------------------------------


def test_cifar10_loads_official_layout(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    train = load_dataset("cifar10", data_dir=tmp_path)
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert train.images.shape == (5 * ROWS, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.shape == (5 * ROWS,) and train.labels.dtype == torch.int64
    assert len(test) == ROWS and train.classes == tuple(CIFAR_CLASSES)
    assert train.name == "cifar10" and len(train.fingerprint) == 16
    assert train.fingerprint != test.fingerprint
    batch = pickle.loads((folder / "data_batch_2").read_bytes(), encoding="bytes")
    rows = slice(ROWS, 2 * ROWS)
    assert np.array_equal(train.images[rows].reshape(ROWS, -1).numpy(), batch[b"data"])
    assert train.labels[rows].tolist() == batch[b"labels"]


def test_cifar10_data_dir_may_be_the_batches_folder(tmp_path: Path) -> None:
    folder = write_cifar(tmp_path)
    assert len(load_dataset("cifar10", data_dir=folder)) == 5 * ROWS


def test_cifar10_resizes_to_image_size(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    assert load_dataset("cifar10", data_dir=tmp_path, image_size=16).images.shape[2:] == (16, 16)


def test_cifar10_tarball_is_extracted_in_place(tmp_path: Path) -> None:
    archive = write_tarball(tmp_path)
    data_dir = archive.parent
    data = load_dataset("cifar10", data_dir=data_dir)  # not the official MD5, and accepted
    assert len(data) == 5 * ROWS
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([cifar10.ARCHIVE, cifar10.DIRNAME])


def test_cifar10_damaged_tarball_is_named(tmp_path: Path) -> None:
    (tmp_path / cifar10.ARCHIVE).write_bytes(b"not gzip at all")
    with pytest.raises(EffscaleError, match=rf"{cifar10.ARCHIVE}: not a readable"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [cifar10.ARCHIVE]  # no scratch folder left


def test_cifar10_truncated_batch_is_named(tmp_path: Path) -> None:
    path = write_cifar(tmp_path) / "data_batch_3"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(EffscaleError, match=r"data_batch_3: not a readable CIFAR-10 file") as err:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_cifar10_refuses_arbitrary_pickled_objects(tmp_path: Path) -> None:
    path = write_cifar(tmp_path) / "test_batch"
    path.write_bytes(pickle.dumps({b"data": Path("x"), b"labels": []}))
    with pytest.raises(EffscaleError, match=r"test_batch: not a readable.*unexpected object"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"low": 3, "high": 11}, r"labels must be in 0\.\.9, found \d+\.\.10"),
    ({"rows": ROWS - 1}, rf"expected data of shape \({ROWS}, 3072\) uint8, found \({ROWS - 1},"),
])
def test_cifar10_invalid_batch_is_named(tmp_path: Path, kwargs: dict, message: str) -> None:
    write_batch(write_cifar(tmp_path) / "data_batch_5", seed=1, **kwargs)
    with pytest.raises(EffscaleError, match=rf"data_batch_5: {message}"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_missing_batch_is_named(tmp_path: Path) -> None:
    (write_cifar(tmp_path) / "data_batch_4").unlink()
    with pytest.raises(EffscaleError, match=r"data_batch_4: missing"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar10_missing_without_download_says_where(tmp_path: Path) -> None:
    with pytest.raises(EffscaleError) as err:
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    assert str(tmp_path) in str(err.value) and cifar10.DIRNAME in str(err.value)
    assert cifar10.ARCHIVE in str(err.value)


# --- downloading ----------------------------------------------------------------------------


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over http on 127.0.0.1, and its URL."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_download_over_http_checks_md5_and_extracts(
        tmp_path: Path, http_root: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_tarball(tmp_path)
    served, url = http_root
    (served / archive.name).write_bytes(archive.read_bytes())
    monkeypatch.setattr(cifar10, "URL", f"{url}/{archive.name}")
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    data_dir, messages = tmp_path / "data", []
    data = load_dataset("cifar10", data_dir=data_dir, progress=messages.append)
    assert len(data) == 5 * ROWS
    assert sorted(p.name for p in data_dir.iterdir()) == sorted([cifar10.ARCHIVE, cifar10.DIRNAME])
    assert any("downloading" in m for m in messages) and any("extracting" in m for m in messages)


def test_download_from_file_url_with_wrong_md5_is_discarded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_tarball(tmp_path)
    actual = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10, "URL", archive.as_uri())
    data_dir = tmp_path / "data"
    with pytest.raises(EffscaleError) as err:
        load_dataset("cifar10", data_dir=data_dir)
    assert cifar10.MD5 in str(err.value) and actual in str(err.value)
    assert err.value.exit_code == 1
    # neither the .part file nor the archive stays, nor the directory the download made
    assert not data_dir.exists()


def test_unreachable_download_says_where_to_put_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(cifar10, "URL", f"http://127.0.0.1:{port}/{cifar10.ARCHIVE}")
    data_dir = tmp_path / "data"
    with pytest.raises(EffscaleError) as err:
        load_dataset("cifar10", data_dir=data_dir)
    message = str(err.value)
    assert "could not download" in message and str(data_dir) in message
    assert f"{cifar10.DIRNAME}/" in message and cifar10.ARCHIVE in message
    assert not data_dir.exists()


# --- cache ----------------------------------------------------------------------------------


def test_second_load_maps_the_cache_without_decoding(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path / "data")
    first = load_dataset("cifar10", data_dir=tmp_path / "data")
    files = cache_files(cache_dir)
    assert [p.suffix for p in files] == [".npy", ".json", ".npy"]
    stamps = [p.stat().st_mtime_ns for p in files]

    def fail(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(cifar10, "decode", fail)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the read-only memory map must not warn
        second = load_dataset("cifar10", data_dir=tmp_path / "data")
    assert [p.stat().st_mtime_ns for p in cache_files(cache_dir)] == stamps
    assert second.fingerprint == first.fingerprint
    assert torch.equal(second.images, first.images) and torch.equal(second.labels, first.labels)
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(files[0]) in maps.read_text()


def test_changed_source_is_decoded_again_and_old_entry_removed(
        tmp_path: Path, cache_dir: Path) -> None:
    folder = write_cifar(tmp_path)
    first = load_dataset("cifar10", data_dir=tmp_path)
    old = cache_files(cache_dir)
    write_batch(folder / "data_batch_1", seed=99)
    second = load_dataset("cifar10", data_dir=tmp_path)
    assert second.fingerprint != first.fingerprint
    assert len(cache_files(cache_dir)) == len(old) and not set(old) & set(cache_files(cache_dir))


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path, cache_dir: Path) -> None:
    write_cifar(tmp_path)
    first = load_dataset("cifar10", data_dir=tmp_path)
    expected = first.images.clone()
    images = next(p for p in cache_files(cache_dir) if p.name.endswith(".images.npy"))
    head = images.read_bytes()[:200]
    images.unlink()  # truncating in place would pull the pages from under ``first``: SIGBUS
    images.write_bytes(head)
    second = load_dataset("cifar10", data_dir=tmp_path)
    assert second.fingerprint == first.fingerprint and torch.equal(second.images, expected)


def test_fingerprint_is_stable_and_follows_content(tmp_path: Path) -> None:
    write_cifar(tmp_path / "a", seed=1)
    write_cifar(tmp_path / "b", seed=1)  # same content, other files and times
    write_cifar(tmp_path / "c", seed=2)
    a, b, c = (load_dataset("cifar10", data_dir=tmp_path / n).fingerprint for n in "abc")
    assert a == b != c


# --- synthetic ------------------------------------------------------------------------------


@pytest.mark.slow  # draws the dataset five times (3 s)
def test_synthetic_is_deterministic_balanced_and_sized() -> None:
    train, again = load_dataset("synthetic", seed=3), load_dataset("synthetic", seed=3)
    test = load_dataset("synthetic", "test", seed=3)
    assert torch.equal(train.images, again.images) and train.fingerprint == again.fingerprint
    assert train.images.shape == (4200, 3, 32, 32) and len(test) == 1200
    assert train.labels.bincount().tolist() == [700] * 6
    assert test.labels.bincount().tolist() == [200] * 6
    assert train.classes == synthetic.CLASSES and len(set(train.classes)) == 6
    assert load_dataset("synthetic", seed=4).fingerprint != train.fingerprint
    assert train.fingerprint != test.fingerprint


def test_synthetic_classes_are_not_separable_by_mean_colour() -> None:
    # Nearest class centroid on mean colour, train -> test: about chance (16.7 %).
    train, test = load_dataset("synthetic"), load_dataset("synthetic", "test")
    features = [d.images.float().mean(dim=(2, 3)) for d in (train, test)]
    centroids = torch.stack([features[0][train.labels == c].mean(0) for c in range(6)])
    predicted = torch.cdist(features[1], centroids).argmin(1)
    assert (predicted == test.labels).float().mean() < 0.25


def _handedness(images: torch.Tensor) -> torch.Tensor:
    """Per image, the mean gradient product gx*gy over the gradient energy: a horizontal
    flip negates it, so a class and its mirror image have opposite signs."""
    grey = images.float().mean(1)
    gy, gx = torch.gradient(grey, dim=(1, 2))
    return (gx * gy).mean(dim=(1, 2)) / (gx ** 2 + gy ** 2).mean(dim=(1, 2))


def test_no_synthetic_class_turns_into_another_under_a_horizontal_flip() -> None:
    # Training flips images horizontally: a class that is another's mirror image (stripes at
    # 45 and 135 degrees) would be mislabelled on half of its flipped images.
    test = load_dataset("synthetic", "test")
    handedness = _handedness(test.images)
    for label, name in enumerate(synthetic.CLASSES):
        mean = handedness[test.labels == label].mean().item()
        assert abs(mean) < 0.05, (name, mean)
    # the measure does see handedness: stripes at 45 and 135 degrees have opposite signs
    for degrees, sign in ((45, 1), (135, -1)):
        distance = synthetic._stripes(degrees)(*_grid(32), synthetic._Params(
            np.random.default_rng(0), 8))
        mask = torch.as_tensor(np.clip(distance * 32 + 0.5, 0, 1))[:, None].expand(-1, 3, -1, -1)
        assert sign * _handedness(mask).mean() > 0.3


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    return grid[None, None, :], grid[None, :, None]


def test_the_fine_textures_need_resolution_and_the_shapes_do_not() -> None:
    # Each image's contrast (pixel std) after the proxy's antialiased downsampling, over its
    # contrast at the native 32 px: the fine textures keep far more at 26 px than at 20 px.
    from effscale.train.trainer import resize_images

    test = load_dataset("synthetic", "test")
    native = test.images.float().std(dim=(2, 3)).mean(1)
    kept = {px: resize_images(test.images, px).float().std(dim=(2, 3)).mean(1) / native
            for px in (20, 26)}
    for label, name in enumerate(synthetic.CLASSES):
        at20, at26 = (kept[px][test.labels == label].mean().item() for px in (20, 26))
        if name in synthetic.FINE_CLASSES:
            assert at20 < 0.35 and at26 > 1.5 * at20, (name, at20, at26)
        else:
            assert at20 > 0.8 and at26 > 0.8, (name, at20, at26)


def test_synthetic_follows_image_size() -> None:
    assert load_dataset("synthetic", "test", image_size=24).images.shape == (1200, 3, 24, 24)


# --- image folders --------------------------------------------------------------------------


def write_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)


def write_folder(root: Path) -> Path:
    """train/{green,red}/ with 3 + 2 images of assorted shapes; val/ with one of each."""
    for split, counts in (("train", (3, 2)), ("val", (1, 1))):
        for name, colour, count in (("green", (0, 255, 0), counts[0]),
                                    ("red", (255, 0, 0), counts[1])):
            for i in range(count):
                size = ((24, 40), (40, 24), (16, 16))[i]
                write_image(root / split / name / f"{i}.png", np.full((*size, 3), colour))
    return root


def test_image_folder_loads_classes_and_resizes(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets")
    (root / "train" / "red" / "notes.txt").write_text("not an image")
    train = load_dataset(str(root), image_size=12)
    val = load_dataset(str(root), "val", image_size=12)
    assert train.classes == ("green", "red") and train.name == str(root)
    assert train.images.shape == (5, 3, 12, 12) and train.labels.tolist() == [0, 0, 0, 1, 1]
    assert val.labels.tolist() == [0, 1]
    assert (train.images[:3, 1] == 255).all() and (train.images[:3, 0] == 0).all()
    assert (train.images[3:, 0] == 255).all()


def test_image_folder_crops_the_centre_after_resizing_the_shorter_side(tmp_path: Path) -> None:
    pixels = np.zeros((32, 48, 3))
    pixels[:, :6] = pixels[:, -6:] = (255, 0, 0)  # red edges that the crop must cut away
    pixels[:, 6:-6] = (0, 0, 255)
    write_image(tmp_path / "train" / "a" / "wide.png", pixels)
    image = load_dataset(str(tmp_path), image_size=16).images[0]
    assert image[0].max() <= 8 and image[2].min() >= 247


def test_image_folder_is_cached(tmp_path: Path, cache_dir: Path) -> None:
    root = write_folder(tmp_path / "pets")
    first = load_dataset(str(root), image_size=8)
    second = load_dataset(str(root), image_size=8)
    assert first.fingerprint == second.fingerprint and len(cache_files(cache_dir)) == 3


@pytest.mark.parametrize(("damage", "message"), [
    (lambda root: None, r"pets: no train/ folder"),
    (lambda root: (root / "train").mkdir(), r"train: no class folders"),
    (lambda root: (root / "train" / "empty").mkdir(parents=True), r"empty: no images"),
])
def test_image_folder_layout_errors_name_the_path(tmp_path: Path, damage, message: str) -> None:
    root = tmp_path / "pets"
    root.mkdir()
    damage(root)
    with pytest.raises(EffscaleError, match=message):
        load_dataset(str(root))


def test_image_folder_unreadable_image_is_skipped_and_named(tmp_path: Path) -> None:
    # It used to abort the whole load; now it is skipped with one warning line naming it.
    root = write_folder(tmp_path / "pets")
    (root / "train" / "red" / "broken.png").write_bytes(b"\x89PNG but not really")
    messages: list[str] = []
    data = load_dataset(str(root), progress=messages.append)
    assert len(data) == 5
    warned = [m for m in messages if m.startswith("warning:")]
    assert len(warned) == 1 and "skipped 1 unreadable" in warned[0]
    assert "broken.png" in warned[0]


def test_image_folder_without_val_has_no_val_split(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "a" / "0.png", np.zeros((8, 8, 3)))
    with pytest.raises(EffscaleError, match=r"no val/ folder, so no val split"):
        load_dataset(str(tmp_path), "val")


# --- specs, splits, subsets -----------------------------------------------------------------


def test_unknown_dataset_lists_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(EffscaleError) as err:
        load_dataset("imagenet", data_dir=tmp_path)
    assert {"cifar10", "synthetic"} <= set(dataset_names())
    assert all(name in str(err.value) for name in dataset_names())


def test_unknown_split_is_refused() -> None:
    with pytest.raises(EffscaleError, match=r"unknown split 'dev'"):
        load_dataset("synthetic", "dev")
    with pytest.raises(EffscaleError, match=r"'synthetic' has no val split"):
        load_dataset("synthetic", "val")


@pytest.fixture(scope="module")
def small() -> ImageData:
    labels = torch.arange(100) % 4  # 25 rows per class
    images = labels.to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    return ImageData(images, labels, ("a", "b", "c", "d"), "small", "0" * 16)


def test_holdout_split_is_disjoint_stratified_and_deterministic(small: ImageData) -> None:
    train, val = holdout_split(small, 20, seed=7)
    assert (len(train), len(val)) == (80, 20)
    assert val.labels.bincount().tolist() == [5] * 4
    rows = torch.cat([train.images[:, 0, 0, 0], val.images[:, 0, 0, 0]])
    assert torch.equal(rows.sort().values, small.images[:, 0, 0, 0].sort().values)
    again = holdout_split(small, 20, seed=7)[1]
    other = holdout_split(small, 20, seed=8)[1]
    assert again.fingerprint == val.fingerprint != other.fingerprint
    assert (train.name, val.name) == ("small:train", "small:val")
    assert len({train.fingerprint, val.fingerprint, small.fingerprint}) == 3


def test_holdout_split_rounds_shares_to_the_exact_size(small: ImageData) -> None:
    uneven = small.subset(list(range(90)))  # 23, 23, 22, 22 per class
    for size in (1, 7, 45, 89):
        assert len(holdout_split(uneven, size, seed=0)[1]) == size


@pytest.mark.parametrize("size", [0, 100, 101, -1])
def test_holdout_split_refuses_impossible_sizes(small: ImageData, size: int) -> None:
    with pytest.raises(EffscaleError, match=r"between 1 and 99 for small \(100 images\)"):
        holdout_split(small, size, seed=0)


def test_subset_picks_rows_in_order_and_checks_indices(small: ImageData) -> None:
    picked = small.subset(torch.tensor([5, 1, 5]), "-x")
    assert picked.labels.tolist() == [1, 1, 1] and picked.name == "small-x"
    assert len(small.subset([])) == 0
    with pytest.raises(IndexError):
        small.subset([100])
    with pytest.raises(TypeError):
        small.subset([0.5])
