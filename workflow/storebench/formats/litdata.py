"""LitData's optimized chunks (``litdata``): the format Lightning's StreamingDataset reads.

LitData converts a dataset with ``litdata.optimize``, whose worker processes each
run its ``BinaryWriter``: items, serialized one by one, go into binary chunks of at
most ``chunk_bytes`` (``chunk-<rank>-<k>.bin``), and an ``index.json`` maps every item
to its chunk; ``compression: zstd`` compresses the items in zstd frames inside each
chunk (LitData's default framing). The store is written by one ``BinaryWriter`` in the
job's own process, as an ``optimize`` worker writes it, so that no process start and
no image loading (LitData's function would load each image in its worker) lands in
the store time; ``optimize`` with several workers would also hand items to whichever
worker is free, so item i of the dataset would no longer be image i. An item is
``{"image": ..., "label": int}``: the pixels as a numpy array (LitData's numpy
serializer keeps each image's shape, so any size is stored), or with ``payload: jpeg``
or ``webp`` the encoded image as bytes, decoded by every read. A read indexes
``litdata.StreamingDataset`` item by item (``dataset[i]``), as a map-style loader
samples it; the dataset loads a chunk the first time one of its items is asked for.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from storebench import payload
from storebench.chunks import Images
from storebench.errors import StorebenchError
from storebench.formats.base import (
    EncodedImages,
    Format,
    Reader,
    any_to_read,
    check_positive,
    damaged,
    image_chunks,
    put_item,
)

COMPRESSIONS = (None, "zstd")


def _litdata() -> Any:
    """litdata, or one line naming the extra."""
    try:
        import litdata
    except ImportError as exc:
        raise StorebenchError(
            f"format kind 'litdata' needs litdata ({exc}); "
            "install the extra: pip install -e '.[litdata]'"
        ) from None
    return litdata


class LitDataReader(Reader):
    """``directory``: the folder ``optimize`` wrote."""

    def __init__(
        self,
        directory: Path,
        payload_kind: str,
        uri: str | None = None,
        cache: Path | None = None,
        storage_options: dict | None = None,
        batch_decode: int | str = 0,
    ):
        litdata = _litdata()
        self.directory = Path(directory)
        self.payload = payload_kind
        if uri is None and not (self.directory / "index.json").is_file():
            raise StorebenchError(
                f"{self.directory}: no index.json, not a LitData store; rerun its store job"
            )
        try:
            self.dataset = litdata.StreamingDataset(
                uri or str(self.directory),
                cache_dir=None if cache is None else str(cache),
                storage_options=storage_options,
                batch_decode=batch_decode,
            )
            self.count = len(self.dataset)
        except (OSError, ValueError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
            raise damaged(self.directory, f"LitData: {str(exc).splitlines()[0][:200]}") from None

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not any_to_read(indices, self.count):
            return
        for k, index in enumerate(indices.tolist()):
            try:
                item = self.dataset[index]
            except (OSError, ValueError, RuntimeError, KeyError, EOFError) as exc:
                what = f"{type(exc).__name__} {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                raise damaged(self.directory, f"item {index}: {what.strip()}") from None
            labels[k] = item["label"]
            put_item(self.directory, index, item["image"], images[k], self.payload)

    def close(self) -> None:
        self.dataset = None


@dataclasses.dataclass(frozen=True)
class LitDataFormat(EncodedImages, Format):
    """``litdata.optimize``'s chunks of at most ``chunk_bytes``, ``compression`` None or
    ``zstd``."""

    kind = "litdata"
    variable_size = True
    libraries = ("numpy", "litdata", "torch")
    overhead_bytes_per_image = 64  # the item's offset, its field sizes, shape header
    blocks_per_image = False
    extra = "litdata"
    chunk_bytes: int = 64_000_000  # LitData's documentation writes chunk_bytes="64MB"
    compression: str | None = None
    # Items StreamingDataset deserializes together when one is asked for: 0 (each item
    # alone) suits reads by index; its default "auto" decodes a window of 256 numpy
    # items around each one asked for (made for its own in-window shuffled iteration),
    # so a uniformly shuffled read by index decodes 256 items per image.
    batch_decode: int | str = 0

    def __post_init__(self) -> None:
        check_positive(self, "chunk_bytes")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        payload.check(self.payload, self.quality)
        window = self.batch_decode
        whole = isinstance(window, int) and not isinstance(window, bool) and window >= 0
        if not (whole or window in ("auto", "all")):
            raise ValueError(f"batch_decode must be a number >= 0, 'auto' or 'all', not {window!r}")

    def load_reader(self) -> None:
        _litdata()

    def load_writer(self) -> None:
        from litdata.streaming.writer import BinaryWriter  # noqa: F401

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        _litdata()
        from litdata.streaming.writer import BinaryWriter

        writer = BinaryWriter(
            str(directory), chunk_bytes=self.chunk_bytes, compression=self.compression
        )
        for start, chunk in image_chunks(images):
            for k, image in enumerate(chunk):
                if self.payload != "raw":
                    image = payload.encode(image, self.payload, self.quality)
                # add_item serializes the item now: the slice's buffer may be reused
                writer.add_item(start + k, {"image": image, "label": int(labels[start + k])})
        writer.done()
        writer.merge()
        if not (Path(directory) / "index.json").is_file():
            raise StorebenchError(f"{directory}: LitData's writer wrote no index.json")

    def open(self, directory: Path) -> Reader:
        return LitDataReader(directory, self.payload, batch_decode=self.batch_decode)

    remote_way = "range"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        """LitData's own S3 client on the store's ``s3://`` URI, its download cache in
        ``scratch``: it fetches ``index.json`` there, then reads an item asked for by
        index as one byte range of its chunk (boto3's ``get_object`` with a range),
        keeping no chunk on disk."""
        endpoint = location.endpoint
        options = {
            "endpoint_url": location.url,
            "aws_access_key_id": endpoint.access_key,
            "aws_secret_access_key": endpoint.secret_key,
            "region_name": endpoint.region,
        }
        uri = f"s3://{location.bucket}/{location.prefix}"
        return LitDataReader(
            Path(location.prefix), self.payload, uri, scratch, options, self.batch_decode
        )
