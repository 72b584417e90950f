"""A run that did not finish (``snakemake --keep-going`` with a failed job): its
tables, summary, verdict and figures from the jobs that did, the rest named.

Snakemake runs no job whose input is missing, so when one format's store fails the
tables, the summary and the verdict are never made, for any format. The workflow's
``onerror`` hook (``--keep-going`` only) writes a plan: per table, its layout and the
result files it takes, by format. :func:`build` makes the tables from the files that
exist, the summary and verdict from those tables, and every figure they can draw,
into ``results/partial/``, and opens the summary with what is missing: per format,
the stages and cells that did not finish and where their logs are. Nothing in
``results/partial/`` is an input of any rule, so a rerun makes the missing results
and the complete outputs as if the failure had not happened (and deletes
``results/partial/`` once the run succeeds).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storebench import results
from storebench.errors import StorebenchError
from storebench.present import tables

log = logging.getLogger(__name__)

PLAN_SCHEMA = 1
# The tables the summary and the verdict rank formats in (the workflow's summary rule).
SUMMARY_TABLES = ("store", "read", "usage", "latency", "dataloader", "training")


def missing(plan: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """format -> table -> the result files of that table it does not have."""
    found: dict[str, dict[str, list[str]]] = {}
    for table, spec in plan["tables"].items():
        for fmt, paths in spec["by_format"].items():
            absent = [p for p in paths if not Path(p).is_file()]
            if absent:
                found.setdefault(fmt, {})[table] = absent
    return found


def _cell(path: str, fmt: str) -> str:
    """A result file's cell, for a person: ``n=100000 cold-random`` from
    ``.../read/lmdb/100000/cold-random.json``; "" for a file of the format as a whole
    (``.../single/lmdb.json``)."""
    parts = Path(path).with_suffix("").parts
    below = parts[len(parts) - parts[::-1].index(fmt) :] if fmt in parts else parts[-1:]
    return " ".join(f"n={p}" if p.isdigit() else p for p in below)


def missing_lines(plan: Mapping[str, Any]) -> list[str]:
    """One line per format that did not finish: its tables and cells missing."""
    lines = []
    for fmt, by_table in missing(plan).items():
        parts = []
        for table, paths in by_table.items():
            cells = sorted({_cell(p, fmt) for p in paths} - {""}, key=_natural)
            shown = ", ".join(cells[:3]) + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")
            parts.append(f"{table} ({shown})" if cells else table)
        lines.append(f"{fmt}: no results for {'; '.join(parts)}")
    rounds = {p for spec in plan["tables"].values() for p in spec.get("shared", [])}
    absent = sorted((p for p in rounds if not Path(p).is_file()), key=_natural)
    if lines and absent:
        lines.append(
            f"rounds: {len(absent)} of {len(rounds)} round jobs did not run (a round needs "
            "every cell's own job first), so those cells have one job's interval"
        )
    return lines


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _loaded(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of one table from the files that exist (round files too, each cell
    record of one)."""
    paths = [p for files in spec["by_format"].values() for p in files if Path(p).is_file()]
    paths += [p for p in spec.get("shared", []) if Path(p).is_file()]
    return results.check_one_run(map(Path, paths), spec.get("stage"))


def build(plan_path: Path) -> list[str]:
    """Everything the plan's finished results can make, in the plan's ``out`` folder.
    Returns the lines to print: what is missing, and where the partial results are."""
    plan = results.read_json(plan_path)
    if not isinstance(plan, dict) or plan.get("schema") != PLAN_SCHEMA:
        raise StorebenchError(f"{plan_path}: not a partial-results plan of this version")
    out = Path(plan["out"])
    absent = missing_lines(plan)
    if not absent:
        return []  # every result exists: the failure was elsewhere (a figure, the report)
    made: dict[str, Path] = {}
    shutil.rmtree(out / "tables", ignore_errors=True)
    for table, spec in plan["tables"].items():
        records = _loaded(spec)
        if not records:
            continue
        rows_of, columns = tables.LAYOUTS[spec["layout"]]
        csv, md = out / "tables" / f"{table}.csv", out / "tables" / f"{table}.md"
        tables.write_table(rows_of(records), columns, csv, md)
        made[table] = csv
    if not {"store", "read"} <= made.keys():
        return [*absent, "no store or read finished: nothing to rank"]
    _summary(plan, made, absent, out)
    notes = _figures(plan, made, out)
    return [
        *absent,
        *notes,
        f"partial results from what finished: {out}/summary.md (a rerun makes the rest)",
    ]


def _summary(
    plan: Mapping[str, Any], made: Mapping[str, Path], absent: Sequence[str], out: Path
) -> None:
    from storebench.present import publish

    named = {t: tables.read_table(made[t]) for t in SUMMARY_TABLES if t in made}
    named.setdefault("usage", [])
    named.setdefault("latency", [])
    environment = None
    if plan.get("environment") and Path(plan["environment"]).is_file():
        environment = results.read_json(Path(plan["environment"]))
    head = [
        "# Partial results: the run did not finish",
        "",
        "These tables, the verdict and the figures are made from the jobs that "
        "finished; a format missing a cell is left out of that cell's ranking and of "
        "the all-round pick. What did not finish (its log is under "
        f"{plan.get('logs', 'results/logs')}):",
        "",
        *(f"- {line}" for line in absent),
        "",
    ]
    text = publish.summary_markdown(named, environment, int(plan.get("repeats", 2)))
    results.write_text("\n".join(head) + "\n" + text, out / "summary.md")


def _figures(plan: Mapping[str, Any], made: Mapping[str, Path], out: Path) -> list[str]:
    """Every figure whose tables were made; a figure that cannot be drawn from partial
    tables is named, not fatal."""
    from storebench.present import figures
    from storebench.present.catalog import FIGURES

    notes = []
    shutil.rmtree(out / "figures", ignore_errors=True)
    for name, figure in FIGURES.items():
        if not set(figure.tables) <= made.keys():
            continue
        named = {t: tables.read_table(made[t]) for t in figure.tables}
        target = [out / "figures" / f"{name}.{ext}" for ext in plan.get("figure_formats", ["png"])]
        try:
            figures.render(name, named, target, plan.get("order", []))
        except (StorebenchError, ValueError, KeyError, IndexError) as exc:
            log.warning("figure %s not drawn from partial tables: %s", name, exc)
            notes.append(f"figure {name} not drawn from partial tables: {exc}")
    return notes


def write_plan(path: Path, plan: Mapping[str, Any]) -> None:
    """The plan the workflow's onerror hook writes for :func:`build`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"schema": PLAN_SCHEMA, **plan}, indent=1), path)
