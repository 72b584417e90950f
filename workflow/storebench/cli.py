"""Command line entry points; each Snakemake rule calls one subcommand.

Errors a user can cause print one line (``storebench: error: ...``) and exit 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from storebench import cifar, cost, host, measure, provenance, results, single, tables, usage
from storebench.errors import StorebenchError
from storebench.formats import Format, make_format
from storebench.sampling import Policy

log = logging.getLogger("storebench")


def _format(args: argparse.Namespace) -> Format:
    return make_format(args.format, json.loads(args.spec))


def _reference(args: argparse.Namespace) -> Format:
    """The reference every sample is paired with (the raw floor)."""
    return make_format(args.reference_format, json.loads(args.reference_spec))


def _policy(args: argparse.Namespace) -> Policy:
    return Policy(
        min_pairs=args.repeats,
        max_pairs=max(args.repeats, args.max_pairs),
        precision=args.precision,
        time_cap_s=args.time_cap_s,
    )


def _paired(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of a measuring function: reference store, policy, seed."""
    return {
        "reference": (_reference(args), args.reference_store),
        "policy": _policy(args),
        "seed": args.seed,
    }


def _meta(args: argparse.Namespace, fmt: Format) -> dict[str, Any]:
    """What made a result (:func:`storebench.provenance.describe`)."""
    images = getattr(args, "images", None)
    paired = getattr(args, "reference_format", None)
    sampling = {key: getattr(args, key, None) for key in ("max_pairs", "precision", "time_cap_s")}
    return provenance.describe(
        args.format,
        fmt,
        args.n,
        reference=(paired, _reference(args)) if paired else None,
        dataset=cifar.dataset_identity(images) if images else None,
        settings={
            "repeats": getattr(args, "repeats", None),
            "sampling": sampling,
            "seed": getattr(args, "seed", None),
        },
    )


def _write_read(args: argparse.Namespace, fmt: Format, order: str, result: dict[str, Any]) -> None:
    """Save a read's result with the order and seed of the indices it read."""
    results.write_json(
        {**_meta(args, fmt), "order": order, "seed": args.seed, **result}, args.result
    )


def _dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The first n images (memory-mapped; jobs take them a chunk at a time) and labels
    (one byte each, in memory)."""
    images, labels = cifar.load_dataset(args.images, args.labels)
    if args.n > len(images):
        raise StorebenchError(f"n={args.n} exceeds the dataset's {len(images)} images")
    return images[: args.n], np.array(labels[: args.n])


def cmd_download(args: argparse.Namespace) -> None:
    from storebench import download  # an HTTP client: imported only by the job that needs it

    download.download(args.url, args.out, args.md5)


def cmd_extract(args: argparse.Namespace) -> None:
    cifar.extract(args.archive, args.out, args.md5)


def cmd_dataset(args: argparse.Namespace) -> None:
    cifar.build_dataset(args.extracted, args.n_images, args.images, args.labels)


def cmd_store(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = _dataset(args)
    quiet = host.QuietFilesystem(
        args.out.parent, args.max_wait_s, args.slow_factor, args.baseline, args.trash
    )
    result, staged = measure.measure_store(
        fmt,
        images,
        labels,
        args.out,
        args.trash,
        None,
        quiet,
        reference=_reference(args),
        policy=_policy(args),
        seed=args.seed,
    )
    results.write_json({**_meta(args, fmt), **result}, args.result)
    os.replace(staged, args.out)  # last: a job killed before this leaves no store behind


def cmd_read(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = _dataset(args)
    indices = measure.read_indices(args.n, args.order, args.seed)
    result = measure.measure_read(
        fmt, args.store, images, labels, indices, args.cache, **_paired(args)
    )
    _write_read(args, fmt, args.order, result)


def cmd_parallel(args: argparse.Namespace) -> None:
    from storebench import parallel

    fmt = _format(args)
    indices = measure.read_indices(args.n, "random", args.seed)
    result = parallel.measure_parallel(
        fmt,
        args.store,
        args.images,
        args.labels,
        indices,
        args.workers,
        args.cache,
        **_paired(args),
    )
    _write_read(args, fmt, "random", result)


def cmd_dataloader(args: argparse.Namespace) -> None:
    try:
        from storebench import torchdata
    except ImportError as exc:
        raise StorebenchError(f"{exc}; install the extra: pip install -e '.[torch]'") from None
    fmt = _format(args)
    images, labels = _dataset(args)
    indices = measure.read_indices(args.n, "random", args.seed)
    result = torchdata.measure_epochs(
        fmt, args.store, images, labels, indices, args.batch_size, args.num_workers, **_paired(args)
    )
    _write_read(args, fmt, "random", result)


def cmd_latency(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = _dataset(args)
    rng = np.random.default_rng(args.seed)
    indices = rng.integers(0, args.n, args.samples)
    result = single.measure_latency(
        fmt,
        args.store,
        images,
        labels,
        indices,
        reference=(_reference(args), args.reference_store),
        seed=args.seed,
    )
    results.write_json(
        {**_meta(args, fmt), "cache": "warm", "seed": args.seed, **result}, args.result
    )


def cmd_environment(args: argparse.Namespace) -> None:
    from storebench import environment

    info = environment.describe(args.results_dir)
    info["versions"]["snakemake"] = args.snakemake_version
    results.write_json(info, args.out)
    if args.config_out:  # the run's effective config, for the report and for `publish`
        config_yaml = yaml.safe_dump(json.loads(args.config_json), sort_keys=False)
        results.write_text(config_yaml, args.config_out)


def cmd_noise(args: argparse.Namespace) -> None:
    rows = tables.noisy_rows(args.inputs, args.threshold)
    tables.write_table(rows, tables.NOISE_COLUMNS, args.csv, args.md)


def cmd_single(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = _dataset(args)
    args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="single.", dir=args.scratch))
    try:
        result = single.measure_single(
            fmt,
            images[0],
            labels[0],
            scratch,
            reference=_reference(args),
            policy=_policy(args),
            seed=args.seed,
        )
    finally:
        shutil.rmtree(scratch)
    results.write_json({**_meta(args, fmt), **result}, args.result)


def cmd_usage(args: argparse.Namespace) -> None:
    fmt = _format(args)
    results.write_json(
        {**_meta(args, fmt), "usage": usage.disk_usage(fmt, args.store)}, args.result
    )


def cmd_table(args: argparse.Namespace) -> None:
    rows_of, columns = tables.LAYOUTS[args.layout]
    tables.write_table(rows_of(results.check_one_run(args.inputs)), columns, args.csv, args.md)


def cmd_cost(args: argparse.Namespace) -> None:
    tables.write_table(cost.cost_rows(args.inputs), cost.COST_COLUMNS, args.csv, args.md)


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


def _benchmarks() -> Any:
    """The benchmarks module, imported only by the commands that use it."""
    from storebench import benchmarks

    return benchmarks


def cmd_benchmark_traps(args: argparse.Namespace) -> None:
    images, labels = _dataset(args)
    args.work.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="benchmark.", dir=args.work))
    try:
        if args.what in ("traps", "allocation"):
            _benchmarks().allocation_trap(images, labels, work)
        if args.what in ("traps", "deletion"):
            _benchmarks().deletion_trap(work, images[: args.store_n], labels[: args.store_n])
    finally:
        shutil.rmtree(work)


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


def cmd_compare(args: argparse.Namespace) -> None:
    from storebench import compare

    print(compare.report(args.first, args.second, args.min_n), end="")


def cmd_figure(args: argparse.Namespace) -> None:
    from storebench import figures  # matplotlib: imported only by the jobs that draw

    figures.render(args.name, _named_tables(args.table), args.out, args.order)


def _named_tables(items: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """``NAME=path.csv`` arguments, loaded."""
    loaded = {}
    for item in items:
        name, _, path = item.partition("=")
        loaded[name] = tables.read_table(Path(path))
    return loaded


def cmd_summary(args: argparse.Namespace) -> None:
    from storebench import publish

    environment = results.read_json(args.environment) if args.environment else None
    text = publish.summary_markdown(_named_tables(args.table), environment, args.repeats)
    results.write_text(text, args.out)


def cmd_examples(args: argparse.Namespace) -> None:
    from storebench import catalog, publish

    copied = publish.update_examples(args.results, args.readme, args.figures, list(catalog.FIGURES))
    print(f"{args.readme}: summary from {args.results}; {len(copied)} figures -> {args.figures}")


def _format_args(
    parser: argparse.ArgumentParser, store: bool = False, sampled: bool = True
) -> None:
    parser.add_argument("--format", required=True, help="format name in config.yaml")
    parser.add_argument("--spec", required=True, help="the format's config entry, as JSON")
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True, help="JSON result file")
    parser.add_argument("--reference-format", required=True, help="the floor's name")
    parser.add_argument("--reference-spec", required=True, help="the floor's entry, as JSON")
    if sampled:
        parser.add_argument("--repeats", type=int, default=3, help="fewest pairs")
        parser.add_argument("--max-pairs", type=int, default=200)
        parser.add_argument(
            "--precision",
            type=float,
            default=0.05,
            help="stop when the median ratio's 95%% interval is within +/- this",
        )
        parser.add_argument("--time-cap-s", type=float, default=30.0, help="per job")
    if store:
        parser.add_argument("--store", type=Path, required=True, help="the store's folder")
        parser.add_argument(
            "--reference-store", type=Path, required=True, help="the floor's store of the same n"
        )


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

    p = modes.add_parser("compare", help="how far each median moved between two read tables")
    p.add_argument("--tables", type=Path, nargs=2, required=True, help="two runs' read.csv")
    p.add_argument("--min-n", type=int, default=10_000, help="smallest n shown")
    p.set_defaults(func=cmd_benchmark_compare)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storebench", description=__doc__)
    parser.add_argument("--log", type=Path, help="write progress to this file, not stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("download", help="download the archive (resumed, md5-verified)")
    p.add_argument("--url", required=True)
    p.add_argument("--md5", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("extract", help="verify and safely extract the archive")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--md5", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("dataset", help="unpickle the training set and expand it")
    p.add_argument("--extracted", type=Path, required=True)
    p.add_argument("--n-images", type=int, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True)
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("store", help="timed: write a store (repeated; keeps the last)")
    _format_args(p)
    p.add_argument("--out", type=Path, required=True, help="the store's folder")
    p.add_argument("--trash", type=Path, required=True, help="where replaced stores go")
    p.add_argument("--seed", type=int, required=True, help="which of a pair goes first")
    p.add_argument("--slow-factor", type=float, required=True, help="filesystem_probe")
    p.add_argument("--max-wait-s", type=float, required=True, help="filesystem_probe")
    p.add_argument(
        "--baseline",
        type=Path,
        required=True,
        help="the run's quiet file-creation level (shared JSON)",
    )
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("read", help="timed: read a whole store back and validate it")
    _format_args(p, store=True)
    p.add_argument("--cache", choices=measure.CACHES, required=True)
    p.add_argument("--order", choices=measure.ORDERS, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("parallel", help="timed: P processes read disjoint shuffled shards")
    _format_args(p, store=True)
    p.add_argument("--cache", choices=measure.CACHES, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_parallel)

    p = sub.add_parser("dataloader", help="timed: shuffled epochs through a PyTorch DataLoader")
    _format_args(p, store=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--num-workers", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_dataloader)

    p = sub.add_parser("latency", help="timed: single-image reads from a store")
    _format_args(p, store=True, sampled=False)
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_latency)

    p = sub.add_parser("environment", help="describe the machine and library versions")
    p.add_argument("--results-dir", type=Path, required=True)
    p.add_argument("--snakemake-version", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config-json", default="{}", help="the run's config, as JSON")
    p.add_argument("--config-out", type=Path, help="where to write it as YAML")
    p.set_defaults(func=cmd_environment)

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

    p = sub.add_parser("single", help="timed: store and read one image on its own")
    _format_args(p)
    p.add_argument("--scratch", type=Path, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_single)

    p = sub.add_parser("usage", help="disk usage of a store")
    p.add_argument("--format", required=True)
    p.add_argument("--spec", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.set_defaults(func=cmd_usage)

    p = sub.add_parser("table", help="tidy CSV + Markdown table from result files")
    p.add_argument("layout", choices=sorted(tables.LAYOUTS))
    p.add_argument("--csv", type=Path, required=True)
    p.add_argument("--md", type=Path, required=True)
    p.add_argument("inputs", type=Path, nargs="+")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("stages", help="print wall time and peak memory per stage")
    p.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    p.set_defaults(func=cmd_stages)

    _benchmark_parsers(sub)

    p = sub.add_parser("compare", help="do two runs agree? paired ratios and absolute times")
    p.add_argument("first", type=Path, help="results folder of run A")
    p.add_argument("second", type=Path, help="results folder of run B")
    p.add_argument("--min-n", type=int, default=10_000, help="smallest n compared")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("figure", help="draw one figure from tables")
    p.add_argument("name", help="figure name (see storebench.catalog.FIGURES)")
    p.add_argument("--table", action="append", default=[], help="NAME=path.csv")
    p.add_argument("--out", type=Path, nargs="+", required=True, help="paths: .png .svg .pdf")
    p.add_argument("--order", nargs="*", default=[], help="the run's formats, in config order")
    p.set_defaults(func=cmd_figure)

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
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("examples", help="copy a run's figures and summary into the README")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--figures", type=Path, default=Path("workflow/report/examples"))
    p.set_defaults(func=cmd_examples)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.FileHandler(args.log, mode="w") if args.log else logging.StreamHandler()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=[handler]
    )
    try:
        args.func(args)
    except StorebenchError as exc:
        # One line, in the rule's log and on the terminal where snakemake runs.
        log.error("error: %s", exc)
        if args.log:
            print(f"storebench: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (| head): no traceback, no more output
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception:
        log.exception("unexpected failure (a bug: please report it with this log)")
        raise
    return 0
