"""A store on an object store: where it is, putting it there, fetching it back, and
reading it by byte range.

A store is written to local disk by its format's writer, as every format's own tools
do, then uploaded object by object under a prefix (:func:`upload`); the manifest, put
last, lists every object and its size, so a store whose upload was cut short has no
manifest and is not trusted (:func:`manifest` refuses it). Formats read it the way
their ecosystem does (:meth:`storebench.formats.base.Format.open_remote`): by key, by
range (:class:`RangeFile` gives h5py and other file readers a file over range
requests), or, for a format that needs a local file (LMDB's memory map, SQLite),
fetched whole to local disk first (:func:`stage`), the fetch timed with the read.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from storebench.errors import StorebenchError

MANIFEST = "manifest.json"
# Bytes a range request of RangeFile asks for at least: h5py reads its metadata in
# small pieces, each a round trip without it.
BLOCK = 256 * 1024
# Upload a file in parts of this size (S3's multipart upload) above it.
PART = 8 << 20
# Objects put, and fetched by key, at once (a client's connection pool; aws s3 cp uses 10).
UPLOADS = 16
GETS = 16
# Parts of one file put at once (obstore's default, 12, times UPLOADS files would put
# 192 requests on one link at once).
PART_UPLOADS = 2


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a store lives on an object store: an obstore ``store`` (an S3 bucket) and a
    key ``prefix`` (no trailing slash); for libraries that make a client of their own
    (pyarrow), the ``endpoint`` (a :class:`storebench.objectstore.Endpoint`), the ``url``
    they connect to (the link in front of it) and the ``bucket``."""

    store: Any
    prefix: str
    endpoint: Any = None
    url: str = ""
    bucket: str = ""
    retries: int | None = None

    @classmethod
    def of(
        cls,
        endpoint: Any,
        bucket: str,
        prefix: str,
        url: str | None = None,
        retries: int | None = None,
    ) -> Location:
        """The store under ``prefix`` of ``bucket`` at ``endpoint``, reached at ``url``."""
        from storebench import objectstore

        url = url or endpoint.url
        store = objectstore.s3_store(endpoint, bucket, url, retries)
        return cls(store, prefix.strip("/"), endpoint, url, bucket, retries)

    def prefixed(self) -> Any:
        """An obstore store whose keys start below the prefix (for zarr's ObjectStore)."""
        from storebench import objectstore

        return objectstore.s3_store(
            self.endpoint, self.bucket, self.url, self.retries, prefix=self.prefix
        )

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def get(self, name: str) -> bytes:
        import obstore

        return bytes(obstore.get(self.store, self.key(name)).bytes())

    def fetch(self, name: str, target: Path) -> int:
        """Stream object ``name`` into the file ``target`` (one request); its size."""
        return _fetch(self, name, target)

    def get_many(self, names: Sequence[str]) -> list[bytes]:
        """Objects ``names``, :data:`GETS` requests in flight (a loader's prefetch), in
        order."""
        with ThreadPoolExecutor(GETS) as pool:
            return list(pool.map(self.get, names))

    def get_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of object ``name``: one request."""
        import obstore

        return bytes(obstore.get_range(self.store, self.key(name), start=start, end=end))

    def get_ranges(self, name: str, starts: Sequence[int], ends: Sequence[int]) -> list[bytes]:
        """Several ranges of one object, fetched concurrently (adjacent ones merged)."""
        import obstore

        found = obstore.get_ranges(self.store, self.key(name), starts=list(starts), ends=list(ends))
        return [bytes(part) for part in found]


def _fetch(location: Location, name: str, target: Path) -> int:
    """Stream object ``name`` into the file ``target``; its size."""
    import obstore

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as handle:
        for part in obstore.get(location.store, location.key(name)):
            handle.write(part)
    return target.stat().st_size


def upload(directory: Path, files: Sequence[Path], location: Location) -> dict[str, int]:
    """Put every file of a store (``files``, below ``directory``) under ``location``,
    :data:`UPLOADS` at a time (as ``aws s3 cp --recursive`` does), then the manifest;
    the objects and bytes put."""
    import obstore

    directory = Path(directory)

    def put(path: Path) -> tuple[str, int]:
        name = path.relative_to(directory).as_posix()
        size = path.stat().st_size
        with open(path, "rb") as handle:
            if size > PART:  # in parts, PART_UPLOADS of this file's at a time
                obstore.put(
                    location.store,
                    location.key(name),
                    handle,
                    chunk_size=PART,
                    max_concurrency=PART_UPLOADS,
                )
            else:
                obstore.put(location.store, location.key(name), handle.read())
        return name, size

    with ThreadPoolExecutor(UPLOADS) as pool:
        listed = dict(pool.map(put, files))
    body = json.dumps({"objects": listed}, sort_keys=True).encode()
    obstore.put(location.store, location.key(MANIFEST), body)
    return {"objects": len(listed) + 1, "bytes": sum(listed.values()) + len(body)}


def manifest(location: Location) -> dict[str, int]:
    """Object name -> size of the store at ``location``; a store without a manifest (an
    upload cut short) is refused in one line naming the fix."""
    try:
        return dict(json.loads(location.get(MANIFEST))["objects"])
    except FileNotFoundError:  # obstore's NotFoundError is one
        raise StorebenchError(
            f"{location.prefix}: no {MANIFEST} on the object store (an upload cut short); "
            "rebuild the store: snakemake --cores 4 --forcerun store"
        ) from None


def stage(location: Location, directory: Path) -> dict[str, int]:
    """Fetch every object of the store at ``location`` into ``directory`` (the way a
    format that needs a local file is used from an object store); objects and bytes."""
    directory = Path(directory)
    listed = manifest(location)
    total = 0
    for name, size in listed.items():
        got = _fetch(location, name, directory / name)
        if got != size:
            raise StorebenchError(
                f"{location.key(name)}: fetched {got} bytes, the manifest says {size}; "
                "rebuild the store: snakemake --cores 4 --forcerun store"
            )
        total += size
    return {"objects": len(listed) + 1, "bytes": total}


class RangeFile(io.RawIOBase):
    """A read-only file over one object, each read a range request of at least
    :data:`BLOCK` bytes (the last block kept: a reader's small reads of one region cost
    one request)."""

    def __init__(self, location: Location, name: str, size: int) -> None:
        super().__init__()
        self.location, self.name, self.size = location, name, size
        self.position = 0
        self.block_start, self.block = 0, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.position, os.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self.size - self.position))
        if want == 0:
            return 0
        start, end = self.position, self.position + want
        held_end = self.block_start + len(self.block)
        if not (self.block_start <= start and end <= held_end):
            fetch_end = min(self.size, max(end, start + BLOCK))
            self.block = self.location.get_range(self.name, start, fetch_end)
            self.block_start = start
        offset = start - self.block_start
        view[:want] = self.block[offset : offset + want]
        self.position = end
        return want
