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


@dataclasses.dataclass(frozen=True)
class Hdf5Format(Format):
    """Contiguous, uncompressed datasets (the classic article's layout)."""

    kind = "hdf5"

    def write(self, directory: Path, images: np.ndarray, labels: np.ndarray) -> None:
        with h5py.File(Path(directory) / FILE, "w") as file:
            file.create_dataset("images", data=images)
            file.create_dataset("labels", data=labels)

    def open(self, directory: Path) -> Reader:
        return Hdf5Reader(directory)
