"""WebDataset tar shards (webdataset's ``TarWriter``), read by index the ``wids`` way.

The default format of large-scale training: ``shard-000000.tar``, ... each holding
``shard`` samples in order, a sample being two tar members with one key,
``{index:09d}.raw`` (the pixels; ``.jpg`` or ``.webp`` with ``payload: jpeg`` or
``webp``, decoded by every read) and ``{index:09d}.cls`` (the label as text), as
webdataset writes them. A read opens a shard the first time it needs it the way
wids' ``MMIndexedTar`` does: the tar memory-mapped and indexed by scanning its
headers; sample ``index - first`` is then sliced out of the map. The shards stay
open until the reader closes, as in wids' shard cache. (wids itself imports
PyTorch when imported, so the few lines of its index are here, on the standard
library's ``tarfile``.)
"""

from __future__ import annotations

import dataclasses
import mmap
import tarfile
from pathlib import Path

import numpy as np
import webdataset

from storebench import payload
from storebench.chunks import Images
from storebench.errors import StorebenchError
from storebench.formats.base import EncodedImages, Format, Reader, image_chunks, wrong_size

PATTERN = "shard-{:06d}.tar"


class IndexedShard:
    """One tar shard, memory-mapped, with the offset and size of every sample's ``.raw``
    and ``.cls`` member (found by scanning the tar's headers once, at open)."""

    def __init__(self, path: Path, ext: str = "raw"):
        self.path = path
        self.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.map = self.view = None
        try:
            self.map = mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)
            self.view = memoryview(self.map)  # slices of it copy nothing
            members: dict[str, dict[str, tuple[int, int]]] = {}
            with tarfile.open(fileobj=self.handle, mode="r:") as tar:
                for member in tar:
                    if member.isfile():
                        key, _, suffix = member.name.partition(".")
                        members.setdefault(key, {})[suffix] = (member.offset_data, member.size)
        except (tarfile.TarError, ValueError, OSError) as exc:
            self.close()
            raise StorebenchError(
                f"{path}: not a readable shard ({exc or type(exc).__name__}); rerun its store job"
            ) from None
        try:
            self.raw = np.array([members[k][ext] for k in members], np.int64).reshape(-1, 2)
            self.cls = np.array([members[k]["cls"] for k in members], np.int64).reshape(-1, 2)
        except KeyError as exc:
            self.close()
            raise StorebenchError(f"{path}: a sample has no .{exc.args[0]} member") from None

    def __len__(self) -> int:
        return len(self.raw)

    def close(self) -> None:
        if self.view is not None:
            self.view.release()
        if self.map is not None and not self.map.closed:
            self.map.close()
        self.handle.close()


class WebDatasetReader(Reader):
    def __init__(self, directory: Path, shard: int, payload: str = "raw"):
        self.directory = Path(directory)
        self.shard = shard
        self.payload = payload
        self.paths = sorted(self.directory.glob("shard-*.tar"))
        if not self.paths:
            raise StorebenchError(f"{self.directory}: no shard-*.tar; the store is incomplete")
        self.open_shards: dict[int, IndexedShard] = {}

    def _shard(self, number: int) -> IndexedShard:
        shard = self.open_shards.get(number)
        if shard is None:
            if number >= len(self.paths):
                raise IndexError(f"{self.directory}: no shard {number}")
            ext = payload.EXTENSIONS[self.payload]
            shard = self.open_shards[number] = IndexedShard(self.paths[number], ext)
        return shard

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not len(indices):
            return
        row = images[0].nbytes
        flat = memoryview(images.reshape(len(indices), row)).cast("B")
        shard, kind = self.shard, self.payload
        encoded = kind != "raw"
        for k, index in enumerate(indices.tolist()):
            if index < 0:
                raise IndexError(f"index {index} out of range")
            number, position = divmod(index, shard)
            tar = self._shard(number)
            if position >= len(tar):
                raise IndexError(f"{tar.path}: no sample {position}")
            offset, size = tar.raw[position]
            if encoded:  # a JPEG or WebP: decoded into its place
                payload.decode_into(tar.view[offset : offset + size], images[k], kind, tar.path)
            elif size != row:
                raise wrong_size(tar.path, index, int(size), row)
            else:
                flat[k * row : (k + 1) * row] = tar.view[offset : offset + size]
            offset, size = tar.cls[position]
            labels[k] = int(bytes(tar.view[offset : offset + size]))

    def close(self) -> None:
        for tar in self.open_shards.values():
            tar.close()
        self.open_shards.clear()


@dataclasses.dataclass(frozen=True)
class WebDatasetFormat(EncodedImages, Format):
    """Tar shards of ``shard`` samples each (``.raw`` pixels, or ``.jpg``/``.webp`` with
    ``payload`` at ``quality``; ``.cls`` label), written by webdataset's ``TarWriter`` and
    read by index through memory-mapped, indexed tars."""

    kind = "webdataset"
    libraries = ("numpy", "webdataset")
    # Two tar headers (512 bytes each), the label's block and the padding of the pixels.
    overhead_bytes_per_image = 2048
    blocks_per_image = False
    shard: int = 10_000

    def __post_init__(self) -> None:
        if not isinstance(self.shard, int) or self.shard < 1:
            raise ValueError(f"shard must be a positive integer, not {self.shard!r}")
        payload.check(self.payload, self.quality)

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        directory = Path(directory)
        writer, number = None, -1
        ext = payload.EXTENSIONS[self.payload]
        try:
            for start, chunk in image_chunks(images):
                for index, image in enumerate(chunk, start):
                    if index // self.shard != number:
                        if writer is not None:
                            writer.close()
                        number = index // self.shard
                        path = directory / PATTERN.format(number)
                        writer = webdataset.TarWriter(str(path), encoder=False, mtime=0)
                    writer.write(
                        {
                            "__key__": f"{index:09d}",
                            ext: payload.encode(image, self.payload, self.quality),
                            "cls": str(int(labels[index])).encode(),
                        }
                    )
        finally:
            if writer is not None:
                writer.close()

    def open(self, directory: Path) -> Reader:
        return WebDatasetReader(directory, self.shard, self.payload)
