"""CIFAR-10: safe extraction of the official archive and allow-listed unpickling of its
training batches. The run's dataset file is :mod:`storebench.datasetfile`."""

from __future__ import annotations

import errno
import gzip
import logging
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from storebench import safepickle
from storebench.errors import StorebenchError
from storebench.formats.base import IMAGE_BYTES
from storebench.integrity import check_md5, md5_of

log = logging.getLogger(__name__)

BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
N_CLASSES = 10
BATCH_ROWS = 10_000  # images per official batch
IMAGE_SHAPE = (32, 32, 3)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that could write outside the target or is not plain data."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise StorebenchError(
            f"{archive}: refused member {member.name!r} (absolute path or '..'); "
            "the archive is not the official one"
        )
    if not (member.isfile() or member.isdir()):
        raise StorebenchError(
            f"{archive}: refused member {member.name!r} (a link or device, not a plain file); "
            "the archive is not the official one"
        )


# Bounds on what an archive may hold: the official one has 8 members, the largest
# 31 MB, 178 MB in all. Anything far beyond is refused before a byte is written.
MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 512 * 2**20


def _bounded(members: list[tarfile.TarInfo], archive: Path) -> None:
    if len(members) > MAX_MEMBERS:
        raise StorebenchError(
            f"{archive}: {len(members)} members (the official archive has 8); it is not "
            "the CIFAR-10 archive"
        )
    for member in members:
        if member.size > MAX_MEMBER_BYTES:
            raise StorebenchError(
                f"{archive}: member {member.name!r} is {member.size / 2**20:.0f} MiB (the "
                "official batches are 31 MB); it is not the CIFAR-10 archive"
            )
    if sum(m.size for m in members) > MAX_TOTAL_BYTES:
        raise StorebenchError(f"{archive}: its members add up to more than the official 178 MB")


def extract(archive: Path, dest: Path, md5: str) -> Path:
    """Verify ``archive`` and extract it to ``dest`` (created atomically).

    The archive is opened once: its md5 is computed from that open file and the
    same file is then extracted, so what is extracted is what was verified. Every
    member is checked before anything is written: only plain files and folders
    under ``dest``, at most :data:`MAX_MEMBERS` of bounded size.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise StorebenchError(
            f"archive {archive} does not exist; fix cifar10.archive or unset it to download"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with open(archive, "rb") as handle:
            check_md5(md5_of(handle), md5, archive)
            handle.seek(0)
            try:
                with tarfile.open(fileobj=handle, mode="r:*") as tar:
                    members = tar.getmembers()
                    _bounded(members, archive)
                    for member in members:
                        _check_member(member, archive)
                    tar.extractall(staging, members=members, filter="data")
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                # tarfile lists every compression it tried, one per line: say it once.
                reason = (
                    "no compression or tar layout fits"
                    if isinstance(exc, tarfile.ReadError)
                    else str(exc).splitlines()[0]
                )
                raise StorebenchError(
                    f"{archive}: not a readable tar archive ({reason}); it is corrupt or not "
                    "the CIFAR-10 archive: delete it and download it again"
                ) from None
        missing = [b for b in TRAIN_BATCHES if not (staging / BATCH_DIR / b).is_file()]
        if missing:
            raise StorebenchError(
                f"{archive}: holds no {BATCH_DIR}/{missing[0]}; it is not the CIFAR-10 "
                "archive: delete it and download it again"
            )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StorebenchError(
                f"no space left on the device while extracting {archive} to {dest.parent}; "
                "free some space and run again"
            ) from None
        raise StorebenchError(
            f"cannot extract {archive} to {dest.parent}: {exc.strerror or exc}; fix that and "
            "run again"
        ) from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("verified md5 %s and extracted %s to %s", md5, archive, dest)
    return dest


def load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load one batch file as ``images (n,32,32,3) uint8`` and ``labels (n,) uint8``."""
    path = Path(path)
    if not path.is_file():
        raise StorebenchError(f"{path}: missing CIFAR-10 batch; the archive is incomplete")
    if path.stat().st_size > MAX_MEMBER_BYTES:
        raise StorebenchError(f"{path}: {path.stat().st_size:,} bytes, larger than any batch")
    with open(path, "rb") as handle:
        batch = safepickle.load(handle, safepickle.CIFAR_GLOBALS, str(path), encoding="bytes")
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise StorebenchError(f"{path}: not a CIFAR-10 batch (no b'data' / b'labels' entries)")
    data, labels = batch[b"data"], batch[b"labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise StorebenchError(f"{path}: b'data' must be a 2-D uint8 array")
    if not 1 <= data.shape[0] <= BATCH_ROWS:
        raise StorebenchError(
            f"{path}: b'data' holds {data.shape[0]} rows; a CIFAR-10 batch holds 1 to "
            f"{BATCH_ROWS:,} images"
        )
    if data.shape[1] != IMAGE_BYTES:
        raise StorebenchError(f"{path}: b'data' rows hold {data.shape[1]} bytes, not 3072")
    labels = np.asarray(labels)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise StorebenchError(f"{path}: b'labels' must list one integer per image")
    if data.shape[0] and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise StorebenchError(f"{path}: labels outside 0..9")
    # Rows are the R, G and B planes of a 32x32 image, row-major: to HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels.astype(np.uint8)


def load_training_set(extracted: Path) -> tuple[np.ndarray, np.ndarray]:
    """All training batches of an extracted archive, in order."""
    folder = Path(extracted) / BATCH_DIR
    parts = [load_batch(folder / name) for name in TRAIN_BATCHES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
