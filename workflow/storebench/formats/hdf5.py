"""One HDF5 file (h5py) with an ``images`` and a ``labels`` dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np

from storebench.formats.base import Format, Reader, is_range

FILE = "data.h5"


class Hdf5Reader(Reader):
    def __init__(self, directory: Path):
        self.file = h5py.File(Path(directory) / FILE, "r")
        self.images = self.file["images"]
        self.labels = self.file["labels"]

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if is_range(indices):
            if len(indices):
                source = np.s_[int(indices[0]) : int(indices[-1]) + 1]
                self.images.read_direct(images, source_sel=source)
                self.labels.read_direct(labels, source_sel=source)
            return
        # h5py selects points in increasing order only: read each distinct index
        # once, in order, then put them where the caller asked.
        unique, inverse = np.unique(indices, return_inverse=True)
        images[:] = self.images[unique][inverse]
        labels[:] = self.labels[unique][inverse]

    def close(self) -> None:
        self.file.close()


COMPRESSIONS = (None, "gzip", "lzf")


@dataclasses.dataclass(frozen=True)
class Hdf5Format(Format):
    """``chunk``: images per chunk (``null``: one contiguous dataset, the classic
    layout); ``compression``: ``null``, ``gzip`` or ``lzf`` (needs chunks);
    ``level``: gzip level 0..9."""

    kind = "hdf5"
    chunk: int | None = None
    compression: str | None = None
    level: int | None = None

    def __post_init__(self) -> None:
        if self.chunk is not None and (not isinstance(self.chunk, int) or self.chunk < 1):
            raise ValueError(f"chunk must be a positive integer or null, not {self.chunk!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if self.compression and self.chunk is None:
            raise ValueError("compression needs chunk (images per chunk)")
        if self.level is not None and (self.compression != "gzip" or not 0 <= self.level <= 9):
            raise ValueError("level is a gzip level 0..9 and needs compression: gzip")

    def write(self, directory: Path, images: np.ndarray, labels: np.ndarray) -> None:
        layout = {}
        if self.chunk is not None:
            layout = {
                "chunks": (min(self.chunk, max(1, len(images))), *images.shape[1:]),
                "compression": self.compression,
                "compression_opts": self.level,
            }
        with h5py.File(Path(directory) / FILE, "w") as file:
            file.create_dataset("images", data=images, **layout)
            file.create_dataset("labels", data=labels)

    def open(self, directory: Path) -> Reader:
        return Hdf5Reader(directory)
