"""What each kind of job asks a scheduler for: memory, run time and scratch disk.

Memory is a base plus a multiple of the bytes of the images a job holds at once:
n images up to one chunk (:data:`storebench.chunks.CHUNK_BYTES`), then one chunk, since
jobs handle larger n a chunk at a time (the slice it writes, the read and the
expected buffers, and, for parallel readers and DataLoader workers, their
copies). The multiples are peak RSS per job measured at n = 100,000 on the
default config (cost.csv), with headroom. Pages of a memory-mapped store are
page cache that the kernel reclaims, so they are not asked for. Run time allows
for the slowest format on a slow disk.
"""

from __future__ import annotations

import math

from storebench import chunks, diskspace
from storebench.formats.base import IMAGE_BYTES, Format

MiB = 2**20

# stage -> (base MiB, MiB per MiB of images held)
MEMORY = {
    "download": (200, 0.0),
    "extract": (200, 0.0),
    "dataset": (400, 1.5),
    "store": (300, 3.0),
    "single": (300, 0.0),
    "read": (300, 6.0),
    "round": (300, 6.0),  # a round stores and reads every cell it measures, one at a time
    "latency": (300, 2.0),
    "usage": (200, 0.0),
    "parallel": (500, 14.0),
    "dataloader": (800, 15.0),
    "training": (900, 15.0),  # its workers' copies, as the DataLoader's; torch imported
    "publish": (1000, 0.0),
    "size_run": (1000, 6.0),  # a whole run at one size: its largest job
    "tier_run": (1000, 6.0),  # a whole run on one storage tier: its largest job
}
SMALL = (500, 0.0)  # tables, figures, environment


def image_mib(n: int, image_bytes: int = IMAGE_BYTES) -> float:
    """MiB of ``n`` images of ``image_bytes`` each and their labels."""
    return n * (image_bytes + 1) / MiB


def mem_mb(stage: str, n: int, image_bytes: int = IMAGE_BYTES) -> int:
    base, per = MEMORY.get(stage, SMALL)
    held = min(n, chunks.chunk_images(image_bytes))
    return math.ceil(base + per * image_mib(held, image_bytes))


def runtime_min(stage: str, n: int) -> int:
    """Minutes: 10, plus one per 2,000 images for the jobs that touch every image; a
    size of the image-size sweep, or a storage tier, is a whole run."""
    if stage in ("size_run", "tier_run"):
        return 240
    if stage in ("store", "read", "parallel", "dataloader", "training", "dataset"):
        return 10 + math.ceil(n / 2_000)
    if stage == "round":  # every cell of a round, the largest dominating
        return 10 + math.ceil(n / 5_000)
    return 10


def disk_mb(
    stage: str, n: int, fmt: Format | None = None, repeats: int = 1, image_bytes: int = IMAGE_BYTES
) -> int:
    """Scratch disk: a store job's copies (``repeats`` and the store it replaces, as in the
    free-space check), the archive and dataset for the data jobs, little for the rest."""
    if stage == "store" and fmt is not None:
        return diskspace.store_bytes(fmt, n, image_bytes) * (repeats + 1) // MiB + 1
    if stage in ("download", "extract", "dataset"):
        return math.ceil((2 * diskspace.ARCHIVE_BYTES + image_mib(n, image_bytes) * MiB) / MiB)
    return 100
