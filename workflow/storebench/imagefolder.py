"""Your own images: a folder with one subfolder of images per class (torchvision's
ImageFolder layout), read into fixed-size RGB images with labels.

``folder/cat/0001.jpg``, ``folder/dog/a.png`` ...: the label of an image is the
index of its class folder in sorted order. JPEG, PNG and WebP files are read
(nested folders inside a class too); hidden files are skipped. Every image
becomes 8-bit RGB: grey-scale and palette images are expanded to RGB, an alpha
channel is dropped, and 16-bit images are scaled to 8 bits (the top byte). With
a ``size``, every image is resized to it (bicubic); without one, all images must
already have the same size.

Like torchvision's ImageFolder, an image is read as stored: an EXIF orientation
tag is not applied, and an animated image gives its first frame.

Anything else gets one line naming the file: a file that is not an image, a
corrupt or truncated image, an empty class folder, a symbolic link that leads
out of the folder, loops, or makes a class folder of another's images, a folder
that cannot be read (it would otherwise be skipped, and every number would come
from a subset), a pipe or device with an image's name, a name that is not valid
UTF-8, and an image of more than :data:`MAX_PIXELS` pixels.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from storebench.errors import StorebenchError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
FORMATS = ("JPEG", "PNG", "WEBP")
MAX_CLASSES = 256  # labels are one byte
SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# The most pixels an image may have (8192 x 8192, the largest dataset.size): a small
# file can decode to gigabytes (a 16-bit PNG under Pillow's own limit took 1.6 GB).
MAX_PIXELS = 8192 * 8192


def _check_pixels(image: Image.Image, path: Path) -> None:
    """Refuse an image of more than :data:`MAX_PIXELS`, from its header (nothing decoded)."""
    if image.width * image.height > MAX_PIXELS:
        raise StorebenchError(
            f"{_shown(path)}: {image.width} x {image.height} pixels, more than storebench "
            f"decodes ({MAX_PIXELS:,}); downscale it first"
        )


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
    if folder.is_symlink():
        target = _resolved(folder)
        if not _inside(target, root):
            raise _link_out(folder)
        raise StorebenchError(
            f"{_shown(folder)}: a class folder that links to {_shown(target)}, inside the "
            "image folder: the same images would be read under two labels; remove the link"
        )

    def unreadable(error: OSError) -> None:  # os.walk would skip the folder silently
        where = error.filename or folder
        raise StorebenchError(
            f"{_shown(Path(where))}: cannot be read ({error.strerror}); make it readable "
            "or move it out of the image folder"
        )

    for top, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for d in dirs:
            _check_name(Path(top, d))
            if Path(top, d).is_symlink():
                raise StorebenchError(
                    f"{_shown(Path(top, d))}: a linked folder inside a class; copy its "
                    "images in instead"
                )
        for name in names:
            path = Path(top, name)
            if name.startswith("."):
                continue
            _check_name(path)
            if path.is_symlink() and not _inside(_resolved(path), root):
                raise _link_out(path)
            if path.suffix.lower() not in EXTENSIONS:
                raise StorebenchError(
                    f"{_shown(path)}: not an image file (only {', '.join(EXTENSIONS)} are "
                    "read); move it out of the image folder"
                )
            try:
                mode = path.stat().st_mode
            except OSError as error:
                raise StorebenchError(
                    f"{_shown(path)}: cannot be read ({error.strerror}); fix or remove it"
                ) from None
            if not stat.S_ISREG(mode):  # a named pipe would hang the first read
                raise StorebenchError(
                    f"{_shown(path)}: not a regular file (a pipe, socket or device); "
                    "move it out of the image folder"
                )
            yield path


def _shown(path: Path) -> str:
    """``path`` for a message: as is if it is valid UTF-8, else its bytes escaped."""
    try:
        return str(path).encode("utf-8").decode("utf-8")
    except UnicodeEncodeError:
        return repr(os.fsencode(path))[2:-1]


def _check_name(path: Path) -> None:
    """Refuse a file or folder name that is not valid UTF-8 (the outputs, logs and
    Snakemake write names as UTF-8)."""
    if _shown(path) != str(path):
        raise StorebenchError(
            f"{_shown(path)}: a name that is not valid UTF-8; rename it (e.g. convmv -f "
            "latin1 -t utf8)"
        )


def _resolved(path: Path) -> Path:
    """Where a link leads; a link that loops (or cannot be followed) is refused."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise StorebenchError(
            f"{_shown(path)}: a symbolic link that loops or leads nowhere; remove it"
        ) from None


def _link_out(path: Path) -> StorebenchError:
    return StorebenchError(
        f"{_shown(path)}: a symbolic link out of the image folder (to "
        f"{_shown(path.resolve())}); copy the file in or remove the link"
    )


def _rgb(image: Image.Image, path: Path) -> Image.Image:
    """``image`` as 8-bit RGB (see the module's documentation)."""
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT:
        grey = np.asarray(image)  # uint16 (I;16) or int32 (I) holding 0..65535
        grey = (grey >> 8).clip(0, 255).astype(np.uint8)  # one image-sized copy at a time
        return Image.merge("RGB", [Image.fromarray(grey)] * 3)
    if image.mode in ("F",):
        raise StorebenchError(
            f"{path}: a floating-point image (mode F); convert it to 8-bit RGB first"
        )
    return image.convert("RGB")  # grey, palette, alpha, CMYK ...


def load(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """One image file as ``(height, width, 3) uint8``, resized to ``size`` if given."""
    try:
        with Image.open(path, formats=FORMATS) as image:
            _check_pixels(image, path)
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
                _check_pixels(image, path)
                shapes[k] = (image.height, image.width, 3)
        except StorebenchError:
            raise
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
