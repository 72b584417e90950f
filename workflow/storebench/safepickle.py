"""Unpickling with an allow-list: anything outside it is refused, never executed.

Pickles can run arbitrary code while they load, so every pickle storebench reads
from disk goes through :func:`loads` / :func:`load` with the exact set of
globals its producer is known to use.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections.abc import Mapping
from typing import IO, Any

from storebench.errors import StorebenchError

# The globals of the official CIFAR-10 "python version" batches (numpy arrays
# pickled by Python 2). numpy 2 moved numpy.core to numpy._core; the name in the
# file is what is checked, the object is then taken from where it lives now.
CIFAR_GLOBALS: Mapping[tuple[str, str], str] = {
    ("numpy.core.multiarray", "_reconstruct"): "storebench.safepickle:empty_array",
    ("numpy._core.multiarray", "_reconstruct"): "storebench.safepickle:empty_array",
    ("numpy", "ndarray"): "numpy:ndarray",
    ("numpy", "dtype"): "numpy:dtype",
}


class ForbiddenGlobalError(StorebenchError):
    """A pickle asked for a global outside the allow-list."""


def empty_array(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct`` as pickled arrays use it: an empty array, which the
    pickle's next step fills from bytes the file holds (and numpy checks their size).
    Any other shape would make numpy allocate memory the file does not hold: a
    169-byte file could pose as 50,000 zero images, or ask for terabytes."""
    import numpy as np

    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise ForbiddenGlobalError(
            f"refused to unpickle: an array of shape {shape!r} made from nothing; the file "
            "is not a pickled array of data (re-download it)"
        )
    return np.ndarray.__new__(subtype, shape, dtype)


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self, file: IO[bytes], allowed: Mapping[tuple[str, str], str], source: str, **kw: Any
    ):
        super().__init__(file, **kw)
        self._allowed = allowed
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        target = self._allowed.get((module, name))
        if target is None:
            raise ForbiddenGlobalError(
                f"{self._source}: refused to unpickle: it references {module}.{name}, which is "
                "not on the allow-list; the file is not what it claims to be (re-download it)"
            )
        return _resolve(target)


def load(
    file: IO[bytes],
    allowed: Mapping[tuple[str, str], str],
    source: str = "pickle",
    encoding: str = "ASCII",
) -> Any:
    """Unpickle from a binary file, allowing only the globals in ``allowed``."""
    try:
        return _RestrictedUnpickler(file, allowed, source, encoding=encoding).load()
    except StorebenchError as exc:
        if str(exc).startswith(source):
            raise
        raise type(exc)(f"{source}: {exc}") from None  # name the file
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise StorebenchError(f"{source}: not a valid pickle ({exc}); re-download it") from exc


def loads(
    data: bytes,
    allowed: Mapping[tuple[str, str], str],
    source: str = "pickle",
    encoding: str = "ASCII",
) -> Any:
    """Unpickle from bytes, allowing only the globals in ``allowed``."""
    return load(io.BytesIO(data), allowed, source, encoding)
