"""A Lance dataset (``pylance``): the columnar format built for random access.

Lance stores a table in fragments (files of up to ``rows_per_file`` rows) with a
manifest per version; unlike Parquet, its file format reads single rows without
decoding their page group, which is its pitch for training data on object stores.
The store is a dataset written by ``lance.write_dataset`` (the stable file format)
from batches of a chunk of images: columns ``image`` (binary: the pixels, or with
``payload: jpeg`` or ``webp`` the encoded image, decoded by every read) and
``label`` (uint8), ``rows_per_group`` rows to a group. A read is one
``LanceDataset.take`` of its indices, in their order, as Lance's own PyTorch
dataset samples by index. On an object store the dataset is opened at its
``s3://`` URI, and Lance's object store client reads the manifest and then
byte ranges of the fragments (``range``). Lance runs its reads on a thread pool of
its own, as it does for its users.
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
    image_chunks,
    wrong_size,
)

# The file format version, fixed so that an upgrade of pylance's default does not
# silently change what is measured.
VERSION = "2.1"


def _lance() -> Any:
    """pylance, or one line naming the extra."""
    try:
        import lance
    except ImportError as exc:
        raise StorebenchError(
            f"format kind 'lance' needs pylance ({exc}); "
            "install the extra: pip install -e '.[loaders]'"
        ) from None
    return lance


class LanceReader(Reader):
    """``uri``: the dataset's folder, or ``s3://bucket/prefix`` with ``storage_options``."""

    def __init__(self, uri: str, payload_kind: str, storage_options: dict | None = None):
        lance = _lance()
        self.uri = uri
        self.payload = payload_kind
        try:
            self.dataset = lance.dataset(uri, storage_options=storage_options)
            self.count = self.dataset.count_rows()
        except (OSError, ValueError, RuntimeError) as exc:
            raise StorebenchError(
                f"{uri}: not a readable Lance dataset ({str(exc).splitlines()[0][:200]}); "
                "rerun its store job"
            ) from None

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not any_to_read(indices, self.count):
            return
        count = len(indices)
        try:
            table = self.dataset.take(indices.tolist(), columns=["image", "label"])
        except (OSError, ValueError, RuntimeError) as exc:
            raise StorebenchError(
                f"{self.uri}: a read failed ({str(exc).splitlines()[0][:200]}); rerun its store job"
            ) from None
        column = table.column("image").combine_chunks()
        ends = np.frombuffer(column.buffers()[1], np.int64, count + 1, column.offset)
        data = np.frombuffer(column.buffers()[2], np.uint8) if ends[-1] > ends[0] else None
        labels[:] = table.column("label").to_numpy()
        flat, starts = slots(images)
        if self.payload == "raw":
            sizes = np.diff(ends)
            want = np.diff(np.asarray(starts))
            if not np.array_equal(sizes, want):
                k = int(np.flatnonzero(sizes != want)[0])
                raise wrong_size(Path(self.uri), int(indices[k]), int(sizes[k]), int(want[k]))
            if count:  # the rows come back in the order asked, back to back
                flat[: starts[-1]] = data[ends[0] : ends[-1]]
            return
        for k in range(count):
            piece = data[ends[k] : ends[k + 1]] if data is not None else b""
            payload.decode_into(memoryview(piece), images[k], self.payload, Path(self.uri))

    def close(self) -> None:
        self.dataset = None


@dataclasses.dataclass(frozen=True)
class LanceFormat(EncodedImages, Format):
    """A Lance dataset of columns ``image`` (binary: pixels or ``payload``) and ``label``
    (uint8): fragments of up to ``rows_per_file`` rows, groups of ``rows_per_group``."""

    kind = "lance"
    variable_size = True
    libraries = ("numpy", "pylance", "pyarrow")
    overhead_bytes_per_image = 16  # an offset and the label, beside page metadata
    blocks_per_image = False
    extra = "loaders"
    fork_safe = False  # pylance: "lance is not fork-safe ... use spawn or forkserver"
    rows_per_file: int = 1_048_576  # lance.write_dataset's default
    rows_per_group: int = 1024  # its default too

    def __post_init__(self) -> None:
        check_positive(self, "rows_per_file", "rows_per_group")
        payload.check(self.payload, self.quality)

    def load_reader(self) -> None:
        _lance()

    def load_writer(self) -> None:
        _lance()

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        import pyarrow as pa

        lance = _lance()
        schema = pa.schema([("image", pa.large_binary()), ("label", pa.uint8())])

        def batches():
            for start, chunk in image_chunks(images):
                encoded = [payload.encode(image, self.payload, self.quality) for image in chunk]
                yield pa.record_batch(
                    [
                        pa.array(encoded, pa.large_binary()),
                        pa.array(labels[start : start + len(chunk)], pa.uint8()),
                    ],
                    schema=schema,
                )

        lance.write_dataset(
            pa.RecordBatchReader.from_batches(schema, batches()),
            str(directory),
            schema=schema,
            max_rows_per_file=self.rows_per_file,
            max_rows_per_group=self.rows_per_group,
            data_storage_version=VERSION,
        )

    def open(self, directory: Path) -> Reader:
        return LanceReader(str(directory), self.payload)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """Lance's own object-store client on the dataset's ``s3://`` URI."""
        endpoint = location.endpoint
        options = {
            "aws_access_key_id": endpoint.access_key,
            "aws_secret_access_key": endpoint.secret_key,
            "aws_region": endpoint.region,
            "aws_endpoint": location.url,
            "allow_http": str(location.url.startswith("http://")).lower(),
            "aws_virtual_hosted_style_request": "false",
        }
        return LanceReader(f"s3://{location.bucket}/{location.prefix}", self.payload, options)
