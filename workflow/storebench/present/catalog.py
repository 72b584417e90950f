"""What the workflow publishes: one record per figure and one per table.

A figure's record names the tables it is drawn from, the function of
:mod:`storebench.present.figures` that draws it (and that function's options), its topic
in the report and its caption. A table's record names its layout (how
:mod:`storebench.present.tables` turns result files into rows; ``None`` for the tables
with their own rule) and its caption. Rules, the report, the README's examples
and the tests all read these records, so a figure or table is added in one place.

Captions are templates: ``{paired}``, ``{store}``, ``{spread}`` ... are filled in
by :mod:`storebench.present.publish` from the run's config. No matplotlib here: the
Snakefile imports this module at parse time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class FigureRecord:
    """A figure: ``tables`` it reads, ``drawer`` (a function of storebench.present.figures) with
    ``options``, and the report's ``topic`` and ``caption``."""

    tables: tuple[str, ...]
    drawer: str
    topic: str
    caption: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TableRecord:
    """A table: its ``layout`` (a key of storebench.present.tables.LAYOUTS; None: made by
    its own rule), ``caption`` (what a row holds) and whether it is a ``timing`` table
    (rows of timed jobs, each with a median and its interval: noise.csv reads these)."""

    layout: str | None
    caption: str
    timing: bool = False


FIGURES: dict[str, FigureRecord] = {
    "tradeoff": FigureRecord(
        tables=("read", "usage", "store"),
        drawer="tradeoff",
        topic="Overview",
        caption=(
            "The trade-off at the largest n: bytes on disk per image against images/s of a "
            "shuffled read (top: cold cache, bottom: warm), one marker per format, its size "
            "growing with the store time; the dashed line joins the formats nothing beats "
            "on both (the Pareto front). The floor is the raw .npy. {read} {cold}"
        ),
    ),
    "heatmap": FigureRecord(
        tables=("store", "read", "usage", "latency"),
        drawer="heatmap",
        topic="Overview",
        caption=(
            "Every format in every scenario at the largest n, as its paired ratio to the "
            "floor (disk: bytes per image over the floor's); colour on a log scale, darker "
            "is costlier; ≈1 where the interval of the ratio reaches 1 (a tie with the "
            "floor). {paired} {spread}"
        ),
    ),
    "image_size": FigureRecord(
        tables=("image_size",),
        drawer="image_size",
        topic="Image size",
        caption=(
            "How each format's cost moves with image size (the image-size sweep: the "
            "dataset resized to each size, the same MiB of pixels at every size). Time per "
            "image to store and to read back shuffled (warm and cold), and the warm "
            "shuffled read's MB/s of pixels. {read} {spread}"
        ),
    ),
    "tiers": FigureRecord(
        tables=("tiers",),
        drawer="tiers",
        topic="Storage tiers",
        caption=(
            "Where the data lives: images/s per format on each storage tier (the run "
            "itself is local; each other tier ran the whole experiment there, its floor "
            "on the same tier), for the store and the shuffled reads, cold and warm, at "
            "the largest n every tier measured. Bars: the median; lines: the interval of "
            "the tier's own run; *: a cold read whose cache was not shown cold (more than "
            "5% of its files' pages cached before a read). {spread}"
        ),
    ),
    "store_time_linear": FigureRecord(
        tables=("store",),
        drawer="store_time",
        topic="Store",
        caption=(
            "Time to store n images, linear y axis (the classic article's chart). "
            "{store} {durable} {spread}"
        ),
        options={"log_y": False},
    ),
    "store_time_log": FigureRecord(
        tables=("store",),
        drawer="store_time",
        topic="Store",
        caption="Time to store n images, log-log axes. {store} {durable} {spread}",
        options={"log_y": True},
    ),
    "read_time_linear": FigureRecord(
        tables=("read",),
        drawer="read_time",
        topic="Read",
        caption=(
            "Time to read n images back, warm cache, sequential order, linear y axis "
            "(the classic article's chart). {read} {warm} {spread}"
        ),
        options={"log_y": False},
    ),
    "read_time_log": FigureRecord(
        tables=("read",),
        drawer="read_time",
        topic="Read",
        caption=(
            "Time to read n images back, warm cache, sequential order, log-log axes. "
            "{read} {warm} {spread}"
        ),
        options={"log_y": True},
    ),
    "read_write_log": FigureRecord(
        tables=("store", "read"),
        drawer="read_write",
        topic="Read",
        caption="Store (solid) against warm sequential read (dashed), medians. {store} {read}",
    ),
    "disk_usage_stacked": FigureRecord(
        tables=("usage",),
        drawer="disk_stacked",
        topic="Disk",
        caption=(
            "Bytes allocated on disk (st_blocks, not apparent size) by each store, "
            "stacked over the cutoffs {cutoffs}."
        ),
    ),
    "disk_bytes_per_image": FigureRecord(
        tables=("usage",),
        drawer="bytes_per_image",
        topic="Disk",
        caption=(
            "Allocated bytes on disk per image against n; the dotted line is the "
            "bytes of one image's pixels."
        ),
    ),
    "single_image": FigureRecord(
        tables=("single",),
        drawer="single_image",
        topic="Store",
        caption=(
            "Storing and reading one image (n = 1): median, bar the job's interval of it. "
            "Store includes creating the store; read includes opening it. {paired}"
        ),
    ),
    "read_cold_vs_warm": FigureRecord(
        tables=("read",),
        drawer="read_cache",
        topic="Read",
        caption=(
            "Warm (solid) against cold (dashed) page cache, sequential order. {read} "
            "{warm} {cold} {spread}"
        ),
    ),
    "read_order": FigureRecord(
        tables=("read",),
        drawer="read_order",
        topic="Read",
        caption=(
            "Sequential (solid) against random (dashed) order, one panel per cache "
            "state. {read} {orders} {warm} {cold} {spread}"
        ),
    ),
    "latency": FigureRecord(
        tables=("latency",),
        drawer="latency",
        topic="Read",
        caption=(
            "Single-image read latency: {latency_samples} reads at random indices of "
            "the store of {latency_n} images, warm; the curve gives the percentiles (10 to 99) and "
            "min/max. One panel opens the store, reads one image and closes it; the "
            "other reads from an open store."
        ),
    ),
    "parallel_scaling": FigureRecord(
        tables=("parallel",),
        drawer="parallel_scaling",
        topic="Parallel",
        caption=(
            "Aggregate images/s of P worker processes (spawned; each opens its own "
            "handle) reading disjoint shards of a seeded permutation of n images, P ="
            " {workers}; dotted: P times the P = 1 rate. The same workers read the "
            "floor's store. {paired} {warm} {cold} {spread}"
        ),
    ),
    "dataloader_throughput": FigureRecord(
        tables=("dataloader",),
        drawer="dataloader_throughput",
        topic="DataLoader",
        caption=(
            "Images/s of one shuffled PyTorch DataLoader epoch (batch {batch_size}, "
            "num_workers {num_workers}), after the store is loaded into the page "
            "cache and one untimed epoch of the floor; every batch is copied out and "
            "checked. {paired} Bar: the interval of the job's median (its coverage is in "
            "dataloader.csv; the host's drift between jobs is not in it)."
        ),
    ),
    "training_au": FigureRecord(
        tables=("training",),
        drawer="training_au",
        topic="Training loop",
        caption=(
            "Accelerator utilisation (the share of the epoch after the first batch that "
            "the emulated step, {training_step}, was computing) against loader workers, "
            "per format: shuffled batches of {training_batch} read, decoded, augmented "
            "(random resized crop to {training_crop} px, flip) and collated by the "
            "workers. Band: the interval of the median over the job's epochs (its "
            "coverage is in training.csv); dashed: the target, {training_target}."
        ),
    ),
    "training_workers": FigureRecord(
        tables=("training",),
        drawer="training_workers",
        topic="Training loop",
        caption=(
            "Workers needed: the fewest loader threads or DataLoader worker processes "
            "whose median AU reached {training_target} (at a step of {training_step}); "
            'pale when that count\'s AU interval reaches below the target, "none" when no '
            "measured count got there (nothing beyond the counts measured is guessed)."
        ),
    ),
    "workflow_cost": FigureRecord(
        tables=("cost",),
        drawer="workflow_cost",
        topic="Cost",
        caption=(
            "What this workflow itself cost per stage, against n, from Snakemake's "
            "benchmark files: wall time summed over the stage's jobs at each n, and "
            "the largest peak RSS of one job. Stages without an n (extraction, "
            "dataset, latency, single image, tables, figures) are in cost.csv only. A"
            " line's slope predicts a bigger run."
        ),
    ),
}

TABLES: dict[str, TableRecord] = {
    "tiers": TableRecord(
        layout=None,
        caption=(
            "Storage tiers side by side: per tier (local: this run), format and cell, "
            "images/s with its interval and the ratio to the floor measured on the same "
            "tier with its interval (as in each tier's store.csv and read.csv), and bytes "
            "on disk per image; the file system each tier ran on."
        ),
    ),
    "image_size": TableRecord(
        layout=None,
        caption=(
            "The image-size sweep: per size (square, px), format and measurement, the "
            "time per image with its interval (as in each size's read.csv), MB/s of pixels, "
            "the ratio to the floor and bytes on disk per image; the same MiB of pixels at "
            "every size."
        ),
    ),
    "store": TableRecord(
        timing=True,
        layout="timing",
        caption=(
            "Store time per format and n (write, and write until durable): the ratio to "
            "the floor and its interval, the time and its interval, the floor's, the CPU "
            "probe and how sampling ended ({sampling}). Columns rounds, coverage and "
            "interval say what each interval is: the median's over rounds, or one job's "
            "order-statistic interval of its median, which leaves out the drift between "
            "jobs."
        ),
    ),
    "read": TableRecord(
        timing=True,
        layout="timing",
        caption=(
            "Read time per format, n, cache state and order: ratio to the floor's "
            "read of the same n, cache and order, with intervals as in store.csv; the"
            " largest page-cache residency before a cold read; the order's shuffle "
            "quality (1: its neighbours as far apart as a uniform shuffle's; 0: in "
            "order; docs/methods.md)."
        ),
    ),
    "single": TableRecord(
        timing=True,
        layout="timing",
        caption="Store and read of one image, paired with the floor ({sampling}).",
    ),
    "latency": TableRecord(
        layout="latency",
        caption=(
            "Single-image read latency percentiles, {latency_samples} reads from the "
            "store of {latency_n} images."
        ),
    ),
    "usage": TableRecord(
        layout="usage",
        caption=(
            "Files, apparent and allocated bytes of every store, and allocated bytes per image."
        ),
    ),
    "parallel": TableRecord(
        timing=True,
        layout="parallel",
        caption="Parallel readers: time, images/s and speed-up over one worker.",
    ),
    "dataloader": TableRecord(
        timing=True,
        layout="dataloader",
        caption="PyTorch DataLoader epochs: time and images/s per num_workers.",
    ),
    "training": TableRecord(
        timing=True,
        layout="training",
        caption=(
            "The training loop (batch {training_batch}, a step of {training_step}, crop to "
            "{training_crop} px): per format, loader and workers, samples/s and the ratio "
            "to the floor's loop, accelerator utilisation (AU) with the interval of its "
            "median over the job's epochs, the time to the first batch, the loader's CPU ms "
            "per image (read with decode; augmentation with collation) and its peak PSS."
        ),
    ),
    "noise": TableRecord(
        layout=None,
        caption=(
            "Measurements whose ratio interval reaches more than "
            "{noise_threshold:.0%} from the median ratio, or stores taken while file "
            "creation was slow."
        ),
    ),
    "cost": TableRecord(
        layout=None,
        caption=(
            "The workflow's own cost per stage and n (Snakemake benchmark files): "
            "jobs, wall and CPU time summed over them, the median job's wall time, "
            "the largest peak RSS."
        ),
    ),
    "summary": TableRecord(
        layout=None,
        caption=(
            "One table per question at the largest n: which format stores fastest, "
            "reads fastest (warm, cold, sequential, shuffled) and is smallest on "
            "disk, ranked by the ratio to the raw floor with its interval; a rank runs "
            "from 1 plus the formats the run shows faster to the count less those it "
            "shows slower (the interval of the median round-paired difference covers at "
            "least 95% and excludes zero)."
        ),
    ),
}


# The timing tables, in the order the workflow makes them (the one list of them).
TIMING_TABLES = tuple(name for name, record in TABLES.items() if record.timing)
