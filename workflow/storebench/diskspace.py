"""The free-space check before a run: refuse a plan whose stores cannot fit."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from storebench.errors import StorebenchError
from storebench.formats.base import IMAGE_BYTES, Format

GiB = 2**30
ARCHIVE_BYTES = 200 * 2**20  # the official archive is 163 MiB, its extraction 178 MiB
MARGIN = 0.95  # leave 5% of the free space to everything else


def store_bytes(fmt: Format, n: int, image_bytes: int = IMAGE_BYTES) -> int:
    """An upper estimate of one store of ``n`` images of ``image_bytes`` each on disk."""
    return fmt.disk_bytes_per_image(image_bytes) * n + 2**20


def plan_bytes(
    stores: Iterable[tuple[Format, int, bool]],
    repeats: int,
    dataset_images: int | None,
    image_bytes: int = IMAGE_BYTES,
    staged: bool = False,
) -> tuple[int, int]:
    """Bytes the planned jobs add to the disk, and the number of store jobs.

    ``stores``: (format, n, whether the store exists now) for each planned store
    job. A store job writes ``repeats`` copies; the ones it does not keep, and an
    existing store it replaces, go to the trash, which is emptied when the run
    succeeds, so all of them count. ``dataset_images``: the dataset's size if the
    dataset is planned too (it then needs the archive and its extraction as well, and
    with ``staged`` a copy of up to as many source images: a resized or folder source).
    ``image_bytes``: one image's bytes.
    """
    need = count = 0
    for fmt, n, exists in stores:
        need += store_bytes(fmt, n, image_bytes) * (repeats + exists)
        count += 1
    if dataset_images is not None:
        copies = 2 if staged else 1
        need += copies * dataset_images * (image_bytes + 1) + 2 * ARCHIVE_BYTES
    return need, count


def round_bytes(
    stores: Iterable[tuple[Format, int]], rounds: int, image_bytes: int = IMAGE_BYTES
) -> int:
    """Bytes the round jobs add (:mod:`storebench.rounds`): each round rewrites every
    round store cell (``stores``: format and n) into scratch, one at a time, beside the
    floor: each side's last copy and its new one (the floor is no larger than the
    largest store); a store of one file per image goes to the trash (deleting
    many files slows later stores), so each round leaves one copy of those. A round's
    reads copy every store of a few files (:class:`storebench.roundjob.StoreCopies`),
    which may all be there at once."""
    sizes = [(fmt, store_bytes(fmt, n, image_bytes)) for fmt, n in stores]
    if not sizes or rounds < 1:
        return 0
    scratch = 4 * max(size for _, size in sizes)
    trashed = sum(size for fmt, size in sizes if fmt.kind == "png")
    copies = sum(size for fmt, size in sizes if fmt.kind != "png")
    return scratch + copies + rounds * trashed


def free_bytes(path: Path) -> int:
    """Free bytes for an unprivileged user on the file system that holds ``path``."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def check(need: int, stores: int, repeats: int, results: Path) -> int:
    """Raise a one-line error if ``need`` bytes do not fit beside ``results``; else
    return the free bytes found."""
    free = free_bytes(results)
    if need > free * MARGIN:
        raise StorebenchError(
            f"not enough free disk for the planned stores: {stores} store jobs "
            f"({repeats} copies each, kept until the run ends) and the dataset need about "
            f"{need / GiB:.1f} GiB, but {Path(results).absolute()} has {free / GiB:.1f} GiB "
            "free; free some space, or lower cutoffs, formats or repeats in config.yaml"
        )
    return free
