"""The run's dataset file, whatever its source: ``images.npy`` (or the bytes of images
of their own sizes with ``shapes.npy``), ``labels.npy`` and ``dataset.json``. Written
by repeating the source's images in order (each repeat marked in its first bytes),
memory-mapped by every job.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from storebench import results
from storebench.chunks import chunk_of, spans, write_npy
from storebench.errors import StorebenchError
from storebench.ragged import Ragged

DATASET_META = "dataset.json"


MARK_BYTES = 8  # a repeat's number, little-endian, XORed into an image's first bytes


def _marks(repeat: np.ndarray, width: int) -> np.ndarray:
    """The bytes XORed into the first ``width`` (at most :data:`MARK_BYTES`) bytes of
    images of repeat number ``repeat``: the number, little-endian."""
    shifts = 8 * np.arange(width, dtype=np.uint64)
    return ((repeat.astype(np.uint64)[:, None] >> shifts) & 0xFF).astype(np.uint8)


def repeated_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of ``array`` repeated in order; images of every repeat after the first
    carry the repeat's number in their first bytes (XOR, little-endian, over up to
    :data:`MARK_BYTES` bytes: the first pixel's channels, then the next pixels'), so no two
    rows are the same image and a reader that returns row ``i mod len(array)`` (or
    ``i mod 65,536``) fails validation. An image of fewer bytes than a repeat's number
    needs keeps its low bytes only."""
    part = np.ascontiguousarray(array[rows % len(array)])  # reshape below: a view
    repeat = rows // len(array)
    marked = repeat > 0
    if marked.any() and part.ndim >= 2:
        flat = part.reshape(len(part), -1)
        width = min(MARK_BYTES, flat.shape[1])
        flat[marked, :width] ^= _marks(repeat[marked], width)
        part = flat.reshape(part.shape)
    return part


def save_repeated(array: np.ndarray, n: int, path: Path) -> None:
    """Write ``array`` repeated in order to ``n`` rows as a .npy file, atomically
    (:func:`repeated_rows`: each repeat of an image is marked in its first bytes).

    The article doubles 50,000 images to 100,000; any n works. Rows are written a
    chunk at a time, so only ``array`` and one chunk are ever in memory.
    """
    if len(array) == 0:
        raise StorebenchError("the training set is empty; the archive holds no images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with _removed_on_failure(tmp), open(tmp, "wb") as handle:
        size = chunk_of(array)
        rows = (repeated_rows(array, np.arange(start, stop)) for start, stop in spans(n, size))
        write_npy(handle, (n, *array.shape[1:]), array.dtype, rows)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_failure(path: Path) -> Iterator[None]:
    """Delete ``path`` (a file being written) if the block fails: a full disk must not
    keep the space, nor leave a file a rerun could take for the dataset."""
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def dataset_identity(images: Path) -> dict[str, Any] | None:
    """What :func:`storebench.dataset.build` recorded about the dataset at ``images`` (None
    if nothing)."""
    meta = Path(images).with_name(DATASET_META)
    return results.read_json(meta) if meta.exists() else None


SHAPES = "shapes.npy"  # beside images.npy: each image's shape (empty: all one size)


def save_repeated_ragged(source: Ragged, n: int, path: Path) -> None:
    """:func:`save_repeated` for images of their own sizes: ``path`` gets their bytes one
    after another (repeated in order to ``n`` images, each repeat marked in its first
    bytes), :data:`SHAPES` beside it their shapes."""
    if len(source) == 0:
        raise StorebenchError("the source holds no images")
    path = Path(path)
    rows = np.arange(n) % len(source)
    shapes = source.shapes[rows]
    total = int(np.prod(shapes, axis=1).sum())
    tmp = path.with_name(f".{path.name}.tmp")

    def parts():
        for start, stop in spans(n, max(1, chunk_of(source))):
            part = source.take(rows[start:stop])
            repeat = np.arange(start, stop) // len(source)
            marked = repeat > 0
            first = part.offsets[:-1][marked]
            sizes = np.diff(part.offsets)[marked]
            marks = _marks(repeat[marked], MARK_BYTES)
            for k in range(MARK_BYTES):
                has = sizes > k  # an image of fewer bytes keeps the low bytes only
                part.data[first[has] + k] ^= marks[has, k]
            yield part.flat()

    with _removed_on_failure(tmp), open(tmp, "wb") as handle:
        write_npy(handle, (total,), np.dtype(np.uint8), parts())
        handle.flush()
        os.fsync(handle.fileno())
    np.save(path.with_name(SHAPES), shapes)
    os.replace(tmp, path)


def load_dataset(images: Path, labels: Path) -> tuple[np.ndarray | Ragged, np.ndarray]:
    """Memory-map the dataset written by :func:`storebench.dataset.build` (images of
    their own sizes: a :class:`~storebench.ragged.Ragged` over the mapped bytes)."""
    array = np.load(images, mmap_mode="r")
    if array.ndim == 1:
        array = Ragged(array, np.load(Path(images).with_name(SHAPES)))
    return array, np.load(labels, mmap_mode="r")


def load_first(images: Path, labels: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images (memory-mapped; jobs take them a chunk at a time) and labels
    (one byte each, in memory) of the dataset."""
    all_images, all_labels = load_dataset(images, labels)
    meta = dataset_identity(images)
    if meta and "shape" in meta:
        # Images of their own sizes: dataset.json records no one shape, only the count.
        ragged = isinstance(all_images, Ragged)
        found = (len(all_images),) if ragged else tuple(all_images.shape)
        recorded = (meta["n_images"], *(meta["shape"] or []))
        if tuple(found) != tuple(recorded) or len(all_labels) != meta["n_images"]:
            raise StorebenchError(
                f"{images}: {found} images and {len(all_labels)} labels, but "
                f"{DATASET_META} records {tuple(recorded)}; the dataset was changed after "
                "it was built: rebuild it (snakemake --forcerun dataset)"
            )
    if n > len(all_images):
        raise StorebenchError(f"n={n} exceeds the dataset's {len(all_images)} images")
    return all_images[:n], np.array(all_labels[:n])
