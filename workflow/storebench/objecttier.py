"""A run on an object-store tier: every store written, uploaded and read back the way
its format's ecosystem reads one from S3.

A tier's run (:mod:`storebench.tiers`) starts with :data:`ENV` set to where its object
store is (:class:`Place`: the URL clients connect to, the bucket and key prefix, the
link proxy's count port, the server's data folder and process), and the credentials in
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``: nothing secret is in the
environment variable, the config or any result. In that run every format
(:func:`storebench.formats.make_format`) is an :class:`OnObjectStore`:

- ``write`` is the format's own write to local disk, then the upload of its files
  (:func:`storebench.remote.upload`, :data:`~storebench.remote.UPLOADS` in flight, the
  manifest last), both on the store's clock; the local folder keeps a pointer
  (:data:`POINTER`) to the objects, so the store a job renames into place is the one it
  uploaded, and a store without a pointer (an upload cut short) is not trusted;
- ``open`` reads the objects the format's way (:meth:`Format.open_remote`), any local
  scratch (a staged LMDB, a streamed TFRecord) in a fresh folder removed on close;
- ``cache_files`` are the server's own files: a cold read evicts them (the server's
  page cache is what a cold object store has not got), a warm one loads them; on a
  user's own bucket there is nothing this machine can evict, and cold reads say so;
- ``traffic`` is what the link counted so far (requests, bytes each way) and the
  server's CPU time, read before and after each timed read, off the clock;
- ``forget`` deletes the objects of a store copy the job discards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

from storebench import remote
from storebench.errors import StorebenchError
from storebench.formats.base import POINTER

ENV = "STOREBENCH_OBJECT_STORE"
# Retries of a failed request (a real S3 throttles: 503 SlowDown), each within 10 s: a
# server that is gone fails a read in seconds, not after obstore's default 3 minutes.
RETRIES = 2


def _request_errors() -> tuple[type[BaseException], ...]:
    """What a failed request raises: OSError (pyarrow, h5py over a RangeFile, a refused
    connection) and obstore's own errors (obstore, zarr's ObjectStore)."""
    from obstore.exceptions import BaseError

    return (OSError, BaseError)


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a tier's stores go: ``url`` (what clients connect to: the link proxy, or the
    endpoint itself), ``bucket``, key ``prefix``; ``counter``: the link proxy's count
    port (0: none); ``server_data``: the folder of a server storebench runs ("" for a
    user's own); ``server_pid``: that server's process (0: none); ``link``: what the
    tier run measured of the link (null-request time, bandwidth), kept with every
    result."""

    url: str
    bucket: str
    prefix: str
    counter: int = 0
    server_data: str = ""
    server_pid: int = 0
    link: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ: Any = os.environ) -> Place | None:
        text = environ.get(ENV)
        return cls(**json.loads(text)) if text else None

    def endpoint(self) -> Any:
        """The client's endpoint with the credentials of the environment."""
        from storebench import objectstore

        return objectstore.environment_endpoint(self.url, f"object store {self.url}")

    def location(self, key: str) -> remote.Location:
        return remote.Location.of(
            self.endpoint(), self.bucket, f"{self.prefix}/{key}", self.url, RETRIES
        )

    def failed(self, error: BaseException, what: str) -> StorebenchError:
        """One line for a request to the tier that failed (its server stopped, the
        endpoint went away, an object is missing)."""
        text = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        fix = (
            f"check that the server runs (see {Path(self.server_data).parent / 'server.log'})"
            if self.server_data
            else "check that the endpoint is reachable and the bucket there"
        )
        return StorebenchError(
            f"object store {self.url}, bucket {self.bucket!r}: {what} failed ({text}); {fix}, "
            "then rerun: snakemake --cores 4"
        )

    def traffic(self) -> dict[str, float]:
        """The link's counts so far and the server's CPU seconds (each absent when there
        is no link proxy or no server of ours)."""
        found: dict[str, float] = {}
        if self.counter:
            with socket.create_connection(("127.0.0.1", self.counter), timeout=10) as sock:
                text = b""
                while chunk := sock.recv(4096):
                    text += chunk
            found.update(json.loads(text))
        if self.server_pid:
            found["server_cpu_s"] = process_cpu_s(self.server_pid)
        return found


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` and its waited-for children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def read_pointer(directory: Path) -> dict[str, Any]:
    """What a store folder says of its objects; one line naming the fix when it has
    no pointer (written on another tier, or its upload was cut short)."""
    path = Path(directory) / POINTER
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StorebenchError(
            f"{directory}: no {POINTER} (the store was not uploaded to this tier's object "
            "store, or its upload was cut short); rebuild it: snakemake --cores 4 "
            "--forcerun store"
        ) from None


class _ScratchReader:
    """A reader of a store on the object store, and the local scratch it used (removed
    on close); a request that fails mid-read ends the read with one line."""

    def __init__(self, reader: Any, scratch: Path, place: Place) -> None:
        self.reader, self.scratch, self.place = reader, scratch, place

    def read_into(self, *args: Any) -> None:
        try:
            self.reader.read_into(*args)
        except StorebenchError:
            raise
        except _request_errors() as error:
            raise self.place.failed(error, "a read") from None

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> _ScratchReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OnObjectStore:
    """A format on an object-store tier (module docstring); everything but writing,
    opening and the cache is the format's own."""

    remote = True

    def __init__(self, inner: Any, place: Place) -> None:
        self.inner, self.place = inner, place

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def libraries(self) -> tuple[str, ...]:
        return (*self.inner.libraries, "obstore")

    def __repr__(self) -> str:
        return f"OnObjectStore({self.inner!r}, {self.place.url}/{self.place.bucket})"

    @property
    def lossy(self) -> bool:
        return self.inner.lossy

    def write(self, directory: Path, images: Any, labels: Any) -> None:
        directory = Path(directory)
        self.inner.write(directory, images, labels)
        key = uuid.uuid4().hex
        files = [p for p in self.inner.files(directory) if p.name != POINTER]
        try:
            put = remote.upload(directory, files, self.place.location(key))
        except _request_errors() as error:
            raise self.place.failed(error, "an upload") from None
        (directory / POINTER).write_text(json.dumps({"key": key, **put}) + "\n")

    def open(self, directory: Path) -> Any:
        key = read_pointer(directory)["key"]
        scratch = Path(tempfile.mkdtemp(prefix=".remote.", dir=Path(directory).parent))
        try:
            opened = self.inner.open_remote(self.place.location(key), scratch)
        except BaseException as error:
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(error, _request_errors()) and not isinstance(error, StorebenchError):
                raise self.place.failed(error, "opening a store") from None
            raise
        return _ScratchReader(opened, scratch, self.place)

    def cache_files(self, directory: Path) -> list[Path]:
        if not self.place.server_data:
            return []
        return sorted(p for p in Path(self.place.server_data).rglob("*") if p.is_file())

    def traffic(self) -> dict[str, float] | None:
        return self.place.traffic()

    def forget(self, directory: Path) -> None:
        """Delete the objects of a store copy being discarded (off the clock)."""
        import obstore

        with contextlib.suppress(StorebenchError, OSError):
            key = read_pointer(directory)["key"]
            location = self.place.location(key)
            names = [
                item["path"]
                for batch in obstore.list(location.store, f"{location.prefix}/")
                for item in batch
            ]
            if names:
                obstore.delete(location.store, names)

    def describe(self) -> dict[str, Any]:
        """What every result records of the tier (no secrets)."""
        return {
            "url": self.place.url,
            "bucket": self.place.bucket,
            "prefix": self.place.prefix,
            "remote_way": self.inner.remote_way,
            "link": self.place.link,
        }


def wrap(fmt: Any) -> Any:
    """``fmt`` on this process's object-store tier (:data:`ENV`), or ``fmt`` itself."""
    place = Place.from_env()
    return OnObjectStore(fmt, place) if place else fmt
