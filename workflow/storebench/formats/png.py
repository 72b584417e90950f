"""One PNG file per image (Pillow) plus one CSV of labels, as in the classic article."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from storebench.chunks import Images
from storebench.formats.base import Format, Reader, image_chunks, wrong_shape

LABELS = "labels.csv"
PNG_ONLY = ("PNG",)


def _image_path(directory: Path, index: int) -> Path:
    return directory / f"{index}.png"


class PngReader(Reader):
    """``location``: the store on an object store (a :class:`storebench.remote.Location`),
    each image one object fetched by key, as a map-style dataset does; else the folder."""

    def __init__(self, directory: Path, location: Any = None):
        self.directory = Path(directory)
        self.location = location
        text = (self.directory / LABELS).read_bytes() if location is None else location.get(LABELS)
        self.labels = np.loadtxt(io.BytesIO(text), dtype=np.uint8, delimiter=",", ndmin=1)

    def _bytes(self, index: int) -> bytes:
        with open(_image_path(self.directory, index), "rb") as handle:
            return handle.read()

    def read_into(self, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> None:
        # Read each file whole, then decode from memory with the PNG plugin only:
        # 1.1x Pillow's in-memory decode time here, against 1.2x for Image.open(path).
        # From an object store, the chunk's objects are fetched with several requests in
        # flight first (a map-style loader's prefetch), then decoded in order.
        wanted = indices.tolist()
        fetched = (
            self.location.get_many([f"{i}.png" for i in wanted])
            if self.location is not None
            else None
        )
        for k, index in enumerate(wanted):
            data = fetched[k] if fetched is not None else self._bytes(index)
            slot = images[k]  # (height, width, channels): the dataset's image at k
            with Image.open(io.BytesIO(data), formats=PNG_ONLY) as image:
                pixels = image.tobytes()
                if (image.height, image.width) != slot.shape[:2] or len(pixels) != slot.nbytes:
                    size = (image.height, image.width, len(image.getbands()))
                    raise wrong_shape(_image_path(self.directory, index), size, slot.shape)
                slot[...] = np.frombuffer(pixels, np.uint8).reshape(slot.shape)
        labels[:] = self.labels[indices]

    def close(self) -> None:
        """Nothing stays open between reads: each image file is opened and closed."""


@dataclasses.dataclass(frozen=True)
class PngFormat(Format):
    """``compress_level``: zlib level 0 (none) .. 9 (smallest); Pillow's default is 6."""

    kind = "png"
    variable_size = True
    libraries = ("numpy", "pillow")
    compress_level: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.compress_level, int) or not 0 <= self.compress_level <= 9:
            raise ValueError(f"compress_level must be an integer 0..9, not {self.compress_level}")

    def write(self, directory: Path, images: np.ndarray | Images, labels: np.ndarray) -> None:
        directory = Path(directory)
        for start, chunk in image_chunks(images):
            for index, image in enumerate(chunk, start):
                Image.fromarray(image).save(
                    _image_path(directory, index), compress_level=self.compress_level
                )
        np.savetxt(directory / LABELS, labels, fmt="%d")

    def open(self, directory: Path) -> Reader:
        return PngReader(directory)

    remote_way = "key"

    def open_remote(self, location: Any, scratch: Path) -> Reader:
        return PngReader(Path(location.prefix), location)
