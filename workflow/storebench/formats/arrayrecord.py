"""ArrayRecord files (``array-record``): the random-access record format Grain reads.

Google's successor to TFRecord for random access: a Riegeli file whose records are
compressed in groups of ``group_size`` and indexed in a footer, so any record is one
seek away (Grain's ``ArrayRecordDataSource`` reads by index). The store is
``shard-000000.array_record``, ... of ``shard`` records each, written in order by
``ArrayRecordWriter`` with the options ``group_size:N`` and the record compressor
(``compression``: ``uncompressed``, ``snappy``, ``zstd``, ``brotli``). A record is the
label (one byte) followed by the image: its pixels, or with ``payload: jpeg`` or
``webp`` the encoded image, decoded by every read. Reads ask ``ArrayRecordReader``
for a batch of indices at once, opened for random access as its documentation
says (``readahead_buffer_size:0,max_parallelism:0``); each reader thread opens its
own readers. On an object store the files are staged to local disk first: the
reader needs a local file (Grain reads ArrayRecord from local or GCS-fused paths).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from storebench import payload
from storebench.chunks import Images, slots
from storebench.errors import StorebenchError
from storebench.formats.base import (
    EncodedImages,
    Format,
    Reader,
    any_to_read,
    check_positive,
    damaged,
    image_chunks,
    wrong_size,
)

PATTERN = "shard-{:06d}.array_record"
COMPRESSIONS = ("uncompressed", "snappy", "zstd", "brotli")
# ArrayRecordReader's options for random access (its docstring's advice).
RANDOM_ACCESS = "readahead_buffer_size:0,max_parallelism:0"


def _module() -> Any:
    """array_record's reader and writer, or one line naming the extra."""
    try:
        from array_record.python import array_record_module
    except ImportError as exc:
        raise StorebenchError(
            f"format kind 'arrayrecord' needs array-record ({exc}); "
            "install the extra: pip install -e '.[loaders]'"
        ) from None
    return array_record_module


class ArrayRecordStoreReader(Reader):
    def __init__(self, directory: Path, shard: int, payload_kind: str):
        self.directory = Path(directory)
        self.shard = shard
        self.payload = payload_kind
        module = _module()
        paths = sorted(self.directory.glob("shard-*.array_record"))
        expected = [self.directory / PATTERN.format(k) for k in range(len(paths))]
        if not paths or paths != expected:
            raise StorebenchError(
                f"{self.directory}: its shards are missing or out of sequence; the store is "
                "incomplete: rerun its store job"
            )
        self.readers = []
        try:
            for path in paths:
                reader = module.ArrayRecordReader(str(path), RANDOM_ACCESS)
                if not reader.ok():
                    raise damaged(self.directory, f"{path.name} does not open")
                self.readers.append(reader)
        except RuntimeError as exc:
            self.close()
            raise damaged(self.directory, f"{exc}".splitlines()[0][:200]) from None
        self.counts = [r.num_records() for r in self.readers]
        self.count = sum(self.counts)
        if any(c != shard for c in self.counts[:-1]):
            self.close()
            raise damaged(self.directory, f"a shard holds other than {shard} records")

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not any_to_read(indices, self.count):
            return
        count = len(indices)
        flat, starts = slots(images)
        shards = indices // self.shard
        order = np.argsort(shards, kind="stable")
        bounds = np.flatnonzero(np.diff(shards[order])) + 1
        encoded = self.payload != "raw"
        for lo, hi in zip(np.r_[0, bounds].tolist(), np.r_[bounds, count].tolist(), strict=True):
            ks = order[lo:hi].tolist()
            number = int(shards[ks[0]])
            try:
                records = self.readers[number].read((indices[ks] - number * self.shard).tolist())
            except RuntimeError as exc:
                raise damaged(self.directory, f"{exc}".splitlines()[0][:200]) from None
            for k, record in zip(ks, records, strict=True):
                if not record:
                    raise damaged(self.directory, f"record {int(indices[k])} is empty")
                labels[k] = record[0]
                data = memoryview(record)[1:]
                if encoded:
                    payload.decode_into(data, images[k], self.payload, self.directory)
                elif len(data) != starts[k + 1] - starts[k]:
                    raise wrong_size(
                        self.directory, int(indices[k]), len(data), starts[k + 1] - starts[k]
                    )
                else:
                    flat[starts[k] : starts[k + 1]] = data

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers = []


@dataclasses.dataclass(frozen=True)
class ArrayRecordFormat(EncodedImages, Format):
    """``shard-NNNNNN.array_record`` files of ``shard`` records (label byte, then the
    pixels or the ``payload``), records compressed in groups of ``group_size`` with
    ``compression``."""

    kind = "arrayrecord"
    variable_size = True
    libraries = ("numpy", "array-record")
    overhead_bytes_per_image = 64  # the label, the record's index entry, chunk headers
    blocks_per_image = False
    extra = "loaders"
    shard: int = 100_000
    group_size: int = 1
    compression: str = "uncompressed"

    def __post_init__(self) -> None:
        check_positive(self, "shard", "group_size")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        payload.check(self.payload, self.quality)

    def load_reader(self) -> None:
        _module()

    def load_writer(self) -> None:
        _module()

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        module = _module()
        options = f"group_size:{self.group_size},{self.compression}"
        writer, number = None, -1
        try:
            for start, chunk in image_chunks(images):
                for i, image in enumerate(chunk, start):
                    if i // self.shard != number:
                        if writer is not None:
                            writer.close()
                        number = i // self.shard
                        path = Path(directory) / PATTERN.format(number)
                        writer = module.ArrayRecordWriter(str(path), options)
                    label = int(labels[i]).to_bytes(1, "little")
                    writer.write(label + payload.encode(image, self.payload, self.quality))
        finally:
            if writer is not None:
                writer.close()

    def open(self, directory: Path) -> Reader:
        return ArrayRecordStoreReader(directory, self.shard, self.payload)
