"""Storage formats, one module each, found by their ``kind``.

Adding a format = adding a module here with a :class:`Format` subclass that
sets ``kind``, plus an entry in ``config.yaml``. Nothing else changes.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any

from storebench.errors import StorebenchError
from storebench.formats.base import Format, Reader

__all__ = ["Format", "Reader", "available_kinds", "kind_class", "make_format"]


def available_kinds() -> dict[str, type[Format]]:
    """Map each ``kind`` to its class, importing every module of this package."""
    kinds: dict[str, type[Format]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Format)
                and value.__module__ == module.__name__
                and "kind" in vars(value)
            ):
                kinds[value.kind] = value
    return kinds


def _kind_module(kind: object) -> dict[str, type[Format]]:
    """The class of ``kind`` from the module of that name, if there is one: a job imports
    only its own format's libraries (h5py, lmdb, ... take about 0.1 s together)."""
    if not isinstance(kind, str) or kind not in {m.name for m in pkgutil.iter_modules(__path__)}:
        return {}
    module = importlib.import_module(f"{__name__}.{kind}")
    found = (v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Format))
    return {v.kind: v for v in found if vars(v).get("kind") == kind}


def kind_class(kind: object) -> type[Format] | None:
    """The class of ``kind`` (None for an unknown kind), importing only its module."""
    return (_kind_module(kind) or available_kinds()).get(kind)  # type: ignore[arg-type]


def make_format(name: str, spec: Mapping[str, Any]) -> Format:
    """Build the format ``name`` from its config entry ``{kind: ..., option: value}``."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    kinds = _kind_module(kind) or available_kinds()
    if kind not in kinds:
        raise StorebenchError(
            f"formats.{name}.kind: unknown kind {kind!r}; choose one of {sorted(kinds)}"
        )
    cls = kinds[kind]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise StorebenchError(
            f"formats.{name}: unknown option(s) {unknown} for kind {kind!r}; allowed: {allowed}"
        )
    for field in dataclasses.fields(cls):
        # An option typed int takes whole numbers only: not 4.0, not true.
        declared = str(field.type)
        whole = "int" in declared and "float" not in declared and "bool" not in declared
        value = spec.get(field.name)
        if field.name in spec and whole and isinstance(value, (bool, float)):
            raise StorebenchError(f"formats.{name}.{field.name}: {value!r} is not a whole number")
    try:
        fmt = cls(**spec)
    except (TypeError, ValueError) as exc:
        raise StorebenchError(f"formats.{name}: {exc}") from exc
    from storebench import objecttier  # on an object-store tier's run: the store is there

    return objecttier.wrap(fmt)
