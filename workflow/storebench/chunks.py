"""Bounded memory: every job handles the images a chunk at a time.

The dataset is memory-mapped, but its rows are copied out with file reads
(:func:`gather`), so the dataset's pages never pile up in a job's memory. A
store job's format pulls the images chunk by chunk through :class:`Images`;
read jobs read and validate one chunk of indices at a time. A job therefore
holds about one chunk (plus buffers of the same size), whatever n is. Runs up
to n = 100,000 fit in one chunk, so their measurements are made exactly as
without chunking. A store that its reader memory-maps (LMDB, npy, TFRecord)
still shows in the reader's RSS as file-backed pages: page cache, which the
kernel reclaims under pressure.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import mmap
import os
import resource
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np

from storebench.ragged import Ragged

CHUNK_BYTES = 384 * 2**20  # a chunk holds this many bytes of images (131,072 CIFAR images)


def chunk_images(row_bytes: int) -> int:
    """How many images of ``row_bytes`` bytes each make one chunk (at least one)."""
    return max(1, CHUNK_BYTES // max(1, int(row_bytes)))


def row_bytes(images: Any) -> int:
    """Bytes of one image of ``images`` (an array or :class:`Images`: anything with a
    shape and a dtype); of the largest image of ragged images."""
    if isinstance(images, Ragged) or isinstance(getattr(images, "array", None), Ragged):
        ragged = images if isinstance(images, Ragged) else images.array
        return max(1, ragged.max_bytes)
    return int(np.prod(images.shape[1:], dtype=np.int64)) * np.dtype(images.dtype).itemsize


def slots(images: np.ndarray | Ragged) -> tuple[memoryview, Sequence[int]]:
    """A buffer's bytes and where each image starts in them (and where the last ends):
    image ``k`` is ``flat[starts[k]:starts[k + 1]]``, for a fixed-size array and for
    ragged images alike. For a fixed size the starts are a ``range``: nothing is built
    per call."""
    if isinstance(images, Ragged):
        flat = images.flat()
        return memoryview(flat).cast("B"), (images.offsets - images.offsets[0]).tolist()
    row = images[0].nbytes if len(images) else 0
    flat = memoryview(images.reshape(-1)).cast("B") if len(images) else memoryview(b"")
    return flat, range(0, (len(images) + 1) * row, row) if row else [0] * (len(images) + 1)


def chunk_of(images: Any) -> int:
    """Images per chunk for ``images``."""
    return chunk_images(row_bytes(images))


def spans(n: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``size`` images covering ``0..n``."""
    for start in range(0, n, size):
        yield start, min(start + size, n)


_peak = {"anon": 0, "file": 0}


def sample_memory() -> None:
    """Note this process's resident anonymous and file-backed memory (kB) if at a peak.

    Called where a job holds the most: when a chunk of the dataset has been
    loaded next to the chunk just read. File-backed memory is mapped files (a
    memory-mapped store): page cache the kernel can reclaim.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(("RssAnon:", "RssFile:")):
                    kind = "anon" if line.startswith("RssAnon") else "file"
                    _peak[kind] = max(_peak[kind], int(line.split()[1]))
    except OSError:  # no /proc: only the peak RSS is recorded
        pass


def memory_record() -> dict[str, float]:
    """The job's peak RSS (MiB, from the kernel) and the sampled anonymous and file parts."""
    sample_memory()
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "peak_rss_mb": round(usage / 1024, 1),
        "peak_child_rss_mb": round(children / 1024, 1),
        "sampled_anon_mb": round(_peak["anon"] / 1024, 1),
        "sampled_file_mb": round(_peak["file"] / 1024, 1),
    }


def _file_offset(array: np.ndarray) -> tuple[str, int] | None:
    """The file behind a memory-mapped array and the byte offset of its first row."""
    mapping = getattr(array, "_mmap", None)
    if not isinstance(mapping, mmap.mmap) or mapping.closed or not array.flags.c_contiguous:
        return None
    # np.memmap maps from its offset rounded down to the allocation granularity.
    mapped_from = array.offset - array.offset % mmap.ALLOCATIONGRANULARITY
    start = np.frombuffer(mapping, np.uint8, count=1).ctypes.data
    return str(array.filename), mapped_from + array.ctypes.data - start


def gather(array: Any, indices: np.ndarray, out: np.ndarray | None = None) -> Any:
    """A copy of ``array[indices]`` (into ``out`` if given; ragged images: a new copy).

    Rows of a memory-mapped array are read from its file (one read per run of
    consecutive indices), not through the map: faulting scattered rows in would
    map far more of the file than the rows (whole folios, up to megabytes each).
    """
    if isinstance(array, Ragged):
        return array.take(indices)
    values = np.empty((len(indices), *array.shape[1:]), array.dtype) if out is None else out
    source = _file_offset(array)
    if source is None or not len(indices):
        np.take(array, indices, axis=0, out=values)
        return values
    filename, offset = source
    row = values[0].nbytes if len(values) else 0
    if len(indices) and (indices.min() < 0 or indices.max() >= len(array)):
        raise IndexError(f"index out of range 0..{len(array) - 1}")
    out = memoryview(values.reshape(-1)).cast("B")
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts, stops = np.r_[0, breaks], np.r_[breaks, len(indices)]
    with open(filename, "rb", buffering=0) as handle:
        fd = handle.fileno()
        for lo, hi, first in zip(
            starts.tolist(), stops.tolist(), indices[starts].tolist(), strict=True
        ):
            wanted = (hi - lo) * row
            if os.preadv(fd, [out[lo * row : hi * row]], offset + first * row) != wanted:
                raise OSError(f"{filename}: short read (the file is shorter than its header says)")
    sample_memory()
    return values


def write_npy(
    handle: BinaryIO, shape: tuple[int, ...], dtype: np.dtype, parts: Iterable[np.ndarray]
) -> None:
    """Write a ``.npy`` file as ``np.save`` does (a version 1.0 header, then the C-order
    bytes), from ``parts`` that together are the array: a chunk at a time."""
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": tuple(shape),
    }
    np.lib.format.write_array_header_1_0(handle, header)
    for part in parts:
        handle.write(np.ascontiguousarray(part).data)


class Images:
    """The images a store job writes, loaded one slice at a time on demand.

    Formats take slices of at most one chunk (:func:`chunk_images`) of images (see
    :func:`storebench.formats.base.image_chunks`). Slices are loaded into one
    buffer, allocated and touched when this object is made (before a store's
    clock starts), so a slice is valid until the next one is taken; nothing is
    allocated or freed while the format writes. The time spent loading slices is
    added to :attr:`load_ns`, which the store timing leaves out, so a store's
    time is the format's work only.
    """

    def __init__(self, array: np.ndarray | Ragged):
        self.array = array
        self.load_ns = 0
        rows = max(1, min(chunk_of(array), len(array)))
        if isinstance(array, Ragged):  # slices are copied out as they come
            self._buffer = np.empty((rows, 0), np.uint8)
            return
        self._buffer = np.empty((rows, *array.shape[1:]), array.dtype)
        self._buffer.fill(0)  # touch every page now, not in the timed write

    def __len__(self) -> int:
        return len(self.array)

    @property
    def chunk(self) -> int:
        """Images per slice (the buffer's rows)."""
        return len(self._buffer)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ragged(self) -> bool:
        return isinstance(self.array, Ragged)

    def __getitem__(self, index: slice | int) -> Any:
        start = time.perf_counter_ns()
        if isinstance(self.array, Ragged):
            values = self.array[index]
            values = values.take(np.arange(len(values))) if isinstance(values, Ragged) else values
            self.load_ns += time.perf_counter_ns() - start
            return values
        if isinstance(index, slice):
            rows = np.arange(*index.indices(len(self.array)))
            out = self._buffer[: len(rows)] if len(rows) <= len(self._buffer) else None
            values = gather(self.array, rows, out)
        else:
            values = gather(self.array, np.array([index]))[0]
        self.load_ns += time.perf_counter_ns() - start
        return values


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_preadv = _libc.preadv
_preadv.restype = ctypes.c_ssize_t
_preadv.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong)
IOV_MAX = min(os.sysconf("SC_IOV_MAX") if "SC_IOV_MAX" in os.sysconf_names else 1024, 1024)
MAX_GAP_BYTES = 8 * 1024  # a hole this small between wanted rows is read, not skipped


def read_rows(fd: int, offset: int, indices: np.ndarray, out: np.ndarray) -> None:
    """Read rows ``indices`` of a file of fixed-size rows starting at byte ``offset``
    into ``out`` (row ``indices[k]`` into ``out[k]``), the fastest way a file is read.

    The rows are visited in file order: sorted, with rows that are next to each other
    in the file and in ``out`` merged into one piece, and pieces close together
    (holes of at most :data:`MAX_GAP_BYTES`) read by one ``preadv`` call that
    scatters each piece straight into its place in ``out`` (the holes go to a
    scratch buffer). Consecutive indices thus cost one call for the whole run, a
    shuffled full permutation one call per :data:`IOV_MAX` rows, and the kernel
    sees a forward scan it can read ahead.
    """
    count = len(indices)
    if count == 0:
        return
    if not out.flags.c_contiguous or len(out) != count:
        raise ValueError("out must be a C-contiguous array of one row per index")
    row = out[0].nbytes
    order = np.argsort(indices, kind="stable")
    rows = np.asarray(indices, dtype=np.int64)[order]
    # Pieces: runs adjacent both in the file and in out.
    joined = (np.diff(rows) == 1) & (np.diff(order) == 1)
    starts = np.r_[0, np.flatnonzero(~joined) + 1]
    lengths = np.diff(np.r_[starts, count])
    first_row, first_out = rows[starts], order[starts]
    gap = first_row[1:] - (first_row[:-1] + lengths[:-1])  # rows between pieces
    max_gap = max(0, MAX_GAP_BYTES // row)
    bridged = (gap > 0) & (gap <= max_gap)
    junk = np.empty(max(1, int(gap[bridged].max(initial=0))) * row, np.uint8)
    # Entries: every piece, and a scratch entry after each bridged piece, interleaved.
    pieces = len(starts)
    addr = np.zeros(2 * pieces - 1, np.uint64)
    size = np.zeros(2 * pieces - 1, np.uint64)
    addr[0::2] = out.ctypes.data + first_out.astype(np.uint64) * row
    size[0::2] = lengths.astype(np.uint64) * row
    addr[1::2] = junk.ctypes.data
    size[1::2] = np.where(bridged, gap, 0).astype(np.uint64) * row
    file_row = np.zeros(2 * pieces - 1, np.int64)
    file_row[0::2] = first_row
    keep = size > 0
    # A new call where the next piece does not follow on in the file.
    breaks = np.zeros(2 * pieces - 1, bool)
    breaks[0] = True
    breaks[2::2] = ~((gap == 0) | bridged)
    addr, size, file_row, breaks = addr[keep], size[keep], file_row[keep], breaks[keep]
    _gather_calls(fd, addr, size, breaks, offset + file_row * row)
    del junk


def _gather_calls(
    fd: int, addr: np.ndarray, size: np.ndarray, breaks: np.ndarray, position: np.ndarray
) -> None:
    """Read the file into ``size[k]`` bytes at address ``addr[k]``, pieces in file order:
    a ``preadv`` call (of at most :data:`IOV_MAX` pieces) from ``position[k]`` at every
    piece where ``breaks[k]`` is set, each later piece following on in the file."""
    calls = [*np.flatnonzero(breaks).tolist(), len(addr)]
    iov = np.empty((len(addr), 2), np.uint64)
    iov[:, 0], iov[:, 1] = addr, size
    base = iov.ctypes.data
    for lo, hi in itertools.pairwise(calls):
        at = int(position[lo])
        for part in range(lo, hi, IOV_MAX):
            end = min(part + IOV_MAX, hi)
            wanted = int(size[part:end].sum())
            got = _preadv(fd, base + part * 16, end - part, at)
            if got != wanted:
                error = ctypes.get_errno() if got < 0 else 0
                raise OSError(
                    error,
                    f"short read ({got} of {wanted} bytes at {at}); "
                    "the file is shorter than its header says",
                )
            at += wanted


def read_spans(
    fd: int, offset: int, starts: np.ndarray, sizes: np.ndarray, out: np.ndarray, at: np.ndarray
) -> None:
    """Read byte spans of a file, ``sizes[k]`` bytes from ``offset + starts[k]``, into the
    flat uint8 buffer ``out`` at ``at[k]`` (ragged images: rows of their own sizes).

    As :func:`read_rows` does for rows of one size: the spans are visited in file
    order, and spans that follow each other in the file are read by one ``preadv`` call
    (up to :data:`IOV_MAX` spans) that scatters each into its place.
    """
    count = len(starts)
    if count == 0:
        return
    if not out.flags.c_contiguous or out.dtype != np.uint8:
        raise ValueError("out must be a C-contiguous uint8 buffer")
    order = np.argsort(starts, kind="stable")
    first, size = np.asarray(starts, np.int64)[order], np.asarray(sizes, np.int64)[order]
    if int((np.asarray(at, np.int64) + sizes).max()) > out.nbytes:
        raise ValueError("a span does not fit in out")
    addr = out.ctypes.data + np.asarray(at, np.int64)[order].astype(np.uint64)
    breaks = np.r_[True, first[1:] != first[:-1] + size[:-1]]
    _gather_calls(fd, addr, size.astype(np.uint64), breaks, offset + first)
