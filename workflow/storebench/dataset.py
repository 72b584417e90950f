"""The dataset every job reads: ``images.npy`` (n, height, width, 3) uint8, ``labels.npy``
and ``dataset.json``, built from CIFAR-10 or from a folder of your own images.

The source's images (CIFAR-10's training set, or every image of the folder) are
repeated in order to ``n_images`` (the classic article doubles CIFAR-10's
50,000 to 100,000), optionally resized to one ``size`` first. ``dataset.json``
says what the dataset is (source, image shape, counts, a checksum of the source
images); every result records it and every later job takes the image shape from
the dataset itself. Memory stays bounded: a resized or folder source is written
a chunk at a time to a staging file that is then repeated from its memory map.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from storebench import cifar, datasetfile, imagefolder, results
from storebench.chunks import chunk_images, write_npy
from storebench.errors import StorebenchError
from storebench.ragged import Ragged

log = logging.getLogger(__name__)

KINDS = ("cifar10", "imagefolder")
META = datasetfile.DATASET_META


def _resized(images: np.ndarray, size: tuple[int, int], rows: int) -> Iterator[np.ndarray]:
    """``images`` resized to ``size`` (bicubic), ``rows`` at a time."""
    for start in range(0, len(images), rows):
        part = images[start : start + rows]
        out = np.empty((len(part), size[0], size[1], images.shape[3]), np.uint8)
        for k, image in enumerate(part):
            resized = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BICUBIC)
            out[k] = np.asarray(resized)
        yield out


def _stage(
    parts: Iterator[tuple[np.ndarray, np.ndarray]],
    count: int,
    shape: tuple[int, ...],
    path: Path,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Write the source's images to ``path`` (a .npy of ``count`` rows of ``shape``; of
    ``count`` bytes for images of their own sizes, ``shape`` ``()``) a chunk at a time;
    its labels and the sha256 of its images and labels (first 16 hex digits)."""
    digest = hashlib.sha256()
    labels: list[np.ndarray] = []

    def images() -> Iterator[np.ndarray]:
        written = 0
        for part_images, part_labels in parts:
            digest.update(np.ascontiguousarray(part_images).data)
            labels.append(part_labels)
            written += len(part_images)
            yield part_images
        if written != count:
            raise StorebenchError(f"{path}: {written} images written, {count} expected")

    with open(path, "wb") as handle:
        write_npy(handle, (count, *shape), np.dtype(np.uint8), images())
    all_labels = np.concatenate(labels) if labels else np.empty(0, np.uint8)
    digest.update(all_labels.tobytes())
    return np.load(path, mmap_mode="r"), all_labels, digest.hexdigest()[:16]


def build(
    kind: str,
    source: Path,
    n_images: int,
    images_out: Path,
    labels_out: Path,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Build the dataset from ``source`` (an extracted CIFAR-10 archive, or an image
    folder) and return what ``dataset.json`` records."""
    if kind not in KINDS:
        raise StorebenchError(f"dataset.kind: unknown kind {kind!r}; choose one of {KINDS}")
    images_out = Path(images_out)
    staging = images_out.with_name(f".{images_out.stem}.source.npy")
    identity: dict[str, Any] = {"kind": kind, "size": list(size) if size else None}
    try:
        if kind == "cifar10":
            images, labels = cifar.load_training_set(source)
            images, labels = images[:n_images], labels[:n_images]  # no more than needed
            identity.update(source=cifar.BATCH_DIR, classes=cifar.N_CLASSES)
            if size is not None:
                shape = (size[0], size[1], images.shape[3])
                rows = chunk_images(int(np.prod(shape)))
                label_parts = (labels[s : s + rows] for s in range(0, len(labels), rows))
                parts = zip(_resized(images, size, rows), label_parts, strict=True)
                images, labels, sha = _stage(parts, len(labels), shape, staging)
            else:
                digest = hashlib.sha256(images.tobytes())
                digest.update(labels.tobytes())
                sha = digest.hexdigest()[:16]
        else:
            classes, files = imagefolder.scan(source)
            files = files[:n_images]  # the first n, in order, when the folder holds more
            identity.update(source=str(Path(source).resolve()), classes=len(classes))
            shapes = imagefolder.shapes_of(files) if size is None else None
            if shapes is not None and len(np.unique(shapes, axis=0)) > 1:
                # Native sizes that differ: the images at their own sizes (ragged).
                rows = chunk_images(int(np.prod(shapes, axis=1).max()))
                parts = imagefolder.ragged_chunks_of(files, shapes, rows)
                total = (int(np.prod(shapes, axis=1).sum()),)
                flat, labels, sha = _stage(parts, total[0], (), staging)
                images = Ragged(flat, shapes)
            else:
                shape = imagefolder.shape_of(files, size)
                rows = chunk_images(int(np.prod(shape)))
                parts = imagefolder.chunks_of(files, size, rows)
                images, labels, sha = _stage(parts, len(files), shape, staging)
        if isinstance(images, Ragged):
            log.info("source: %d images of their own sizes", len(images))
            datasetfile.save_repeated_ragged(images, n_images, images_out)
        else:
            log.info("source: %d images of %s", len(images), images.shape[1:])
            datasetfile.save_repeated(images, n_images, images_out)
            np.save(images_out.with_name(datasetfile.SHAPES), np.empty((0, 3), np.int64))
        datasetfile.save_repeated(labels, n_images, labels_out)
    finally:
        staging.unlink(missing_ok=True)
    ragged = isinstance(images, Ragged)
    identity.update(
        sha256=sha,
        source_images=len(labels),
        shape=None if ragged else list(images.shape[1:]),
        dtype="uint8",
        n_images=n_images,
    )
    if ragged:
        sizes = np.prod(images.shapes, axis=1)
        identity.update(
            image_bytes_mean=float(sizes.mean()),
            shape_min=images.shapes.min(axis=0).tolist(),
            shape_max=images.shapes.max(axis=0).tolist(),
        )
    results.write_json(identity, images_out.with_name(META))
    log.info("dataset: %d images -> %s, %s", n_images, images_out, labels_out)
    return identity


def planned_shape(spec: dict[str, Any]) -> tuple[int, int, int]:
    """The image shape a ``dataset`` config section will give, known before the dataset
    is built (for the free-space check and schedulers' memory): its ``size``, else
    CIFAR-10's 32x32 or the folder's images' (the largest of each side, where they
    differ)."""
    if spec.get("size"):
        height, width = spec["size"]
        return (height, width, 3)
    if spec["kind"] == "cifar10":
        return cifar.IMAGE_SHAPE
    _, files = imagefolder.scan(Path(spec["path"]))
    shapes = imagefolder.shapes_of(files)
    return tuple(int(v) for v in shapes.max(axis=0))  # the largest: an upper bound


def planned_variable(spec: dict[str, Any]) -> bool:
    """Whether the dataset will hold images of different sizes (a folder kept at native
    sizes that differ), known before it is built (from the images' headers)."""
    if spec.get("size") or spec["kind"] == "cifar10":
        return False
    _, files = imagefolder.scan(Path(spec["path"]))
    return len(np.unique(imagefolder.shapes_of(files), axis=0)) > 1


def source_state(spec: dict[str, Any]) -> str:
    """A fingerprint of an image folder's files (names, sizes, modification times), so
    that adding, removing or editing an image rebuilds the dataset; "" for CIFAR-10
    (its archive is the rule's input)."""
    if spec["kind"] != "imagefolder":
        return ""
    _, files = imagefolder.scan(Path(spec["path"]))
    digest = hashlib.sha256()
    for path, label in files:
        stat = path.stat()
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
