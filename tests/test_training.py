"""The training loop: every format through the thread loader (and the DataLoader's
processes with torch), every image once per epoch, the augmented pixels those of the
stored images, AU between 0 and 1; workers needed on constructed curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from storebench import training
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.present import tables as table_rows
from storebench.present import training as training_view
from storebench.ragged import Ragged

from conftest import every_format

N = 150
FORMATS = every_format()
LOOP = training.Loop(batch_size=32, step_s=0.002, crop=24)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8)
    images[:, :16] //= 4  # some structure, so a wrong crop shows
    return images, rng.integers(0, 10, N, dtype=np.uint8)


def _stores(name: str, data, folder: Path):
    fmt = make_format(name, FORMATS[name])
    store = folder / name
    store.mkdir(parents=True)
    fmt.write(store, *data)
    floor = make_format("raw", {"kind": "npy"})
    floor_store = folder / "floor"
    floor_store.mkdir()
    floor.write(floor_store, *data)
    return fmt, store, (floor, floor_store)


def _check_result(result, n: int = N) -> None:
    for side in ("samples", "reference_samples"):
        samples = result[side]
        assert all(0 < au <= 1 for au in samples["au"])
        assert all(t > 0 for t in samples["epoch_s"])
        assert all(
            0 < f < t for f, t in zip(samples["first_batch_s"], samples["epoch_s"], strict=True)
        )
        assert all(c >= 0 for c in samples["read_cpu_s"] + samples["augment_cpu_s"])
        assert all(m > 0 for m in samples["pss_peak_mb"])


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_feeds_the_loop_through_threads(name, data, tmp_path: Path) -> None:
    fmt, store, reference = _stores(name, data, tmp_path)
    order = np.random.default_rng(1).permutation(N)
    result = training.measure_loop(
        fmt, store, *data, order, LOOP, "threads", 2, reference=reference
    )
    _check_result(result)
    assert result["loader"] == "threads" and result["workers"] == 2


def test_the_processes_loader_feeds_the_loop(data, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    for name in ("png", "lmdb"):
        fmt, store, reference = _stores(name, data, tmp_path / name)
        order = np.random.default_rng(2).permutation(N)
        result = training.measure_loop(
            fmt, store, *data, order, LOOP, "processes", 2, reference=reference
        )
        _check_result(result)
        # the workers' memory is counted beside the training process's
        assert min(result["samples"]["pss_peak_mb"]) > 0


def test_the_batches_hold_every_image_once_with_the_augmented_pixels(data, tmp_path) -> None:
    images, labels = data
    fmt, store, _ = _stores("png", data, tmp_path)
    order = np.random.default_rng(3).permutation(N)
    boxes = training.crop_boxes(np.tile(images.shape[1:], (N, 1)), seed=7)
    plan = training.batches_of(order, 32)
    assert [len(b) for b in plan] == [32, 32, 32, 32, 22]  # the last one short

    def make(reader, indices):
        return training.make_batch(reader, indices, None, images.shape[1:], boxes, 24)

    got = list(training.thread_batches(fmt, store, plan, make, 3))
    assert np.array_equal(np.concatenate([b.indices for b in got]), order)  # in order
    assert np.array_equal(np.concatenate([b.labels for b in got]), labels[order])
    first = got[0]
    want = np.empty_like(first.images)
    for k, index in enumerate(first.indices):
        training.augment_into(images[index], boxes[index], 24, want[k])
    assert np.array_equal(first.images, want) and first.images.shape == (32, 24, 24, 3)
    # a batch served twice, or a wrong image, fails the epoch's check
    kept = [(b.indices, b.labels, b.images) for b in got]
    training.check_epoch(kept, order, images, labels, boxes, 24, lambda x: x, "loop")
    twice = [kept[0], *kept]
    with pytest.raises(StorebenchError, match="every image once"):
        training.check_epoch(twice, order, images, labels, boxes, 24, lambda x: x, "loop")
    wrong = [(kept[0][0], kept[0][1], kept[0][2][::-1].copy()), *kept[1:]]
    with pytest.raises(StorebenchError, match="loop"):
        training.check_epoch(wrong, order, images, labels, boxes, 24, lambda x: x, "loop")


def test_crops_follow_torchvisions_bounds() -> None:
    shapes = np.array([[300, 200, 3]] * 5000)
    boxes = training.crop_boxes(shapes, seed=1)
    left, top, right, bottom, flip = boxes.T
    assert (left >= 0).all() and (top >= 0).all() and (right <= 200).all() and (bottom <= 300).all()
    area = (right - left) * (bottom - top) / (300 * 200)
    assert area.min() >= 0.07 and area.max() <= 1.0
    aspect = (right - left) / (bottom - top)
    assert aspect.min() > 0.7 and aspect.max() < 1.4
    assert 0.45 < flip.mean() < 0.55
    # the same seed draws the same crops (what the check after the clock relies on)
    assert np.array_equal(boxes, training.crop_boxes(shapes, seed=1))


def test_images_of_their_own_sizes_are_cropped_to_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    shapes = [(40 + k % 7, 30 + k % 5, 3) for k in range(60)]
    images = Ragged.of([rng.integers(0, 256, s, dtype=np.uint8) for s in shapes])
    labels = rng.integers(0, 10, 60, dtype=np.uint8)
    fmt = make_format("png", {"kind": "png"})
    (tmp_path / "png").mkdir()
    fmt.write(tmp_path / "png", images, labels)
    order = np.random.default_rng(0).permutation(60)
    result = training.measure_loop(fmt, tmp_path / "png", images, labels, order, LOOP, "threads", 2)
    _check_result(result, 60)
    with pytest.raises(StorebenchError, match=r"training.crop: 31 px is larger than the smallest"):
        loop = training.Loop(batch_size=8, step_s=0.001, crop=31)
        training.measure_loop(fmt, tmp_path / "png", images, labels, order, loop, "threads", 1)
    assert training.smallest_side(images) == 30  # config's crop: null on such a folder
    assert training.smallest_side(np.zeros((3, 24, 40, 3), np.uint8)) == 24


def test_a_loop_that_makes_no_sense_is_refused(data, tmp_path: Path) -> None:
    fmt, store, _ = _stores("png", data, tmp_path)
    order = np.arange(N)
    with pytest.raises(StorebenchError, match="needs batch_size, crop >= 1, step > 0"):
        training.Loop(batch_size=0, step_s=0.01, crop=24)
    with pytest.raises(StorebenchError, match="needs batch_size, crop >= 1, step > 0"):
        training.Loop(batch_size=8, step_s=0.0, crop=24)
    with pytest.raises(StorebenchError, match="at least one worker"):
        training.measure_loop(fmt, store, *data, order, LOOP, "threads", 0)
    with pytest.raises(StorebenchError, match="unknown loader 'fibers'"):
        training.measure_loop(fmt, store, *data, order, LOOP, "fibers", 1)
    assert training.parse_loader("processes-w4") == ("processes", 4)
    with pytest.raises(StorebenchError, match="named like threads-w2"):
        training.parse_loader("threads-2")


def test_a_slow_loader_leaves_the_accelerator_idle(data, tmp_path: Path) -> None:
    """AU can fail: a step far shorter than a batch's read and augmentation keeps the
    accelerator mostly idle; one far longer keeps it busy."""
    fmt, store, _ = _stores("png", data, tmp_path)
    order = np.random.default_rng(1).permutation(N)
    fast = training.Loop(batch_size=32, step_s=0.0001, crop=24)
    slow = training.Loop(batch_size=32, step_s=0.05, crop=24)
    idle = training.measure_loop(fmt, store, *data, order, fast, "threads", 1)
    busy = training.measure_loop(fmt, store, *data, order, slow, "threads", 1)
    assert max(idle["samples"]["au"]) < 0.5 < 0.9 < min(busy["samples"]["au"])


def _curve(*points: tuple[int, float, float, float]) -> dict[int, tuple[float, float, float]]:
    return {w: (au, lo, hi) for w, au, lo, hi in points}


def test_workers_needed_on_constructed_curves() -> None:
    curve = _curve((1, 0.5, 0.45, 0.55), (2, 0.93, 0.91, 0.95), (4, 0.99, 0.98, 1.0))
    found = training_view.workers_needed(curve, 0.9)
    assert (found.workers, found.resolved, found.measured) == (2, True, (1, 2, 4))
    # the median reaches the target, its interval does not: said, not claimed
    curve[2] = (0.91, 0.85, 0.95)
    found = training_view.workers_needed(curve, 0.9)
    assert (found.workers, found.resolved) == (2, False)
    assert "not resolved" in found.text("threads")
    # no measured count reaches it: none, and nothing guessed beyond 4
    low = _curve((1, 0.3, 0.2, 0.4), (2, 0.6, 0.5, 0.7), (4, 0.7, 0.6, 0.8))
    found = training_view.workers_needed(low, 0.9)
    assert found.workers is None and found.measured == (1, 2, 4) and found.au == 0.7
    assert found.text("processes") == "not 1, 2, 4 worker processes (best AU 70.0%)"
    one = training_view.workers_needed({1: (0.86, 0.85, 0.87)}, 0.9)
    assert one.text("processes") == "not 1 worker process (best AU 86.0%)"
    # an unsorted curve: the smallest count that reaches it, not the first listed
    assert (
        training_view.workers_needed({4: (0.95, 0.92, 0.97), 1: (0.96, 0.91, 0.99)}, 0.9).workers
        == 1
    )
    with pytest.raises(StorebenchError):
        training_view.workers_needed({}, 0.9)


def _result(fmt: str, loader: str, workers: int, au: float) -> dict:
    epoch = 1.0 / au
    return {
        "format": fmt,
        "kind": fmt,
        "n": 1000,
        "order": "random",
        "cache": "warm",
        "loader": loader,
        "workers": workers,
        "batch_size": 64,
        "step_ms": 69.6,
        "crop": 32,
        "target_au": 0.9,
        "image_shape": [32, 32, 3],
        "samples": {
            "epoch_s": [epoch, epoch * 1.01, epoch * 0.99],
            "au": [au, au * 1.01, au * 0.99],
            "first_batch_s": [0.01] * 3,
            "read_cpu_s": [0.2] * 3,
            "augment_cpu_s": [0.1] * 3,
            "pss_peak_mb": [100.0, 120.0, 110.0],
        },
        "reference_samples": {
            "epoch_s": [1.0] * 3,
            "au": [0.97] * 3,
            "first_batch_s": [0.01] * 3,
            "read_cpu_s": [0.1] * 3,
            "augment_cpu_s": [0.1] * 3,
            "pss_peak_mb": [90.0] * 3,
        },
        "first": ["format", "reference", "format"],
        "cpu_s": [0.1] * 3,
    }


def test_the_training_table_and_verdict_say_how_many_workers_each_format_needs() -> None:
    loaded = [
        {**_result("raw", "threads", 1, 0.96), "kind": "npy"},
        _result("png", "threads", 1, 0.5),
        _result("png", "threads", 2, 0.95),
        _result("lmdb", "threads", 1, 0.97),
        _result("lmdb", "threads", 2, 0.98),
    ]
    rows = table_rows.training_rows(loaded)
    png1 = next(r for r in rows if r["format"] == "png" and r["workers"] == 1)
    assert png1["au"] == pytest.approx(0.5) and png1["au_lo"] <= 0.5 <= png1["au_hi"]
    assert png1["read_cpu_ms_per_image"] == pytest.approx(0.2) and png1["pss_peak_mb"] == 120.0
    assert png1["measurement"] == "train_threads_w1" and png1["ratio"] == pytest.approx(2.0)
    assert math.isclose(png1["images_per_s"], 1000 / 2.0)
    (line,) = training_view.verdict_lines(rows)
    assert line.startswith("To keep one accelerator 90% busy at a step of 69.6 ms per batch of 64")
    # the floor and lmdb in one group (one thread), then png (two)
    assert "threads: 1 thread: **lmdb**, **raw** (the floor) (AU 96.0%-97.0%); " in line
    assert line.endswith("2 threads: **png** (AU 95.0%).")
    # every format needing the same: said once; a count none reached: said with the best
    same = table_rows.training_rows([_result(f, "threads", 1, 0.97) for f in ("a", "b")])
    assert "1 thread: every format (AU 97.0%)." in training_view.verdict_lines(same)[0]
    short = table_rows.training_rows([_result("a", "threads", 1, 0.5)])
    assert training_view.verdict_lines(short)[0].endswith(
        "not 1 thread: every format (best AU 50.0%)."
    )


def test_a_legend_of_long_format_names_takes_three_columns_to_stay_on_the_figure() -> None:
    from storebench.present import figures

    default = ["raw", "png", "lmdb", "lmdb_raw", "lmdb_raw_append", "hdf5", "hdf5_gzip"]
    default += ["hdf5_lzf", "tfrecord", "webdataset", "parquet", "target 90%"]
    assert figures._legend_columns(default) == 4
    photos = [*default[:-1], "jpeg_files", "lmdb_jpeg", "webdataset_jpeg", "target 90%"]
    assert figures._legend_columns(photos) == 3  # four ran off both sides (run P33)
    assert figures._legend_columns(["a", "b"]) == 2 and figures._legend_columns([]) == 1


@pytest.mark.parametrize("loader", ["threads", "processes"])
def test_the_formats_library_is_imported_before_the_first_timed_epoch(
    loader, data, tmp_path: Path, monkeypatch
) -> None:
    """A format whose library is imported when a store opens (the loaders' formats) has
    it imported before any epoch is timed, in the training process, as a script that
    builds its dataset first would: no epoch pays for the import, and forked workers
    inherit it."""
    if loader == "processes":
        pytest.importorskip("torch")
    fmt, store, reference = _stores("png", data, tmp_path)
    events: list[str] = []
    cls = type(fmt)
    monkeypatch.setattr(cls, "load_reader", lambda self: events.append("load"))
    opened = cls.open
    monkeypatch.setattr(cls, "open", lambda self, d: events.append("open") or opened(self, d))
    order = np.random.default_rng(4).permutation(N)
    training.measure_loop(fmt, store, *data, order, LOOP, loader, 1, reference=reference)
    assert events[0] == "load" and "load" not in events[1:]
    if loader == "threads":
        assert "open" in events  # the epochs' opens came after it
