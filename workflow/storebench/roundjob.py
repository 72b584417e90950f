"""One round job (:mod:`storebench.rounds`): every cell that still needs a round,
measured in this round's random order, each with the same store or read protocol
as its own job (:mod:`storebench.measure`), one record per cell.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storebench import datasetfile, host, measure, provenance, results, rounds
from storebench.formats import make_format
from storebench.sampling import Policy

log = logging.getLogger(__name__)


def measure_round(
    round_: int,
    config: dict[str, Any],
    floor_name: str,
    dataset: tuple[Path, Path],
    stores: Path,
    places: tuple[Path, Path, Path],
    history: Sequence[Path],
) -> dict[str, Any]:
    """Round ``round_`` (2 and up) of the run ``config`` describes: the cells
    :func:`rounds.plan` names, while the budget lasts past each cell's minimum.

    ``dataset``: the images and labels files; ``stores``: the folder of every store
    (the reads' and the floor's); ``places``: scratch (where stores are rewritten),
    trash and the file system probe's baseline; ``history``: the results of every
    earlier round (each cell's own job, and the round files).
    """
    settings = rounds.Settings.of(config["rounds"])
    specs = config["formats"]
    formats = {name: make_format(name, spec) for name, spec in specs.items()}
    floor = formats[floor_name]
    past = rounds.history(r for _, r in results.load_records(history))
    spent = rounds.spent(results.read_json(p) for p in history if Path(p).parent.name == "round")
    every = rounds.cells(specs, config["cutoffs"], config["caches"], config["orders"], settings)
    todo = rounds.plan(every, past, round_, settings, config["seed"])
    scratch, trash, baseline = places
    images_path, labels_path = dataset
    largest = max((c.n for c in todo), default=0)
    images, labels = (
        datasetfile.load_first(images_path, labels_path, largest) if todo else (None, None)
    )
    probe = config["filesystem_probe"]
    scratch.mkdir(parents=True, exist_ok=True)
    quiet = host.QuietFilesystem(
        scratch, probe["max_wait_s"], probe["slow_factor"], baseline, trash
    )
    identity = datasetfile.dataset_identity(images_path)
    policy = Policy.within_round(
        settings.cell_s, settings.max_pairs, config["sampling"]["max_steal"]
    )
    slowdown = config.get("test_slowdown") or {}
    began = time.perf_counter()
    measured, skipped = [], []
    for cell in todo:
        if not rounds.within_budget(past[cell], settings, spent + time.perf_counter() - began):
            skipped.append(cell.name)
            continue
        fmt = formats[cell.format]
        factor = float(slowdown.get(cell.format, 1.0))
        kwargs: dict[str, Any] = {
            "policy": policy,
            "seed": config["seed"] + round_,
            "first_side": rounds.first_side(cell, round_),
            "slowdown": factor,
            "format_hint_s": rounds.format_hint_s(past[cell]),
        }
        part, part_labels = images[: cell.n], labels[: cell.n]
        extra: dict[str, Any] = {}
        cell_began = time.perf_counter()
        if cell.stage == "store":
            out = scratch / cell.format / str(cell.n)
            result, staged = measure.measure_store(
                fmt, part, part_labels, out, trash, None, quiet, reference=floor, **kwargs
            )
            host.discard(staged, trash)
        else:
            indices = measure.read_indices(cell.n, cell.order, config["seed"])
            result = measure.measure_read(
                fmt,
                stores / cell.format / str(cell.n),
                part,
                part_labels,
                indices,
                cell.cache,
                reference=(floor, stores / floor_name / str(cell.n)),
                **kwargs,
            )
            extra = {"order": cell.order, "seed": config["seed"]}
        wall_s = time.perf_counter() - cell_began
        meta = provenance.describe(
            cell.format,
            fmt,
            cell.n,
            reference=(floor_name, floor),
            dataset=identity,
            settings=provenance.run_settings(config),
        )
        record = {**meta, **extra, **result, "round": round_, "wall_s": wall_s}
        if factor != 1:
            record["slowdown"] = factor
        measured.append(record)
    if skipped:
        log.info("round %d: %d cell(s) left out: the budget is spent", round_, len(skipped))
    return {
        "schema": provenance.RESULT_SCHEMA,
        "round": round_,
        "records": measured,
        "over_budget": skipped,
        "elapsed_s": time.perf_counter() - began,
    }
