"""Images of different sizes (a folder kept at its native sizes): :class:`Ragged`.

A fixed-size dataset is one array ``(n, height, width, 3)``. A ragged one is the
images' pixels one after another in a flat ``uint8`` array (``data``), image ``k``
being ``data[offsets[k]:offsets[k + 1]]`` of shape ``shapes[k]``. On disk, the
dataset's ``images.npy`` is then that flat array and ``shapes.npy`` beside it the
shapes. Formats that store one record per image take either; buffers a read fills
are laid out for the images it asks for (:meth:`Ragged.empty`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from storebench.errors import StorebenchError


class Ragged:
    """``n`` images of their own shapes ``(height, width, channels)``, uint8."""

    dtype = np.dtype(np.uint8)

    def __init__(self, data: np.ndarray, shapes: np.ndarray, offsets: np.ndarray | None = None):
        self.data = data
        self.shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 3)
        if offsets is None:
            offsets = np.zeros(len(self.shapes) + 1, np.int64)
            np.cumsum(np.prod(self.shapes, axis=1), out=offsets[1:])
        self.offsets = np.asarray(offsets, dtype=np.int64)
        if len(self.offsets) != len(self.shapes) + 1 or self.offsets[-1] > len(data):
            raise StorebenchError(
                f"ragged images: {len(self.shapes)} shapes need {int(self.offsets[-1]):,} bytes, "
                f"the data holds {len(data):,}"
            )

    @classmethod
    def empty(cls, shapes: np.ndarray) -> Ragged:
        """A buffer for images of ``shapes`` (allocated, every page touched)."""
        shapes = np.asarray(shapes, dtype=np.int64).reshape(-1, 3)
        data = np.zeros(int(np.prod(shapes, axis=1).sum()), np.uint8)
        return cls(data, shapes)

    @classmethod
    def of(cls, images: list[np.ndarray]) -> Ragged:
        """The images of a list, copied into one buffer."""
        out = cls.empty(np.array([image.shape for image in images], np.int64).reshape(-1, 3))
        for k, image in enumerate(images):
            out[k] = image
        return out

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    @property
    def sizes(self) -> np.ndarray:
        """Bytes of each image."""
        return np.diff(self.offsets)

    @property
    def max_bytes(self) -> int:
        return int(self.sizes.max(initial=0))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
            return self.data[lo:hi].reshape(self.shapes[k])
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self.take(np.arange(start, stop, step))
            lo = int(self.offsets[start])
            return Ragged(
                self.data[lo : int(self.offsets[max(start, stop)])],
                self.shapes[start:stop],
                self.offsets[start : max(start, stop) + 1] - lo,
            )
        return self.take(np.asarray(key))

    def __setitem__(self, key: int, image: np.ndarray) -> None:
        slot = self[key]
        if slot.shape != np.shape(image):
            raise StorebenchError(
                f"an image of shape {np.shape(image)} where the dataset's image {key} is "
                f"{slot.shape}; the store was written from another dataset: rerun its store job"
            )
        slot[...] = image

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self)):
            yield self[k]

    def take(self, indices: np.ndarray) -> Ragged:
        """A copy of images ``indices`` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"index out of range 0..{len(self) - 1}")
        out = Ragged.empty(self.shapes[indices])
        starts, ends = self.offsets[indices].tolist(), self.offsets[indices + 1].tolist()
        out_starts = out.offsets[:-1].tolist()
        for lo, hi, at in zip(starts, ends, out_starts, strict=True):
            out.data[at : at + hi - lo] = self.data[lo:hi]
        return out

    def fill(self, value: int) -> None:
        self.data[self.offsets[0] : self.offsets[-1]].fill(value)

    def flat(self) -> np.ndarray:
        """The images' pixels, one after another."""
        return self.data[self.offsets[0] : self.offsets[-1]]

    def same_as(self, other: Ragged) -> bool:
        return np.array_equal(self.shapes, other.shapes) and np.array_equal(
            self.flat(), other.flat()
        )

    def differing(self, other: Ragged) -> np.ndarray:
        """Positions whose images differ (shape or pixels)."""
        return np.array(
            [
                k
                for k in range(len(self))
                if self.shapes[k].tolist() != other.shapes[k].tolist()
                or not np.array_equal(self[k], other[k])
            ],
            dtype=np.int64,
        )


def is_ragged(images: object) -> bool:
    return isinstance(images, Ragged)
