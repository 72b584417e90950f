"""A Zarr v3 store (zarr-python): ``images`` (n, height, width, 3) and ``labels`` arrays.

The modern chunked array store. ``chunk``: images per chunk (one compressed unit,
one file unless sharded); ``shard``: images per shard file, each holding
``shard / chunk`` chunks and an index (Zarr v3's sharding codec: far fewer files
at small chunks); ``compression``: ``none``, ``zstd``, ``blosc_zstd`` or
``blosc_lz4`` (Blosc with byte shuffle) at ``level``. Reads go straight into the
caller's buffer (zarr's ``out=``): a range as one basic selection; scattered rows a
block of whole chunks at a time, in file order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype

from storebench import chunks
from storebench.chunks import Images
from storebench.errors import StorebenchError
from storebench.formats.base import (
    Format,
    Reader,
    check_shape,
    check_unit,
    is_range,
    one_size_only,
    reused_buffer,
)

COMPRESSIONS = ("none", "zstd", "blosc_zstd", "blosc_lz4")
BLOCK_BYTES = 4 * 2**20  # scattered reads go through a buffer of about this many bytes


def _codecs(compression: str, level: int) -> list | None:
    if compression == "none":
        return None
    if compression == "zstd":
        return [ZstdCodec(level=level)]
    cname = compression.removeprefix("blosc_")
    return [BloscCodec(cname=cname, clevel=level, shuffle="shuffle", typesize=1)]


def _buffer(array: np.ndarray):
    return default_buffer_prototype().nd_buffer.from_numpy_array(array)


class ZarrReader(Reader):
    """``location``: the store on an object store (a :class:`storebench.remote.Location`),
    read through zarr's obstore store: each chunk (or shard's inner chunk) by range."""

    def __init__(self, directory: Path, location: Any = None):
        self.path = Path(directory)
        if location is None:
            if not (self.path / "zarr.json").is_file():
                raise StorebenchError(f"{self.path}: no zarr.json; the store is incomplete")
            group = zarr.open_group(self.path, mode="r")
        else:
            store = zarr.storage.ObjectStore(location.prefixed(), read_only=True)
            group = zarr.open_group(store, mode="r")
        self.images, self.labels = group["images"], group["labels"]

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        one_size_only("zarr", images)
        if not len(indices):
            return
        check_shape(self.path, self.images.shape[1:], images)
        if is_range(indices):
            span = np.s_[int(indices[0]) : int(indices[-1]) + 1]
            self.images.get_basic_selection(span, out=_buffer(images))
            self.labels.get_basic_selection(span, out=_buffer(labels))
            return
        if indices.min() < 0 or indices.max() >= self.images.shape[0]:
            raise IndexError(f"index out of range 0..{self.images.shape[0] - 1}")
        # zarr's own orthogonal selection of 100,000 shuffled rows from the sharded array
        # took over 24 GB here and was killed. So, as the hdf5 reader does: visit the
        # wanted rows in file order, read each block of whole chunks that holds some with
        # one basic selection into a reused buffer, and copy the wanted rows out.
        order = np.argsort(indices, kind="stable")
        wanted = indices[order]
        first, last = int(wanted[0]), int(wanted[-1]) + 1
        span_labels = np.empty(last - first, labels.dtype)
        self.labels.get_basic_selection(np.s_[first:last], out=_buffer(span_labels))
        labels[order] = span_labels[wanted - first]
        scratch = self._scratch(images)
        rows = len(scratch)
        blocks = wanted // rows
        bounds = np.flatnonzero(np.diff(blocks)) + 1
        for lo, hi in zip(
            np.r_[0, bounds].tolist(), np.r_[bounds, len(wanted)].tolist(), strict=True
        ):
            start, stop = int(wanted[lo]), int(wanted[hi - 1]) + 1
            self.images.get_basic_selection(np.s_[start:stop], out=_buffer(scratch[: stop - start]))
            images[order[lo:hi]] = scratch[wanted[lo:hi] - start]

    def _scratch(self, images: np.ndarray) -> np.ndarray:
        """A reused buffer of whole chunks, about :data:`BLOCK_BYTES` (one per process:
        :func:`~storebench.formats.base.reused_buffer`)."""
        chunk = self.images.chunks[0]
        rows = max(1, BLOCK_BYTES // max(1, images[0].nbytes)) // chunk * chunk or chunk
        return reused_buffer(rows, self.images.shape[1:], np.uint8)

    def close(self) -> None:
        pass  # zarr holds no open files between reads


@dataclasses.dataclass(frozen=True)
class ZarrFormat(Format):
    """A Zarr v3 group with arrays ``images`` and ``labels``. ``chunk``: images per chunk;
    ``shard``: images per shard (a multiple of ``chunk``; ``null``: no sharding);
    ``compression``: ``none``, ``zstd``, ``blosc_zstd`` or ``blosc_lz4``; ``level``:
    the codec's level."""

    kind = "zarr"
    libraries = ("numpy", "zarr", "numcodecs")
    overhead_bytes_per_image = 1  # the label
    blocks_per_image = False
    chunk: int = 1000
    shard: int | None = None
    compression: str = "none"
    level: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk must be a positive integer, not {self.chunk!r}")
        if self.shard is not None and (
            not isinstance(self.shard, int) or self.shard < 1 or self.shard % self.chunk
        ):
            raise ValueError(f"shard must be a multiple of chunk ({self.chunk}): {self.shard!r}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if not isinstance(self.level, int) or not 1 <= self.level <= 9:
            raise ValueError(f"level must be 1..9, not {self.level!r}")

    def unit(self) -> tuple[str, int] | None:
        return ("chunk", self.chunk) if self.shard is None else ("shard", self.shard)

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        one_size_only(self.kind, images)
        check_unit(f"{self.kind} store", self, images.shape[1:], len(images))
        n = len(images)
        shape = tuple(images.shape[1:])
        chunk = min(self.chunk, max(1, n))
        shard = None
        if self.shard is not None:
            shard = (max(chunk, min(self.shard, -(-n // chunk) * chunk)), *shape)
        group = zarr.open_group(Path(directory), mode="w")
        stored = group.create_array(
            "images",
            shape=(n, *shape),
            chunks=(chunk, *shape),
            shards=shard,
            dtype="uint8",
            compressors=_codecs(self.compression, self.level),
            fill_value=0,
        )
        # Whole chunks (shards) per write, so none is read back and rewritten.
        unit = shard[0] if shard else chunk
        step = max(unit, chunks.chunk_of(images) // unit * unit)
        for start in range(0, n, step):
            part = images[start : start + step]
            stored[start : start + len(part)] = np.ascontiguousarray(part)
        group.create_array(
            "labels", shape=(n,), chunks=(max(1, n),), dtype="uint8", compressors=None
        )[:] = labels

    def open(self, directory: Path) -> Reader:
        return ZarrReader(directory)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        return ZarrReader(Path(location.prefix), location)
