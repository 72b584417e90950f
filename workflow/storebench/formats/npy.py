"""The raw floor: the images as one ``.npy`` file, read through a memory map.

No per-image framing, no decoding: the fastest a Python reader can get the
pixels, so every other format's cost shows as a ratio to this one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from storebench.chunks import Images, write_npy
from storebench.formats.base import Format, Reader, image_chunks, is_range

IMAGES, LABELS = "images.npy", "labels.npy"


class NpyReader(Reader):
    def __init__(self, directory: Path):
        self.images = np.load(Path(directory) / IMAGES, mmap_mode="r")
        self.labels = np.load(Path(directory) / LABELS, mmap_mode="r")

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if is_range(indices):
            if len(indices):
                start, stop = int(indices[0]), int(indices[-1]) + 1
                images[:] = self.images[start:stop]
                labels[:] = self.labels[start:stop]
            return
        np.take(self.images, indices, axis=0, out=images)
        np.take(self.labels, indices, out=labels)

    def close(self) -> None:
        # np.memmap has no close(); dropping the references unmaps the files.
        del self.images, self.labels


@dataclasses.dataclass(frozen=True)
class NpyFormat(Format):
    """Two ``.npy`` files (images, labels), memory-mapped for reading."""

    kind = "npy"
    disk_bytes_per_image = 3_300  # 3,073 bytes of image and label, plus 7%

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        with open(Path(directory) / IMAGES, "wb") as handle:
            write_npy(handle, images.shape, images.dtype,
                      (chunk for _, chunk in image_chunks(images)))  # fmt: skip
        np.save(Path(directory) / LABELS, labels)

    def open(self, directory: Path) -> Reader:
        return NpyReader(directory)
