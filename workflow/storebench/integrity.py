"""Is this file the one we expect? (Kept apart from download.py, so that checking a
local archive does not import an HTTP client.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

from storebench.errors import StorebenchError

BLOCK = 1 << 20


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str, key: str = "cifar10.md5") -> None:
    """Raise if ``path`` does not have md5 ``expected``."""
    actual = md5sum(path)
    if actual != expected.lower():
        raise StorebenchError(
            f"md5 mismatch for {path}: got {actual}, expected {expected} ({key}); "
            "the file is corrupt, tampered with or a different archive: replace it or fix "
            f"{key}"
        )
