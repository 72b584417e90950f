"""Your own images: a folder with one subfolder of images per class (torchvision's
ImageFolder layout), read into fixed-size RGB images with labels.

``folder/cat/0001.jpg``, ``folder/dog/a.png`` ...: the label of an image is the
index of its class folder in sorted order. JPEG, PNG and WebP files are read
(nested folders inside a class too); hidden files are skipped. Every image
becomes 8-bit RGB: grey-scale and palette images are expanded to RGB, an alpha
channel is dropped, and 16-bit images are scaled to 8 bits (the top byte). With
a ``size``, every image is resized to it (bicubic); without one, all images must
already have the same size.

Anything else gets one line naming the file: a file that is not an image, a
corrupt or truncated image, an empty class folder, a symbolic link that leads
out of the folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from storebench.errors import StorebenchError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
FORMATS = ("JPEG", "PNG", "WEBP")
MAX_CLASSES = 256  # labels are one byte
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def scan(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (sorted) and every image file with its label, in a fixed order
    (class, then path). Refuses what cannot be read as an image folder."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise StorebenchError(
            f"dataset.path: {folder} is not a folder; point it at a folder with one "
            "subfolder of images per class"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise StorebenchError(
            f"{folder}: no class subfolders; put each class's images in a subfolder "
            "(folder/cat/1.jpg, folder/dog/2.jpg)"
        )
    if len(classes) > MAX_CLASSES:
        raise StorebenchError(
            f"{folder}: {len(classes)} classes; at most {MAX_CLASSES} fit in a label byte"
        )
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(_class_files(root, root / name))
        if not found:
            raise StorebenchError(
                f"{root / name}: the class folder holds no images; add some or remove it"
            )
        files += [(path, label) for path in found]
    return classes, files


def _class_files(root: Path, folder: Path) -> Iterator[Path]:
    """Every image file below ``folder``, refusing links out of ``root`` and non-images."""
    if folder.is_symlink() and not _inside(folder.resolve(), root):
        raise _link_out(folder)
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            if Path(top, d).is_symlink():
                raise StorebenchError(
                    f"{Path(top, d)}: a linked folder inside a class; copy its images in instead"
                )
        for name in names:
            path = Path(top, name)
            if name.startswith("."):
                continue
            if path.is_symlink() and not _inside(path.resolve(), root):
                raise _link_out(path)
            if path.suffix.lower() not in EXTENSIONS:
                raise StorebenchError(
                    f"{path}: not an image file (only {', '.join(EXTENSIONS)} are read); "
                    "move it out of the image folder"
                )
            yield path


def _link_out(path: Path) -> StorebenchError:
    return StorebenchError(
        f"{path}: a symbolic link out of the image folder (to {path.resolve()}); copy the "
        "file in or remove the link"
    )


def _rgb(image: Image.Image, path: Path) -> Image.Image:
    """``image`` as 8-bit RGB (see the module's documentation)."""
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT:
        grey = (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))
    if image.mode in ("F",):
        raise StorebenchError(
            f"{path}: a floating-point image (mode F); convert it to 8-bit RGB first"
        )
    return image.convert("RGB")  # grey, palette, alpha, CMYK ...


def load(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One image file as ``(height, width, 3) uint8``, resized to ``size`` if given."""
    try:
        with Image.open(path, formats=FORMATS) as image:
            image.load()
            rgb = _rgb(image, path)
            if size is not None and rgb.size != (size[1], size[0]):
                rgb = rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except StorebenchError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise StorebenchError(
            f"{path}: not a readable JPEG, PNG or WebP image ({exc}); fix or remove it"
        ) from None


def shapes_of(files: list[tuple[Path, int]]) -> np.ndarray:
    """Every image's shape ``(height, width, 3)`` from its header (no pixels decoded)."""
    shapes = np.empty((len(files), 3), np.int64)
    for k, (path, _) in enumerate(files):
        try:
            with Image.open(path, formats=FORMATS) as image:
                shapes[k] = (image.height, image.width, 3)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise StorebenchError(
                f"{path}: not a readable JPEG, PNG or WebP image ({exc}); fix or remove it"
            ) from None
    return shapes


def ragged_chunks_of(
    files: list[tuple[Path, int]], shapes: np.ndarray, rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pixels (one flat array per chunk) and labels of ``files`` at their own sizes,
    ``rows`` images at a time; each image must be the size its header says."""
    for start in range(0, len(files), rows):
        part = files[start : start + rows]
        images = []
        for k, (path, _) in enumerate(part, start):
            image = load(path, None)
            if image.shape != tuple(shapes[k]):
                raise StorebenchError(
                    f"{path}: decodes to {image.shape}, its header says {tuple(shapes[k])}; "
                    "fix or remove it"
                )
            images.append(image.reshape(-1))
        flat = np.concatenate(images) if images else np.empty(0, np.uint8)
        yield flat, np.array([label for _, label in part], np.uint8)


def shape_of(files: list[tuple[Path, int]], size: tuple[int, int] | None) -> tuple[int, int, int]:
    """The dataset's image shape: ``size`` (and 3 channels), or the first image's."""
    if size is not None:
        return (size[0], size[1], 3)
    return tuple(load(files[0][0], None).shape)  # type: ignore[return-value]


def chunks_of(
    files: list[tuple[Path, int]], size: tuple[int, int] | None, rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The images and labels of ``files``, ``rows`` at a time, all of one shape."""
    shape = shape_of(files, size)
    for start in range(0, len(files), rows):
        part = files[start : start + rows]
        images = np.empty((len(part), *shape), np.uint8)
        for k, (path, _) in enumerate(part):
            image = load(path, size)
            if image.shape != shape:
                raise StorebenchError(
                    f"{path}: {image.shape[1]}x{image.shape[0]} pixels, but "
                    f"{files[0][0]} has {shape[1]}x{shape[0]}; set dataset.size "
                    "[height, width] to resize every image to one size"
                )
            images[k] = image
        yield images, np.array([label for _, label in part], np.uint8)
