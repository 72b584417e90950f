"""The one interface every storage format implements."""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from storebench import chunks, payload
from storebench.chunks import Images
from storebench.errors import StorebenchError

IMAGE_BYTES = 32 * 32 * 3  # one CIFAR image, (32, 32, 3) uint8: the default image size

# Files that tools put into a store's folder but that are not part of the store
# (Snakemake marks directory outputs with a timestamp file; a store on an object-store
# tier keeps a pointer to its objects: storebench.objecttier).
POINTER = "object-store.json"
FOREIGN = frozenset({".snakemake_timestamp", POINTER})


class Reader(ABC):
    """An open store: fills caller-owned buffers with the images at any indices."""

    @abstractmethod
    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        """Write image ``indices[k]`` to ``images[k]`` and its label to ``labels[k]``.

        ``images`` is ``(len(indices), height, width, channels) uint8`` (the dataset's
        image shape) and ``labels`` ``(len(indices),) uint8``; indices come in any
        order and may repeat. A store whose images have another size fails
        (:func:`wrong_size`).
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
    # The optional extra (pyproject.toml) that installs them, for a format outside the
    # core install: a run that names the format without it stops before any job.
    extra: ClassVar[str | None] = None
    # The environment of its own (storebench.formatenv, envs/<name>.txt) that every job
    # of the format runs in, for a library that cannot share the project's (None: the
    # project's own).
    environment: ClassVar[str | None] = None
    # Bytes a store adds per image beside the image's own bytes (keys, record framing,
    # headers), for the free-space check before a run (:meth:`disk_bytes_per_image`).
    overhead_bytes_per_image: ClassVar[int] = 128

    @abstractmethod
    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        """Store ``images (n, height, width, channels) uint8`` and ``labels (n,) uint8`` in an
        empty folder.

        Take the images through :func:`image_chunks` (a chunk at a time), so that
        a store of any size is written with bounded memory; ``labels`` (one byte
        per image) are in memory.
        """

    @abstractmethod
    def open(self, directory: Path) -> Reader:
        """Open a store written by :meth:`write` for reading."""

    # Whether the threads of one loader share one open reader (each calling read_into
    # at once) rather than each opening the store: a format whose store can be open
    # only once per process (LMDB's environment) and whose reads are safe from threads.
    threads_share: ClassVar[bool] = False

    # Whether a process may fork after the format's library has started (a DataLoader's
    # worker processes fork by default on Linux). A format whose library says it is not
    # fork-safe (Lance's runtime) gets forkserver workers, as its documentation asks.
    fork_safe: ClassVar[bool] = True

    def start_method(self, asked: str | None = None) -> str | None:
        """The worker start method for this format's loader: ``asked``, else the
        platform's default, or forkserver where the format cannot fork."""
        return asked or (None if self.fork_safe else "forkserver")

    # How :meth:`open_remote` reads a store on an object store: "staged" (fetched whole
    # to local disk first), "range" (byte ranges of its files), "key" (one object per
    # image) or "stream" (objects read start to end).
    remote_way: ClassVar[str] = "staged"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """Open the store at ``location`` (a :class:`storebench.remote.Location`) the way
        the format's ecosystem reads one from an object store. This default is for a
        format that needs a local file (a memory map, a database): the store is fetched
        whole into the empty folder ``scratch`` first, as users of such a format do."""
        from storebench import remote

        remote.stage(location, scratch)
        return self.open(scratch)

    def load_writer(self) -> None:
        """Import what :meth:`write` needs that the module does not import itself (a
        library only writing uses, too slow to import in every read job). Called before
        a write is timed, so no import lands in a store time."""
        return None  # most formats import their library with their module

    def load_reader(self) -> None:
        """Import what :meth:`open` needs that the module does not import itself. Called
        before loaders are timed, as a training script imports its dataset's library
        before its loader starts: the loop's first epoch does not pay for the import,
        and forked workers inherit the library instead of importing it each epoch."""
        return None  # most formats import their library with their module

    def files(self, directory: Path) -> list[Path]:
        """Every file the store consists of (for disk usage and cache eviction)."""
        return sorted(
            p for p in Path(directory).rglob("*") if p.is_file() and p.name not in FOREIGN
        )

    # Whether the store is read from elsewhere than its folder (an object-store tier).
    remote: ClassVar[bool] = False

    def cache_files(self, directory: Path) -> list[Path]:
        """The files whose pages a cold read of the store evicts and a warm one loads:
        the store's own (on an object-store tier, the server's)."""
        return self.files(directory)

    def traffic(self) -> dict[str, float] | None:
        """Requests and bytes the store's link has carried so far (None: a local store)."""
        return None

    def forget(self, directory: Path) -> None:
        """Let go of what a store copy holds outside its folder (nothing, locally)."""
        return None

    def disk_bytes_per_image(self, image_bytes: int = IMAGE_BYTES) -> int:
        """An upper estimate of a store's bytes on disk per image of ``image_bytes``: the
        image, the format's overhead, rounded up to whole 4 KiB blocks per image where
        every image takes its own blocks (:attr:`blocks_per_image`), plus 7%."""
        per = image_bytes + self.overhead_bytes_per_image
        if self.blocks_per_image:
            per = -(-per // 4096) * 4096 + 1024
        return int(per * 1.07)

    # Whether every image takes whole file-system blocks or LMDB pages of its own.
    blocks_per_image: ClassVar[bool] = True
    # Whether the format takes images of different sizes (a folder at native sizes): the
    # formats that store one record per image do; array formats need one size.
    variable_size: ClassVar[bool] = False

    def unit(self) -> tuple[str, int] | None:
        """The option that sets how many images the format writes and reads as one unit
        (an HDF5 chunk, a Zarr shard), and its value; None for formats without one. A
        unit is held in memory whole, so :func:`check_unit` bounds it in bytes."""
        return None

    def options(self) -> dict[str, object]:
        """The options this format was configured with (defaults filled in)."""
        return dataclasses.asdict(self)

    @property
    def lossy(self) -> bool:
        """Whether a read returns other images than the dataset's (a lossy payload)."""
        return False

    def decoded(self, images: np.ndarray) -> np.ndarray:
        """The images a read of this format returns for ``images`` (a chunk of the
        dataset): the images themselves, unless the format stores them lossily."""
        return images


@dataclasses.dataclass(frozen=True)
class EncodedImages:
    """Options of a format that stores one record per image: ``payload`` ``raw`` (the
    pixels), ``jpeg`` or ``webp`` at ``quality`` 1..100 (see :mod:`storebench.payload`).
    Put it before :class:`Format` among a format's bases."""

    payload: str = "raw"
    quality: int = 90

    @property
    def lossy(self) -> bool:
        return self.payload != "raw"

    def decoded(self, images: np.ndarray) -> np.ndarray:
        return payload.roundtrip(images, self.payload, self.quality)


def any_to_read(indices: np.ndarray, count: int) -> bool:
    """Whether ``indices`` ask for any image of a store of ``count``; IndexError for one
    outside it."""
    if not len(indices):
        return False
    if indices.min() < 0 or indices.max() >= count:
        raise IndexError(f"index out of range 0..{count - 1}")
    return True


def put_item(store: Path, index: int, value: Any, out: np.ndarray, kind: str) -> None:
    """Put one stored item's image into ``out``: pixels as an array of ``out``'s shape
    (another shape: the store is another dataset's), or a ``kind`` payload to decode."""
    if kind != "raw":
        payload.decode_into(memoryview(value), out, kind, store)
        return
    if value.shape != out.shape:
        raise StorebenchError(
            f"{store}: image {index} has shape {value.shape}, but the dataset's images have "
            f"{out.shape}; the store was written from another dataset: rerun its store job"
        )
    out[...] = value


def check_positive(fmt: Format, *names: str) -> None:
    """Refuse an option of ``names`` that is not a whole number of at least 1
    (ValueError, as options do)."""
    for name in names:
        value = getattr(fmt, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, not {value!r}")


def image_chunks(images: np.ndarray | Images) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, images[start:start + size])`` for consecutive chunks of the images (a
    chunk: :data:`~storebench.chunks.CHUNK_BYTES` of them)."""
    size = chunks.chunk_of(images)
    for start in range(0, len(images), size):
        yield start, images[start : start + size]


def wrong_size(store: Path, index: int, found: int, expected: int) -> StorebenchError:
    """The error for a store image whose size is not the dataset's."""
    return StorebenchError(
        f"{store}: image {index} holds {found} bytes, but the dataset's images hold "
        f"{expected}; the store was written from another dataset: rerun its store job"
    )


_BUFFERS = threading.local()  # .held: (rows, shape, dtype) -> this thread's buffer


def reused_buffers() -> dict[tuple, np.ndarray]:
    """This thread's reused buffers (:func:`reused_buffer`); clear it to drop them."""
    held: dict[tuple, np.ndarray] = _BUFFERS.__dict__.setdefault("held", {})
    return held


def reused_buffer(rows: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A buffer of ``rows`` images of ``shape`` and ``dtype`` for a reader's scattered
    reads: one per thread (a loader's threads read side by side), reused by every
    reader, so the untimed warm-up read allocates and touches it and no timed read does;
    one at a time, so memory stays bounded by the largest a reader asks for."""
    key = (int(rows), tuple(shape), np.dtype(dtype).str)
    held = reused_buffers()
    buffer = held.get(key)
    if buffer is None:
        held.clear()
        buffer = np.empty((int(rows), *shape), dtype)
        buffer.fill(0)  # touched now, not inside a timed read
        held[key] = buffer
    return buffer


def damaged(store: Path, what: str) -> StorebenchError:
    """The error for a store whose bytes are not what its format wrote (truncated, or
    changed after it was written): ``what`` says what the reader found."""
    return StorebenchError(
        f"{store}: damaged store ({what}); rebuild it: snakemake --cores 4 --force {store}"
    )


def wrong_shape(store: Path, shape: tuple[int, ...], expected: tuple[int, ...]) -> StorebenchError:
    """The error for a store whose images have another shape than the dataset's."""
    return StorebenchError(
        f"{store}: its images are {tuple(shape)}, but the dataset's are "
        f"{tuple(expected)}; the store was written from another dataset: rerun its store job"
    )


def check_shape(store: Path, shape: tuple[int, ...], images: np.ndarray) -> None:
    """Fail unless a store's image ``shape`` is that of the caller's buffer ``images``."""
    if tuple(shape) != tuple(images.shape[1:]):
        raise wrong_shape(store, shape, images.shape[1:])


def is_range(indices: np.ndarray) -> bool:
    """True if ``indices`` is ``start, start+1, ..., start+len-1``."""
    if len(indices) == 0:
        return True
    start = int(indices[0])
    return bool(np.array_equal(indices, np.arange(start, start + len(indices))))


# The most bytes of images a format's unit may hold: as many as a chunk of the dataset.
UNIT_BYTES = chunks.CHUNK_BYTES


def check_unit(
    where: str, fmt: Format, shape: tuple[int, ...] | list[int], n: int | None = None
) -> None:
    """Refuse a format whose unit (:meth:`Format.unit`) of images of ``shape`` would
    hold more bytes than a job holds at once (:data:`UNIT_BYTES`, one chunk of the
    dataset, docs/scaling.md): memory that no option
    would bound, and a read that decodes a whole unit for one image. ``where`` begins
    the message (``formats.NAME`` before a run, the kind in a job); a store of ``n``
    images has units of at most ``n``."""
    found = fmt.unit()
    row = int(np.prod(shape, dtype=np.int64))
    if found is None or min(found[1], n or found[1]) * max(1, row) <= UNIT_BYTES:
        return
    option, images = found
    limit = max(1, UNIT_BYTES // max(1, row))
    step = getattr(fmt, "chunk", 1) if option == "shard" else 1
    advice = (
        f"set {option} to {limit // step * step:,} or fewer images"
        if limit >= step
        else f"set chunk and shard to {limit:,} or fewer images"
    )
    size = " x ".join(str(int(side)) for side in shape[:2])
    raise StorebenchError(
        f"{where}: {option} = {images:,} images of {size} px is "
        f"{images * row / 2**20:,.0f} MiB held in memory at once, more than a job holds "
        f"({UNIT_BYTES >> 20} MiB); {advice}"
    )


def check_units(formats: dict[str, Format] | Any, planned: Any) -> None:
    """:func:`check_unit` for every configured format and every (image shape, largest
    n) a run plans (the dataset's, and each size of the sweep), before any job."""
    for shape, n in planned:
        for name, fmt in formats.items():
            check_unit(f"formats.{name}", fmt, tuple(shape), n)


def one_size_only(kind: str, images: object) -> None:
    """Refuse ragged images (of different sizes) in an array format, in one line."""
    from storebench.ragged import Ragged

    if isinstance(images, Ragged) or isinstance(getattr(images, "array", None), Ragged):
        raise StorebenchError(
            f"format kind {kind!r} stores images of one size, but the dataset's differ; "
            "set dataset.size to resize them, or leave the format out"
        )
