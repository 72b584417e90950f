"""MosaicML Streaming's MDS shards (``mosaicml-streaming``), in an environment of its own.

MDS is the format MosaicML's ``StreamingDataset`` reads: shards (``shard.00000.mds``,
...) of at most ``size_limit`` bytes, each a header of sample offsets followed by the
samples, and an ``index.json`` describing columns and shards. The store is written
by ``MDSWriter`` with columns ``image`` and ``label`` (``uint8``): the image is
``ndarray:uint8`` (its shape kept with it, so any size is stored) or, with
``payload: jpeg`` or ``webp``, the encoded image as ``bytes``, decoded by every read.
A read asks ``LocalDataset`` (the library's dataset over local shards) for each
index, as a map-style loader samples it. On an object store the shards are staged
to local disk first (StreamingDataset downloads whole shards into its local cache
before it reads from them; the staging is on the read's clock).

``mosaicml-streaming`` 0.13.0 requires ``numpy<2.2`` and imports torchvision and
transformers, so MDS jobs run in the ``mds`` environment
(:mod:`storebench.formatenv`, ``envs/mds.txt``), which the workflow builds.
"""

from __future__ import annotations

import dataclasses
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

INDEX = "index.json"


def _streaming() -> Any:
    """``streaming``, or one line naming the environment."""
    try:
        import streaming
    except ImportError as exc:
        raise StorebenchError(
            f"format kind 'mds' needs mosaicml-streaming ({exc}); its jobs run in the mds "
            "environment the workflow builds (results/envs/mds, from envs/mds.txt)"
        ) from None
    return streaming


class MdsReader(Reader):
    def __init__(self, directory: Path, payload_kind: str):
        streaming = _streaming()
        self.directory = Path(directory)
        self.payload = payload_kind
        if not (self.directory / INDEX).is_file():
            raise StorebenchError(
                f"{self.directory}: no {INDEX}, not an MDS store; rerun its store job"
            )
        try:
            self.dataset = streaming.LocalDataset(str(self.directory))
            self.count = len(self.dataset)
        except (OSError, ValueError, KeyError) as exc:
            raise damaged(self.directory, f"MDS: {str(exc).splitlines()[0][:200]}") from None

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        if not any_to_read(indices, self.count):
            return
        for k, index in enumerate(indices.tolist()):
            try:
                sample = self.dataset[index]
            except (OSError, ValueError, KeyError, IndexError) as exc:
                what = f"{type(exc).__name__} {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                raise damaged(self.directory, f"sample {index}: {what.strip()}") from None
            labels[k] = sample["label"]
            put_item(self.directory, index, sample["image"], images[k], self.payload)

    def close(self) -> None:
        self.dataset = None


@dataclasses.dataclass(frozen=True)
class MdsFormat(EncodedImages, Format):
    """``MDSWriter``'s shards of at most ``size_limit`` bytes."""

    kind = "mds"
    variable_size = True
    libraries = ("numpy", "mosaicml-streaming")
    overhead_bytes_per_image = 32  # a sample's offset, its column sizes, a shape
    blocks_per_image = False
    environment = "mds"
    size_limit: int = 1 << 26  # MDSWriter's default: 64 MiB

    def __post_init__(self) -> None:
        check_positive(self, "size_limit")
        if self.size_limit >= 2**32:
            raise ValueError(f"size_limit must be below 2**32 (MDS offsets), not {self.size_limit}")
        payload.check(self.payload, self.quality)

    def load_reader(self) -> None:
        _streaming()

    def load_writer(self) -> None:
        _streaming()

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        streaming = _streaming()
        image = "ndarray:uint8" if self.payload == "raw" else "bytes"
        columns = {"image": image, "label": "uint8"}
        with streaming.MDSWriter(
            out=str(directory), columns=columns, size_limit=self.size_limit
        ) as writer:
            for start, chunk in image_chunks(images):
                for k, pixels in enumerate(chunk):
                    if self.payload != "raw":
                        pixels = payload.encode(pixels, self.payload, self.quality)
                    writer.write({"image": pixels, "label": labels[start + k]})

    def open(self, directory: Path) -> Reader:
        return MdsReader(directory, self.payload)
