import importlib.util
import re
import os
import json
import shlex
import shutil
import subprocess
import sys

import snakemake
from pathlib import Path
from snakemake.logging import logger

# The storebench package lives in workflow/; jobs run `python -m storebench`.
PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_DIR)

import storebench.config  # noqa: E402
import storebench.dataset  # noqa: E402
import storebench.formatenv  # noqa: E402
import storebench.formats.base  # noqa: E402
import storebench.diskspace  # noqa: E402
import storebench.payload  # noqa: E402
import storebench.plan  # noqa: E402
import storebench.present.partial  # noqa: E402
import storebench.present.publish  # noqa: E402
import storebench.resources  # noqa: E402
import storebench.sweep  # noqa: E402
import storebench.training  # noqa: E402
import storebench.tiers  # noqa: E402
from storebench.errors import StorebenchError  # noqa: E402
from storebench.present.catalog import (  # noqa: E402
    FIGURES,
    TABLES as TABLE_RECORDS,
    TIMING_TABLES as TIMING_TABLE_NAMES,
)

# A key given twice, or an anchor bomb: YAML would read the file other than it reads.
try:
    for _path in dict.fromkeys(workflow.configfiles):  # --configfile's, or config.yaml
        storebench.config.check_file(Path(_path))
except StorebenchError as error:
    raise WorkflowError(f"storebench: error: {error}") from None

try:
    storebench.config.normalize(config)
    FORMAT_OBJECTS = storebench.config.check(config)
except StorebenchError as error:
    raise WorkflowError(f"storebench: error: config.yaml: {error}") from None

ENV = "../../envs/storebench.yaml"
TORCH_ENV = "../../envs/torch.yaml"
PHOTOS_ENV = "../../envs/photos.yaml"
RESULTS = "results"
TRASH = f"{RESULTS}/.trash"
# The environments of their own that some formats' jobs run in (storebench.formatenv):
# below results/, or where a run that started this one (a tier's) keeps them.
ENVS = os.environ.get(storebench.formatenv.VARIABLE) or f"{RESULTS}/envs"
shell.prefix(
    "set -euo pipefail; "
    f"export PYTHONPATH={shlex.quote(PACKAGE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    f"export STOREBENCH_ENVS={shlex.quote(str(Path(ENVS).resolve()))}; "
)
# The verdict (which format to pick), also the first page of report.html.
VERDICT = f"{RESULTS}/tables/verdict.rst"
PARTIAL = f"{RESULTS}/partial"
# The dataset every measuring job reads; dataset.json says which data it is.
DATASET = dict(
    images=f"{RESULTS}/dataset/images.npy",
    labels=f"{RESULTS}/dataset/labels.npy",
    meta=f"{RESULTS}/dataset/dataset.json",
    shapes=f"{RESULTS}/dataset/shapes.npy",
)
# What the dataset will be; its image shape sizes the disk and memory plans.
DATASET_SPEC = config["dataset"]
try:
    IMAGE_SHAPE = storebench.dataset.planned_shape(DATASET_SPEC)
    # A folder kept at native sizes that differ: images of their own sizes.
    VARIABLE_SIZE = storebench.dataset.planned_variable(DATASET_SPEC)
    storebench.payload.check_sides(FORMAT_OBJECTS, IMAGE_SHAPE)
except StorebenchError as error:
    raise WorkflowError(f"storebench: error: config.yaml: {error}") from None
IMAGE_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
if VARIABLE_SIZE and (
    fixed := [f for f, o in FORMAT_OBJECTS.items() if not o.variable_size]
):
    raise WorkflowError(
        f"storebench: error: config.yaml: dataset: the images of {DATASET_SPEC['path']} have "
        f"different sizes, and formats {', '.join(fixed)} store images of one size; set "
        "dataset.size to resize them, or leave those formats out"
    )
# A resized or folder source is staged on disk before it is repeated.
STAGED = DATASET_SPEC["kind"] != "cifar10" or bool(DATASET_SPEC.get("size"))
FORMATS = list(config["formats"])
# The reference every timed job pairs its format with: the raw floor (kind npy).
FLOOR = next((f for f, o in FORMAT_OBJECTS.items() if o.kind == "npy"), None)
if FLOOR is None:
    raise WorkflowError(
        "storebench: error: config.yaml: formats: no format of kind npy; every timing is paired "
        "with the raw floor, so add one (e.g. raw: {kind: npy})"
    )
CUTOFFS = config["cutoffs"]
# The cutoff whose stores single images are read from.
LATENCY_N = config.get("latency_n") or max(CUTOFFS)
# The image-size sweep: one run of the workflow per size, under results/sizes/.
SWEEP = config["size_sweep"]
SIZES = SWEEP["sizes"]
# Storage tiers: one run of the workflow per tier, its tables copied to results/tiers/.
TIERS = config["tiers"]
# The tables made only when the run has a size sweep or tiers.
OPTIONAL_TABLES = (*(["image_size"] if SIZES else []), *(["tiers"] if TIERS else []))
CACHES = config["caches"]
ORDERS = config["orders"]
# A format's unit (an HDF5 chunk, a Zarr shard) is held in memory whole: bound it.
try:
    storebench.formats.base.check_units(FORMAT_OBJECTS, [(IMAGE_SHAPE, max(CUTOFFS))])
    storebench.formats.base.check_units(
        {f: FORMAT_OBJECTS[f] for f in SWEEP.get("formats") or FORMATS},
        [((s, s, 3), storebench.sweep.images_at(s, SWEEP["megabytes"])) for s in SIZES],
    )
except StorebenchError as error:
    raise WorkflowError(f"storebench: error: config.yaml: {error}") from None
# Cells at from_n <= n <= to_n (config rounds) are measured in rounds (storebench.rounds): their own
# store or read job is round 1, then one `round` job per further round.
import storebench.rounds  # noqa: E402

ROUNDS = storebench.rounds.Settings.of(config.get("rounds"))
# A format with an environment of its own is measured in one job per cell at every n:
# a round job measures every format in one process, the project's.
OWN_ENV = {f for f, o in FORMAT_OBJECTS.items() if o.environment}
ROUND_CELLS = storebench.rounds.cells(
    [f for f in FORMATS if f not in OWN_ENV], CUTOFFS, CACHES, ORDERS, ROUNDS
)
ROUND_NUMBERS = list(range(2, ROUNDS.max_rounds + 1)) if ROUND_CELLS else []
PARALLEL = config["parallel"]
DATALOADER = config["dataloader"]
HAS_TORCH = importlib.util.find_spec("torch") is not None
if (notice := storebench.plan.platform_notice()) is not None:
    logger.warning(notice)
if VARIABLE_SIZE and DATALOADER["cutoffs"]:
    logger.warning(
        "storebench: the images have different sizes, so the DataLoader jobs are left out "
        "(its batches stack images of one size)"
    )
    DATALOADER = {**DATALOADER, "cutoffs": []}
TRAINING = config["training"]
if not HAS_TORCH:
    left_out = [
        *(["the DataLoader jobs"] if DATALOADER["cutoffs"] else []),
        *(
            ["the training loop's worker-process rows (its thread rows run)"]
            if TRAINING["cutoffs"] and TRAINING["processes"]
            else []
        ),
    ]
    if left_out:
        logger.warning(
            f"storebench: PyTorch is not installed, so {' and '.join(left_out)} are left "
            "out (pip install -e '.[torch]' to run them)"
        )
# The training loop's loader runs (threads-w1, ..., processes-w1, ...).
TRAINING_SETS = storebench.training.loader_sets(TRAINING, HAS_TORCH)
# crop: null on a folder at native sizes: the job crops to its smallest image's side.
TRAINING_CROP = "" if TRAINING["crop"] is None else f"--crop {TRAINING['crop']}"
TRAINING_CUTOFFS = TRAINING["cutoffs"] if TRAINING_SETS else []
# Timing tables (the catalog's list): those of the jobs this run has.
RUNS_TABLE = {
    "parallel": bool(PARALLEL["cutoffs"]),
    "dataloader": bool(DATALOADER["cutoffs"]) and HAS_TORCH,
    "training": bool(TRAINING_CUTOFFS),
}
TIMING_TABLES = tuple(t for t in TIMING_TABLE_NAMES if RUNS_TABLE.get(t, True))
TABLES = (*TIMING_TABLES, "usage", "latency")
# The wildcard values each table's result files are expanded over.
MAIN_GRID = dict(format=FORMATS, n=CUTOFFS, cache=CACHES, order=ORDERS)
TABLE_GRIDS = {
    "parallel": dict(
        format=FORMATS,
        n=PARALLEL["cutoffs"],
        cache=PARALLEL["caches"],
        workers=PARALLEL["workers"],
    ),
    "dataloader": dict(
        format=FORMATS,
        n=DATALOADER["cutoffs"],
        batch=[DATALOADER["batch_size"]],
        num_workers=DATALOADER["num_workers"],
    ),
    "training": dict(format=FORMATS, n=TRAINING_CUTOFFS, loader=TRAINING_SETS),
}


wildcard_constraints:
    format="|".join(FORMATS),
    n=r"\d+",
    table="|".join(TABLES),
    cache="|".join(CACHES),
    order="|".join(ORDERS),
    figure="|".join(FIGURES),
    workers=r"\d+",
    round=r"\d+",
    env=r"[a-z0-9_]+",
    batch=r"\d+",
    num_workers=r"\d+",
    loader=r"(threads|processes)-w\d+",
    tier="|".join(map(re.escape, TIERS)) or "(?!)",


def get_archive():
    """The archive to extract: the local one from config, else the download."""
    return config["cifar10"].get("archive") or f"{RESULTS}/data/cifar-10-python.tar.gz"


def get_archive_input():
    """The archive as a rule's input. A local one is ancient(): cifar10.md5 pins its
    content (a param of the rules that read it, checked on extract), so a copy of it
    with a newer time (a new mount, a copy) reruns nothing. The download is not: it is
    a job's output, and ancient() would keep a new download from rerunning the jobs
    after it."""
    archive = get_archive()
    return ancient(archive) if config["cifar10"].get("archive") else archive


def get_dataset_input():
    """What the dataset is built from: CIFAR-10's extracted archive; nothing for an image
    folder (its state is a parameter, see get_dataset_args)."""
    if DATASET_SPEC["kind"] == "cifar10":
        return rules.extract.output
    if DATASET_SPEC["kind"] == "photos":
        return rules.photos.output
    return []


def get_dataset_args(wildcards):
    """The dataset command's source, kind and size (an image folder's state is a param of
    its own, get_source_state, so a changed folder rebuilds the dataset)."""
    kind = DATASET_SPEC["kind"]
    if kind == "cifar10":
        source = rules.extract.output[0]
    elif kind == "photos":  # a folder of JPEG files the photos rule makes
        kind, source = "imagefolder", rules.photos.output[0]
    else:
        source = DATASET_SPEC["path"]
    size = DATASET_SPEC.get("size")
    return " ".join(
        [
            f"--kind {kind} --source {shlex.quote(str(source))}",
            f"--size {size[0]} {size[1]}" if size else "",
        ]
    )


def get_sweep_archive():
    """The CIFAR-10 archive every size's run reads (none for an image folder)."""
    return [get_archive_input()] if DATASET_SPEC["kind"] == "cifar10" else []


def get_sweep_config(wildcards):
    """The config of one size's run (storebench.sweep.sub_config), as JSON for the command
    line: only what that run measures reruns it."""
    import storebench.sweep

    archive = get_sweep_archive()
    sub = storebench.sweep.sub_config(
        config, int(wildcards.size), archive[0] if archive else None
    )
    return shlex.quote(json.dumps(sub))


def get_size_work(wildcards, output):
    """The folder of one size's run: its tables are in results/tables below it."""
    return str(Path(output.tables[0]).parents[2])


def get_sweep_tables(wildcards):
    """Every size's store, read and usage tables, by name."""
    return {
        f"{table}_{size}": f"{RESULTS}/sizes/{size}/results/tables/{table}.csv"
        for size in SIZES
        for table in storebench.sweep.TABLES
    }


def get_sweep_table_args(wildcards, input):
    return " ".join(
        f"--table {name.rsplit('_', 1)[1]}={shlex.quote(path)}"
        for name, path in input.items()
        if name != "environment"
    )


def get_tier_config(wildcards):
    """The config of one tier's run (storebench.tiers.sub_config), as JSON for the
    command line: only what that run measures reruns it."""
    archive = get_sweep_archive()
    sub = storebench.tiers.sub_config(
        config, wildcards.tier, archive[0] if archive else None
    )
    return shlex.quote(json.dumps(sub))


def get_tier_spec(wildcards):
    return shlex.quote(json.dumps(TIERS[wildcards.tier]))


def get_tier_tables(wildcards):
    """This run's (the local tier's) and every tier's tables and tier.json, by name."""
    found = {
        f"{table}@{storebench.tiers.LOCAL}": f"{RESULTS}/tables/{table}.csv"
        for table in storebench.tiers.TABLES
    }
    for tier in TIERS:
        found[f"tier@{tier}"] = f"{RESULTS}/tiers/{tier}/tier.json"
        for table in storebench.tiers.TABLES:
            found[f"{table}@{tier}"] = f"{RESULTS}/tiers/{tier}/tables/{table}.csv"
    return found


def get_tier_table_args(wildcards, input):
    return " ".join(
        f"--table {name}={shlex.quote(path)}"
        for name, path in input.items()
        if name != "environment"
    )


def get_source_state(wildcards):
    return storebench.dataset.source_state(DATASET_SPEC)


def get_format_env(wildcards):
    """The environment of its own a format's jobs run in, built before them (none for
    most formats)."""
    name = FORMAT_OBJECTS[wildcards.format].environment
    return [f"{ENVS}/{name}/{storebench.formatenv.READY}"] if name else []


def get_format_spec(wildcards):
    """The format's config entry as JSON, for the job's command line."""
    return json.dumps(config["formats"][wildcards.format])


def get_paired_args(wildcards):
    """The reference (the floor) and the sampling policy, for a timed job's command line."""
    sampling = config["sampling"]
    return (
        f"--reference-format {FLOOR}"
        f" --reference-spec {shlex.quote(json.dumps(config['formats'][FLOOR]))}"
        f" --repeats {config['repeats']} --max-pairs {sampling['max_pairs']}"
        f" --precision {sampling['precision']} --time-cap-s {sampling['time_cap_s']}"
        f" --max-steal {sampling['max_steal']}"
        f" --rounds-json {shlex.quote(json.dumps(config.get('rounds') or {}))}"
    )


def get_round_args(wildcards):
    """A store or read job's part in the rounds: round 1 of its cell (at n >= from_n),
    and a planted slowdown (config test_slowdown, test only)."""
    in_rounds = ROUNDS.applies(int(wildcards.n)) and wildcards.format not in OWN_ENV
    args = " --round 1" if in_rounds else ""
    slowdown = (config.get("test_slowdown") or {}).get(wildcards.format)
    return args + (f" --slowdown {slowdown}" if slowdown else "")


def get_round_history(wildcards):
    """What round r decides from: every round cell's round 1 (its store or read job)
    and rounds 2 .. r-1."""
    first = [
        (
            expand(rules.store.output.result, format=c.format, n=c.n)[0]
            if c.stage == "store"
            else expand(
                rules.read.output.result,
                format=c.format,
                n=c.n,
                cache=c.cache,
                order=c.order,
            )[0]
        )
        for c in ROUND_CELLS
    ]
    earlier = expand(rules.round.output.result, round=range(2, int(wildcards.round)))
    return first + earlier


def get_round_stores(wildcards):
    """Every store a round reads: each round cell's format and the floor at its n."""
    pairs = {(c.format, c.n) for c in ROUND_CELLS} | {(FLOOR, c.n) for c in ROUND_CELLS}
    return sorted(
        expand(rules.store.output.store, format=f, n=n)[0] for f, n in sorted(pairs)
    )


def get_round_config(wildcards):
    """What a round job needs of the config, as JSON for its command line."""
    keys = (
        "formats",
        "cutoffs",
        "caches",
        "orders",
        "rounds",
        "sampling",
        "repeats",
        "seed",
        "filesystem_probe",
        "test_slowdown",
    )
    return shlex.quote(json.dumps({k: config.get(k) for k in keys}))


def get_round_fingerprint(wildcards):
    """The code and libraries of every format a round measures."""
    import storebench.provenance

    return storebench.provenance.fingerprint(*FORMAT_OBJECTS.values())


def get_reference_store(wildcards):
    """The floor's store of the same n: what a read is paired with."""
    return expand(rules.store.output.store, format=FLOOR, n=wildcards.n)


def get_fingerprint(wildcards):
    """The code, modules and library versions a timed job's numbers depend on: a
    change reruns the job (Snakemake's params trigger) instead of reusing a stale result.
    """
    import storebench.provenance

    return storebench.provenance.fingerprint(
        FORMAT_OBJECTS[wildcards.format], FORMAT_OBJECTS[FLOOR]
    )


def get_table_inputs(wildcards):
    """Result files of one table, in config order of formats, then cutoffs."""
    # Each table is named after the rule whose results it summarises.
    pattern = getattr(rules, wildcards.table).output.result
    found = expand(pattern, **TABLE_GRIDS.get(wildcards.table, MAIN_GRID))
    if wildcards.table in storebench.rounds.STAGES and ROUND_CELLS:
        found += expand(rules.round.output.result, round=ROUND_NUMBERS)
    return found


def get_table_stage(wildcards):
    """Which records of the round files a table takes (a round measures stores and reads)."""
    return (
        f"--stage {wildcards.table}"
        if wildcards.table in storebench.rounds.STAGES
        else ""
    )


def get_cost_inputs():
    """The benchmark file of every job whose cost scales with the data."""
    files = [rules.dataset.benchmark]
    if DATASET_SPEC["kind"] == "cifar10":  # an image folder is not extracted
        files.insert(0, rules.extract.benchmark)
    for table in TIMING_TABLES + ("usage", "latency"):
        grid = TABLE_GRIDS.get(table, MAIN_GRID)
        files += expand(getattr(rules, table).benchmark, **grid)
    return list(dict.fromkeys(files))


def get_table_layout(wildcards):
    """How the table makes rows of its result files (its record in storebench.present.catalog)."""
    return TABLE_RECORDS[wildcards.table].layout


def get_table_columns(wildcards):
    """The table's columns: a change in layout makes Snakemake rebuild the table."""
    from storebench.present.tables import LAYOUTS

    return ",".join(LAYOUTS[get_table_layout(wildcards)][1])


def get_latency_store(wildcards):
    """The store of this format single images are read from (at LATENCY_N)."""
    return expand(rules.store.output.store, format=wildcards.format, n=LATENCY_N)


def get_latency_reference_store(wildcards):
    """The floor's store at LATENCY_N (latency's reference)."""
    return expand(rules.store.output.store, format=FLOOR, n=LATENCY_N)


def get_figure_tables(wildcards):
    """The tables one figure is drawn from, by table name."""
    needed = FIGURES[wildcards.figure].tables
    return {name: f"{RESULTS}/tables/{name}.csv" for name in needed}


def get_figure_table_args(wildcards, input):
    return " ".join(
        f"--table {name}={path}"
        for name, path in input.items()
        if name != "environment"
    )


def _environment(input):
    """The run's environment.json, read once the job's input exists (report captions)."""
    with open(input.environment) as handle:
        return json.load(handle)


def get_figure_topic(wildcards):
    return FIGURES[wildcards.figure].topic


def get_figure_caption(wildcards, input):
    return storebench.present.publish.figure_caption(
        wildcards.figure, config, _environment(input)
    )


def get_caption_of(table=None):
    """A table's caption: ``table``, or the rule's ``{table}`` wildcard if None."""

    def get_caption(wildcards, input):
        name = table or wildcards.table
        return storebench.present.publish.table_caption(
            name, config, _environment(input)
        )

    return get_caption


def get_summary_tables(wildcards):
    """The tables summary.md ranks the formats in."""
    names = ["store", "read", "usage", "latency"] + [
        t for t in ("dataloader", "training") if t in TABLES
    ]
    return {name: f"{RESULTS}/tables/{name}.csv" for name in names}


def get_final_outputs():
    """Every table and figure of a full run, and the environment it ran in."""
    tables = expand(
        f"{RESULTS}/tables/{{table}}.{{ext}}",
        table=(*TABLES, "noise", *OPTIONAL_TABLES),
        ext=("csv", "md"),
    )
    drawn = [
        name
        for name, figure in FIGURES.items()
        if set(figure.tables) <= {*TABLES, "cost", *OPTIONAL_TABLES}
    ]
    figures = expand(
        f"{RESULTS}/figures/{{figure}}.{{ext}}",
        figure=drawn,
        ext=config["figure_formats"],
    )
    return [
        *tables,
        *figures,
        *rules.cost.output,
        f"{RESULTS}/tables/summary.md",
        *rules.environment.output,
    ]


def empty_trash():
    """Delete replaced stores once no timed job can be slowed down by it, and the
    partial results of an earlier run that did not finish (onsuccess)."""
    shutil.rmtree(TRASH, ignore_errors=True)
    shutil.rmtree(PARTIAL, ignore_errors=True)


def report_partial():
    """onerror, with --keep-going only: the tables, summary, verdict and figures of
    the jobs that finished, in results/partial/, and which formats did not finish
    (storebench.present.partial)."""
    if not workflow.execution_settings.keep_going:
        return
    planned = {}
    for table in TABLES:
        pattern = getattr(rules, table).output.result
        grid = TABLE_GRIDS.get(table, MAIN_GRID)
        by_format = {
            fmt: list(dict.fromkeys(expand(pattern, **{**grid, "format": [fmt]})))
            for fmt in FORMATS
        }
        in_rounds = table in storebench.rounds.STAGES and ROUND_CELLS
        planned[table] = {
            "layout": TABLE_RECORDS[table].layout,
            "stage": table if table in storebench.rounds.STAGES else None,
            "by_format": by_format,
            "shared": (
                expand(rules.round.output.result, round=ROUND_NUMBERS)
                if in_rounds
                else []
            ),
        }
    plan = Path(PARTIAL, "plan.json")
    storebench.present.partial.write_plan(
        plan,
        {
            "out": PARTIAL,
            "logs": f"{RESULTS}/logs",
            "tables": planned,
            "environment": rules.environment.output.json,
            "repeats": config["repeats"],
            "order": FORMATS,
            "figure_formats": config["figure_formats"],
        },
    )
    command = [
        sys.executable,
        "-m",
        "storebench",
        "--log",
        f"{RESULTS}/logs/partial.log",
    ]
    subprocess.run([*command, "partial", str(plan)], check=False, env=_package_env())


def _package_env():
    """The environment with this checkout's package first on PYTHONPATH."""
    paths = [PACKAGE_DIR, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def get_bench_threads(wildcards):
    """Timed jobs take every core, so no other job runs beside them. On a cluster
    (no --cores), the profile gives them a whole node, and they ask for the cores
    their own worker processes use."""
    try:
        return workflow.cores
    except WorkflowError:
        workers = [
            *PARALLEL["workers"],
            *(n + 1 for n in DATALOADER["num_workers"]),
            *(n + 1 for n in TRAINING["processes"]),
        ]
        return max(workers, default=1)


def start_run():
    """Before the first job (onstart): refuse a plan whose stores cannot fit on the
    disk, then say what the run will do: jobs per stage, disk, and how long these
    jobs took when they last ran here."""
    jobs = list(workflow.dag.needrun_jobs())
    stores = [
        (
            FORMAT_OBJECTS[job.wildcards.format],
            int(job.wildcards.n),
            Path(RESULTS, "stores", job.wildcards.format, job.wildcards.n).exists(),
        )
        for job in jobs
        if job.rule.name == "store"
    ]
    dataset = (
        config["n_images"] if any(j.rule.name == "dataset" for j in jobs) else None
    )
    need, count = storebench.diskspace.plan_bytes(
        stores, config["repeats"], dataset, IMAGE_BYTES, staged=STAGED
    )
    planned_rounds = sum(job.rule.name == "round" for job in jobs)
    need += storebench.diskspace.round_bytes(
        [(FORMAT_OBJECTS[c.format], c.n) for c in ROUND_CELLS if c.stage == "store"],
        planned_rounds,
        IMAGE_BYTES,
    )
    global RUN_LOCK
    try:
        free = storebench.diskspace.check(need, count, config["repeats"], Path(RESULTS))
        # After the disk check (which writes nothing), before the first job.
        RUN_LOCK = storebench.plan.lock_run(Path(RESULTS))
    except StorebenchError as error:
        raise WorkflowError(f"storebench: error: {error}") from None
    counts = {}
    for job in jobs:
        counts[job.rule.name] = counts.get(job.rule.name, 0) + 1
    last = [storebench.plan.benchmark_seconds(job.benchmark) for job in jobs]
    for line in storebench.plan.describe(counts, need, free, last, Path(RESULTS)):
        logger.info(line)


def _job_n(stage, wildcards):
    """The number of images a job of ``stage`` holds."""
    if "n" in wildcards.keys():
        return int(wildcards.n)
    return {
        "dataset": config["n_images"],
        "latency": LATENCY_N,
        "round": max(CUTOFFS),
        "tier_run": max(CUTOFFS),
        "single": 1,
    }.get(stage, 0)


def get_resources(stage):
    """mem_mb, runtime (min) and disk_mb of a ``stage`` job, for schedulers (profiles)."""

    def mem_mb(wildcards):
        return storebench.resources.mem_mb(stage, _job_n(stage, wildcards), IMAGE_BYTES)

    def runtime(wildcards):
        return storebench.resources.runtime_min(stage, _job_n(stage, wildcards))

    def disk_mb(wildcards):
        fmt = FORMAT_OBJECTS.get(wildcards.get("format"))
        n = _job_n(stage, wildcards)
        return storebench.resources.disk_mb(
            stage, n, fmt, config["repeats"], IMAGE_BYTES
        )

    return {"mem_mb": mem_mb, "runtime": runtime, "disk_mb": disk_mb}
