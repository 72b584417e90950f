"""Is this file the one we expect? (Kept apart from download.py, so that checking a
local archive does not import an HTTP client.)"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from storebench.errors import StorebenchError

BLOCK = 1 << 20


def md5_of(handle: BinaryIO) -> str:
    """Hex md5 of an open binary file from where it stands to its end, read in chunks."""
    digest = hashlib.md5()
    while block := handle.read(BLOCK):
        digest.update(block)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    """Hex md5 of a file."""
    with open(path, "rb") as handle:
        return md5_of(handle)


def check_md5(actual: str, expected: str, path: Path, key: str = "cifar10.md5") -> None:
    """Raise if the md5 ``actual`` of ``path`` is not ``expected``."""
    if actual != expected.lower():
        raise StorebenchError(
            f"md5 mismatch for {path}: got {actual}, expected {expected} ({key}); "
            "the file is corrupt, tampered with or a different archive: replace it or fix "
            f"{key}"
        )


def verify_md5(path: Path, expected: str, key: str = "cifar10.md5") -> None:
    """Raise if ``path`` does not have md5 ``expected``."""
    check_md5(md5sum(path), expected, path, key)
