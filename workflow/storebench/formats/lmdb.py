"""One LMDB environment, one value per image (py-lmdb).

``value: pickle`` stores the classic article's pickled image object;
``value: raw`` stores the 3,072 image bytes followed by one label byte.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from pathlib import Path

import lmdb
import numpy as np

from storebench import safepickle
from storebench.formats.base import Format, Reader

SHAPE = (32, 32, 3)
IMAGE_BYTES = 32 * 32 * 3
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


class LmdbReader(Reader):
    def __init__(self, directory: Path, value: str):
        self.env = lmdb.open(str(directory), readonly=True, lock=False)
        self.value = value

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        flat = images.reshape(len(images), IMAGE_BYTES)
        with self.env.begin(buffers=True) as txn:
            get = txn.get
            if self.value == "raw":
                for k, index in enumerate(indices.tolist()):
                    buf = get(key(index))
                    flat[k] = np.frombuffer(buf, np.uint8, IMAGE_BYTES)
                    labels[k] = buf[IMAGE_BYTES]
            else:
                for k, index in enumerate(indices.tolist()):
                    item = safepickle.loads(get(key(index)), PICKLE_GLOBALS, "lmdb value")
                    images[k] = item.get_image()
                    labels[k] = item.label

    def close(self) -> None:
        self.env.close()


@dataclasses.dataclass(frozen=True)
class LmdbFormat(Format):
    """``value``: ``pickle`` (the article's object) or ``raw`` (bytes + label byte)."""

    kind = "lmdb"
    value: str = "pickle"

    def __post_init__(self) -> None:
        if self.value not in ("pickle", "raw"):
            raise ValueError(f"value must be 'pickle' or 'raw', not {self.value!r}")

    def encode(self, image: np.ndarray, label: int) -> bytes:
        if self.value == "raw":
            return image.tobytes() + bytes((label,))
        return pickle.dumps(CifarImage(image, label))

    def write(self, directory: Path, images: np.ndarray, labels: np.ndarray) -> None:
        n = len(images)
        # Each value spills to its own overflow pages; size the map for that plus
        # the B-tree, then grow it if LMDB still runs out of room.
        value_size = len(self.encode(images[0], int(labels[0]))) if n else 0
        pages = math.ceil((value_size + 64) / PAGE) + 1
        map_size = max(1 << 20, n * pages * PAGE * 2)
        env = lmdb.open(str(directory), map_size=map_size)
        try:
            while True:
                try:
                    with env.begin(write=True) as txn:
                        for index in range(n):
                            txn.put(key(index), self.encode(images[index], int(labels[index])))
                    break
                except lmdb.MapFullError:
                    map_size *= 2
                    env.set_mapsize(map_size)
        finally:
            env.close()

    def open(self, directory: Path) -> Reader:
        return LmdbReader(directory, self.value)
