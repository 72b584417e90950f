"""What a record-per-image format stores for each image: its raw pixels, or the image
encoded as JPEG or WebP (Pillow), as real datasets store them.

JPEG and WebP are lossy: a read returns the decoded image, not the dataset's. The
images a read must return are therefore the dataset's images encoded and decoded
once (:func:`roundtrip`, deterministic for one Pillow version), and how far they
are from the originals is recorded as PSNR (:func:`psnr_db`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from storebench.errors import StorebenchError
from storebench.ragged import Ragged

PAYLOADS = ("raw", "jpeg", "webp")
EXTENSIONS = {"raw": "raw", "jpeg": "jpg", "webp": "webp"}
PILLOW = {"jpeg": "JPEG", "webp": "WEBP"}


# The longest side each codec encodes (libjpeg: 65,500 px; libwebp: 16,383 px).
MAX_SIDE = {"jpeg": 65_500, "webp": 16_383}


def check_sides(formats: Mapping[str, Any], shape: Sequence[int]) -> None:
    """Refuse, before any job, a format whose payload cannot encode images of ``shape``
    (the dataset's largest height and width): its store job would die after the
    dataset was built."""
    height, width = int(shape[0]), int(shape[1])
    for name, fmt in formats.items():
        limit = MAX_SIDE.get(getattr(fmt, "payload", "raw"))
        if limit is not None and max(height, width) > limit:
            raise StorebenchError(
                f"formats.{name}: payload {fmt.payload} encodes at most {limit:,} px a side, "
                f"and the images are up to {height} x {width}; set dataset.size, or use "
                "another payload"
            )


def check(payload: object, quality: object) -> None:
    """Refuse a payload or quality a format cannot take (ValueError, as options do)."""
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {PAYLOADS}, not {payload!r}")
    if not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be a whole number 1..100, not {quality!r}")


def encode(image: np.ndarray, payload: str, quality: int) -> bytes:
    """``image`` (height, width, 3) uint8 as the bytes a store keeps."""
    if payload == "raw":
        return image.tobytes()
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=PILLOW[payload], quality=quality)
    return buffer.getvalue()


def decode_into(data: bytes | memoryview, out: np.ndarray, payload: str, where: Path) -> None:
    """Decode stored bytes into ``out`` (height, width, 3), failing in one line naming
    the store if they are not an image of that size."""
    if payload == "raw":
        if len(data) != out.nbytes:
            raise StorebenchError(
                f"{where}: an image holds {len(data)} bytes, but the dataset's hold "
                f"{out.nbytes}; the store was written from another dataset: rerun its store job"
            )
        out.reshape(-1)[:] = np.frombuffer(data, np.uint8)
        return
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            shape = (image.size[1], image.size[0], len(image.getbands()))
            if shape != out.shape or image.mode != "RGB":
                raise StorebenchError(
                    f"{where}: an image is {shape} {image.mode}, but the dataset's are "
                    f"{out.shape} RGB; the store was written from another dataset: rerun "
                    "its store job"
                )
            out[...] = np.asarray(image)
    except (OSError, ValueError) as exc:
        raise StorebenchError(f"{where}: a stored {payload} image does not decode: {exc}") from None


def roundtrip(images: np.ndarray | Ragged, payload: str, quality: int) -> np.ndarray | Ragged:
    """The images a read returns for ``images``: encoded and decoded once."""
    if payload == "raw":
        return images
    if isinstance(images, Ragged):
        out: np.ndarray | Ragged = Ragged.empty(images.shapes)
    else:
        images = np.asarray(images)
        out = np.empty_like(images)
    for k, image in enumerate(images):
        decode_into(encode(image, payload, quality), out[k], payload, Path("roundtrip"))
    return out


def psnr_db(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """PSNR (dB) of decoded images against the originals over all pixels of ``pairs``
    (original chunk, decoded chunk); infinity where they are identical."""
    squared, count = 0.0, 0
    for original, decoded in pairs:
        if isinstance(original, Ragged):
            original, decoded = original.flat(), decoded.flat()
        difference = original.astype(np.int32) - decoded.astype(np.int32)
        squared += float(np.square(difference, dtype=np.int64).sum())
        count += difference.size
    if count == 0 or squared == 0:
        return math.inf
    return 10 * math.log10(255.0**2 / (squared / count))
