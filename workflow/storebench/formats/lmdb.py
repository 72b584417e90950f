"""One LMDB environment, one value per image (py-lmdb).

``value: pickle`` stores the classic article's pickled image object;
``value: raw`` stores the image's bytes followed by one label byte: its pixels,
or with ``payload: jpeg`` or ``webp`` the image encoded at ``quality`` (decoded by
every read).
"""

from __future__ import annotations

import dataclasses
import errno
import itertools
import math
import os
import pickle
import shutil
from pathlib import Path

import lmdb
import numpy as np

from storebench import payload, safepickle
from storebench.chunks import Images, slots
from storebench.errors import StorebenchError
from storebench.formats.base import (
    EncodedImages,
    Format,
    Reader,
    damaged,
    image_chunks,
    is_range,
    wrong_size,
)

PAGE = 4096


class CifarImage:
    """The article's stored object: image bytes, their shape and the label."""

    __slots__ = ("image", "label", "shape")

    def __init__(self, image: np.ndarray, label: int):
        self.image = image.tobytes()
        self.shape = image.shape
        self.label = label

    def get_image(self) -> np.ndarray:
        return np.frombuffer(self.image, dtype=np.uint8).reshape(self.shape)

    def __getstate__(self) -> tuple[bytes, tuple[int, ...], int]:
        return self.image, self.shape, self.label

    def __setstate__(self, state: tuple[bytes, tuple[int, ...], int]) -> None:
        self.image, self.shape, self.label = state


# The only global a stored value may reference.
PICKLE_GLOBALS = {(__name__, "CifarImage"): f"{__name__}:CifarImage"}


def key(index: int) -> bytes:
    return f"{index:08}".encode()


def _room_for(directory: Path, size: int) -> None:
    """With ``writemap`` LMDB writes its pages through a memory map: a page the file
    system cannot allocate (a full disk, another writer) kills the process by SIGBUS,
    with no error and an empty log. So a chunk is written only where its pages fit;
    otherwise the write fails as a full disk does (ENOSPC), which the job reports."""
    free = shutil.disk_usage(directory).free
    if size > free:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))


class LmdbReader(Reader):
    def __init__(self, directory: Path, value: str, payload: str = "raw"):
        self.path = Path(directory)
        try:
            self.env = lmdb.open(str(directory), readonly=True, lock=False)
        except lmdb.Error as error:
            raise damaged(self.path, f"LMDB cannot open it: {error}") from None
        # A data.mdb shorter than its own last page would be mapped past its end: the
        # first read there dies by SIGBUS, so it is refused here.
        size = (self.path / "data.mdb").stat().st_size
        needed = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        if size < needed:
            self.env.close()
            raise damaged(self.path, f"data.mdb holds {size} bytes, its pages need {needed}")
        self.value = value
        self.payload = payload

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        with self.env.begin(buffers=True) as txn:
            if self.value == "raw":
                self._read_raw(txn, indices, images, labels)
                return
            for k, index in enumerate(indices.tolist()):
                item = safepickle.loads(txn.get(key(index)), PICKLE_GLOBALS, "lmdb value")
                image, slot = item.get_image(), images[k]
                if image.shape != slot.shape:
                    raise wrong_size(self.path, index, image.nbytes, slot.nbytes)
                slot[...] = image
                labels[k] = item.label

    def _read_raw(
        self, txn: lmdb.Transaction, indices: np.ndarray, images: np.ndarray, labels: np.ndarray
    ) -> None:
        """Copy each value's bytes straight into the caller's buffer: no per-image object."""
        if not len(indices):
            return
        flat, starts = slots(images)  # image k: flat[starts[k]:starts[k + 1]]
        label_bytes = bytearray(len(indices))
        encoded = self.payload != "raw"
        if is_range(indices):
            # In key order: walk a cursor instead of searching the tree per image.
            cursor = txn.cursor()
            found = cursor.set_key(key(int(indices[0])))
            values = cursor.iternext(keys=False) if found else iter(())
        else:
            values = map(txn.get, map(key, indices.tolist()))
        k = 0
        for value in itertools.islice(values, len(indices)):
            if value is None:
                break
            lo, hi = starts[k], starts[k + 1]
            if encoded:  # a JPEG or WebP: decoded into its place
                payload.decode_into(value[:-1], images[k], self.payload, self.path)
            elif len(value) != hi - lo + 1:
                raise wrong_size(self.path, int(indices[k]), len(value) - 1, hi - lo)
            else:
                flat[lo:hi] = value[: hi - lo]
            label_bytes[k] = value[-1]
            k += 1
        if k != len(indices):
            raise StorebenchError(f"{self.path}: no image {indices[k]}; the store is incomplete")
        labels[:] = np.frombuffer(label_bytes, dtype=np.uint8)

    def close(self) -> None:
        self.env.close()


@dataclasses.dataclass(frozen=True)
class LmdbFormat(EncodedImages, Format):
    """``value``: ``pickle`` (the article's object) or ``raw`` (bytes + label byte);
    ``writemap``: write through a writable memory map; ``append``: keys arrive in
    order, so each put appends to the B-tree instead of searching it; ``payload``
    (with ``value: raw``): ``raw``, ``jpeg`` or ``webp`` at ``quality``."""

    kind = "lmdb"
    variable_size = True
    libraries = ("numpy", "lmdb")
    # one environment per process (py-lmdb refuses a second); a read transaction per
    # read_into, so threads read through it side by side
    threads_share = True
    value: str = "pickle"
    writemap: bool = False
    append: bool = False

    def __post_init__(self) -> None:
        if self.value not in ("pickle", "raw"):
            raise ValueError(f"value must be 'pickle' or 'raw', not {self.value!r}")
        for name in ("writemap", "append"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
        payload.check(self.payload, self.quality)
        if self.payload != "raw" and self.value != "raw":
            raise ValueError(f"payload {self.payload!r} needs value: raw")

    def encode(self, image: np.ndarray, label: int) -> bytes:
        if self.value == "raw":
            return payload.encode(image, self.payload, self.quality) + bytes((label,))
        return pickle.dumps(CifarImage(image, label))

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        """One write transaction per chunk of images (a single one up to 131,072 images),
        so that LMDB never holds more than a chunk of dirty pages."""
        n = len(images)
        env: lmdb.Environment | None = None
        try:
            for start, chunk in image_chunks(images):
                if env is None:
                    # Each value spills to its own overflow pages; size the map for
                    # that plus the B-tree, then grow it if LMDB still runs out of room.
                    value_size = len(self.encode(chunk[0], int(labels[0])))
                    pages = math.ceil((value_size + 64) / PAGE) + 1
                    map_size = max(1 << 20, n * pages * PAGE * 2)
                    env = lmdb.open(str(directory), map_size=map_size, writemap=self.writemap)
                if self.writemap:  # see _room_for; the B-tree adds about 1% to the values
                    _room_for(directory, len(chunk) * (pages - 1) * PAGE * 105 // 100)
                while True:
                    try:
                        with env.begin(write=True) as txn:
                            put = txn.put
                            for index, image in enumerate(chunk, start):
                                put(
                                    key(index),
                                    self.encode(image, int(labels[index])),
                                    append=self.append,
                                )
                        break
                    except lmdb.MapFullError:
                        map_size *= 2
                        env.set_mapsize(map_size)
            if env is None:  # no images: an empty environment
                env = lmdb.open(str(directory), map_size=1 << 20, writemap=self.writemap)
        finally:
            if env is not None:
                env.close()

    def open(self, directory: Path) -> Reader:
        return LmdbReader(directory, self.value, self.payload)
