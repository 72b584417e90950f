"""Validation of config.yaml: the JSON schema, then what a schema cannot express."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from storebench.errors import StorebenchError
from storebench.formats import Format, make_format

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def _key(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def check(config: Mapping[str, Any], schema: Path = SCHEMA) -> dict[str, Format]:
    """Raise a one-line :class:`StorebenchError` naming the key of the first bad value.

    Returns the configured formats, built (so every option was checked).
    """
    validator = jsonschema.Draft202012Validator(yaml.safe_load(Path(schema).read_text()))
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is not None:
        raise StorebenchError(f"{_key(error.absolute_path)}: {error.message}")
    n_images = config["n_images"]
    cutoffs = config["cutoffs"]
    too_big = [c for c in cutoffs if c > n_images]
    if too_big:
        raise StorebenchError(
            f"cutoffs: {too_big} exceed n_images={n_images}; lower them or raise n_images"
        )
    for section in ("parallel", "dataloader"):
        unknown = [c for c in config[section]["cutoffs"] if c not in cutoffs]
        if unknown:
            raise StorebenchError(
                f"{section}.cutoffs: {unknown} are not in cutoffs {cutoffs}; "
                "only stores built at a cutoff can be read"
            )
    return {name: make_format(name, spec) for name, spec in config["formats"].items()}
