"""Result files (JSON) written by the measuring jobs and read by the tables.

What a timed job writes is declared once, :class:`TimedResult`, and stamped with
:data:`storebench.provenance.RESULT_SCHEMA`; a file of another version is refused in
one line naming the command that remakes it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from storebench.errors import StorebenchError
from storebench.provenance import RESULT_SCHEMA, SHARED_VERSIONS


class TimedResult(TypedDict):
    """One timed job's result file (or one cell record of a round file)."""

    schema: int  # RESULT_SCHEMA
    format: str
    kind: str
    options: dict[str, Any]
    n: int
    reference: dict[str, Any] | None  # the floor it was paired with: format, kind, options
    versions: dict[str, str]  # Python, storebench, storebench_code (fingerprint), libraries
    where: dict[str, Any]  # host and pid
    memory: dict[str, Any]  # the job's peak memory (chunks.memory_record)
    run: dict[str, Any]  # dataset identity, repeats, sampling, seed, rounds
    samples: NotRequired[dict[str, list[float]]]  # measurement -> seconds, one per pair
    reference_samples: NotRequired[dict[str, list[float]]]  # the floor's, per pair
    reference_runs: NotRequired[list[dict[str, list[float]]]]  # the floor's runs, per pair
    first: NotRequired[list[str]]  # which side went first, per pair
    cpu_s: NotRequired[list[float]]  # the CPU probe before each pair
    steal: NotRequired[list[float | None]]  # the machine's stolen share, per pair
    ticks: NotRequired[list[list[int] | None]]  # stolen and total ticks, per pair
    retaken: NotRequired[list[dict[str, Any]]]  # pairs retaken, kept raw
    sampling: NotRequired[dict[str, Any]]  # pairs, stopped, elapsed_s, disturbed
    residency_before: NotRequired[list[float]]  # reads: share of the store cached
    cache: NotRequired[str]
    order: NotRequired[str]
    seed: NotRequired[int]
    round: NotRequired[int]  # results measured in rounds: which
    store_copy: NotRequired[bool]  # a round's read: of the round's own copy of the store


# Every result names these; a paired one (with the floor's samples) these as well.
REQUIRED = ("schema", "format", "kind", "n", "versions", "run")
REQUIRED_PAIRED = ("samples",)


def _rule_of(path: Path) -> str:
    """The rule whose job wrote a result file (its folder under measurements/)."""
    parts = Path(path).parts
    return parts[parts.index("measurements") + 1] if "measurements" in parts else "all"


def check_schema(path: Path, data: Any) -> None:
    """Refuse a result (or round file) of another schema version, in one line."""
    found = data.get("schema", 1) if isinstance(data, dict) else None
    if found != RESULT_SCHEMA:
        raise StorebenchError(
            f"{path}: a result of schema {found} (this storebench reads {RESULT_SCHEMA}: it "
            "was written by another version); remake it with "
            f"`snakemake --cores 4 --forcerun {_rule_of(path)}`"
        )


def write_text(text: str, path: Path) -> None:
    """Write ``text`` atomically (a killed job leaves no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(data: dict[str, Any], path: Path) -> None:
    write_text(json.dumps(data, indent=1) + "\n", path)


def read_json(path: Path) -> dict[str, Any]:
    """A result (or any JSON file the workflow wrote); a cut or damaged one is refused in
    one line naming the rule that remakes it."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, ValueError) as error:
        raise StorebenchError(
            f"{path}: not a whole JSON file ({error}); remake it: "
            f"snakemake --cores 4 --forcerun {_rule_of(Path(path))}"
        ) from None


def _provenance(result: dict[str, Any]) -> dict[str, Any]:
    """What must be the same for every result of one table (the code fingerprint and
    the format's own libraries are per format: a change to one format's module or
    library reruns that format's jobs only)."""
    found = result.get("versions") or {}
    versions = {k: found.get(k) for k in SHARED_VERSIONS}
    return {"versions": versions, "run": result.get("run")}


def _format_provenance(result: dict[str, Any]) -> dict[str, Any]:
    """What must be the same for every result of one format in one table: its
    options, its fingerprint and every version it records."""
    return {
        "kind": result.get("kind"),
        "options": result.get("options"),
        "versions": result.get("versions"),
    }


def _differences(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in dict.fromkeys([*a, *b]):
            found += _differences(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if a == b else [(prefix, a, b)]


def _sound(path: Path, result: Any, named: bool = True) -> dict[str, Any]:
    """``result`` if it is what its path says and its samples are real times; else one
    line naming the file. Result paths end ``.../{format}/{n}/...`` or ``{format}/{n}.json``
    under ``measurements/`` (latency and single: ``{format}.json``); the records of a
    round file (``named=False``) name their own format and n."""

    def bad(why: str) -> StorebenchError:
        return StorebenchError(f"{path}: {why}; delete the file and rerun its job")

    if not isinstance(result, dict):
        raise bad("not a result (a JSON object)")
    check_schema(path, result)
    wanted = REQUIRED + (REQUIRED_PAIRED if "reference_samples" in result else ())
    missing = [key for key in wanted if key not in result]
    if missing:
        raise bad(f"it lacks {', '.join(missing)}")
    parts = path.parts
    if named and "measurements" in parts:
        below = parts[parts.index("measurements") + 2 :]  # after the rule's folder
        names = [Path(p).stem for p in below]
        if names and result.get("format") != names[0]:
            raise bad(f"it is a result of format {result.get('format')!r}, not {names[0]!r}")
        if len(names) > 1 and names[1].isdigit() and result.get("n") != int(names[1]):
            raise bad(f"it is a result at n={result.get('n')!r}, not n={names[1]}")
    for side in ("samples", "reference_samples"):
        for key, values in (result.get(side) or {}).items():
            if not isinstance(values, list) or not values:
                raise bad(f"{side}.{key} holds no samples")
            if not all(
                isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and v >= 0
                for v in values
            ):
                raise bad(f"{side}.{key} holds a value that is not a time (NaN, negative, text)")
    return result


def check_one_run(paths: Iterable[Path], stage: str | None = None) -> list[dict[str, Any]]:
    """Load results for one table and refuse them if they come from different runs.

    One run means the same versions and code fingerprint, the same dataset, repeats
    and seed, and per format the same kind and options; a format run in an environment
    of its own (:mod:`storebench.formatenv`) has that environment's versions. The older
    file of the first mismatch is named, with the command that remakes it.
    """
    loaded = load_records(paths, stage)
    first_of: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, result in loaded:
        wanted = {  # the shared versions are those of the environment the job ran in
            f"*{result.get('environment') or ''}": _provenance(result),
            result.get("format", "?"): _format_provenance(result),
        }
        for group, value in wanted.items():
            seen = first_of.setdefault(group, (path, value))
            found = _differences(seen[1], value, "")
            if found:
                _refuse(seen[0], path, *found[0])
    return [result for _, result in loaded]


def load_records(
    paths: Iterable[Path], stage: str | None = None
) -> list[tuple[Path, dict[str, Any]]]:
    """(path, result) of every result file, each checked; a round file
    (:mod:`storebench.rounds`) gives one per cell record it holds (of ``stage``,
    ``store`` or ``read``, only, when given: a round measures both)."""
    from storebench import rounds

    loaded = []
    for path in map(Path, paths):
        data = read_json(path)
        if isinstance(data, dict) and "records" in data:
            check_schema(path, data)
            records = [_sound(path, r, named=False) for r in rounds.expand(path, data)]
            loaded += [
                (path, r) for r in records if stage is None or rounds.Cell.of(r).stage == stage
            ]
        else:
            loaded.append((path, _sound(path, data)))
    return loaded


def _refuse(a: Path, b: Path, field: str, value_a: Any, value_b: Any) -> None:
    older, newer = sorted((a, b), key=lambda p: p.stat().st_mtime)
    values = {a: value_a, b: value_b}
    rule = _rule_of(older)
    raise StorebenchError(
        f"results from different runs cannot share a table: {field} is {values[older]!r} in "
        f"{older} but {values[newer]!r} in {newer}; remake the older results with "
        f"`snakemake --cores 4 --forcerun {rule}`"
    )
