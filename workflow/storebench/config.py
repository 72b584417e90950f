"""Validation of config.yaml: the JSON schema, then what a schema cannot express."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from storebench import tiers
from storebench.errors import StorebenchError
from storebench.formats import Format, make_format

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


def _key(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


@functools.cache
def _schema(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


WHOLE = re.compile(r"[+-]?[0-9]+")
# A config without a dataset section measures CIFAR-10 at its own size.
DEFAULT_DATASET = {"kind": "cifar10", "path": None, "size": None}
# A config without a training section runs the loop as config.yaml ships it.
DEFAULT_TRAINING = {
    "cutoffs": None,
    "batch_size": 64,
    "step": "resnet50-a100",
    "step_ms": None,
    "crop": None,
    "target_au": 0.9,
    "threads": [1, 2, 4],
    "processes": [1, 2],
    "repeats": 6,
}
# The side of dataset.kind photos when dataset.size is not given.
PHOTO_SIZE = (256, 256)
# The training loop's default n: the largest cutoff up to this.
TRAINING_N = 1000
# A config without a size_sweep section runs no sweep.
DEFAULT_SWEEP = {"sizes": [], "megabytes": 60, "formats": None}
# Experiments that read stores at some cutoffs: null there means the largest cutoff.
AT_CUTOFFS = ("parallel", "dataloader")


def _typed(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` with whole numbers given as strings turned into ints wherever
    ``schema`` asks for an integer (``--config cutoffs=[10,100]`` hands Snakemake's
    list items over as strings); anything else is left for validation to judge."""
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, str) and WHOLE.fullmatch(value.strip()):
        return int(value)
    if kind == "number" and isinstance(value, str):
        try:
            return int(value) if WHOLE.fullmatch(value.strip()) else float(value)
        except ValueError:
            return value
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_typed(item, schema["items"]) for item in value]
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            key: _typed(item, properties.get(key, extra if isinstance(extra, Mapping) else {}))
            for key, item in value.items()
        }
    return value


def normalize(config: MutableMapping[str, Any], schema: Path = SCHEMA) -> None:
    """Make a config as typed on a command line what the schema means, in place:
    whole numbers given as strings become ints, ``parallel.cutoffs`` or
    ``dataloader.cutoffs`` left null become the largest of ``cutoffs``, a missing
    ``dataset`` section is CIFAR-10 and a square ``dataset.size`` becomes
    ``[side, side]``."""
    typed = _typed(dict(config), _schema(schema))
    config.update(typed)
    config.setdefault("tiers", {})
    sweep = config.setdefault("size_sweep", dict(DEFAULT_SWEEP))
    if isinstance(sweep, dict):
        for key, value in DEFAULT_SWEEP.items():
            sweep.setdefault(key, value)
    dataset = config.setdefault("dataset", dict(DEFAULT_DATASET))
    if isinstance(dataset, dict):
        for key, value in DEFAULT_DATASET.items():
            dataset.setdefault(key, value)
        if isinstance(dataset.get("size"), int) and not isinstance(dataset["size"], bool):
            dataset["size"] = [dataset["size"], dataset["size"]]
        if dataset.get("kind") == "photos" and dataset.get("size") is None:
            dataset["size"] = list(PHOTO_SIZE)
    training = config.setdefault("training", dict(DEFAULT_TRAINING))
    if isinstance(training, dict):
        for key, value in DEFAULT_TRAINING.items():
            training.setdefault(key, value)
        if training["crop"] is None and isinstance(dataset, dict):
            training["crop"] = _known_side(config)  # still None: a folder's smallest side
    cutoffs = config.get("cutoffs")
    if isinstance(training, dict) and training["cutoffs"] is None and isinstance(cutoffs, list):
        numbers = [c for c in cutoffs if isinstance(c, int)]
        small = [c for c in numbers if c <= TRAINING_N]
        training["cutoffs"] = [max(small)] if small else [min(numbers)] if numbers else []
    for section in AT_CUTOFFS:
        part = config.get(section)
        if isinstance(part, dict) and part.get("cutoffs") is None and isinstance(cutoffs, list):
            numbers = [c for c in cutoffs if isinstance(c, int)]
            part["cutoffs"] = [max(numbers)] if numbers else []


def _integer(checker: Any, value: Any) -> bool:
    """Integers only: not 3.0, not true (JSON Schema would take both)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number(checker: Any, value: Any) -> bool:
    """Finite numbers only: not NaN, not infinity, not true."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# The schema's validator with strict integer and number types.
STRICT = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _integer, "number": _number}
    ),
)


def _strings(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string in a config (keys included) with the path to it."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key, (*path, key))
            yield from _strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*path, i))


# A config file needs no aliases (``*name``); a few are allowed, many are an anchor bomb
# (nested aliases that expand to billions of entries when the file is walked).
MAX_ALIASES = 64
# The most values a config file may hold with its aliases expanded (config.yaml: ~250).
MAX_VALUES = 100_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _expanded_values(root: yaml.Node | None) -> int:
    """How many values the composed document ``root`` holds once its aliases are
    expanded (each shared node counted as often as it is referred to), computed once per
    node: an anchor bomb is measured, not built. A node inside itself is refused."""
    if root is None:
        return 0
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if finished:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child in children)
            continue
        if any(id(child) in open_ or child is node for child in children):
            raise ValueError(f"a YAML anchor refers to itself (line {node.start_mark.line + 1})")
        open_.add(id(node))
        stack.append((node, True))
        stack += [(child, False) for child in children if id(child) not in size]
    return size[id(root)]


def check_file(path: Path) -> None:
    """Refuse a config file that YAML would read other than it reads: a key given twice
    in one section (YAML keeps the last, silently), or more than :data:`MAX_ALIASES`
    aliases. Reads events and nodes only, so an anchor bomb costs nothing here."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        aliases = sum(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, yaml.SafeLoader))
        if aliases > MAX_ALIASES:
            raise StorebenchError(
                f"{path}: {aliases} YAML aliases (*name), more than {MAX_ALIASES}: "
                "write the values out"
            )
        root = yaml.compose(text, yaml.SafeLoader)
        try:
            values = _expanded_values(root)
        except ValueError as error:
            raise StorebenchError(f"{path}: {error}; write the values out") from None
        if values > MAX_VALUES:
            raise StorebenchError(
                f"{path}: its YAML aliases (*name) expand it to {values:,} values, more "
                f"than {MAX_VALUES:,}: write the values out"
            )
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorebenchError(f"{path}: cannot be read as YAML ({first}); fix it") from None
    seen: set[int] = set()
    nodes = [root] if root is not None else []
    while nodes:
        node = nodes.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    if key.value in keys:
                        raise StorebenchError(
                            f"{path}, line {key.start_mark.line + 1}: the key {key.value!r} "
                            "is given twice in one section (YAML keeps the last); keep one"
                        )
                    keys.add(key.value)
                nodes += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            nodes += node.value


FORMAT_NAME = re.compile(r"[A-Za-z]([A-Za-z0-9_-]*[A-Za-z0-9])?")


def _check_format_names(formats: Any) -> None:
    """Refuse a format name the outputs would misread: one that reads as a number
    (``123``, ``1e3``, ``nan``, ``inf``) comes back from the tables as one, and one
    ending in ``_`` is a link in the report's markup."""
    if not isinstance(formats, Mapping):
        return  # the schema names it
    for name in formats:
        number = True
        try:
            float(name)
        except (TypeError, ValueError):
            number = False
        if number or not isinstance(name, str) or not FORMAT_NAME.fullmatch(name):
            raise StorebenchError(
                f"formats: {name!r} is not a usable format name (the tables, figures and "
                "report read names as text); start it with a letter, use letters, digits, "
                "_ and -, end it with a letter or digit, and avoid nan and inf"
            )


def check(config: Mapping[str, Any], schema: Path = SCHEMA) -> dict[str, Format]:
    """Raise a one-line :class:`StorebenchError` naming the key of the first bad value.

    Returns the configured formats, built (so every option was checked).
    """
    _check_format_names(config.get("formats"))
    validator = STRICT(_schema(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is not None:
        raise StorebenchError(f"{_key(error.absolute_path)}: {error.message}")
    for path, text in _strings(config):
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise StorebenchError(
                f"{_key(path)}: {text!r} holds a control character (a newline?); remove it"
            )
    dataset = config.get("dataset") or DEFAULT_DATASET
    if dataset["kind"] == "imagefolder" and not dataset.get("path"):
        raise StorebenchError(
            "dataset.path: kind imagefolder needs the folder of your images (one subfolder "
            "per class)"
        )
    if dataset["kind"] in ("cifar10", "photos") and dataset.get("path"):
        raise StorebenchError(
            f"dataset.path: kind {dataset['kind']} makes its own images; set kind: "
            "imagefolder to read a folder"
        )
    sweep = config.get("size_sweep") or DEFAULT_SWEEP
    unknown = [name for name in sweep.get("formats") or [] if name not in config["formats"]]
    if unknown:
        raise StorebenchError(
            f"size_sweep.formats: {unknown} are not in formats {list(config['formats'])}"
        )
    tiers.check(config)
    rounds = config.get("rounds") or {}
    if rounds and rounds["min_rounds"] > rounds["max_rounds"]:
        raise StorebenchError(
            f"rounds: min_rounds={rounds['min_rounds']} exceeds max_rounds="
            f"{rounds['max_rounds']}; lower min_rounds or raise max_rounds"
        )
    low, high = rounds.get("from_n"), rounds.get("to_n")
    if low is not None and high is not None and high < low:
        raise StorebenchError(
            f"rounds: to_n={high} is below from_n={low}, so no cell is measured in "
            "rounds; raise to_n, or set from_n: null for none"
        )
    unknown = [name for name in config.get("test_slowdown") or {} if name not in config["formats"]]
    if unknown:
        raise StorebenchError(
            f"test_slowdown: {unknown} are not in formats {list(config['formats'])}"
        )
    n_images = config["n_images"]
    cutoffs = config["cutoffs"]
    too_big = [c for c in cutoffs if c > n_images]
    if too_big:
        raise StorebenchError(
            f"cutoffs: {too_big} exceed n_images={n_images}; lower them or raise n_images"
        )
    latency_n = config.get("latency_n")
    if latency_n is not None and latency_n not in cutoffs:
        raise StorebenchError(
            f"latency_n: {latency_n} is not in cutoffs {cutoffs}; single images are read "
            "from a store built at a cutoff (null: the largest)"
        )
    _check_training(config)
    for section in ("parallel", "dataloader", "training"):
        unknown = [c for c in config[section]["cutoffs"] if c not in cutoffs]
        if unknown:
            raise StorebenchError(
                f"{section}.cutoffs: {unknown} are not in cutoffs {cutoffs}; "
                "only stores built at a cutoff can be read"
            )
    formats = {name: make_format(name, spec) for name, spec in config["formats"].items()}
    _check_extras(formats)
    return formats


def _check_extras(formats: Mapping[str, Format]) -> None:
    """A format of an optional extra whose library is not installed, before any job."""
    from storebench.provenance import package_version

    for name, fmt in formats.items():
        missing = [p for p in fmt.libraries if package_version(p) == "not installed"]
        if fmt.extra and missing:
            raise StorebenchError(
                f"formats.{name}: kind {fmt.kind!r} needs {', '.join(missing)}, which is not "
                f"installed; pip install -e '.[{fmt.extra}]', or leave the format out"
            )


def _check_training(config: Mapping[str, Any]) -> None:
    """A training crop larger than the images, when their size is known before the
    dataset is built (a folder at its native sizes is checked by the job)."""
    training = config["training"]
    if config["dataset"]["kind"] == "photos":
        from storebench import photos

        photos.data_dir()  # scikit-image there, before any job
    side = _known_side(config)
    if side is not None and training["crop"] is not None and training["crop"] > side:
        raise StorebenchError(
            f"training.crop: {training['crop']} px is larger than the images ({side} px); "
            f"set crop to at most {side}"
        )


def _known_side(config: Mapping[str, Any]) -> int | None:
    """The images' smaller side when the config fixes it: dataset.size, else CIFAR-10's
    32 px; None for a folder kept at its native sizes."""
    dataset = config.get("dataset") or {}
    size = dataset.get("size")
    if isinstance(size, list) and size and all(_integer(None, side) for side in size):
        return min(size)
    return 32 if dataset.get("kind", "cifar10") == "cifar10" else None
