"""The subcommands the workflow's data and measuring jobs run: download, extract,
photos, dataset, the timed store, read, parallel, DataLoader, training-loop, latency and
single-image jobs, disk usage and the environment. Each loads its input, calls the measuring
code and writes one result file with its provenance.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from storebench import cifar, datasetfile, host, measure, provenance, results, rounds, single, usage
from storebench.errors import StorebenchError
from storebench.formats import Format, make_format
from storebench.sampling import Policy

log = logging.getLogger(__name__)


def _format(args: argparse.Namespace) -> Format:
    return make_format(args.format, json.loads(args.spec))


def _reference(args: argparse.Namespace) -> Format:
    """The reference every sample is paired with (the raw floor)."""
    return make_format(args.reference_format, json.loads(args.reference_spec))


def _policy(args: argparse.Namespace) -> Policy:
    if getattr(args, "round", None) is not None:  # round 1 of a cell measured in rounds
        settings = rounds.Settings.of(json.loads(args.rounds_json))
        return Policy.within_round(settings.cell_s, settings.max_pairs, args.max_steal)
    return Policy(
        min_pairs=args.repeats,
        max_pairs=max(args.repeats, args.max_pairs),
        precision=args.precision,
        time_cap_s=args.time_cap_s,
        max_steal=args.max_steal,
    )


def _paired(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of a measuring function: reference store, policy, seed."""
    return {
        "reference": (_reference(args), args.reference_store),
        "policy": _policy(args),
        "seed": args.seed,
    }


def _round_kwargs(args: argparse.Namespace, cell: rounds.Cell) -> dict[str, Any]:
    """A store or read job's first side of each pair (balanced across rounds when the
    cell is measured in rounds) and its planted slowdown (config ``test_slowdown``)."""
    first = rounds.first_side(cell, args.round) if args.round is not None else None
    return {"first_side": first, "slowdown": args.slowdown}


def _round_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What a store or read result records of its round and planted slowdown."""
    fields: dict[str, Any] = {"round": args.round} if args.round is not None else {}
    return fields | ({"slowdown": args.slowdown} if args.slowdown != 1 else {})


def _dataset_identity(args: argparse.Namespace) -> dict[str, Any] | None:
    """What dataset.json says of the dataset a job used (its --dataset-meta, or the one
    beside its --images)."""
    meta = getattr(args, "dataset_meta", None)
    if meta is not None:
        return results.read_json(meta)
    images = getattr(args, "images", None)
    return datasetfile.dataset_identity(images) if images else None


def _meta(args: argparse.Namespace, fmt: Format) -> dict[str, Any]:
    """What made a result (:func:`storebench.provenance.describe`)."""
    paired = getattr(args, "reference_format", None)
    config = {
        "repeats": getattr(args, "repeats", None),
        "sampling": {
            key: getattr(args, key, None)
            for key in ("max_pairs", "precision", "time_cap_s", "max_steal")
        },
        "seed": getattr(args, "seed", None),
        "rounds": json.loads(getattr(args, "rounds_json", None) or "{}"),
    }
    return provenance.describe(
        args.format,
        fmt,
        args.n,
        reference=(paired, _reference(args)) if paired else None,
        dataset=_dataset_identity(args),
        settings=provenance.run_settings(config),
    )


def _write_read(args: argparse.Namespace, fmt: Format, order: str, result: dict[str, Any]) -> None:
    """Save a read's result with the order and seed of the indices it read."""
    results.write_json(
        {**_meta(args, fmt), "order": order, "seed": args.seed, **result}, args.result
    )


def cmd_download(args: argparse.Namespace) -> None:
    from storebench import download  # an HTTP client: imported only by the job that needs it

    download.download(args.url, args.out, args.md5)


def cmd_extract(args: argparse.Namespace) -> None:
    cifar.extract(args.archive, args.out, args.md5)


def cmd_photos(args: argparse.Namespace) -> None:
    from storebench import photos

    made = photos.make(args.out, args.n, tuple(args.size), args.seed)
    log.info("photos: %s", made)


def cmd_dataset(args: argparse.Namespace) -> None:
    from storebench import dataset

    size = tuple(args.size) if args.size else None
    dataset.build(args.kind, args.source, args.n_images, args.images, args.labels, size)


def cmd_store(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
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
        **_round_kwargs(args, rounds.Cell("store", args.format, args.n)),
    )
    results.write_json({**_meta(args, fmt), **result, **_round_fields(args)}, args.result)
    os.replace(staged, args.out)  # last: a job killed before this leaves no store behind


def cmd_read(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
    indices = measure.read_indices(args.n, args.order, args.seed)
    cell = rounds.Cell("read", args.format, args.n, args.cache, args.order)
    result = measure.measure_read(
        fmt,
        args.store,
        images,
        labels,
        indices,
        args.cache,
        **_paired(args),
        **_round_kwargs(args, cell),
    )
    _write_read(args, fmt, args.order, {**result, **_round_fields(args)})


def cmd_round(args: argparse.Namespace) -> None:
    from storebench import roundjob

    result = roundjob.measure_round(
        args.round,
        json.loads(args.config_json),
        args.floor,
        (args.images, args.labels),
        args.stores,
        (args.scratch, args.trash, args.baseline),
        args.history,
    )
    results.write_json(result, args.result)


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
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
    indices = measure.read_indices(args.n, "random", args.seed)
    result = torchdata.measure_epochs(
        fmt, args.store, images, labels, indices, args.batch_size, args.num_workers, **_paired(args)
    )
    _write_read(args, fmt, "random", result)


def cmd_training(args: argparse.Namespace) -> None:
    from storebench import training

    fmt = _format(args)
    loader, workers = training.parse_loader(args.loader)
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
    order = measure.read_indices(args.n, "random", args.seed)
    crop = args.crop if args.crop is not None else training.smallest_side(images)
    loop = training.Loop(args.batch_size, args.step_ms / 1e3, crop)
    if loader == "processes":
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise StorebenchError(
                f"{exc}; the processes loader needs the extra: pip install -e '.[torch]'"
            ) from None
    result = training.measure_loop(
        fmt, args.store, images, labels, order, loop, loader, workers, **_paired(args)
    )
    _write_read(args, fmt, "random", {**result, "target_au": args.target_au})


def cmd_latency(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
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


def cmd_single(args: argparse.Namespace) -> None:
    fmt = _format(args)
    images, labels = datasetfile.load_first(args.images, args.labels, args.n)
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


def cmd_size_run(args: argparse.Namespace) -> None:
    from storebench import sweep

    config = json.loads(args.config_json)  # the size's own (storebench.sweep.sub_config)
    sweep.run(args.size, config, args.work, args.cores, args.snakefile, args.run_log)


def cmd_tier_run(args: argparse.Namespace) -> None:
    from storebench import tiers

    spec = json.loads(args.spec_json)  # the tier's entry in config tiers
    config = json.loads(args.config_json)  # the tier's own run (storebench.tiers.sub_config)
    tiers.run(args.tier, spec, config, args.out, args.cores, args.snakefile, args.run_log)


def cmd_usage(args: argparse.Namespace) -> None:
    fmt = _format(args)
    results.write_json(
        {**_meta(args, fmt), "usage": usage.disk_usage(fmt, args.store)}, args.result
    )


def cmd_env(args: argparse.Namespace) -> None:
    from storebench import formatenv

    folder = formatenv.place(args.name, args.envs)
    record = formatenv.build(args.name, folder)
    log.info("built the %s environment in %.0f s: %s", args.name, record["build_s"], folder)


def cmd_environment(args: argparse.Namespace) -> None:
    from storebench import environment

    info = environment.describe(args.results_dir)
    info["versions"]["snakemake"] = args.snakemake_version
    results.write_json(info, args.out)
    if args.config_out:  # the run's effective config, for the report and for `publish`
        config_yaml = yaml.safe_dump(json.loads(args.config_json), sort_keys=False)
        results.write_text(config_yaml, args.config_out)


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
        parser.add_argument(
            "--max-steal",
            type=float,
            default=0.05,
            help="retake a pair when the host stole more than this share of its time",
        )
        parser.add_argument(
            "--rounds-json", default="{}", help="config.yaml's rounds, as JSON (recorded)"
        )
    if store:
        parser.add_argument("--store", type=Path, required=True, help="the store's folder")
        parser.add_argument(
            "--reference-store", type=Path, required=True, help="the floor's store of the same n"
        )


def _round_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--round", type=int, help="the cell is measured in rounds: this job is its round 1"
    )
    parser.add_argument(
        "--slowdown", type=float, default=1.0, help="planted slowdown (config test_slowdown)"
    )


def _subrun_args(p: argparse.ArgumentParser) -> None:
    """The arguments of a job that runs the workflow inside itself (storebench.subrun)."""
    p.add_argument("--config-json", required=True, help="the inner run's config, as JSON")
    p.add_argument("--cores", type=int, required=True)
    p.add_argument("--snakefile", type=Path, required=True)
    p.add_argument("--run-log", type=Path, required=True, help="the inner run's output")


def add_commands(sub: Any) -> None:
    """Add these subcommands to the parser's ``sub`` (subparsers)."""
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

    p = sub.add_parser("photos", help="JPEG crops of scikit-image's photographs, a folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--size", type=int, nargs=2, required=True, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_photos)

    p = sub.add_parser("dataset", help="the dataset: CIFAR-10 or your images, repeated to n")
    p.add_argument("--kind", choices=("cifar10", "imagefolder"), default="cifar10")
    p.add_argument(
        "--source", type=Path, required=True, help="the extracted archive, or the image folder"
    )
    p.add_argument("--size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), help="resize to")
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
    _round_args(p)
    p.set_defaults(func=cmd_store)

    p = sub.add_parser("read", help="timed: read a whole store back and validate it")
    _format_args(p, store=True)
    p.add_argument("--cache", choices=measure.CACHES, required=True)
    p.add_argument("--order", choices=measure.ORDERS, required=True)
    p.add_argument("--seed", type=int, required=True)
    _round_args(p)
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("round", help="timed: one round over the cells measured in rounds")
    p.add_argument("--round", type=int, required=True, help="the round's number (2, 3, ...)")
    p.add_argument("--config-json", required=True, help="the run's config, as JSON")
    p.add_argument("--floor", required=True, help="the floor's format name")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--labels", type=Path, required=True)
    p.add_argument("--stores", type=Path, required=True, help="the folder of every store")
    p.add_argument("--scratch", type=Path, required=True, help="where stores are rewritten")
    p.add_argument("--trash", type=Path, required=True, help="where replaced stores go")
    p.add_argument("--baseline", type=Path, required=True, help="filesystem_probe's level")
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("history", type=Path, nargs="+", help="the results of earlier rounds")
    p.set_defaults(func=cmd_round)

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

    p = sub.add_parser("training", help="timed: the emulated training loop through a loader")
    _format_args(p, store=True)
    p.add_argument("--loader", required=True, help="threads-wW or processes-wW")
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--step-ms", type=float, required=True, help="the emulated step per batch")
    p.add_argument(
        "--crop", type=int, help="the augmentation's output side (default: the smallest image's)"
    )
    p.add_argument("--target-au", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_training)

    p = sub.add_parser("latency", help="timed: single-image reads from a store")
    _format_args(p, store=True, sampled=False)
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.set_defaults(func=cmd_latency)

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
    p.add_argument("--dataset-meta", type=Path, help="the dataset's dataset.json")
    p.add_argument("--result", type=Path, required=True)
    p.set_defaults(func=cmd_usage)

    p = sub.add_parser("size-run", help="the experiment at one image size (the size sweep)")
    p.add_argument("--size", type=int, required=True, help="square image side, px")
    p.add_argument("--work", type=Path, required=True, help="the size's run folder")
    _subrun_args(p)
    p.set_defaults(func=cmd_size_run)

    p = sub.add_parser("tier-run", help="the experiment on one storage tier")
    p.add_argument("--tier", required=True, help="the tier's name in config tiers")
    p.add_argument("--spec-json", required=True, help="the tier's entry, as JSON")
    p.add_argument("--out", type=Path, required=True, help="where its tables are copied")
    _subrun_args(p)
    p.set_defaults(func=cmd_tier_run)

    p = sub.add_parser("env", help="build a format's own environment (envs/<name>.txt)")
    p.add_argument("name", help="the environment, e.g. mds")
    p.add_argument("--envs", type=Path, required=True, help="the folder that holds them")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("environment", help="describe the machine and library versions")
    p.add_argument("--results-dir", type=Path, required=True)
    p.add_argument("--snakemake-version", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--config-json", default="{}", help="the run's config, as JSON")
    p.add_argument("--config-out", type=Path, help="where to write it as YAML")
    p.set_defaults(func=cmd_environment)
