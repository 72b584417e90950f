"""Photographs for the realistic image case: crops of the colour photographs that
scikit-image ships in its wheel, written as JPEG files into an image folder, one class
per photograph (``dataset.kind: photos``; the photos extra).

CIFAR-10's 32-pixel images decode in microseconds; the decision people face usually
concerns photos of 200-500 pixels, whose JPEG decode and augmentation cost the loader
milliseconds. Nine real photographs (an astronaut, a cat, coffee, a rocket, the Hubble
deep field, two views of a motorcycle, a retina, a stained tissue sample) give
distinct crops: each crop is a random square of at least the target side (its
position and size drawn from ``seed``), resized to ``size`` with Lanczos, flipped half
of the time, and saved as a JPEG of ``QUALITY``, the way photo datasets are stored.
The folder is written whole under a temporary name and renamed into place: an
interrupted run leaves no folder a rerun would trust.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
from pathlib import Path

import numpy as np

from storebench.errors import StorebenchError

# The colour photographs of scikit-image's wheel (skimage/data), by class name.
SOURCES = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "hubble": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}
QUALITY = 90
INSTALL = "pip install -e '.[photos]'"


def data_dir() -> Path:
    """scikit-image's folder of bundled images, found without importing it (its import
    pulls in SciPy); one line naming the fix when it is not installed."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise StorebenchError(
            f"dataset.kind photos: the photographs come from scikit-image, which is not "
            f"installed; {INSTALL} (or use dataset.kind imagefolder with your own photos)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in SOURCES.values() if not (folder / name).is_file()]
    if missing:
        raise StorebenchError(
            f"dataset.kind photos: scikit-image at {folder} has no {missing[0]}; "
            f"reinstall it: {INSTALL}"
        )
    return folder


def version() -> str:
    return importlib.metadata.version("scikit-image")


def make(out: Path, n: int, size: tuple[int, int], seed: int = 0) -> dict[str, object]:
    """Write ``n`` crops of ``size`` (height, width) as JPEG files into ``out``/<class>/,
    the classes in turn. Returns what the folder is (for the log)."""
    from PIL import Image

    if n < 1:
        raise StorebenchError(f"photos: n must be at least 1, not {n}")
    folder = data_dir()
    height, width = size
    out = Path(out)
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    rng = np.random.default_rng(seed)
    names = list(SOURCES)
    try:
        photos = {}
        for name, file in SOURCES.items():
            with Image.open(folder / file) as image:
                photos[name] = image.convert("RGB")
            (staging / name).mkdir(parents=True)
        for k in range(n):
            name = names[k % len(names)]
            photo = photos[name]
            side_max = min(photo.size)
            side_min = min(side_max, max(height, width))
            side = int(rng.integers(side_min, side_max + 1))
            left = int(rng.integers(0, photo.size[0] - side + 1))
            top = int(rng.integers(0, photo.size[1] - side + 1))
            crop = photo.resize(
                (width, height), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side)
            )
            if rng.random() < 0.5:
                crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            crop.save(staging / name / f"{k:07d}.jpg", format="JPEG", quality=QUALITY)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"photos": n, "size": [height, width], "classes": len(names), "skimage": version()}
