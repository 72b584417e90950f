"""Validation: every image a timed read returns is compared with the dataset.

The clock is stopped while a read is checked; a read that returns wrong, missing
or no images fails its job. :class:`ChunkedCheck` does this a chunk at a time so a
job's memory stays bounded at any n.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from storebench import chunks
from storebench.chunks import gather, spans
from storebench.errors import StorebenchError
from storebench.ragged import Ragged


def checksum(images: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over images then labels, in the order given."""
    digest = hashlib.sha256()
    flat = images.flat() if isinstance(images, Ragged) else np.ascontiguousarray(images).data
    digest.update(flat)
    digest.update(np.ascontiguousarray(labels).data)
    return digest.hexdigest()


EQUAL_BLOCK_BYTES = 2**21


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """``np.array_equal`` of two arrays of one shape, a block of rows at a time: the
    whole-array comparison allocates a boolean array as large as the images (300 MB
    at 100,000 images), which cost 0.1 s a read here, once per read of every pair."""
    rows = max(1, EQUAL_BLOCK_BYTES // max(1, a[:1].nbytes))
    return all(np.array_equal(a[i : i + rows], b[i : i + rows]) for i in range(0, len(a), rows))


def validate(
    images: np.ndarray,
    labels: np.ndarray,
    expected_images: np.ndarray,
    expected_labels: np.ndarray,
    what: str,
    first: int = 0,
) -> None:
    """Fail unless the read images and labels are exactly the expected ones.

    ``first``: the position of these images in the whole read (a chunk of it).
    """
    if isinstance(expected_images, Ragged):  # images of their own sizes
        if not isinstance(images, Ragged) or len(images) != len(expected_images):
            raise StorebenchError(f"{what}: read no ragged buffer of {len(expected_images)} images")
        same = images.same_as(expected_images)
        bad = np.empty(0, np.int64) if same else images.differing(expected_images)
    elif images.shape != expected_images.shape or images.dtype != np.uint8:
        raise StorebenchError(
            f"{what}: read {images.shape} {images.dtype}, expected {expected_images.shape} uint8"
        )
    else:
        same = _equal(images, expected_images)
        bad = (
            np.empty(0, np.int64)
            if same
            else np.flatnonzero((images != expected_images).reshape(len(images), -1).any(axis=1))
        )
    if not same:
        raise StorebenchError(
            f"{what}: {len(bad)} of {len(images)} images differ from the dataset "
            f"(first at position {first + bad[0]}); the store or its reader is wrong"
        )
    if not np.array_equal(labels, expected_labels):
        bad = np.flatnonzero(labels != expected_labels)
        raise StorebenchError(
            f"{what}: {len(bad)} of {len(labels)} labels differ from the dataset "
            f"(first at position {first + bad[0]}); the store or its reader is wrong"
        )


class ChunkedCheck:
    """Validates a read of ``indices`` chunk by chunk against the dataset.

    Holds one chunk of output (``out_images``, ``out_labels``) and, while
    checking, the expected chunk gathered from the (memory-mapped) dataset. When
    the whole read fits in one chunk, the expected images are gathered once and
    kept for every repeat. The checksum covers the whole read, as if it had been
    one buffer: every image is validated to equal the dataset's, so it is the
    checksum of the expected images, computed once per job rather than once per
    read (a sha256 of 300 MB took about 0.5 s a read here).

    ``decoded``: the images a read returns for a chunk of the dataset's (a lossy
    format's :meth:`~storebench.formats.base.Format.decoded`); by default the same.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        indices: np.ndarray,
        what: str,
        size: int | None = None,
        decoded: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.images, self.labels, self.indices, self.what = images, labels, indices, what
        self.decoded = decoded
        self.size = max(1, min(size or chunks.chunk_of(images), len(indices)))
        self.out_labels = np.empty(self.size, labels.dtype)
        self.spans = list(spans(len(indices), self.size))
        if isinstance(images, Ragged):
            # One flat buffer, as large as the largest chunk; each chunk's images are laid
            # out in it by their own sizes (:meth:`out`).
            sizes = np.prod(images.shapes[indices], axis=1)
            most = max((int(sizes[lo:hi].sum()) for lo, hi in self.spans), default=0)
            self.out_images = np.empty(most, np.uint8)
        else:
            self.out_images = np.empty((self.size, *images.shape[1:]), images.dtype)
        self._checked = 0
        self._whole: tuple[np.ndarray, np.ndarray] | None = None
        self._checksum: str | None = None

    def out(self, start: int, stop: int) -> tuple[np.ndarray | Ragged, np.ndarray]:
        """The buffers a read of ``indices[start:stop]`` (within one chunk) fills."""
        count = stop - start
        if isinstance(self.images, Ragged):
            shapes = self.images.shapes[self.indices[start:stop]]
            return Ragged(self.out_images, shapes), self.out_labels[:count]
        return self.out_images[:count], self.out_labels[:count]

    def clear(self) -> None:
        """Fill the output with values a read must overwrite (touching every page)."""
        self.out_images.fill(0)
        self.out_labels.fill(255)

    def restart(self) -> None:
        """Forget the chunks checked so far (a new repeat)."""
        self._checked = 0

    def _gather(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = gather(self.images, wanted)
        if self.decoded is not None:
            images = self.decoded(images)
        return images, self.labels[wanted]

    def _expected(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        if (start, stop) != (0, len(self.indices)):
            return self._gather(self.indices[start:stop])
        if self._whole is None:  # the whole read is one chunk: gather it once
            self._whole = self._gather(self.indices)
        return self._whole

    def check(self, start: int, stop: int) -> None:
        """Validate the output against images ``indices[start:stop]``, then clear it.

        Chunks must be checked in order, each starting where the last one stopped.
        """
        if start != self._checked:
            raise StorebenchError(
                f"{self.what}: chunk {start}..{stop} checked out of order "
                f"(expected one starting at {self._checked})"
            )
        validate(*self.out(start, stop), *self._expected(start, stop), self.what, start)
        self._checked = stop
        if stop < len(self.indices):  # the next chunk must overwrite (the next read clears)
            self.clear()

    def checksum(self) -> str:
        """:func:`checksum` of every image then every label read, in order."""
        if self._checked != len(self.indices):
            raise StorebenchError(
                f"{self.what}: {self._checked} of {len(self.indices)} images "
                "were read and checked; the read is incomplete"
            )
        if self._checksum is None:
            digest = hashlib.sha256()
            for lo, hi in self.spans:
                expected = self._expected(lo, hi)[0]
                digest.update(expected.flat() if isinstance(expected, Ragged) else expected.data)
            digest.update(np.ascontiguousarray(self.labels[self.indices]).data)
            self._checksum = digest.hexdigest()
        return self._checksum
