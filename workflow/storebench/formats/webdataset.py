"""WebDataset tar shards (webdataset's ``TarWriter``), read by index as wids reads them.

The default format of large-scale training: ``shard-000000.tar``, ... each holding
``shard`` samples in order, a sample being two tar members with one key,
``{index:09d}.cls`` (the label as text) and ``{index:09d}.raw`` (the pixels; ``.jpg``
or ``.webp`` with ``payload: jpeg`` or ``webp``, decoded by every read), as webdataset
writes them. Random access goes through an index, as wids' indexed tars do: where
each sample's members start in which shard and how long they are. It is written
beside the shards (``index.npy``) as they are written, as wids keeps a ``.index``
file beside a tar, so opening the store reads the index instead of scanning every
tar header (about 1 s per 10,000-image shard here, paid by every open). A read maps a
shard the first time it needs it and slices each sample out of the map; the shards
stay mapped until the reader closes, as in wids' shard cache. (wids itself imports
PyTorch when imported, so these few lines are here.)
"""

from __future__ import annotations

import dataclasses
import io
import mmap
from pathlib import Path
from typing import Any

import numpy as np

from storebench import payload
from storebench.chunks import Images, slots
from storebench.errors import StorebenchError
from storebench.formats.base import EncodedImages, Format, Reader, image_chunks, wrong_size

PATTERN = "shard-{:06d}.tar"
INDEX = "index.npy"  # per image: shard, payload offset, payload size, label offset, label size
BLOCK = 512  # a tar header, and the unit member data is padded to


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class MappedShard:
    """One tar shard, memory-mapped for slicing members out of it."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise StorebenchError(f"{path}: {exc.strerror}; the store is incomplete") from None
        size = path.stat().st_size
        self.map = mmap.mmap(self.handle.fileno(), size, access=mmap.ACCESS_READ) if size else None
        self.view = memoryview(self.map) if self.map is not None else memoryview(b"")
        self.size = size

    def close(self) -> None:
        self.view.release()
        if self.map is not None:
            self.map.close()
        self.handle.close()


class WebDatasetReader(Reader):
    """``location``: the store on an object store (a :class:`storebench.remote.Location`):
    a shard is fetched whole, by one streamed request, into ``directory`` the first
    time an image of it is read, as wids keeps a local cache of the shards it opens."""

    def __init__(self, directory: Path, payload_kind: str = "raw", location: Any = None):
        self.directory = Path(directory)
        self.payload = payload_kind
        self.location = location
        try:
            if location is None:
                self.index = np.load(self.directory / INDEX)
            else:
                self.index = np.load(io.BytesIO(location.get(INDEX)))
        except (OSError, ValueError) as exc:
            raise StorebenchError(
                f"{self.directory / INDEX}: missing or unreadable ({exc}); rerun its store job"
            ) from None
        self.open_shards: dict[int, MappedShard] = {}

    def _shard(self, number: int) -> MappedShard:
        shard = self.open_shards.get(number)
        if shard is None:
            name = PATTERN.format(number)
            if self.location is not None:
                self.location.fetch(name, self.directory / name)
            shard = self.open_shards[number] = MappedShard(self.directory / name)
        return shard

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not len(indices):
            return
        if indices.min() < 0 or indices.max() >= len(self.index):
            raise IndexError(f"index out of range 0..{len(self.index) - 1}")
        flat, starts = slots(images)  # image k: flat[starts[k]:starts[k + 1]]
        kind = self.payload
        encoded = kind != "raw"
        for k, (number, offset, size, label_at, label_size) in enumerate(
            self.index[indices].tolist()
        ):
            tar = self._shard(number)
            if offset + size > tar.size or label_at + label_size > tar.size:
                raise StorebenchError(f"{tar.path}: shorter than its index; rerun its store job")
            if encoded:  # a JPEG or WebP: decoded into its place
                payload.decode_into(tar.view[offset : offset + size], images[k], kind, tar.path)
            elif size != starts[k + 1] - starts[k]:
                raise wrong_size(tar.path, int(indices[k]), size, starts[k + 1] - starts[k])
            else:
                flat[starts[k] : starts[k + 1]] = tar.view[offset : offset + size]
            text = bytes(tar.view[label_at : label_at + label_size])
            if not text.isdigit():
                raise StorebenchError(
                    f"{tar.path}: the label of image {int(indices[k])} is {text[:20]!r}, not a "
                    "number; the shard is damaged: rerun its store job"
                )
            labels[k] = int(text)

    def close(self) -> None:
        for tar in self.open_shards.values():
            tar.close()
        self.open_shards.clear()


@dataclasses.dataclass(frozen=True)
class WebDatasetFormat(EncodedImages, Format):
    """Tar shards of ``shard`` samples each (``.cls`` label; ``.raw`` pixels, or
    ``.jpg``/``.webp`` with ``payload`` at ``quality``), written by webdataset's
    ``TarWriter``, with an index of where every sample's members are."""

    kind = "webdataset"
    variable_size = True
    libraries = ("numpy", "webdataset")
    # Two tar headers (512 bytes each), the label's block, the padding of the pixels and
    # the index's 40 bytes.
    overhead_bytes_per_image = 2088
    blocks_per_image = False
    shard: int = 10_000

    def __post_init__(self) -> None:
        if not isinstance(self.shard, int) or self.shard < 1:
            raise ValueError(f"shard must be a positive integer, not {self.shard!r}")
        payload.check(self.payload, self.quality)

    def load_writer(self) -> None:
        """webdataset imports torch when it is installed (3 s): only store jobs pay."""
        import webdataset  # noqa: F401

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        """Each sample through webdataset's ``TarWriter``; where its members landed is
        known from the tar stream's position (USTAR: one 512-byte header per member, data
        padded to 512; the members in key order, ``cls`` first), checked per sample."""
        import webdataset  # loaded by load_writer, before the clock

        directory = Path(directory)
        writer, number = None, -1
        ext = payload.EXTENSIONS[self.payload]
        index = np.zeros((len(images), 5), np.int64)
        try:
            for start, chunk in image_chunks(images):
                for i, image in enumerate(chunk, start):
                    if i // self.shard != number:
                        if writer is not None:
                            writer.close()
                        number = i // self.shard
                        path = directory / PATTERN.format(number)
                        writer = webdataset.TarWriter(str(path), encoder=False, mtime=0)
                    label = str(int(labels[i])).encode()
                    data = payload.encode(image, self.payload, self.quality)
                    at = writer.tarstream.offset
                    writer.write({"__key__": f"{i:09d}", "cls": label, ext: data})
                    data_at = at + BLOCK + _padded(len(label)) + BLOCK
                    if writer.tarstream.offset != data_at + _padded(len(data)):
                        raise StorebenchError(
                            f"{path}: sample {i} is not laid out as USTAR members (a bug)"
                        )
                    index[i] = (number, data_at, len(data), at + BLOCK, len(label))
        finally:
            if writer is not None:
                writer.close()
        np.save(directory / INDEX, index)

    def open(self, directory: Path) -> Reader:
        return WebDatasetReader(directory, self.payload)

    remote_way = "stream"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        return WebDatasetReader(scratch, self.payload, location)
