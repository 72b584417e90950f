"""One round job (:mod:`storebench.rounds`): every cell that still needs a round,
measured in this round's random order, each with the same store or read protocol
as its own job (:mod:`storebench.measure`), one record per cell.

A read cell reads this round's own copy of its store and of the floor's
(:class:`StoreCopies`): where a file lands on this host's disk, and in its page
cache, sets how fast it reads (one run's HDF5 file read 20% slower than a copy of
it, in every round), so a store read in place would freeze one draw of that into
every round of a run. A copy per round samples it like the host's drift.
"""

from __future__ import annotations

import collections
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from storebench import datasetfile, host, measure, pagecache, provenance, results, rounds
from storebench.formats import Format, make_format
from storebench.sampling import Policy

log = logging.getLogger(__name__)


class StoreCopies:
    """This round's copies of the stores its read cells read, made off the clock.

    A store of at most :data:`~storebench.host.FEW_FILES` files is copied the first time
    a cell of the round reads it, made durable, evicted and read through once (so the
    host's own cache holds it as it holds a store written earlier), and deleted after
    the round's last cell that reads it. A store of one file per image (PNG) is read in
    place: its reads already average over as many placements as it has files.
    ``uses``: how many of the round's cells read each store.
    """

    def __init__(self, folder: Path, uses: collections.Counter[Path]):
        self.folder = folder
        self.left = uses
        self.made: dict[Path, Path] = {}
        shutil.rmtree(folder, ignore_errors=True)  # a killed round's copies

    def take(self, fmt: Format, store: Path) -> tuple[Path, bool]:
        """The store a cell reads (this round's copy, or ``store`` itself) and whether it
        is a copy."""
        if store in self.made:
            return self.made[store], True
        # on an object-store tier the folder holds only a pointer to the objects read
        if fmt.remote or len(fmt.files(store)) > host.FEW_FILES:
            return store, False
        target = host.fresh_dir(self.folder, f"{store.parent.name}-{store.name}.") / "store"
        shutil.copytree(store, target)
        host.sync_filesystem(target)
        files = fmt.files(target)
        pagecache.evict(files)
        pagecache.load(files)
        self.made[store] = target
        return target, True

    def done(self, store: Path) -> None:
        """A cell that read ``store`` is done: its copy goes after the last such cell."""
        self.left[store] -= 1
        if self.left[store] <= 0 and store in self.made:
            shutil.rmtree(self.made.pop(store).parent)

    def close(self) -> None:
        """Delete every copy left (cells the budget left out, or a failure)."""
        self.made.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


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

    def _floor_store(cell: rounds.Cell) -> Path:
        return stores / floor_name / str(cell.n)

    copies = StoreCopies(
        scratch / "copies",
        collections.Counter(
            store
            for cell in todo
            if cell.stage == "read"
            for store in {stores / cell.format / str(cell.n), _floor_store(cell)}
        ),
    )
    began = time.perf_counter()
    measured, skipped = [], []
    try:
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
                fmt.forget(staged)
                host.discard(staged, trash)
            else:
                indices = measure.read_indices(cell.n, cell.order, config["seed"])
                store, ref_store = stores / cell.format / str(cell.n), _floor_store(cell)
                read_store, copied = copies.take(fmt, store)
                read_ref, _ = copies.take(floor, ref_store)
                result = measure.measure_read(
                    fmt,
                    read_store,
                    part,
                    part_labels,
                    indices,
                    cell.cache,
                    reference=(floor, read_ref),
                    **kwargs,
                )
                for used in {store, ref_store}:
                    copies.done(used)
                extra = {"order": cell.order, "seed": config["seed"], "store_copy": copied}
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
    finally:
        copies.close()
    if skipped:
        log.info("round %d: %d cell(s) left out: the budget is spent", round_, len(skipped))
    return {
        "schema": provenance.RESULT_SCHEMA,
        "round": round_,
        "records": measured,
        "over_budget": skipped,
        "elapsed_s": time.perf_counter() - began,
    }
