"""What a reader of the report needs besides the plots: captions that say what was
measured, how and on what machine; one summary table per question; the example
results (docs/results.md and the README's verdict)."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from storebench.errors import StorebenchError
from storebench.present import claims, verdict
from storebench.present.catalog import FIGURES, TABLES
from storebench.protocol import CPU_PROBE_IMAGES, SHARD_IMAGES, SHUFFLE_BUFFER, step_text

Rows = list[dict[str, Any]]

HOW = {
    "paired": "Every time is one of a pair with the raw floor doing the same work in the same "
    "job, format first and floor first in turn ({sampling}); the ratio of each pair is kept.",
    "store": "Each store writes all n images into a new empty folder after earlier writes are "
    "synced. {paired} File creation latency is probed before each pair, and a store timed while "
    "the file system was slow is listed in noise.csv.",
    "durable": "Solid: until the writer returns; dotted: until the data are durable (syncfs).",
    "read": "Each read opens the store, reads the n images into a preallocated, touched buffer "
    "and closes it; every read is checked image by image against the dataset. {paired}",
    "warm": "Warm: one untimed read first, so the store is in the page cache.",
    "cold": "Cold: every file of the store is flushed and evicted from the page cache "
    "(posix_fadvise DONTNEED) before each read; residency (mincore) is recorded.",
    "orders": "Sequential: images 0..n-1; random: a permutation seeded with {seed}, the same for "
    "every format; shards (where measured): shards of "
    f"{SHARD_IMAGES:,} consecutive images in a shuffled order, each streamed through a shuffle "
    f"buffer of {SHUFFLE_BUFFER:,}, as streaming loaders read.",
    "spread": "{rounds_spread}",
}


def machine(environment: Mapping[str, Any] | None) -> str:
    """One sentence naming the machine, file system and versions a run measured on."""
    if not environment:
        return "Machine: see results/environment.json."
    m, fs, v = environment["machine"], environment["filesystem"], environment["versions"]
    libraries = ", ".join(f"{k} {v[k]}" for k in ("numpy", "pillow", "lmdb", "h5py") if k in v)
    return (
        f"Machine: {rst_text(m['cpu_model'])}, {m['usable_cpus']} CPUs, "
        f"{m['memory_bytes'] / 2**30:.0f} GiB RAM, {rst_text(environment['os']['system'])} "
        f"{rst_text(environment['os']['release'])}; {rst_text(fs['type'])} file system on "
        f"{rst_text(fs['device'])}; Python {rst_text(environment['python'])}, {libraries}."
    )


def rst_text(text: object) -> str:
    """``text`` with the characters of reStructuredText's inline markup escaped, so that a
    machine's string (a CPU model, a mount source) reads as itself in a report caption
    (and in Markdown, where the same escapes hold) instead of as markup or an error."""
    return re.sub(r"([\\`*_|\[\]<>:])", r"\\\1", str(text))


def _rounds_span(rounds: Mapping[str, Any]) -> str:
    """Where rounds apply: "from n = 10,000 on", "at n = 10,000", "from n = a to b"."""
    low, high = rounds["from_n"], rounds.get("to_n")
    if high is None:
        return f"from n = {low:,} on"
    if high == low:
        return f"at n = {low:,}"
    return f"from n = {low:,} to {high:,}"


def _sampling(config: Mapping[str, Any]) -> str:
    sampling = config.get("sampling", {})
    text = (
        f"at least {config['repeats']} pairs, more until the 95% interval of the median "
        f"ratio is within ±{sampling.get('precision', 0.05):.0%}, at most "
        f"{sampling.get('max_pairs', '?')} pairs or {sampling.get('time_cap_s', '?')} s per "
        "job"
    )
    rounds = config.get("rounds") or {}
    if rounds.get("from_n") is None:
        return text
    return (
        f"{text}; {_rounds_span(rounds)}, in rounds: the cell's own job, then one "
        "job per round over every such cell in a fresh random order, "
        f"{rounds['min_rounds']} to {rounds['max_rounds']} rounds until the interval of the "
        f"median over rounds covers 95% and is within ±{rounds['precision']:.0%}, or "
        f"{rounds['budget_min']:g} minutes are spent"
    )


def _spread(config: Mapping[str, Any]) -> str:
    """What a band or bar is, for a caption."""
    rounds = config.get("rounds") or {}
    job = (
        "the order-statistic interval of one job's median ratio, which leaves out the "
        "host's drift between jobs (its coverage, 50% with 2 pairs, is in the tables)"
    )
    if rounds.get("from_n") is None:
        return f"Points: median; band or bar: {job}."
    return (
        f"Points: {_rounds_span(rounds)}, the median over rounds, band or bar "
        "its distribution-free interval over rounds (96.9% from 6 rounds; the tables "
        f"give each one's coverage); elsewhere, the median, band or bar {job}."
    )


def _values(config: Mapping[str, Any]) -> dict[str, Any]:
    parallel, dataloader = config.get("parallel", {}), config.get("dataloader", {})
    training = config.get("training") or {}
    values = {
        "repeats": config["repeats"],
        "sampling": _sampling(config),
        "seed": config["seed"],
        "latency_samples": config["latency_samples"],
        "latency_n": f"{config.get('latency_n') or max(config['cutoffs']):,}",
        "training_batch": training.get("batch_size", ""),
        "training_step": step_text(training) if training else "",
        "training_crop": training.get("crop", ""),
        "training_target": f"{training.get('target_au', 0.9):.0%}",
        "noise_threshold": config["noise_threshold"],
        "cutoffs": ", ".join(f"{c:,}" for c in config["cutoffs"]),
        "workers": ", ".join(map(str, parallel.get("workers", []))),
        "batch_size": dataloader.get("batch_size", ""),
        "num_workers": ", ".join(map(str, dataloader.get("num_workers", []))),
        "rounds_spread": _spread(config),
    }
    for key, text in HOW.items():
        values[key] = text.format(**values)
    return values


def figure_caption(
    name: str, config: Mapping[str, Any], environment: Mapping[str, Any] | None
) -> str:
    return f"{FIGURES[name].caption.format(**_values(config))} {machine(environment)}"


def table_caption(
    name: str, config: Mapping[str, Any], environment: Mapping[str, Any] | None
) -> str:
    return f"{TABLES[name].caption.format(**_values(config))} {machine(environment)}"


# ---------------------------------------------------------------------------------------
# summary.md


def _floor(rows: Rows) -> str | None:
    return next((r["format"] for r in rows if r.get("kind") == "npy"), None)


def _interval(value: float, lo: float, hi: float, digits: int = 3) -> str:
    return f"{value:.{digits}g} [{lo:.{digits}g}–{hi:.{digits}g}]"


def _mb_per_s(row: Mapping[str, Any]) -> str:
    value = row.get("mb_per_s", "")
    return f"{float(value):,.0f}" if value not in ("", None) else ""


def confidence(row: Mapping[str, Any]) -> str:
    """What a timing row's interval is, in a few words: "96.9%, 6 rounds (precision)" for
    a cell measured in rounds, "job, 50%" for one job (which leaves out drift between
    jobs)."""
    stopped = row.get("stopped") or ""
    if row.get("rounds", "") not in ("", None):
        return f"{float(row['coverage']):.1%}, {int(row['rounds'])} rounds ({stopped})"
    coverage = row.get("coverage", "")
    head = f"job, {float(coverage):.1%}" if coverage not in ("", None) else "job"
    return f"{head}, {row['pairs']} pairs" + (
        f" ({stopped})" if stopped not in ("", "precision") else ""
    )


def _ranked_timings(title: str, unit: str, rows: Rows, floor: str | None) -> list[str]:
    """Formats ranked by their paired ratio to the floor (best first), each with the
    ranks the run allows it (:func:`storebench.present.claims.ranked`): a range, 1 to 3 say,
    where the run cannot tell it from formats around it."""
    rows = [r for r in rows if r.get("ratio", "") != ""]
    if not rows:
        return []
    lines = [
        f"### {title}",
        "",
        f"| rank | format | × {floor or 'floor'} [interval] | {unit} [interval] "
        "| images/s | MB/s | interval |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row, best, worst in claims.ranked(rows):
        rate = row["n"] / float(row["median"])
        lines.append(
            f"| {best if best == worst else f'{best}–{worst}'} | {row['format']} "
            f"| {_interval(row['ratio'], row['ratio_lo'], row['ratio_hi'])} "
            f"| {_interval(row['median'], row['median_lo'], row['median_hi'])} "
            f"| {rate:,.0f} | {_mb_per_s(row)} | {confidence(row)} |"
        )
    return [*lines, ""]


def _ranked(
    title: str, unit: str, values: dict[str, float], floor: str | None, digits: int = 3
) -> list[str]:
    """A markdown table of ``values`` ranked ascending, with ratios to the best and floor."""
    if not values:
        return []
    best = min(values.values())
    lines = [f"### {title}", ""]
    header = f"| rank | format | {unit} | × best |"
    rule = "|---:|---|---:|---:|"
    if floor in values:
        header += f" × {floor} (floor) |"
        rule += "---:|"
    lines += [header, rule]
    for rank, (fmt, value) in enumerate(sorted(values.items(), key=lambda kv: kv[1]), 1):
        line = f"| {rank} | {fmt} | {value:.{digits}g} | {value / best:.2f} |"
        if floor in values:
            line += f" {value / values[floor]:.2f} |"
        lines.append(line)
    return [*lines, ""]


def _method(rows: Rows, repeats: int) -> str:
    """How the numbers of the summary's largest n were made, from its rows."""
    counts = [int(r["rounds"]) for r in rows if r.get("rounds", "") not in ("", None)]
    if not counts:
        return (
            f"Each cell is one job of at least {repeats} pairs; its interval is that of the "
            "job's own median (coverage in the last column), the host's drift between jobs "
            "not included."
        )
    return (
        "Each cell was measured in rounds: jobs spread over the run, each round in a fresh "
        f"random order ({min(counts)} to {max(counts)} rounds); the ratio is the median "
        "over rounds of each round's median pair ratio, the interval the distribution-free "
        "interval of that median over rounds (its coverage in the last column: 96.9% from "
        "6 rounds), which includes the host's drift between jobs."
    )


def _rows(rows: Rows, n: int, **conditions: Any) -> Rows:
    return [r for r in rows if r["n"] == n and all(r.get(k) == v for k, v in conditions.items())]


def reference_speeds(rows: Rows) -> str:
    """One sentence: the run's median CPU probe and the floor's own times."""
    cpu = [float(r["cpu_ms"]) for r in rows if r.get("cpu_ms", "") != ""]
    if not cpu:
        return ""
    low, high = np.percentile(cpu, [5, 95])
    return (
        f"Reference speeds of this run: the CPU probe (decoding {CPU_PROBE_IMAGES} fixed "
        f"in-memory PNGs) took a median {float(np.median(cpu)):.2f} ms "
        f"(middle 90% of jobs: {low:.2f}–{high:.2f} ms).{_drift_sentence(rows)}"
    )


def _drift_sentence(rows: Rows) -> str:
    """How far the CPU drifted against the floor between jobs, as the intervals include it."""
    drift = [float(r["drift"]) for r in rows if r.get("drift", "") not in ("", 0, 0.0)]
    if not drift:
        return ""
    return (
        " Between jobs, the CPU probe drifted against the floor by "
        f"{float(np.median(drift)):.1%} (a standard deviation): what pairing within one "
        "job cannot cancel, and what rounds sample."
    )


def headline_n(rows: Rows) -> int:
    """The n the summary and the verdict speak of: the largest measured in rounds (the
    cells measured at full rigour), else the largest measured."""
    in_rounds = [r["n"] for r in rows if len(claims.rounds_of(r)) >= 2]
    return max(in_rounds or [r["n"] for r in rows])


def _headline_note(rows: Rows, n: int) -> str:
    """What the summary leaves out: the larger n measured in one job per cell."""
    larger = sorted({r["n"] for r in rows if r["n"] > n})
    if not larger:
        return ""
    sizes = ", ".join(f"{m:,}" for m in larger)
    return (
        f" n = {sizes} was measured in one job per cell, without the rounds that make "
        "a number reproducible (its rows in results/tables give each interval's coverage; "
        "workflow/configs/full.yaml measures it in rounds)."
    )


def verdict_rst(tables: Mapping[str, Rows]) -> str:
    """The verdict at :func:`headline_n`, as reStructuredText (report.html's first page)."""
    store, read, usage = tables["store"], tables["read"], tables["usage"]
    return verdict.rst(tables, _floor(store + read + usage), headline_n(store + read))


def summary_markdown(
    tables: Mapping[str, Rows], environment: Mapping[str, Any] | None, repeats: int
) -> str:
    """One ranked table per question, at :func:`headline_n`."""
    store, read, usage = tables["store"], tables["read"], tables["usage"]
    n = headline_n(store + read)
    floor = _floor(store + read + usage)
    lines = [
        verdict.markdown(tables, floor, n),
        f"## Summary at n = {n:,} images",
        "",
        f"Every time was measured in pairs with the raw floor ({floor}: one .npy file read "
        "the fastest way this machine can) doing the same work in the same process, "
        "format first and floor first in turn. "
        + _method(store + read, repeats)
        + " Ranked by the ratio to the floor; lower is better. A format's rank runs from 1 "
        "plus the number of formats the run shows faster to the number of formats less "
        "those it shows slower (shown: round by round, the interval of the median paired "
        "difference covers at least 95% and excludes zero; one-job cells: intervals that "
        "do not overlap); two "
        "formats whose ranges share a rank are not put in order. "
        f"{reference_speeds(store + read)} {machine(environment)}"
        + _headline_note(store + read, n),
        "",
    ]
    lines += _ranked_timings(
        "Which format stores fastest?", "store s", _rows(store, n, measurement="store"), floor
    )
    questions = [
        ("warm", "sequential", "reads fastest from a warm cache, in order?"),
        ("cold", "sequential", "reads fastest from a cold cache, in order?"),
        ("warm", "random", "reads fastest shuffled, warm cache?"),
        ("cold", "random", "reads fastest shuffled, cold cache?"),
    ]
    for cache, order, question in questions:
        lines += _ranked_timings(
            f"Which format {question}",
            "read s",
            _rows(read, n, measurement="read", cache=cache, order=order),
            floor,
        )
    if tables.get("dataloader"):
        loader = tables["dataloader"]
        m = max(r["n"] for r in loader)
        best: dict[str, dict[str, Any]] = {}
        for row in loader:
            if row["n"] == m and row.get("ratio", "") != "":
                kept = best.get(row["format"])
                if kept is None or float(row["ratio"]) < float(kept["ratio"]):
                    best[row["format"]] = row
        lines += _ranked_timings(
            f"Which format feeds a shuffled DataLoader epoch fastest "
            f"(n = {m:,}, best num_workers)?",
            "epoch s",
            list(best.values()),
            floor,
        )
    sizes = {r["format"]: r["allocated_bytes"] / 2**20 for r in usage if r["n"] == n}
    per_image = {
        r["format"]: r["allocated_bytes"] / r["n"] for r in usage if r["n"] == n and r["n"]
    }
    lines += _ranked("Which format is smallest on disk?", "MiB allocated", sizes, floor, 4)
    if per_image:
        ranked = sorted(per_image.items(), key=lambda kv: kv[1])
        lines += ["Bytes per image: " + ", ".join(f"{f} {b:,.0f}" for f, b in ranked) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------
# Example results: docs/results.md, written whole, and the README's verdict

START, END = "<!-- verdict:start -->", "<!-- verdict:end -->"
# The one figure the README shows beside the verdict.
FRONT_FIGURE = "tradeoff"


def _run_date(results: Path) -> str:
    stamp = (Path(results) / "tables" / "summary.md").stat().st_mtime
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d")


def results_page(
    summary: str,
    config: Mapping[str, Any],
    environment: Mapping[str, Any] | None,
    figures: Sequence[str],
    figures_link: str,
    date: str,
) -> str:
    """docs/results.md: what the run was, its summary, and every figure with its caption."""
    formats = len(config.get("formats") or {})
    lines = [
        "# Example results",
        "",
        "<!-- Written by `python -m storebench examples` from a finished run; "
        "edits here are overwritten. -->",
        "",
        f"A run of {formats} formats on {config.get('n_images', 0):,} images (cutoffs "
        + ", ".join(f"{c:,}" for c in config.get("cutoffs", []))
        + f"), finished {date}. {machine(environment)} How each number was taken: "
        "[methods.md](methods.md); other runs and how they compare: [runs.md](runs.md).",
        "",
        summary.rstrip(),
        "",
        "## Figures",
        "",
    ]
    for name in figures:
        caption = FIGURES[name].caption.format(**_values(config))
        lines += [f"### {name}", "", f"![{name}]({figures_link}/{name}.png)", "", caption, ""]
    return "\n".join(lines).rstrip() + "\n"


def readme_verdict(summary: str, figure_link: str) -> str:
    """The README's block: the summary's verdict, one level down, and one figure."""
    verdict = summary.split("\n## Summary at", 1)[0].strip()
    verdict = "\n".join(
        "#" + line if line.startswith("#") else line for line in verdict.splitlines()
    )
    return (
        f"{verdict}\n\n![{FRONT_FIGURE}]({figure_link})\n\n"
        f"{FIGURES[FRONT_FIGURE].caption.split('. ')[0]}. Every table and figure of the run: "
        "[docs/results.md](docs/results.md).\n"
    )


def update_examples(
    results: Path, readme: Path, page: Path, figures_dir: Path, names: Sequence[str]
) -> list[str]:
    """Copy a run's figures (PNG) into ``figures_dir``, write ``page`` (docs/results.md)
    whole from its summary, config and environment, and put its verdict with one figure
    between the verdict markers of ``readme``. Returns the figures copied."""
    results = Path(results)
    summary = (results / "tables" / "summary.md").read_text()
    text = Path(readme).read_text()
    if START not in text or END not in text:
        raise StorebenchError(f"{readme}: no {START} ... {END} block to replace")
    config = yaml.safe_load((results / "config.yaml").read_text())
    env_path = results / "environment.json"
    environment = json.loads(env_path.read_text()) if env_path.is_file() else None
    copied = []
    figures_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = results / "figures" / f"{name}.png"
        if source.exists():
            shutil.copyfile(source, figures_dir / source.name)
            copied.append(name)
    page = Path(page)
    link = os.path.relpath(figures_dir, page.parent)
    page.write_text(results_page(summary, config, environment, copied, link, _run_date(results)))
    front = os.path.relpath(figures_dir / f"{FRONT_FIGURE}.png", Path(readme).parent)
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    block = readme_verdict(summary, front)
    Path(readme).write_text(f"{head}{START}\n{block}{END}{tail}")
    return copied
