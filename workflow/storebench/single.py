"""The single-image protocols: the latency of reading one image, and the classic
article's case of storing and reading back one image on its own.

Like every timed job, each measurement is paired with the floor doing the same,
in a random order, and every image read is validated after the clock stops.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from storebench.chunks import gather
from storebench.formats import Format
from storebench.host import fresh_dir
from storebench.measure import NS
from storebench.ragged import Ragged
from storebench.sampling import CpuProbe, Policy, run_pairs
from storebench.validation import validate


def measure_latency(
    fmt: Format,
    store: Path,
    images: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    *,
    reference: tuple[Format, Path] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time single-image reads at ``indices`` (warm cache), two ways, each paired with
    the same read from a ``reference`` store (the floor; default: the store itself).

    ``open_read_close``: open the store, read one image, close (the article's
    single read). ``lookup``: read one image from a store opened once (what a
    data loader does). For every index the format and the reference read it one
    after the other, in a random order. Every image read is validated after the
    clock stops. The CPU probe is timed every :data:`CPU_EVERY` images.
    """
    ref_fmt, ref_store = reference or (fmt, store)
    sides = {"format": (fmt, Path(store)), "reference": (ref_fmt, Path(ref_store))}
    # The buffer a read fills: one for every index; ragged images: one per image, made
    # (untimed) before each read.
    fixed = None if isinstance(images, Ragged) else np.empty((1, *images.shape[1:]), np.uint8)
    buffer: dict[str, Any] = {"image": fixed}
    label = np.empty(1, np.uint8)

    def buffer_for(index: np.ndarray) -> Any:
        if fixed is None:
            buffer["image"] = Ragged.empty(images.shapes[index])
        return buffer["image"]

    rng = np.random.default_rng(seed)
    orders = [
        ("format", "reference") if rng.random() < 0.5 else ("reference", "format")
        for _ in range(len(indices))
    ]
    cpu = CpuProbe()
    cpu_s: list[float] = []
    times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}

    def check(index: np.ndarray, side: str) -> None:
        # gather: faulting scattered rows of the mapped dataset in would leave GBs resident
        side_fmt, side_store = sides[side]
        expected = side_fmt.decoded(gather(images, index))
        got = buffer["image"]
        validate(got, label, expected, labels[index], f"single read of {side_store}")

    for side_fmt, side_store in sides.values():  # untimed warm-up: every image cached
        with side_fmt.open(side_store) as reader:
            for index in indices.tolist():
                single = np.array([index])
                reader.read_into(single, buffer_for(single), label)

    def one(reader_of: Any, mode: str) -> None:
        for k, index in enumerate(indices.tolist()):
            if k % CPU_EVERY == 0:
                cpu_s.append(cpu())
            single = np.array([index])
            for side in orders[k]:
                buffer_for(single).fill(0)
                label.fill(255)  # a read must write the label too
                elapsed = reader_of(side, single)
                times[side].setdefault(mode, []).append(elapsed)
                check(single, side)

    def open_read_close(side: str, single: np.ndarray) -> float:
        side_fmt, side_store = sides[side]
        image = buffer["image"]
        start = time.perf_counter_ns()
        with side_fmt.open(side_store) as reader:
            reader.read_into(single, image, label)
        return (time.perf_counter_ns() - start) * NS

    one(open_read_close, "open_read_close_s")
    readers = {"format": fmt.open(store)}
    # One store paired with itself shares one reader (LMDB opens an environment once).
    same = sides["reference"] == sides["format"]
    readers["reference"] = readers["format"] if same else ref_fmt.open(ref_store)
    try:

        def lookup(side: str, single: np.ndarray) -> float:
            image = buffer["image"]
            start = time.perf_counter_ns()
            readers[side].read_into(single, image, label)
            return (time.perf_counter_ns() - start) * NS

        one(lookup, "lookup_s")
    finally:
        for reader in {id(r): r for r in readers.values()}.values():
            reader.close()
    return {
        "samples": times["format"],
        "reference_samples": times["reference"],
        "first": [order[0] for order in orders],
        "cpu_s": cpu_s,
    }


CPU_EVERY = 100


def measure_single(
    fmt: Format,
    image: np.ndarray,
    label: np.ndarray,
    scratch: Path,
    repeats: int | None = None,
    *,
    reference: Format | None = None,
    policy: Policy | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The article's single-image case: store image 0 on its own, then read it back;
    in pairs with the same for a ``reference`` format (the floor; default: itself)."""
    scratch = Path(scratch)
    images, labels = image[None], label[None]
    index = np.zeros(1, dtype=np.int64)
    out_images, out_labels = np.empty_like(images), np.empty_like(labels)

    def single(side_fmt: Format) -> Callable[[], dict[str, float]]:
        side_fmt.load_writer()

        def trial() -> dict[str, float]:
            target = fresh_dir(scratch, "single.")
            start = time.perf_counter_ns()
            side_fmt.write(target, images, labels)
            stored = (time.perf_counter_ns() - start) * NS
            out_images.fill(0)
            out_labels.fill(255)
            start = time.perf_counter_ns()
            with side_fmt.open(target) as reader:
                reader.read_into(index, out_images, out_labels)
            read = (time.perf_counter_ns() - start) * NS
            expected = side_fmt.decoded(images)
            validate(out_images, out_labels, expected, labels, f"single-image read of {target}")
            side_fmt.forget(target)
            shutil.rmtree(target)
            return {"single_store_s": stored, "single_read_s": read}

        return trial

    return run_pairs(
        single(fmt), single(reference or fmt), policy or Policy.exactly(repeats or 1), seed
    )
