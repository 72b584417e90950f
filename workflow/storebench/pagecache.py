"""Page-cache control without root: evict files (posix_fadvise) and measure residency (mincore)."""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte))
_MAP_FAILED = ctypes.c_void_p(-1).value


def _open(path: Path) -> int | None:
    """A descriptor of ``path``, or None when it is gone: a server's own files come and
    go while it works (its metadata database compacts), and a file that is gone holds
    no pages."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def evict(files: Iterable[Path]) -> None:
    """Flush each file and ask the kernel to drop its pages from the page cache."""
    for path in files:
        if (fd := _open(path)) is None:
            continue
        try:
            os.fdatasync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _resident_pages(fd: int, size: int, offset: int = 0) -> int:
    """Pages of ``size`` bytes from ``offset`` (rounded out to pages) in the page cache."""
    start = offset - offset % PAGE
    size += offset - start
    pages = (size + PAGE - 1) // PAGE
    addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
    if addr in (None, _MAP_FAILED):
        raise OSError(ctypes.get_errno(), "mmap failed")
    try:
        vec = (ctypes.c_ubyte * pages)()
        if _libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return int(np.count_nonzero(np.frombuffer(vec, np.uint8) & 1))
    finally:
        _libc.munmap(addr, size)


def resident_fraction(fd: int, offset: int, size: int) -> float:
    """Fraction (0..1) of the pages holding bytes ``offset..offset+size`` of an open file
    that are in the page cache."""
    if size <= 0:
        return 1.0
    start = offset - offset % PAGE
    total = (size + offset - start + PAGE - 1) // PAGE
    return _resident_pages(fd, size, offset) / total


def residency(files: Iterable[Path]) -> float:
    """Fraction (0..1) of the files' pages that are in the page cache right now."""
    resident = total = 0
    for path in files:
        if (fd := _open(path)) is None:
            continue
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                continue
            total += (size + PAGE - 1) // PAGE
            resident += _resident_pages(fd, size)
        finally:
            os.close(fd)
    return resident / total if total else 0.0


def load(files: Iterable[Path], block: int = 1 << 20) -> None:
    """Read every file once, so its pages are in the page cache (an untimed warm-up)."""
    buffer = bytearray(block)
    for path in files:
        if (fd := _open(path)) is None:
            continue
        with open(fd, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
