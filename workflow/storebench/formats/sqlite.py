"""One SQLite file: a table of (key, label, image bytes), read by key (Python's sqlite3).

sqlite.org reports small blobs reading faster from one SQLite file than from as
many separate files; this format measures that claim beside PNG files and LMDB.
Scattered reads ask for a batch of keys per query (``key IN (...)``) and put each
row in its place; a contiguous range is one query in key order. ``mmap``: read
through SQLite's memory map (``PRAGMA mmap_size``) instead of its page cache.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import numpy as np

from storebench.chunks import Images, slots
from storebench.errors import StorebenchError
from storebench.formats.base import Format, Reader, image_chunks, is_range, wrong_size

FILE = "images.sqlite"
BATCH = 500  # keys per query (SQLite allows up to 32,766 parameters)
MMAP_BYTES = 1 << 40


class SqliteReader(Reader):
    def __init__(self, directory: Path, mmap: bool):
        self.path = Path(directory) / FILE
        if not self.path.is_file():
            raise StorebenchError(f"{self.path}: missing; the store is incomplete")
        # one thread reads through it; a loader may close it from another when done
        self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        self.db.execute(f"PRAGMA mmap_size = {MMAP_BYTES if mmap else 0}")

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        count = len(indices)
        if not count:
            return
        flat, starts = slots(images)  # image k: flat[starts[k]:starts[k + 1]]
        found = 0
        if is_range(indices):
            first = int(indices[0])
            query = "SELECT key, label, image FROM images WHERE key >= ? AND key < ? ORDER BY key"
            for key, label, image in self.db.execute(query, (first, first + count)):
                k = key - first
                lo, hi = starts[k], starts[k + 1]
                if len(image) != hi - lo:
                    raise wrong_size(self.path, key, len(image), hi - lo)
                flat[lo:hi] = image
                labels[k] = label
                found += 1
        else:
            places: dict[int, list[int]] = {}
            for k, index in enumerate(indices.tolist()):
                places.setdefault(index, []).append(k)
            keys = list(places)
            for start in range(0, len(keys), BATCH):
                batch = keys[start : start + BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT key, label, image FROM images WHERE key IN ({marks})"
                for key, label, image in self.db.execute(query, batch):
                    for k in places[key]:
                        lo, hi = starts[k], starts[k + 1]
                        if len(image) != hi - lo:
                            raise wrong_size(self.path, key, len(image), hi - lo)
                        flat[lo:hi] = image
                        labels[k] = label
                        found += 1
        if found != count:
            raise StorebenchError(
                f"{self.path}: {count - found} of {count} images missing; the store is incomplete"
            )

    def close(self) -> None:
        self.db.close()


@dataclasses.dataclass(frozen=True)
class SqliteFormat(Format):
    """``images.sqlite``: ``images(key INTEGER PRIMARY KEY, label INTEGER, image BLOB)``,
    written in one transaction per chunk; ``page_size`` in bytes (SQLite's default
    4096); ``mmap``: read through a memory map."""

    kind = "sqlite"
    variable_size = True
    overhead_bytes_per_image = 64  # the row's key, label and record header
    page_size: int = 4096
    mmap: bool = False

    def __post_init__(self) -> None:
        size = self.page_size
        if not isinstance(size, int) or size < 512 or size > 65536 or size & (size - 1):
            raise ValueError(f"page_size must be a power of two 512..65536, not {size!r}")
        if not isinstance(self.mmap, bool):
            raise ValueError("mmap must be true or false")

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        db = sqlite3.connect(Path(directory) / FILE, isolation_level=None)
        try:
            db.execute(f"PRAGMA page_size = {self.page_size}")
            db.execute(
                "CREATE TABLE images (key INTEGER PRIMARY KEY, label INTEGER NOT NULL, "
                "image BLOB NOT NULL)"
            )
            for start, chunk in image_chunks(images):
                db.execute("BEGIN")
                db.executemany(
                    "INSERT INTO images VALUES (?, ?, ?)",
                    (
                        (index, int(labels[index]), image.tobytes())
                        for index, image in enumerate(chunk, start)
                    ),
                )
                db.execute("COMMIT")
        finally:
            db.close()

    def open(self, directory: Path) -> Reader:
        return SqliteReader(directory, self.mmap)
