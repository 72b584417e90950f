"""The one interface every storage format implements."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from storebench import chunks
from storebench.chunks import Images

IMAGE_BYTES = 32 * 32 * 3  # one CIFAR image, (32, 32, 3) uint8

# Files that tools put into a store's folder but that are not part of the store
# (Snakemake marks directory outputs with a timestamp file).
FOREIGN = frozenset({".snakemake_timestamp"})


class Reader(ABC):
    """An open store: fills caller-owned buffers with the images at any indices."""

    @abstractmethod
    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        """Write image ``indices[k]`` to ``images[k]`` and its label to ``labels[k]``.

        ``images`` is ``(len(indices), 32, 32, 3) uint8`` and ``labels``
        ``(len(indices),) uint8``; indices come in any order and may repeat.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the store's handles."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class Format(ABC):
    """A storage format; its dataclass fields are its options from ``config.yaml``.

    Subclasses set ``kind`` (the name used in ``config.yaml``) and live in a
    module of :mod:`storebench.formats`, which finds them by that name.
    """

    kind: ClassVar[str]
    # Distributions (PyPI names) whose code this format runs: their versions are
    # recorded with every result and fingerprinted, so an upgrade reruns the jobs.
    libraries: ClassVar[tuple[str, ...]] = ("numpy",)
    # An upper estimate of a store's bytes on disk per image, for the free-space
    # check before a run: one 4 KiB file-system block or LMDB page, plus a quarter.
    disk_bytes_per_image: ClassVar[int] = 5 * 1024

    @abstractmethod
    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        """Store ``images (n,32,32,3) uint8`` and ``labels (n,) uint8`` in an empty folder.

        Take the images through :func:`image_chunks` (a chunk at a time), so that
        a store of any size is written with bounded memory; ``labels`` (one byte
        per image) are in memory.
        """

    @abstractmethod
    def open(self, directory: Path) -> Reader:
        """Open a store written by :meth:`write` for reading."""

    def files(self, directory: Path) -> list[Path]:
        """Every file the store consists of (for disk usage and cache eviction)."""
        return sorted(
            p for p in Path(directory).rglob("*") if p.is_file() and p.name not in FOREIGN
        )

    def options(self) -> dict[str, object]:
        """The options this format was configured with (defaults filled in)."""
        return dataclasses.asdict(self)


def image_chunks(images: np.ndarray | Images) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, images[start:start + size])`` for consecutive chunks of the images (a
    chunk: :data:`~storebench.chunks.CHUNK_BYTES` of them)."""
    size = chunks.chunk_of(images)
    for start in range(0, len(images), size):
        yield start, images[start : start + size]


def is_range(indices: np.ndarray) -> bool:
    """True if ``indices`` is ``start, start+1, ..., start+len-1``."""
    if len(indices) == 0:
        return True
    start = int(indices[0])
    return bool(np.array_equal(indices, np.arange(start, start + len(indices))))
