"""The training loop: can a format feed an accelerator, and with how many workers?

An emulated training job reads a store the way training does and answers MLPerf
Storage's question: how busy does it keep the accelerator? Per epoch, over a shuffled
order of the store's images, in batches of ``batch_size``:

1. a loader's worker reads the batch's images in one read (the decode the payload
   needs, PNG, JPEG or WebP to pixels, is part of the format's read), applies a
   typical CPU augmentation to each image (a random resized crop to ``crop`` pixels,
   as torchvision's ``RandomResizedCrop``: scale 0.08 to 1 of the area, aspect 3/4 to
   4/3, bilinear; then a horizontal flip with probability 1/2) and collates the batch
   into one array;
2. the training loop takes the batches in order and, for each one, waits for it and
   then "computes": it sleeps ``step_ms``, the time a model's step takes on a given
   accelerator (compute emulated by a sleep, as DLIO does for MLPerf Storage).

Two loaders: a thread pool (``threads``: W threads share the process; Pillow's
decode and resize and most reads release the GIL; no PyTorch needed; SPDL and
torchdata.nodes are the models) and PyTorch's DataLoader with W worker processes
(``processes``, the torch extra). Both prefetch ``PREFETCH`` batches per worker.

Per epoch: the wall time, accelerator utilisation (AU: the time spent computing over
the wall time from the first batch on, so an epoch's length does not change it; MLPerf
Storage passes a run at AU >= 90%), samples/s, the time to the first batch, the
loader's CPU seconds per image in the read (with decode) and in the augmentation with
collation, and the peak memory of the loader (PSS: the training
process and its workers, shared pages counted once). The smallest W that keeps AU at
the target is read from a job per W (:func:`storebench.present.training.workers_needed`).

Every epoch is checked after it ends: every image of the order exactly once with its
label, and the first batches' pixels equal to the augmentation of the stored images
(the crop boxes are drawn per epoch before the clock starts, so the check recomputes
the same crops).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from storebench import chunks, pagecache
from storebench.errors import StorebenchError
from storebench.formats import Format, Reader
from storebench.measure import NS
from storebench.protocol import STEP_PRESETS as STEP_PRESETS
from storebench.protocol import step_ms
from storebench.ragged import Ragged
from storebench.sampling import Policy, run_pairs
from storebench.validation import validate

log = logging.getLogger(__name__)

LOADERS = ("threads", "processes")
# Batches each worker may have ready or in flight ahead of the training loop (the
# DataLoader's prefetch_factor default).
PREFETCH = 2
# Batches whose pixels are checked against the stored images after each epoch.
CHECKED_BATCHES = 4
# Memory is sampled every this many batches (reading /proc costs the training loop).
PSS_EVERY = 4
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


@dataclasses.dataclass(frozen=True)
class Loop:
    """The emulated training job: ``batch_size`` images per step, ``step_s`` of compute
    per step, augmentation to ``crop`` x ``crop`` pixels."""

    batch_size: int
    step_s: float
    crop: int

    def __post_init__(self) -> None:
        if self.batch_size < 1 or not self.step_s > 0 or self.crop < 1:
            raise StorebenchError(f"a training loop needs batch_size, crop >= 1, step > 0: {self}")

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Loop:
        """The loop of config ``training``: ``step_ms`` per batch, or else the preset
        ``step`` per image times ``batch_size``."""
        return cls(
            int(settings["batch_size"]),
            step_ms(settings) / 1e3,
            int(settings["crop"]),
        )


def loader_sets(settings: Mapping[str, Any], with_processes: bool) -> list[str]:
    """The loader runs of config ``training``, as named in result paths: threads-w1 ...,
    then processes-w1 ... (when PyTorch is there)."""
    sets = [f"threads-w{w}" for w in settings["threads"]]
    if with_processes:
        sets += [f"processes-w{w}" for w in settings["processes"]]
    return sets


def parse_loader(name: str) -> tuple[str, int]:
    """``threads-w2`` -> ("threads", 2)."""
    loader, _, workers = name.partition("-w")
    if loader not in LOADERS or not workers.isdigit() or int(workers) < 1:
        raise StorebenchError(
            f"a loader run is named like threads-w2 or processes-w1, not {name!r}"
        )
    return loader, int(workers)


def _shapes(images: Any) -> np.ndarray:
    """``(n, 3)`` height, width, channels of every image, ragged or not."""
    if isinstance(images, Ragged):
        return images.shapes
    return np.tile(images.shape[1:], (len(images), 1))


def smallest_side(images: Any) -> int:
    """The smallest height or width among ``images`` (0 for none): the largest crop
    every image allows, and config's ``crop: null``."""
    every = _shapes(images)
    return int(np.min(every[:, :2])) if len(every) else 0


# ---------------------------------------------------------------- augmentation


def crop_boxes(shapes: np.ndarray, seed: int) -> np.ndarray:
    """A random resized crop and a flip per image, drawn up front for an epoch:
    ``(n, 5)`` int64 rows ``(left, top, right, bottom, flip)`` for images of ``shapes``
    (``(n, 3)``: height, width, channels). torchvision's algorithm: ten tries at an
    area of ``SCALE`` of the image and an aspect in ``RATIO`` (log-uniform); an image
    where none fits is cropped whole."""
    shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    n = len(shapes)
    height, width = shapes[:, 0].astype(np.float64), shapes[:, 1].astype(np.float64)
    boxes = np.zeros((n, 5), np.int64)
    boxes[:, 2], boxes[:, 3] = shapes[:, 1], shapes[:, 0]  # the whole image
    todo = np.ones(n, bool)
    for _ in range(10):
        area = height * width * rng.uniform(*SCALE, n)
        aspect = np.exp(rng.uniform(np.log(RATIO[0]), np.log(RATIO[1]), n))
        w = np.round(np.sqrt(area * aspect)).astype(np.int64)
        h = np.round(np.sqrt(area / aspect)).astype(np.int64)
        fits = todo & (w > 0) & (h > 0) & (w <= shapes[:, 1]) & (h <= shapes[:, 0])
        left = (rng.random(n) * (shapes[:, 1] - w + 1)).astype(np.int64)
        top = (rng.random(n) * (shapes[:, 0] - h + 1)).astype(np.int64)
        boxes[fits, 0], boxes[fits, 1] = left[fits], top[fits]
        boxes[fits, 2], boxes[fits, 3] = left[fits] + w[fits], top[fits] + h[fits]
        todo &= ~fits
        if not todo.any():
            break
    boxes[:, 4] = rng.random(n) < 0.5
    return boxes


def augment_into(image: np.ndarray, box: np.ndarray, crop: int, out: np.ndarray) -> None:
    """``image`` cropped to ``box`` and resized to ``crop`` x ``crop`` (bilinear), flipped
    if the box says so, written to ``out``."""
    from PIL import Image

    picture = Image.fromarray(image)
    left, top, right, bottom, flip = (int(v) for v in box)
    resized = picture.resize(
        (crop, crop), Image.Resampling.BILINEAR, box=(left, top, right, bottom)
    )
    if flip:
        resized = resized.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out[...] = np.asarray(resized)


# ---------------------------------------------------------------- batches


@dataclasses.dataclass
class Batch:
    """One collated batch: ``images`` (b, crop, crop, channels), their labels and
    dataset indices, and the worker's CPU seconds reading and augmenting it."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    read_cpu_s: float
    augment_cpu_s: float


def make_batch(
    reader: Reader,
    indices: np.ndarray,
    shapes: np.ndarray | None,
    image_shape: tuple[int, ...],
    boxes: np.ndarray,
    crop: int,
) -> Batch:
    """Read ``indices`` in one read, augment and collate them (on the worker's CPU
    clock: this thread's or process's). ``shapes``: each dataset image's shape when
    the images have their own sizes, else None (every image is ``image_shape``)."""
    started = time.thread_time()
    if shapes is not None:
        raw: Any = Ragged.empty(shapes[indices])
    else:
        raw = np.empty((len(indices), *image_shape), np.uint8)
    labels = np.empty(len(indices), np.uint8)
    reader.read_into(indices, raw, labels)
    read = time.thread_time()
    channels = image_shape[-1] if shapes is None else int(shapes[0][2])
    out = np.empty((len(indices), crop, crop, channels), np.uint8)
    for k, index in enumerate(indices.tolist()):
        augment_into(_squeezed(raw[k]), boxes[index], crop, _squeezed(out[k]))
    done = time.thread_time()
    return Batch(out, labels, np.asarray(indices), read - started, done - read)


def _squeezed(image: np.ndarray) -> np.ndarray:
    """A one-channel image as Pillow takes it (height, width)."""
    return image[..., 0] if image.shape[-1] == 1 else image


def batches_of(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The order cut into batches (the last one may be short, as drop_last=False)."""
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def thread_batches(
    fmt: Format,
    store: Path,
    batches: Sequence[np.ndarray],
    make: Callable[[Reader, np.ndarray], Batch],
    workers: int,
) -> Iterator[Batch]:
    """The batches, in order, made by ``workers`` threads with ``PREFETCH`` batches
    each in flight. Each thread opens the store once (a reader is not shared between
    threads), unless the format's reader is made to be shared (``Format.threads_share``:
    LMDB opens one environment per process)."""
    local = threading.local()
    opened: list[Reader] = []
    lock = threading.Lock()
    shared: list[Reader] = []

    def reader() -> Reader:
        if fmt.threads_share:
            with lock:
                if not shared:
                    shared.append(fmt.open(store))
                    opened.append(shared[0])
            return shared[0]
        if getattr(local, "reader", None) is None:
            local.reader = fmt.open(store)
            with lock:
                opened.append(local.reader)
        return local.reader

    def work(indices: np.ndarray) -> Batch:
        return make(reader(), indices)

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="loader") as pool:
            pending: collections.deque[Any] = collections.deque()
            upcoming = iter(batches)
            for indices in upcoming:
                pending.append(pool.submit(work, indices))
                if len(pending) >= workers * PREFETCH:
                    break
            try:
                while pending:
                    batch = pending.popleft().result()
                    following = next(upcoming, None)
                    if following is not None:
                        pending.append(pool.submit(work, following))
                    yield batch
            finally:
                for future in pending:
                    future.cancel()
    finally:
        for opened_reader in opened:
            opened_reader.close()


# ---------------------------------------------------------------- memory


def pss_bytes(pid: int) -> int:
    """A process's proportional set size (its shared pages divided among the processes
    sharing them), from /proc; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def children(pid: int) -> list[int]:
    """The direct child processes of ``pid`` (the DataLoader's workers)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        return []
    return found


def loader_pss() -> int:
    """The PSS of this process and its children, in bytes."""
    me = os.getpid()
    return pss_bytes(me) + sum(pss_bytes(child) for child in children(me))


# ---------------------------------------------------------------- the loop


def run_epoch(batches: Iterator[Batch], step_s: float, expected: int) -> tuple[dict, list]:
    """Take every batch, then sleep ``step_s`` (the emulated step). Returns the epoch's
    measurements and the batches' (indices, labels, images of the first
    ``CHECKED_BATCHES``) for the check after the clock stops."""
    kept: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    computing = 0.0
    read_cpu = augment_cpu = 0.0
    peak = 0
    first_batch = math.nan
    count = 0
    paused = 0  # ns spent reading /proc for memory: off the epoch's clock
    start = time.perf_counter_ns()
    for k, batch in enumerate(batches):
        if k == 0:
            first_batch = (time.perf_counter_ns() - start) * NS
        if k % PSS_EVERY == 0:
            pause = time.perf_counter_ns()
            peak = max(peak, loader_pss())
            paused += time.perf_counter_ns() - pause
        kept.append((batch.indices, batch.labels, batch.images if k < CHECKED_BATCHES else None))
        read_cpu += batch.read_cpu_s
        augment_cpu += batch.augment_cpu_s
        count += len(batch.indices)
        began = time.perf_counter_ns()
        if step_s > 0:
            time.sleep(step_s)
        computing += (time.perf_counter_ns() - began) * NS
    elapsed = (time.perf_counter_ns() - start - paused) * NS
    if count != expected:
        raise StorebenchError(f"the training loop got {count} of {expected} images")
    return {
        "epoch_s": elapsed,
        # from the first batch on: the pipeline's fill is first_batch_s, on its own
        "au": computing / (elapsed - first_batch) if elapsed > first_batch else math.nan,
        "first_batch_s": first_batch,
        "read_cpu_s": read_cpu,
        "augment_cpu_s": augment_cpu,
        "pss_peak_mb": peak / 1e6,
    }, kept


def check_epoch(
    kept: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    order: np.ndarray,
    images: Any,
    labels: np.ndarray,
    boxes: np.ndarray,
    crop: int,
    decoded: Callable[[Any], Any],
    what: str,
) -> None:
    """Every image of ``order`` exactly once, in order, with its label; the kept
    batches' pixels equal to the augmentation of the stored (``decoded``) images."""
    got = np.concatenate([indices for indices, _, _ in kept]) if kept else np.empty(0, np.int64)
    if not np.array_equal(got, order):
        raise StorebenchError(f"{what}: the batches did not hold every image once, in order")
    got_labels = np.concatenate([lab for _, lab, _ in kept]) if kept else np.empty(0, np.uint8)
    if not np.array_equal(got_labels, labels[order]):
        raise StorebenchError(f"{what}: a batch's labels differ from the dataset's")
    for indices, batch_labels, batch_images in kept:
        if batch_images is None:
            continue
        stored = decoded(chunks.gather(images, indices))
        want = np.empty_like(batch_images)
        for k in range(len(indices)):
            augment_into(_squeezed(stored[k]), boxes[indices[k]], crop, _squeezed(want[k]))
        validate(batch_images, batch_labels, want, labels[indices], what)


def measure_loop(
    fmt: Format,
    store: Path,
    images: Any,
    labels: np.ndarray,
    order: np.ndarray,
    loop: Loop,
    loader: str,
    workers: int,
    *,
    reference: tuple[Format, Path] | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Epochs of the training loop over ``order`` through ``loader`` with ``workers``
    workers, in pairs with the same loop over a ``reference`` store (the floor; default:
    itself), warm cache (every file of both stores read once first). Each epoch draws
    its own crops (seeded by its number), made before the clock starts."""
    if loader not in LOADERS:
        raise StorebenchError(f"unknown loader {loader!r}; choose one of {LOADERS}")
    if workers < 1:
        raise StorebenchError(f"a loader needs at least one worker, not {workers}")
    shapes = images.shapes if isinstance(images, Ragged) else None
    every = _shapes(images)
    small = smallest_side(images)
    if loop.crop > small:
        raise StorebenchError(
            f"training.crop: {loop.crop} px is larger than the smallest image "
            f"({small} px); lower crop"
        )
    image_shape = tuple(images.shape[1:]) if shapes is None else (0, 0, int(every[0][2]))
    plan = batches_of(np.asarray(order), loop.batch_size)
    epochs = {"format": 0, "reference": 0}

    def epoch_of(side: str, side_fmt: Format, side_store: Path) -> Callable[[], dict[str, float]]:
        def epoch() -> dict[str, float]:
            epochs[side] += 1
            boxes = crop_boxes(every, seed * 1_000_003 + epochs[side])

            def make(reader: Reader, indices: np.ndarray) -> Batch:
                return make_batch(reader, indices, shapes, image_shape, boxes, loop.crop)

            if loader == "threads":
                source = thread_batches(side_fmt, side_store, plan, make, workers)
            else:
                from storebench import torchdata

                source = torchdata.process_batches(
                    side_fmt, side_store, plan, shapes, image_shape, boxes, loop.crop, workers
                )
            measured, kept = run_epoch(source, loop.step_s, len(order))
            check_epoch(
                kept,
                np.asarray(order),
                images,
                labels,
                boxes,
                loop.crop,
                side_fmt.decoded,
                f"training loop over {side_store}",
            )
            log.info(
                "epoch over %s: %.3f s, AU %.3f, first batch %.3f s",
                side_store,
                measured["epoch_s"],
                measured["au"],
                measured["first_batch_s"],
            )
            return measured

        return epoch

    ref_fmt, ref_store = reference or (fmt, store)
    pagecache.load([*fmt.cache_files(store), *ref_fmt.cache_files(ref_store)])
    fmt.load_reader()
    ref_fmt.load_reader()
    result = run_pairs(
        epoch_of("format", fmt, Path(store)),
        epoch_of("reference", ref_fmt, Path(ref_store)),
        policy or Policy.exactly(1),
        seed,
    )
    return {
        "cache": "warm",
        "loader": loader,
        "workers": workers,
        "batch_size": loop.batch_size,
        "step_ms": loop.step_s * 1e3,
        "crop": loop.crop,
        "cpus": os.cpu_count(),
        **result,
    }
