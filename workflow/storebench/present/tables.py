"""Tidy tables (CSV + Markdown) from the result files: one row per format, n, measurement."""

from __future__ import annotations

import csv
import functools
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from storebench import rounds, shuffle
from storebench.errors import StorebenchError
from storebench.protocol import ORDERS, job_steal, read_indices
from storebench.stats import (
    format_rounds,
    half_width,
    median_interval,
    ratios,
    robust_sd,
    round_interval,
    summarize,
)

# Every timing row: the ratio to the paired reference (the floor) with its interval
# first, then the absolute time with its interval, the reference's own time, the CPU
# probe (the machine's speed while measured) and how sampling ended. A cell measured
# in rounds (storebench.rounds) has its estimate (the median over rounds) and its
# distribution-free interval from the spread between rounds (``rounds``,
# ``round_values``: each round's log ratio; ``balance_values``: each round's log of the
# CPU probe's time over the floor's, the machine's CPU:memory balance); a cell measured
# in one job has its median and the
# order-statistic interval of its pairs, whose ``coverage`` is that of the job's own
# median (50% with 2 pairs), the drift between jobs not included. ``interval`` says
# which, in words.
PAIRED_COLUMNS = (
    "unit",
    "pairs",
    "rounds",
    "ratio",
    "ratio_lo",
    "ratio_hi",
    "coverage",
    "interval",
    "ratio_job_lo",
    "ratio_job_hi",
    "round_values",
    "balance_values",
    "drift",
    "median",
    "median_lo",
    "median_hi",
    "time_drift",
    "reference",
    "reference_median",
    "reference_lo",
    "reference_hi",
    "cpu_ms",
    "steal",
    "retaken",
    "stopped",
    "q1",
    "q3",
    "min",
    "max",
    "cv",
)
# What names a timed cell: the first columns of every timing table.
CELL_COLUMNS = (
    "format",
    "kind",
    "n",
    "measurement",
    "cache",
    "order",
)
TIMING_COLUMNS = (
    *CELL_COLUMNS,
    *PAIRED_COLUMNS,
    "images_per_s",
    "mb_per_s",
    "residency_max",
    "create_latency_us_max",
    "slow_probes",
    "psnr_db",
    "remote_way",
    "requests",
    "bytes_down",
    "shuffle_quality",
)
LATENCY_COLUMNS = (
    "format",
    "kind",
    "n",
    "mode",
    "cache",
    "unit",
    "samples",
    "min",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "p95",
    "p99",
    "max",
    "reference",
    "ratio",
    "ratio_lo",
    "ratio_hi",
)
NOT_VERIFIED = "cold (not verified)"
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
USAGE_COLUMNS = (
    "format",
    "kind",
    "n",
    "files",
    "apparent_bytes",
    "allocated_bytes",
    "bytes_per_image",
    "image_bytes",
)


def _cache_label(result: dict[str, Any]) -> str:
    cache = result.get("cache", "")
    if cache == "cold" and not result.get("cache_verified", False):
        return NOT_VERIFIED
    return cache


def job_interval_label(coverage: float) -> str:
    """How a one-job row's interval is described: what it holds, and how surely."""
    return f"one job: {coverage:.1%} for its own median (drift between jobs not included)"


def paired_stats(result: dict[str, Any], key: str) -> dict[str, Any]:
    """The paired statistics of one measurement ``key`` (e.g. ``read_s``) of a result
    measured in one job."""
    values = result["samples"][key]
    mine = median_interval(values)
    refs = (result.get("reference_samples") or {}).get(key)
    reference = result.get("reference") or {}
    row: dict[str, Any] = {"unit": "s", "pairs": len(values), "rounds": ""}
    if refs:
        ratio, theirs = median_interval(ratios(values, refs)), median_interval(refs)
        row |= {
            "ratio": ratio["median"],
            "ratio_lo": ratio["lo"],
            "ratio_hi": ratio["hi"],
            "coverage": ratio["coverage"],
            "interval": job_interval_label(ratio["coverage"]),
            "ratio_job_lo": ratio["lo"],
            "ratio_job_hi": ratio["hi"],
        }
    else:
        theirs = {"median": "", "lo": "", "hi": ""}
        row |= {"ratio": "", "ratio_lo": "", "ratio_hi": "", "coverage": mine["coverage"]}
        row |= {"ratio_job_lo": "", "ratio_job_hi": "", "interval": ""}
    cpu = result.get("cpu_s") or []
    stolen = job_steal(result)
    sampling = result.get("sampling") or {}
    return row | {
        "round_values": "",
        "balance_values": "",
        "median": mine["median"],
        "median_lo": mine["lo"],
        "median_hi": mine["hi"],
        "drift": "",
        "time_drift": "",
        "reference": reference.get("format", ""),
        "reference_median": theirs["median"],
        "reference_lo": theirs["lo"],
        "reference_hi": theirs["hi"],
        "cpu_ms": 1e3 * float(np.median(cpu)) if cpu else "",
        "steal": "" if stolen is None else stolen,
        "retaken": sampling.get("retaken", ""),
        "stopped": sampling.get("stopped", ""),
        **{k: v for k, v in summarize(values).items() if k != "median"},
    }


def round_interval_label(coverage: float, count: int) -> str:
    """What a round row's interval is: its exact coverage, from how many rounds."""
    return f"{100 * coverage:.1f}% over {count} round{'s' if count != 1 else ''} (median)"


def round_stats(by_round: dict[int, dict[str, Any]], key: str) -> dict[str, Any]:
    """The statistics of one measurement ``key`` of a cell measured in rounds: per
    round, the median log ratio (and log time) of its pairs; over rounds, their median
    and its distribution-free interval (:func:`storebench.stats.round_interval`), which
    covers 95% or more from 6 rounds on and says what it covers below that."""
    ordered = [by_round[r] for r in sorted(by_round)]
    values = {r: rounds.round_value(result, key) for r, result in sorted(by_round.items())}
    ratio = round_interval([v["log_ratio"] for v in values.values()])
    own = round_interval([v["log_time"] for v in values.values()])
    ref = round_interval([v["log_reference"] for v in values.values()])
    count = len(values)
    samples = [x for result in ordered for x in result["samples"][key]]
    cpu = [v["cpu_ms"] for v in values.values() if math.isfinite(v["cpu_ms"])]
    ticks = [t for result in ordered for t in result.get("ticks") or [] if t is not None]
    settings = rounds.Settings.of((ordered[0].get("run") or {}).get("rounds"))
    stage = rounds.Cell.of(ordered[0]).stage
    return {
        "unit": "s",
        "pairs": len(samples),
        "rounds": count,
        "ratio": math.exp(ratio["center"]),
        "ratio_lo": math.exp(ratio["lo"]),
        "ratio_hi": math.exp(ratio["hi"]),
        "coverage": round(ratio["coverage"], 4),
        "interval": round_interval_label(ratio["coverage"], count),
        "ratio_job_lo": math.exp(ratio["lo"]),
        "ratio_job_hi": math.exp(ratio["hi"]),
        "round_values": format_rounds({r: v["log_ratio"] for r, v in values.items()}),
        "balance_values": format_rounds(
            {
                r: math.log(v["cpu_ms"] / 1e3) - v["log_reference"]
                for r, v in values.items()
                if math.isfinite(v["cpu_ms"])
            }
        ),
        "median": math.exp(own["center"]),
        "median_lo": math.exp(own["lo"]),
        "median_hi": math.exp(own["hi"]),
        "drift": "",
        "time_drift": "",
        "reference": (ordered[0].get("reference") or {}).get("format", ""),
        "reference_median": math.exp(ref["center"]),
        "reference_lo": math.exp(ref["lo"]),
        "reference_hi": math.exp(ref["hi"]),
        "cpu_ms": float(np.median(cpu)) if cpu else "",
        "steal": job_steal({"ticks": ticks}) if ticks else "",
        "retaken": sum((r.get("sampling") or {}).get("retaken", 0) for r in ordered),
        "stopped": rounds.stop_reason(by_round, stage, settings),
        **{k: v for k, v in summarize(samples).items() if k != "median"},
    }


# What makes two rows of one table the same cell but for the format: every row of a
# group measured the same reference doing the same work, in its own job.
CELL_KEYS = ("n", "measurement", "cache", "order", "workers", "batch_size", "num_workers")


def _log_spread(rows: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> float:
    """The run's spread between jobs of log ``value`` over ``rows``: per cell (rows that
    differ only in format), deviations from the cell's median, pooled; their robust
    standard deviation. 0 with fewer than 3 jobs to judge from."""
    cells: dict[tuple, list[float]] = {}
    for row in rows:
        key = tuple(row.get(k, "") for k in CELL_KEYS)
        cells.setdefault(key, []).append(math.log(value(row)))
    deviations = [
        x - float(np.median(values)) for values in cells.values() if len(values) > 1 for x in values
    ]
    return robust_sd(deviations) if len(deviations) >= 3 else 0.0


def add_run_drift(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Record the run's drift between jobs in every paired row, as a diagnostic.

    A job's pairs span seconds; the host's speed drifts over minutes, and its CPU and
    its memory do not drift together, so a ratio of a CPU-bound format to the
    memory-bound floor moves from one job to the next by as much as the machine's CPU
    speed moves against its memory speed. ``drift`` is the robust standard deviation
    of log(CPU probe / floor) between the jobs of a cell, pooled over the table;
    ``time_drift`` the larger spread of the floor's and the CPU probe's own times. No
    interval is widened by them: cells measured in rounds have that drift in their
    between-round intervals, and a one-job row says its interval leaves it out.
    """
    paired = [r for r in rows if r.get("ratio", "") != "" and r.get("cpu_ms", "") != ""]
    if not paired:
        return rows
    drift = _log_spread(paired, lambda r: float(r["cpu_ms"]) / float(r["reference_median"]))
    time_drift = max(
        _log_spread(paired, lambda r: float(r["reference_median"])),
        _log_spread(paired, lambda r: float(r["cpu_ms"])),
    )
    for row in paired:
        row["drift"], row["time_drift"] = drift, time_drift
    return rows


def _by_cell(loaded: Iterable[dict[str, Any]]) -> list[dict[int, dict[str, Any]]]:
    """Results grouped by cell, in the order first seen: a one-job cell as {0: result},
    a cell measured in rounds as {round: result} (:func:`storebench.rounds.history`)."""
    loaded = list(loaded)
    grouped = rounds.history(loaded)
    out: list[dict[int, dict[str, Any]]] = []
    seen: set[rounds.Cell] = set()
    for result in loaded:
        if result.get("round") is None:
            out.append({0: result})
            continue
        cell = rounds.Cell.of(result)
        if cell not in seen:
            seen.add(cell)
            out.append(dict(grouped[cell]))
    return out


def _merged(by_round: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One result standing for a cell's rounds: the first round's, with the per-pair
    records of every round (residency, file-system probes) one after another."""
    ordered = [by_round[r] for r in sorted(by_round)]
    merged = dict(ordered[0])
    for key in ("residency_before", "filesystem_probe", "traffic"):
        if any(key in r for r in ordered):
            merged[key] = [x for r in ordered for x in r.get(key) or []]
    merged["cache_verified"] = all(r.get("cache_verified", True) for r in ordered)
    return merged


def _traffic(result: dict[str, Any]) -> dict[str, Any]:
    """A read on an object-store tier: the way the format reads it (key, range, stream,
    staged), and the median requests and bytes received per read of the format."""
    traffic = result.get("traffic") or []
    return {
        "remote_way": (result.get("tier") or {}).get("remote_way", ""),
        "requests": float(np.median([t["requests"] for t in traffic])) if traffic else "",
        "bytes_down": float(np.median([t["bytes_down"] for t in traffic])) if traffic else "",
    }


def timing_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (cell, measurement): its paired statistics and context; a cell
    measured in rounds gives one row from all its rounds."""
    rows = []
    for by_round in _by_cell(loaded):
        result = _merged(by_round)
        resident = result.get("residency_before")
        probes = result.get("filesystem_probe", [])
        for measurement in result["samples"]:
            if 0 in by_round:
                stats = paired_stats(result, measurement)
            else:
                stats = round_stats(by_round, measurement)

            per_image = measurement in ("read_s", "store_s", "store_durable_s")
            rows.append(
                {
                    "format": result["format"],
                    "kind": result["kind"],
                    "n": result["n"],
                    "measurement": measurement.removesuffix("_s"),
                    "cache": _cache_label(result),
                    "order": result.get("order", ""),
                    **stats,
                    "images_per_s": result["n"] / stats["median"] if per_image else "",
                    "mb_per_s": result["n"] * _image_bytes(result) / stats["median"] / 1e6
                    if per_image
                    else "",
                    # NaN: a cache this machine cannot see (a user's own bucket)
                    "residency_max": max(resident)
                    if resident and not any(math.isnan(r) for r in resident)
                    else "",
                    "create_latency_us_max": max(p["create_latency_us"] for p in probes)
                    if probes
                    else "",
                    "slow_probes": sum(bool(p.get("slow")) for p in probes) if probes else "",
                    # a store of a lossy payload: how far its images are from the dataset's
                    "psnr_db": result.get("psnr_db", ""),
                    # an object-store tier: how the format read it, what a read carried
                    **_traffic(result),
                    # how far the read's order is from a uniform shuffle (1) or in order (0)
                    "shuffle_quality": _shuffle_quality(result),
                }
            )
    return add_run_drift(rows)


def _shuffle_quality(result: dict[str, Any]) -> Any:
    """The shuffle quality (:func:`storebench.shuffle.quality`) of a read's order, made
    again from its n, order and seed; "" for a store or an order it does not know."""
    order, seed = result.get("order"), result.get("seed")
    if order not in ORDERS or seed is None:
        return ""
    return _order_quality(int(result["n"]), order, int(seed))


@functools.lru_cache(maxsize=64)
def _order_quality(n: int, order: str, seed: int) -> float:
    return shuffle.quality(read_indices(n, order, seed))


def _latency_ratio(result: dict[str, Any], mode: str) -> dict[str, Any]:
    refs = (result.get("reference_samples") or {}).get(mode)
    if not refs:
        return {"reference": "", "ratio": "", "ratio_lo": "", "ratio_hi": ""}
    ratio = median_interval(ratios(result["samples"][mode], refs))
    return {
        "reference": (result.get("reference") or {}).get("format", ""),
        "ratio": ratio["median"],
        "ratio_lo": ratio["lo"],
        "ratio_hi": ratio["hi"],
    }


def latency_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Percentiles of single-image read latency, one row per format and mode."""
    rows = []
    for result in loaded:
        for mode, samples in result["samples"].items():
            levels = dict(zip(PERCENTILES, np.percentile(samples, PERCENTILES), strict=True))
            rows.append(
                {
                    "format": result["format"],
                    "kind": result["kind"],
                    "n": result["n"],
                    "mode": mode.removesuffix("_s"),
                    "cache": result["cache"],
                    "unit": "s",
                    "samples": len(samples),
                    "min": float(min(samples)),
                    **{f"p{p}": float(v) for p, v in levels.items()},
                    "max": float(max(samples)),
                    **_latency_ratio(result, mode),
                }
            )
    return rows


NOISE_COLUMNS = (
    "format",
    "n",
    "measurement",
    "cache",
    "order",
    "pairs",
    "ratio",
    "ratio_job_lo",
    "ratio_job_hi",
    "stopped",
    "reason",
)


def _noise_reason(row: dict[str, Any], max_width: float) -> str:
    reasons = []
    if row.get("ratio", "") != "":
        # the job's own interval: the run's drift (add_run_drift) is the machine's, not the job's
        lo, hi = (row.get(f"ratio_job_{end}", "") for end in ("lo", "hi"))
        if lo == "" or hi == "":
            lo, hi = row["ratio_lo"], row["ratio_hi"]
        width = half_width({"median": row["ratio"], "lo": lo, "hi": hi})
        if width > max_width:
            reasons.append(
                f"ratio interval +/-{width:.0%} > {max_width:.0%} "
                f"(sampling stopped: {row.get('stopped') or '?'})"
            )
    slow = row.get("slow_probes", "")
    if slow not in ("", 0):
        reasons.append(
            f"file creation slow before {slow} pair(s) "
            f"(up to {row['create_latency_us_max']:.0f} us)"
        )
    return "; ".join(reasons)


def noisy_rows(tables: Iterable[Path], max_width: float) -> list[dict[str, Any]]:
    """Timing rows too noisy to trust: a ratio interval wider than ``max_width`` either
    side of the median, or stores timed while file creation was slow."""
    rows = []
    for path in tables:
        for row in read_table(path):
            reason = _noise_reason(row, max_width)
            if reason:
                rows.append(
                    {
                        **{c: row.get(c, "") for c in NOISE_COLUMNS if c != "reason"},
                        "reason": reason,
                    }
                )
    return rows


def _image_bytes(result: dict[str, Any]) -> float:
    """Bytes of one image of the dataset a result was made from (CIFAR-10's if unrecorded;
    the mean of images of their own sizes)."""
    dataset = (result.get("run") or {}).get("dataset") or {}
    if dataset.get("image_bytes_mean"):
        return float(dataset["image_bytes_mean"])
    return int(np.prod(dataset.get("shape") or [32, 32, 3]))


def usage_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per store with its allocated and apparent bytes."""
    rows = []
    for result in loaded:
        usage = result["usage"]
        rows.append(
            {
                "format": result["format"],
                "kind": result["kind"],
                "n": result["n"],
                **usage,
                "bytes_per_image": usage["allocated_bytes"] / result["n"],
                "image_bytes": _image_bytes(result),
            }
        )
    return rows


PARALLEL_COLUMNS = (
    *CELL_COLUMNS,
    "workers",
    *PAIRED_COLUMNS,
    "images_per_s",
    "mb_per_s",
    "speedup",
    "residency_max",
)
DATALOADER_COLUMNS = (
    *CELL_COLUMNS,
    "batch_size",
    "num_workers",
    "start_method",
    *PAIRED_COLUMNS,
    "images_per_s",
    "mb_per_s",
)
TRAINING_COLUMNS = (
    *CELL_COLUMNS,
    "loader",
    "workers",
    "batch_size",
    "step_ms",
    "crop",
    *PAIRED_COLUMNS,
    "images_per_s",
    "mb_per_s",
    "au",
    "au_lo",
    "au_hi",
    "au_coverage",
    "reference_au",
    "target_au",
    "first_batch_s",
    "read_cpu_ms_per_image",
    "augment_cpu_ms_per_image",
    "pss_peak_mb",
    "shuffle_quality",
)


def _throughput_row(
    result: dict[str, Any], samples: str, measurement: str, **extra: Any
) -> dict[str, Any]:
    """A timing row of a whole-store read, with its aggregate images/s."""
    stats = paired_stats(result, samples)
    return {
        "format": result["format"],
        "kind": result["kind"],
        "n": result["n"],
        "measurement": measurement,
        "cache": _cache_label(result),
        "order": result["order"],
        **extra,
        **stats,
        "images_per_s": result["n"] / stats["median"],
        "mb_per_s": result["n"] * _image_bytes(result) / stats["median"] / 1e6,
    }


def parallel_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parallel readers: time, aggregate images/s and speed-up over one worker."""
    rows = []
    for result in loaded:
        workers = result["workers"]
        rows.append(
            {
                **_throughput_row(result, "read_s", f"read_p{workers}", workers=workers),
                "residency_max": max(result["residency_before"]),
            }
        )
    one = {(r["format"], r["n"], r["cache"]): r["median"] for r in rows if r["workers"] == 1}
    for row in rows:
        base = one.get((row["format"], row["n"], row["cache"]))
        row["speedup"] = base / row["median"] if base else ""
    return add_run_drift(rows)


def dataloader_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """DataLoader epochs: time and images/s per format, batch size and worker count."""
    rows = []
    for result in loaded:
        count = result["num_workers"]
        rows.append(
            _throughput_row(
                result,
                "epoch_s",
                f"epoch_w{count}",
                batch_size=result["batch_size"],
                num_workers=count,
                start_method=result["start_method"],
            )
        )
    return add_run_drift(rows)


def training_rows(loaded: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Training-loop epochs: samples/s and the ratio to the floor's loop (epoch time),
    accelerator utilisation with the interval of its median over the job's epochs, the
    time to the first batch, the loader's CPU per image (read with decode; augmentation
    with collation) and its peak memory, per format, loader and workers."""
    rows = []
    for result in loaded:
        samples, refs = result["samples"], result.get("reference_samples") or {}
        au = median_interval(samples["au"])
        n = result["n"]
        rows.append(
            _throughput_row(
                result,
                "epoch_s",
                f"train_{result['loader']}_w{result['workers']}",
                loader=result["loader"],
                workers=result["workers"],
                batch_size=result["batch_size"],
                step_ms=result["step_ms"],
                crop=result["crop"],
            )
            | {
                "au": au["median"],
                "au_lo": au["lo"],
                "au_hi": au["hi"],
                "au_coverage": au["coverage"],
                "reference_au": float(np.median(refs["au"])) if refs.get("au") else "",
                "target_au": result.get("target_au", ""),
                "first_batch_s": float(np.median(samples["first_batch_s"])),
                "read_cpu_ms_per_image": float(np.median(samples["read_cpu_s"])) / n * 1e3,
                "augment_cpu_ms_per_image": float(np.median(samples["augment_cpu_s"])) / n * 1e3,
                "pss_peak_mb": float(np.max(samples["pss_peak_mb"])),
                "shuffle_quality": _shuffle_quality(result),
            }
        )
    return add_run_drift(rows)


# table layout (storebench.present.catalog.TABLES) -> (rows from result files, columns)
LAYOUTS: dict[
    str, tuple[Callable[[Iterable[dict[str, Any]]], list[dict[str, Any]]], tuple[str, ...]]
] = {
    "timing": (timing_rows, TIMING_COLUMNS),
    "usage": (usage_rows, USAGE_COLUMNS),
    "latency": (latency_rows, LATENCY_COLUMNS),
    "parallel": (parallel_rows, PARALLEL_COLUMNS),
    "dataloader": (dataloader_rows, DATALOADER_COLUMNS),
    "training": (training_rows, TRAINING_COLUMNS),
}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    """Write rows as CSV, full precision; renamed into place (a killed job leaves no half
    table for a rerun to trust)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def write_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], csv_path: Path, md_path: Path
) -> None:
    """Write rows as CSV (full precision) and as a Markdown table (4 significant digits)."""
    write_csv(rows, columns, csv_path)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    tmp = md_path.with_name(f".{md_path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, md_path)


# Columns that hold text whatever they read like (a format's name is never a number).
TEXT_COLUMNS = frozenset(
    {
        "format",
        "kind",
        "remote_way",
        "measurement",
        "loader",
        "cache",
        "order",
        "unit",
        "interval",
        "reference",
        "stopped",
        "mode",
        "reason",
        "start_method",
        "stage",
        "round_values",
        "balance_values",
        "tier",
        "filesystem",
    }
)
# Tables made by their own rule (the others by ``table``), with their columns if known.
OWN_RULES = {"noise": "noise", "cost": "cost", "image_size": "size_table", "tiers": "tier_table"}


def _expected(name: str) -> tuple[str | None, tuple[str, ...]]:
    """The rule that remakes table ``name`` and the columns it writes (() if unknown)."""
    from storebench.present.catalog import TABLES

    record = TABLES.get(name)
    if record is not None and record.layout is not None:
        return "table", LAYOUTS[record.layout][1]
    if name == "noise":
        return "noise", NOISE_COLUMNS
    return OWN_RULES.get(name), ()


def read_table(path: Path) -> list[dict[str, Any]]:
    """Read a table written by :func:`write_table`, numbers as numbers, text columns
    (:data:`TEXT_COLUMNS`) as text. A table the workflow would not have written (a
    column missing, a row of other length, a cell that is not a finite number, a ratio
    outside its own interval) is refused in one line naming the file, line and column."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        message = f"no table {path}; run the workflow first (or check the path)"
        raise StorebenchError(message) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise StorebenchError(f"{path}: unreadable ({error}); remake it") from None
    rule, columns = _expected(path.stem)
    remake = f"remake it: snakemake --cores 4 --forcerun {rule or 'all'}"
    missing = [c for c in columns if c not in header]
    if missing:
        raise StorebenchError(
            f"{path}: no column {missing[0]!r} (written by another version?); {remake}"
        )
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():
            raise StorebenchError(
                f"{path}, line {line}: not as many cells as the header has columns; {remake}"
            )
        for key, value in row.items():
            if key in TEXT_COLUMNS or value == "":
                continue
            number = _number(value)
            if number is None:
                raise StorebenchError(
                    f"{path}, line {line}, column {key}: {value!r} is not a finite number "
                    f"(the table was edited or damaged); {remake}"
                )
            row[key] = number
        _check_ratio(path, line, row, remake)
    return rows


def _number(text: str) -> int | float | None:
    """``text`` as an int or a finite float; None if it is neither."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_ratio(path: Path, line: int, row: dict[str, Any], remake: str) -> None:
    """A ratio to the floor is positive and inside its own interval."""
    ratio, lo, hi = (row.get(k, "") for k in ("ratio", "ratio_lo", "ratio_hi"))
    for key, value in (("ratio", ratio), ("ratio_lo", lo), ("ratio_hi", hi)):
        if value != "" and value <= 0:
            raise StorebenchError(
                f"{path}, line {line}, column {key}: {value!r} is not a positive ratio; {remake}"
            )
    if "" not in (ratio, lo, hi) and not lo * (1 - 1e-9) <= ratio <= hi * (1 + 1e-9):
        raise StorebenchError(
            f"{path}, line {line}: ratio {ratio} lies outside its own interval "
            f"[{lo}, {hi}] (the table was edited or damaged); {remake}"
        )
