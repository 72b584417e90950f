"""The subcommands that turn results into tables, figures and the summary, and those
a person runs to check a run or this machine: ``stages``, ``compare`` and
``benchmark MODE``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from storebench import datasetfile, results, rounds
from storebench.errors import StorebenchError
from storebench.present import cost, tables


def cmd_table(args: argparse.Namespace) -> None:
    rows_of, columns = tables.LAYOUTS[args.layout]
    loaded = results.check_one_run(args.inputs, args.stage)
    tables.write_table(rows_of(loaded), columns, args.csv, args.md)


def cmd_size_table(args: argparse.Namespace) -> None:
    from storebench import sweep

    found: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for item in args.table:
        size, _, path = item.partition("=")
        name = Path(path).stem
        found.setdefault(int(size), {})[name] = tables.read_table(Path(path))
    rows = sweep.rows(found)
    tables.write_csv(rows, sweep.COLUMNS, args.csv)
    results.write_text(sweep.markdown(rows, args.megabytes), args.md)


def cmd_tier_table(args: argparse.Namespace) -> None:
    from storebench import tiers as storage
    from storebench.present import tiers

    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    filesystems: dict[str, str] = {}
    prices: dict[str, float] = {}
    for item in args.table:
        name, _, path = item.partition("=")
        table, _, tier = name.partition("@")
        if table == "tier":
            described = results.read_json(Path(path))
            filesystems[tier] = storage.where(described)
            if described.get("object_store"):
                prices[tier] = described["object_store"].get("price_per_1000_requests", math.nan)
        else:
            found.setdefault(tier, {})[table] = tables.read_table(Path(path))
    here = Path(args.csv).resolve().parent.parent  # this run's results/
    local = storage.describe(storage.LOCAL, {"kind": "local"}, here)
    filesystems.setdefault(storage.LOCAL, storage.where(local))
    rows = tiers.rows(found, filesystems)
    tables.write_csv(rows, tiers.COLUMNS, args.csv)
    results.write_text(tiers.markdown(rows, found, filesystems, prices), args.md)


def cmd_noise(args: argparse.Namespace) -> None:
    rows = tables.noisy_rows(args.inputs, args.threshold)
    tables.write_table(rows, tables.NOISE_COLUMNS, args.csv, args.md)


def cmd_cost(args: argparse.Namespace) -> None:
    tables.write_table(cost.cost_rows(args.inputs), cost.COST_COLUMNS, args.csv, args.md)


def cmd_summary(args: argparse.Namespace) -> None:
    from storebench.present import publish

    environment = results.read_json(args.environment) if args.environment else None
    named = _named_tables(args.table)
    results.write_text(publish.summary_markdown(named, environment, args.repeats), args.out)
    if args.verdict:
        results.write_text(publish.verdict_rst(named), args.verdict)


def cmd_figure(args: argparse.Namespace) -> None:
    from storebench.present import figures  # matplotlib: imported only by the jobs that draw

    figures.render(args.name, _named_tables(args.table), args.out, args.order)


def _named_tables(items: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """``NAME=path.csv`` arguments, loaded."""
    loaded = {}
    for item in items:
        name, _, path = item.partition("=")
        loaded[name] = tables.read_table(Path(path))
    return loaded


def cmd_partial(args: argparse.Namespace) -> None:
    from storebench.present import partial

    for line in partial.build(args.plan):
        print(line)


def cmd_config_docs(args: argparse.Namespace) -> None:
    from storebench.present import configdoc

    if args.check:
        if not configdoc.update(args.doc, args.schema, args.config, check=True):
            raise StorebenchError(
                f"{args.doc} is stale against {args.schema} and {args.config}; "
                "run `python -m storebench config-docs` and commit it"
            )
        print(f"{args.doc}: up to date")
        return
    configdoc.update(args.doc, args.schema, args.config)
    print(f"{args.doc}: rendered from {args.schema} and {args.config}")


def cmd_examples(args: argparse.Namespace) -> None:
    from storebench.present import catalog, publish

    copied = publish.update_examples(
        args.results, args.readme, args.page, args.figures, list(catalog.FIGURES)
    )
    print(
        f"{args.page}: written from {args.results}; {args.readme}: its verdict; "
        f"{len(copied)} figures -> {args.figures}"
    )


def cmd_stages(args: argparse.Namespace) -> None:
    rows = cost.stage_rows(args.benchmarks)
    if not rows:
        raise StorebenchError(f"no benchmark files under {args.benchmarks}; run the workflow first")
    total = sum(r["wall_s"] for r in rows)
    print(f"{'stage':<10} {'jobs':>5} {'wall s':>9} {'share':>6} {'peak RSS MB':>12}")
    for row in sorted(rows, key=lambda r: -r["wall_s"]):
        print(
            f"{row['stage']:<10} {row['jobs']:>5} {row['wall_s']:>9.1f} "
            f"{row['wall_s'] / total:>6.0%} {row['max_rss_mb']:>12.0f}"
        )
    print(f"{'total':<10} {sum(r['jobs'] for r in rows):>5} {total:>9.1f}")


def cmd_compare(args: argparse.Namespace) -> None:
    from storebench.present import compare

    if args.second is None:
        print(compare.self_check(args.first, args.min_n), end="")
    else:
        print(compare.report(args.first, args.second, args.min_n), end="")


def _benchmarks() -> Any:
    """The benchmarks module, imported only by the commands that use it."""
    from storebench import benchmarks

    return benchmarks


def cmd_benchmark_traps(args: argparse.Namespace) -> None:
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="benchmark.", dir=args.work))
    try:
        if args.what in ("traps", "allocation"):
            _benchmarks().allocation_trap(images, labels, work)
        if args.what in ("traps", "deletion"):
            _benchmarks().deletion_trap(work, images[: args.store_n], labels[: args.store_n])
    finally:
        shutil.rmtree(work)


def cmd_benchmark_read_buffer(args: argparse.Namespace) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    _benchmarks().read_buffer(args.side, args.n, args.rounds, args.work)


def cmd_benchmark_link(args: argparse.Namespace) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    _benchmarks().link(args.work, args.repeats)


def cmd_benchmark_compare(args: argparse.Namespace) -> None:
    _benchmarks().compare(args.tables[0], args.tables[1], args.min_n)


def cmd_benchmark_floor(args: argparse.Namespace) -> None:
    _benchmarks().floor(args.results, args.floor)


def cmd_benchmark_host(args: argparse.Namespace) -> None:
    _benchmarks().host_stability(args.seconds)


def cmd_benchmark_memory(args: argparse.Namespace) -> None:
    _benchmarks().memory(args.results)


def cmd_benchmark_interleaved(args: argparse.Namespace) -> None:
    from storebench import config  # jsonschema: imported only where a config is checked

    formats = config.check(yaml.safe_load(args.config.read_text()))
    _benchmarks().interleaved(
        args.results, formats, args.formats or list(formats), args.n, args.rounds, args.floor
    )


def cmd_benchmark_replay(args: argparse.Namespace) -> None:
    from storebench.present import replay

    policy = replay.Shorter(args.repeats, args.time_cap_s, args.precision, args.max_rounds)
    print(replay.report(args.runs[0], args.runs[1], policy, args.min_n))


def _benchmark_parsers(sub: Any) -> None:
    """``benchmark MODE``: one subcommand per measurement of this machine, each with its
    own options."""
    bench = sub.add_parser("benchmark", help="print what this machine does (traps, run drift)")
    modes = bench.add_subparsers(dest="mode", required=True, metavar="MODE")

    def results_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", type=Path, default=Path("results"), help="a run's results")

    def floor_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--floor", default="raw", help="the raw floor format's name")

    traps = {
        "allocation": "an HDF5 read into fresh vs pre-touched memory",
        "deletion": "file creation and a PNG store, quiet and after a mass delete",
    }
    traps["traps"] = " and ".join(traps.values())
    for what, helptext in traps.items():
        p = modes.add_parser(what, help=f"{helptext} (a finished run's dataset)")
        p.add_argument("--images", type=Path, default=Path("results/dataset/images.npy"))
        p.add_argument("--labels", type=Path, default=Path("results/dataset/labels.npy"))
        p.add_argument("--n", type=int, default=100_000, help="images read (allocation)")
        p.add_argument("--store-n", type=int, default=10_000, help="images per PNG store")
        p.add_argument("--work", type=Path, default=Path("results/scratch"))
        p.set_defaults(func=cmd_benchmark_traps, what=what)

    p = modes.add_parser(
        "read-buffer", help="HDF5 shuffled reads, a scratch buffer made per read vs reused"
    )
    p.add_argument("--side", type=int, default=256, help="image side (px)")
    p.add_argument("--n", type=int, default=1000, help="images read")
    p.add_argument("--rounds", type=int, default=15, help="pairs (old, new)")
    p.add_argument("--work", type=Path, default=Path("results/scratch"))
    p.set_defaults(func=cmd_benchmark_read_buffer)

    p = modes.add_parser(
        "link", help="the emulated links to the S3 server storebench starts (the tiers extra)"
    )
    p.add_argument("--repeats", type=int, default=15, help="measurements of each quantity")
    p.add_argument("--work", type=Path, default=Path("results/scratch"))
    p.set_defaults(func=cmd_benchmark_link)

    p = modes.add_parser("compare", help="how far each median moved between two read tables")
    p.add_argument("--tables", type=Path, nargs=2, required=True, help="two runs' read.csv")
    p.add_argument("--min-n", type=int, default=10_000, help="smallest n shown")
    p.set_defaults(func=cmd_benchmark_compare)

    p = modes.add_parser("replay", help="two finished runs as fewer pairs would have measured them")
    p.add_argument("runs", type=Path, nargs=2, metavar="RESULTS", help="two runs' results")
    p.add_argument("--repeats", type=int, default=2, help="the fewest pairs replayed")
    p.add_argument("--time-cap-s", type=float, default=3.0, help="the time cap replayed")
    p.add_argument("--precision", type=float, default=0.05, help="the precision replayed")
    p.add_argument("--max-rounds", type=int, help="the most rounds a cell keeps (default: all)")
    p.add_argument("--min-n", type=int, default=10_000, help="smallest n compared")
    p.set_defaults(func=cmd_benchmark_replay)

    p = modes.add_parser("floor", help="each format at the largest n, and over the raw floor")
    results_arg(p)
    floor_arg(p)
    p.set_defaults(func=cmd_benchmark_floor)

    p = modes.add_parser("host", help="how much this machine's speed drifts while idle")
    p.add_argument("--seconds", type=float, default=240, help="how long to probe")
    p.set_defaults(func=cmd_benchmark_host)

    p = modes.add_parser("memory", help="peak memory of every measuring job")
    results_arg(p)
    p.set_defaults(func=cmd_benchmark_memory)

    p = modes.add_parser("interleaved", help="warm sequential reads, every format each round")
    results_arg(p)
    floor_arg(p)
    p.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="the run's config (for the formats' options)",
    )
    p.add_argument("--formats", nargs="+", help="formats to read (default: all)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--n", type=int, default=100_000, help="images read")
    p.set_defaults(func=cmd_benchmark_interleaved)


def add_commands(sub: Any) -> None:
    """Add these subcommands to the parser's ``sub`` (subparsers)."""
    _benchmark_parsers(sub)
    p = sub.add_parser("table", help="tidy CSV + Markdown table from result files")
    p.add_argument("layout", choices=sorted(tables.LAYOUTS))
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument(
        "--stage", choices=rounds.STAGES, help="of round files, take this stage's records"
    )
    p.add_argument("inputs", type=Path, nargs="+")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("tier-table", help="the tiers table: every storage tier side by side")
    p.add_argument(
        "--table", action="append", required=True, help="TABLE@TIER=path.csv or tier@TIER=tier.json"
    )
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.set_defaults(func=cmd_tier_table)

    p = sub.add_parser("size-table", help="the size sweep's table: time per image by size")
    p.add_argument("--table", action="append", default=[], help="SIZE=path.csv (repeated)")
    p.add_argument("--megabytes", type=float, required=True)
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.set_defaults(func=cmd_size_table)

    p = sub.add_parser("noise", help="list measurements whose spread is too wide to trust")
    p.add_argument(
        "--threshold",
        type=float,
        required=True,
        help="largest half-width of a ratio's interval (relative)",
    )
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("inputs", type=Path, nargs="+", help="timing tables (CSV)")
    p.set_defaults(func=cmd_noise)

    p = sub.add_parser("cost", help="the workflow's cost per stage and n (benchmark files)")
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("inputs", type=Path, nargs="+", help="Snakemake benchmark .tsv files")
    p.set_defaults(func=cmd_cost)

    p = sub.add_parser("summary", help="summary.md: one ranked table per question")
    p.add_argument("--table", action="append", default=[], help="NAME=path.csv")
    p.add_argument("--environment", type=Path, help="the run's environment.json")
    p.add_argument("--repeats", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--verdict", type=Path, help="also the verdict as reStructuredText")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("figure", help="draw one figure from tables")
    p.add_argument("name", help="figure name (see storebench.present.catalog.FIGURES)")
    p.add_argument("--table", action="append", default=[], help="NAME=path.csv")
    p.add_argument("--out", type=Path, nargs="+", required=True, help="paths: .png .svg .pdf")
    p.add_argument("--order", nargs="*", default=[], help="the run's formats, in config order")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser(
        "partial", help="tables, verdict and figures of an unfinished run (--keep-going)"
    )
    p.add_argument("plan", type=Path, help="the plan the workflow's onerror hook wrote")
    p.set_defaults(func=cmd_partial)

    p = sub.add_parser(
        "examples", help="write docs/results.md and the README's verdict from a finished run"
    )
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--page", type=Path, default=Path("docs/results.md"))
    p.add_argument("--figures", type=Path, default=Path("workflow/report/examples"))
    p.set_defaults(func=cmd_examples)

    p = sub.add_parser("config-docs", help="render docs/configuration.md from config and schema")
    p.add_argument("--doc", type=Path, default=Path("docs/configuration.md"))
    p.add_argument("--schema", type=Path, default=Path("workflow/schemas/config.schema.yaml"))
    p.add_argument("--config", type=Path, default=Path("config.yaml"))
    p.add_argument("--check", action="store_true", help="fail if the document is stale")
    p.set_defaults(func=cmd_config_docs)

    p = sub.add_parser("stages", help="print wall time and peak memory per stage")
    p.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser(
        "compare", help="does a rerun reproduce a run? (one run: its odd rounds against even)"
    )
    p.add_argument("first", type=Path, help="results folder of run A")
    p.add_argument(
        "second", type=Path, nargs="?", help="results folder of run B (none: a self-check of A)"
    )
    p.add_argument("--min-n", type=int, default=10_000, help="smallest n compared")
    p.set_defaults(func=cmd_compare)
