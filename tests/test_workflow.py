"""The workflow itself: lint, plans, a full run on a made-up archive in the official
layout, and one run on the real CIFAR-10 sample where ../shared holds it."""

from __future__ import annotations

import copy
import csv
import html
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from storebench import rounds as storebench_rounds
from storebench import stats
from storebench.config import normalize
from storebench.diskspace import store_bytes
from storebench.download import md5sum
from storebench.formats import make_format
from storebench.measure import read_indices
from storebench.present.catalog import FIGURES
from storebench.present.cost import read_table_tsv
from storebench.results import read_json
from storebench.validation import checksum

from conftest import (
    REAL_SAMPLE_MD5,
    ROOT,
    SAMPLE_TRAIN,
    local_config,
    marked,
    serve,
    snakemake,
    snakemake_call,
    training_set_of,
    write_config,
)

# One format of every kind (the article's pickled LMDB, chunked gzip HDF5), to keep the run quick;
# test_formats.py covers every configured variant.
FORMATS = ["raw", "png", "lmdb", "hdf5_gzip", "tfrecord"]
CUTOFFS = [10, 1000]
REPEATS = 2
N_IMAGES = 6000  # the 5,000-image sample repeated, then cut: not a multiple
PARALLEL = {"cutoffs": [1000], "workers": [1, 2], "caches": ["warm", "cold"]}
DATALOADER = {"cutoffs": [1000], "batch_size": 64, "num_workers": [0, 2]}
TRAINING = {
    "cutoffs": [1000],
    "batch_size": 64,
    "step": "resnet50-a100",
    "step_ms": 20,
    "crop": 24,
    "target_au": 0.9,
    "threads": [1, 2],
    "processes": [1],
    "repeats": 3,
}
HAS_TORCH = importlib.util.find_spec("torch") is not None
# The shared run measures every cell in one job (its counts are known); test_rounds_*
# runs the rounds.
NO_ROUNDS = {**yaml.safe_load((ROOT / "config.yaml").read_text())["rounds"], "from_n": None}
TABLES = [
    "store",
    "read",
    "single",
    "parallel",
    *(["dataloader"] if HAS_TORCH else []),
    "training",
]
DRAWN = [
    name
    for name, figure in FIGURES.items()
    if set(figure.tables) <= {*TABLES, "usage", "latency", "cost"}
]
# Every figure of a run without the image-size sweep or storage tiers (whose figures need
# runs of their own).
RUN_FIGURES = [
    name for name, figure in FIGURES.items() if not {"image_size", "tiers"} & set(figure.tables)
]


def small_config(work: Path, cifar10: dict) -> Path:
    formats = yaml.safe_load((ROOT / "config.yaml").read_text())["formats"]
    return write_config(
        work,
        cifar10=cifar10,
        formats={name: formats[name] for name in FORMATS},
        n_images=N_IMAGES,
        cutoffs=CUTOFFS,
        repeats=REPEATS,
        filesystem_probe={"slow_factor": 3, "max_wait_s": 0},
        latency_samples=50,
        parallel=PARALLEL,
        dataloader=DATALOADER,
        training=TRAINING,
        rounds=NO_ROUNDS,
    )


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake plan, as {rule: count}."""
    lines = output.split("Job stats:")[1].splitlines()
    counts = {}
    for line in lines[3:]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Iterator[Path]:
    """A full run, downloading the sample from a server on 127.0.0.1."""
    work = tmp_path_factory.mktemp("run")
    with serve(sample.read_bytes()) as server:
        config = small_config(work, {"url": server.url, "md5": md5sum(sample), "archive": None})
        snakemake(work, "--cores", "2", "--configfile", str(config))
    yield work


def test_lint_and_format() -> None:
    lint = snakemake(ROOT, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = subprocess.run(  # from the root, so .gitignore'd folders (venvs) are skipped
        [sys.executable, "-m", "snakefmt", "--check", "."], capture_output=True, text=True, cwd=ROOT
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def expected_plan(config: dict) -> dict[str, int]:
    """Job counts a config's plan must have: one store per format and cutoff, four
    reads per store, and the parallel and DataLoader grids."""
    config = copy.deepcopy(config)
    normalize(config)
    n_formats = len(config["formats"])
    n_stores = n_formats * len(config["cutoffs"])
    parallel, dataloader, training = config["parallel"], config["dataloader"], config["training"]
    loaders = len(training["threads"]) + (len(training["processes"]) if HAS_TORCH else 0)
    trains = n_formats * len(training["cutoffs"]) * loaders
    expected = {
        "download": 1,
        "extract": 1,
        "dataset": 1,
        "store": n_stores,
        "read": n_stores * len(config["caches"]) * len(config["orders"]),
        "usage": n_stores,
        "single": n_formats,
        "latency": n_formats,
        "parallel": n_formats
        * len(parallel["cutoffs"])
        * len(parallel["workers"])
        * len(parallel["caches"]),
        "dataloader": n_formats * len(dataloader["cutoffs"]) * len(dataloader["num_workers"]),
        "training": trains,
        "table": 7 + bool(trains),
        "round": _round_jobs(config),
        "noise": 1,
        "figure": len(RUN_FIGURES) - (0 if trains else 2),
        "environment": 1,
        "summary": 1,
        "cost": 1,
        "all": 1,
    }
    if not HAS_TORCH:
        expected.update(dataloader=0, table=expected["table"] - 1, figure=expected["figure"] - 1)
    return {k: v for k, v in expected.items() if v}


def _round_jobs(config: dict) -> int:
    """One round job per round past the first, where any cell is measured in rounds."""
    settings = storebench_rounds.Settings.of(config.get("rounds"))
    if not any(settings.applies(n) for n in config["cutoffs"]):
        return 0
    return settings.max_rounds - 1


def test_default_plan(tmp_path: Path) -> None:
    plan = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config.yaml"))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert job_counts(plan.stdout) == expected_plan(config)
    # What the default leaves out for time: a 2-core run of about half an hour.
    assert "png_fast" not in config["formats"]
    assert config["parallel"]["caches"] == ["warm"]
    assert config["dataloader"]["num_workers"] == [2]


def test_full_config_adds_what_the_default_leaves_out(tmp_path: Path) -> None:
    full = ROOT / "workflow" / "configs" / "full.yaml"
    plan = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config.yaml"), str(full))
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["formats"].update(png_fast={"kind": "png", "compress_level": 1})
    config["parallel"]["caches"] = ["warm", "cold"]
    config["dataloader"]["num_workers"] = [0, 2]
    assert job_counts(plan.stdout) == expected_plan(config)
    assert "png_fast" in plan.stdout and "cold-p2" in plan.stdout


def per_format(output: str, rule: str) -> dict[str, int]:
    """How many distinct result files of ``rule`` a plan names for each format."""
    files = set(re.findall(rf"results/measurements/{rule}/([^/\s,]+)/(\d+)\.json", output))
    counts: dict[str, int] = {}
    for name, _ in files:
        counts[name] = counts.get(name, 0) + 1
    return counts


def plan_from_root(*configfiles: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` run where a user runs it: the repository's root (``-p`` first:
    with the commands)."""
    flags = [f for f in configfiles if f.startswith("-")]
    files = [f for f in configfiles if not f.startswith("-")]
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *flags, "--configfile", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_scale_config_replaces_config_yaml_and_plans_only_its_formats() -> None:
    scale = yaml.safe_load((ROOT / "workflow/configs/scale-1m.yaml").read_text())
    summary = plan_from_root("workflow/configs/scale-1m.yaml").stdout
    assert job_counts(summary)["store"] == len(scale["formats"]) * len(scale["cutoffs"])
    stores = per_format(summary, "store")
    assert stores == {name: len(scale["cutoffs"]) for name in scale["formats"]}
    assert set(stores) == {"raw", "lmdb_raw", "hdf5", "tfrecord"}  # no PNG at 1,000,000


def test_full_config_layers_on_config_yaml() -> None:
    summary = plan_from_root("config.yaml", "workflow/configs/full.yaml").stdout
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert per_format(summary, "store") == {
        name: len(default["cutoffs"]) for name in [*default["formats"], "png_fast"]
    }


def test_modern_config_adds_todays_formats_and_the_shard_order() -> None:
    summary = plan_from_root("config.yaml", "workflow/configs/modern.yaml").stdout
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    modern = yaml.safe_load((ROOT / "workflow/configs/modern.yaml").read_text())
    formats = [*default["formats"], *modern["formats"]]
    assert {"webdataset", "parquet"} <= set(default["formats"])
    assert per_format(summary, "store") == {name: len(default["cutoffs"]) for name in formats}
    shard_reads = re.findall(
        r"results/measurements/read/([^/\s]+)/(\d+)/(\w+)-shards\.json", summary
    )
    assert len(set(shard_reads)) == len(formats) * len(default["cutoffs"]) * len(default["caches"])


def test_loaders_config_adds_the_loaders_formats_to_every_stage() -> None:
    from conftest import missing_extras

    if missing_extras() and os.environ.get("STOREBENCH_REQUIRE_EXTRAS") != "1":
        pytest.skip(f"extras not installed: {sorted(set(missing_extras().values()))}")
    summary = plan_from_root("config.yaml", "workflow/configs/loaders.yaml").stdout
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    loaders = yaml.safe_load((ROOT / "workflow/configs/loaders.yaml").read_text())
    assert {spec["kind"] for spec in loaders["formats"].values()} == {
        "arrayrecord",
        "lance",
        "litdata",
        "mds",
    }
    formats = [*default["formats"], *loaders["formats"]]
    assert per_format(summary, "store") == {name: len(default["cutoffs"]) for name in formats}
    for name in loaders["formats"]:
        assert f"results/measurements/training/{name}/1000/threads-w1.json" in summary


def test_quick_config_plans_every_format_and_every_figure() -> None:
    summary = plan_from_root("config.yaml", "workflow/configs/quick.yaml").stdout
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    quick = yaml.safe_load((ROOT / "workflow/configs/quick.yaml").read_text())
    assert per_format(summary, "store") == {
        name: len(quick["cutoffs"]) for name in default["formats"]
    }
    counts = job_counts(summary)
    assert counts["figure"] == (len(RUN_FIGURES) if HAS_TORCH else len(RUN_FIGURES) - 1)
    assert counts["parallel"] == len(default["formats"]) * len(quick["parallel"]["workers"])
    assert quick["n_images"] <= 2000 and quick["sampling"]["max_pairs"] == 2


@pytest.mark.skipif(
    importlib.util.find_spec("skimage") is None, reason="the photos extra is not installed"
)
def test_photos_config_plans_the_photographs_and_the_training_loop_at_224_px() -> None:
    plan = plan_from_root("-p", "config.yaml", "workflow/configs/photos.yaml").stdout
    counts = job_counts(plan)
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    photos = yaml.safe_load((ROOT / "workflow/configs/photos.yaml").read_text())
    formats = len(set(default["formats"]) | set(photos["formats"]))  # two are changed
    loaders = len(default["training"]["threads"]) + (
        len(default["training"]["processes"]) if HAS_TORCH else 0
    )
    assert counts["photos"] == 1 and "extract" not in counts and "download" not in counts
    assert counts["training"] == formats * loaders
    assert "--crop 224" in plan and "--kind imagefolder --source results/data/photos" in plan


def test_without_torch_the_dataloader_jobs_are_left_out_with_a_notice(tmp_path: Path) -> None:
    hide = tmp_path / "hide"
    hide.mkdir()
    # find_spec("torch") is None when sys.modules holds None for it: as if not installed.
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None\n")
    plan = snakemake(tmp_path, "-n", "--configfile", str(ROOT / "config.yaml"), pythonpath=hide)
    counts = job_counts(plan.stdout)
    assert "dataloader" not in counts and counts["parallel"] > 0
    # the training loop's thread rows need no torch: 11 formats x 3 thread counts
    assert counts["training"] == 11 * 3 and "processes-w" not in plan.stdout
    notices = [line for line in (plan.stdout + plan.stderr).splitlines() if "PyTorch" in line]
    assert notices == [
        "storebench: PyTorch is not installed, so the DataLoader jobs and the training "
        "loop's worker-process rows (its thread rows run) are left out (pip install -e "
        "'.[torch]' to run them)"
    ]


def test_local_archive_skips_the_download(tmp_path: Path, sample: Path) -> None:
    config = small_config(
        tmp_path,
        {"url": "https://example.invalid/x.tar.gz", "md5": md5sum(sample), "archive": str(sample)},
    )
    plan = snakemake(tmp_path, "-n", "--configfile", str(config))
    counts = job_counts(plan.stdout)
    assert "download" not in counts and counts["extract"] == 1


def test_one_figure_builds_only_what_it_needs(tmp_path: Path, sample: Path) -> None:
    config = small_config(
        tmp_path,
        {"url": "https://example.invalid/x.tar.gz", "md5": md5sum(sample), "archive": str(sample)},
    )
    plan = snakemake(
        tmp_path, "results/figures/store_time_log.png", "-n", "--configfile", str(config)
    )
    assert job_counts(plan.stdout) == {
        "extract": 1,
        "dataset": 1,
        "store": len(FORMATS) * len(CUTOFFS),
        "table": 1,
        "figure": 1,
        "environment": 1,
    }


def test_bad_config_stops_before_any_job(tmp_path: Path) -> None:
    config = write_config(tmp_path, cutoffs=[10, 100, 200000])
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    assert "cutoffs: [200000] exceed n_images=100000" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_plan_too_big_for_the_disk_is_refused_before_any_job(tmp_path: Path, sample: Path) -> None:
    huge = 10**8  # the most n_images allows: hundreds of GB per store
    config = local_config(tmp_path, sample, n_images=huge, cutoffs=[10, huge])
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    error = next(line for line in proc.stderr.splitlines() if "storebench:" in line)
    assert error.startswith("storebench: error: not enough free disk for the planned stores: ")
    assert re.search(r"need about [\d.]+ GiB, but \S+ has [\d.]+ GiB free; free some space", error)
    assert not (tmp_path / "results").exists()  # nothing ran, not even the extraction


def _staging(work: Path, fmt: str, n: int) -> list[Path]:
    return list((work / "results/stores" / fmt).glob(f".{n}.store.*"))


def _kill_mid_write(work: Path, config: Path, target: str, whole_run: bool) -> None:
    """Start snakemake on ``target``; SIGKILL the store job (or the whole run) mid-write."""
    proc = subprocess.Popen(
        **snakemake_call(work, (target, "--cores", "1", "--configfile", str(config))),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        staged = _staging(work, "png", 5000)
        if staged and len(list(staged[0].iterdir())) >= 500:
            break
        time.sleep(0.005)
    else:
        proc.kill()
        pytest.fail(f"the store never started:\n{proc.communicate()[0]}")
    if whole_run:  # like a power cut: snakemake gets no chance to clean up
        os.killpg(proc.pid, signal.SIGKILL)
    else:  # like the OOM killer: only the job's process
        found = subprocess.run(
            ["pgrep", "-f", "storebench --log .* store --format png"],
            capture_output=True,
            text=True,
        ).stdout.split()
        pids = [pid for pid in found if Path(f"/proc/{pid}/cwd").resolve() == work.resolve()]
        assert pids, "no store process found"
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0, output
    assert not (work / "results/stores/png/5000").exists()  # no store to trust
    assert _staging(work, "png", 5000)  # the half-written copy is still there


@pytest.mark.slow
@pytest.mark.parametrize("whole_run", [False, True], ids=["job-killed", "run-killed"])
def test_a_store_killed_mid_write_is_rebuilt(whole_run: bool, tmp_path: Path, sample: Path) -> None:
    config = local_config(
        tmp_path, sample, ("raw", "png"), n_images=N_IMAGES, cutoffs=[5000], repeats=3
    )
    snakemake(tmp_path, "results/stores/raw/5000", "--cores", "1", "--configfile", str(config))
    target = "results/measurements/store/png/5000.json"
    _kill_mid_write(tmp_path, config, target, whole_run)
    if whole_run:  # snakemake's lock outlives a killed run; its own message says to unlock
        snakemake(tmp_path, "--unlock", "--configfile", str(config))
    snakemake(tmp_path, target, "--cores", "1", "--configfile", str(config))
    assert _staging(tmp_path, "png", 5000) == []  # the killed copy went to the trash
    assert len(read_json(tmp_path / target)["samples"]["store_s"]) == 3
    images = np.load(tmp_path / "results/dataset/images.npy")[:5000]
    labels = np.load(tmp_path / "results/dataset/labels.npy")[:5000]
    store = tmp_path / "results/stores/png/5000"
    assert len(list(store.glob("*.png"))) == 5000
    with make_format("png", {"kind": "png"}).open(store) as reader:
        got_images, got_labels = np.empty_like(images), np.empty_like(labels)
        reader.read_into(np.arange(5000), got_images, got_labels)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.slow
def test_local_cluster_profile_runs_every_job_as_its_own_process(
    tmp_path: Path, sample: Path
) -> None:
    config = local_config(
        tmp_path,
        sample,
        ("raw", "hdf5"),
        n_images=200,
        cutoffs=[10, 100],
        repeats=1,
        caches=["warm"],
        orders=["sequential"],
    )
    target = "results/tables/read.csv"
    proc = snakemake(
        tmp_path,
        target,
        "--profile",
        str(ROOT / "workflow/profiles/local-cluster"),
        "--configfile",
        str(config),
    )
    ran = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", proc.stdout + proc.stderr)
    assert sorted(ran) == sorted(
        ["extract", "dataset", "environment", "table"] + ["store"] * 4 + ["read"] * 4
    )
    # Each job was started by the profile's submit script as a process of its own ...
    submissions = (tmp_path / ".snakemake/local-cluster.log").read_text().splitlines()
    scripts = [line.split()[1] for line in submissions]
    assert len(submissions) == len(ran) and len(set(scripts)) == len(ran)
    # ... and the measuring ones ran in distinct processes, none of them snakemake's.
    results = [read_json(p) for p in (tmp_path / "results/measurements").rglob("*.json")]
    pids = [r["where"]["pid"] for r in results]
    assert len(results) == 8 and len(set(pids)) == 8
    rows = read_csv(tmp_path / target)
    assert {(r["format"], r["n"]) for r in rows} == {
        (f, str(n)) for f in ("raw", "hdf5") for n in (10, 100)
    }


def test_tables_hold_every_measurement(run: Path) -> None:
    store = read_csv(run / "results/tables/store.csv")
    read = read_csv(run / "results/tables/read.csv")
    single = read_csv(run / "results/tables/single.csv")
    keys = {
        (r["format"], int(r["n"]), r["measurement"], r["cache"], r["order"]) for r in store + read
    }
    assert keys == {
        (f, n, m, "", "") for f in FORMATS for n in CUTOFFS for m in ("store", "store_durable")
    } | {
        (f, n, "read", c, o)
        for f in FORMATS
        for n in CUTOFFS
        for c in ("warm", "cold")
        for o in ("sequential", "random")
    }
    # Eviction works on the test machine's filesystem: cold reads start from (almost) nothing.
    for row in read:
        resident = float(row["residency_max"])
        assert resident < 0.05 if row["cache"] == "cold" else resident > 0.5, row
    assert {(r["format"], r["measurement"]) for r in single} == {
        (f, m) for f in FORMATS for m in ("single_store", "single_read")
    }
    for row in store + read + single:
        assert int(row["pairs"]) == REPEATS and row["reference"] == "raw"
        low, mid, high = float(row["min"]), float(row["median"]), float(row["max"])
        assert 0 < low <= mid <= high < 60
        assert float(row["median_lo"]) <= mid <= float(row["median_hi"])
        assert float(row["ratio_lo"]) <= float(row["ratio"]) <= float(row["ratio_hi"])
        assert float(row["cpu_ms"]) > 0
    # the host's steal while the pairs ran (none where a pair was shorter than a tick)
    steal = [float(r["steal"]) for r in store + read if r["steal"] != ""]
    assert steal and all(0 <= share <= 1 for share in steal)
    # PNG, which encodes every image, takes longer to write 100x more images. (Not asserted
    # for LMDB or TFRecord: 1,000 of their records take a few milliseconds, no more than
    # what a store's fixed costs, file creation and fsync, vary by on a busy host; seen
    # here with 14.8 ms at 1,000 images against 17.0 ms at 10.)
    median = {(r["format"], int(r["n"]), r["measurement"]): float(r["median"]) for r in store}
    assert median[("png", 1000, "store")] > 5 * median[("png", 10, "store")]


def test_reads_were_validated_against_the_dataset(run: Path) -> None:
    images = np.load(run / "results/dataset/images.npy")
    labels = np.load(run / "results/dataset/labels.npy")
    assert images.shape == (N_IMAGES, 32, 32, 3)
    np.testing.assert_array_equal(images[5000:], marked(images[:1000], 1))
    for fmt in FORMATS:
        for n in CUTOFFS:
            for cache in ("warm", "cold"):
                for order in ("sequential", "random"):
                    path = run / f"results/measurements/read/{fmt}/{n}/{cache}-{order}.json"
                    result = yaml.safe_load(path.read_text())
                    index = read_indices(n, order, seed=0)
                    assert result["checksum"] == checksum(images[index], labels[index])
                    assert len(result["samples"]["read_s"]) == REPEATS
                    assert result["cache_verified"]


def test_real_sample_end_to_end(tmp_path: Path, real_sample: Path) -> None:
    """The real CIFAR-10 sample, served on 127.0.0.1, through the download code to a
    dataset equal to its plain decoding, a PNG store and a timed cold read of it."""
    target = "results/measurements/read/png/1000/cold-random.json"
    with serve(real_sample.read_bytes()) as server:
        config = write_config(
            tmp_path,
            cifar10={"url": server.url, "md5": REAL_SAMPLE_MD5, "archive": None},
            formats={"raw": {"kind": "npy"}, "png": {"kind": "png"}},
            n_images=N_IMAGES,
            cutoffs=[1000],
            repeats=2,
            filesystem_probe={"slow_factor": 3, "max_wait_s": 0},
        )
        snakemake(tmp_path, target, "--cores", "2", "--configfile", str(config))
    assert md5sum(tmp_path / "results/data/cifar-10-python.tar.gz") == REAL_SAMPLE_MD5
    images = np.load(tmp_path / "results/dataset/images.npy")
    labels = np.load(tmp_path / "results/dataset/labels.npy")
    expected_images, expected_labels = training_set_of(real_sample)
    np.testing.assert_array_equal(images[:SAMPLE_TRAIN], expected_images)
    np.testing.assert_array_equal(
        images[SAMPLE_TRAIN:], marked(expected_images[: N_IMAGES - SAMPLE_TRAIN], 1)
    )
    np.testing.assert_array_equal(labels[:SAMPLE_TRAIN], expected_labels)
    result = read_json(tmp_path / target)
    index = read_indices(1000, "random", seed=0)
    assert result["checksum"] == checksum(images[index], labels[index])
    assert result["cache_verified"] and len(result["samples"]["read_s"]) == 2


def test_download_rule_fetched_the_archive(run: Path, sample_md5: str) -> None:
    assert md5sum(run / "results/data/cifar-10-python.tar.gz") == sample_md5
    assert "verified md5" in (run / "results/logs/download.log").read_text()


def test_disk_usage(run: Path) -> None:
    rows = {(r["format"], int(r["n"])): r for r in read_csv(run / "results/tables/usage.csv")}
    assert set(rows) == {(f, n) for f in FORMATS for n in CUTOFFS}
    specs = yaml.safe_load((run / "config.yaml").read_text())["formats"]
    for (fmt, n), row in rows.items():
        per_image = float(row["bytes_per_image"])
        assert int(row["allocated_bytes"]) > 0
        # The free-space check before a run never underestimates a store.
        assert int(row["allocated_bytes"]) <= store_bytes(make_format(fmt, specs[fmt]), n)
        assert 1000 < per_image < 10000, (fmt, n, per_image)
        if fmt == "png":
            assert int(row["files"]) == n + 1


def test_figures_are_real_plots(run: Path) -> None:
    assert RUN_FIGURES == DRAWN or not HAS_TORCH
    for name in DRAWN:
        png = run / f"results/figures/{name}.png"
        with Image.open(png) as image:
            assert image.width >= 600 and image.height >= 300  # bar charts: 5 formats, 380 px
            pixels = np.asarray(image.convert("L"))
        # A plot: mostly white paper, with a fair amount of ink.
        ink = (pixels < 200).mean()
        assert 0.01 < ink < 0.6, (name, ink)
        svg = (run / f"results/figures/{name}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.count("<path") > 10


@pytest.mark.parametrize(
    ("figure", "table", "conditions", "column"),
    [
        ("store_time_log", "store", {"measurement": "store"}, "median"),
        ("read_time_log", "read", {"cache": "warm", "order": "sequential"}, "median"),
        ("disk_bytes_per_image", "usage", {}, "bytes_per_image"),
    ],
)
def test_plotted_lines_are_the_table(
    run: Path, figure: str, table: str, conditions: dict, column: str
) -> None:
    from storebench.present.figures import draw
    from storebench.present.tables import read_table

    rows = read_table(run / f"results/tables/{table}.csv")
    fig = draw(figure, {table: rows}, FORMATS)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    for fmt in FORMATS:
        series = sorted(
            (
                r
                for r in rows
                if r["format"] == fmt and all(r[k] == v for k, v in conditions.items())
            ),
            key=lambda r: r["n"],
        )
        np.testing.assert_allclose(lines[fmt].get_xdata(), [r["n"] for r in series])
        np.testing.assert_allclose(lines[fmt].get_ydata(), [r[column] for r in series])
    # One colour per format, the same in every figure: config order picks it.
    colours = {fmt: lines[fmt].get_color() for fmt in FORMATS}
    assert len(set(colours.values())) == len(FORMATS)
    again = draw(figure, {table: [r for r in rows if r["format"] != FORMATS[0]]}, FORMATS)
    for line in again.axes[0].lines:
        if line.get_label() in colours:
            assert line.get_color() == colours[line.get_label()]


def test_forcerun_read_reruns_reads_not_stores(run: Path) -> None:
    config = str(run / "config.yaml")
    store_json = run / "results/measurements/store/png/10.json"
    read_json = run / "results/measurements/read/png/10/cold-random.json"
    before = store_json.stat().st_mtime_ns, read_json.stat().st_mtime_ns
    plan = snakemake(run, "-n", "--configfile", config, "--forcerun", "read")
    counts = job_counts(plan.stdout)
    assert counts["read"] == len(FORMATS) * len(CUTOFFS) * 4
    assert "store" not in counts and "usage" not in counts and "single" not in counts
    assert "latency" not in counts
    # Run it for one read (all of them would take minutes): the forced job reruns, its store does not.
    target = str(read_json.relative_to(run))
    plan = snakemake(run, "-n", "--configfile", config, "--forcerun", "read", "--", target)
    assert job_counts(plan.stdout) == {"read": 1}
    snakemake(run, "--cores", "2", "--configfile", config, "--forcerun", "read", "--", target)
    assert store_json.stat().st_mtime_ns == before[0]
    assert read_json.stat().st_mtime_ns > before[1]
    assert not (run / "results/.trash").exists()


def test_a_newer_copy_of_a_local_archive_reruns_nothing_a_new_md5_reruns_it(
    tmp_path: Path, sample: Path
) -> None:
    # A mount or a copy gives the user's archive a new time: cifar10.md5 pins its
    # content, so what was built from it stays built (a three-hour run is not redone
    # for a timestamp).
    archive = tmp_path / "cifar.tar.gz"
    shutil.copyfile(sample, archive)
    config = str(local_config(tmp_path, archive, ("raw",), n_images=100, cutoffs=[10]))
    target = "results/dataset/images.npy"

    def planned(*args: str) -> dict[str, int]:
        plan = snakemake(tmp_path, "-n", "--configfile", config, *args, "--", target)
        return job_counts(plan.stdout) if "Job stats:" in plan.stdout else {}

    assert planned() == {"extract": 1, "dataset": 1}
    snakemake(tmp_path, "--cores", "1", "--configfile", config, "--", target)
    assert planned() == {}
    later = time.time() + 60
    os.utime(archive, (later, later))
    assert planned() == {}
    # what does change the content (its md5) reruns everything built from it
    other = {"md5": "0" * 32, "archive": str(archive)}
    assert planned("--config", f"cifar10={json.dumps(other)}") == {"extract": 1, "dataset": 1}


def test_tampered_download_fails_clearly_and_leaves_nothing(tmp_path: Path, sample: Path) -> None:
    tampered = bytearray(sample.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    with serve(bytes(tampered)) as server:
        config = small_config(tmp_path, {"url": server.url, "md5": md5sum(sample), "archive": None})
        proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("storebench: error:")]
    assert len(lines) == 1 and "md5 mismatch" in lines[0] and "cifar10.md5" in lines[0]
    # Nothing of the archive is left for a rerun to trust: no file, no partial file.
    data = tmp_path / "results" / "data"
    assert not data.exists() or not [p for p in data.rglob("*") if p.is_file()]
    assert not (tmp_path / "results" / "dataset").exists()
    assert (tmp_path / "results" / "logs" / "download.log").is_file()


def _report_results(html: str) -> dict[str, Any]:
    """The file records a Snakemake report embeds (path -> name, caption, labels, ...)."""
    start = html.index("var results = ", html.index('<script id="results">')) + len(
        "var results = "
    )
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_publish_builds_the_report_with_every_figure_and_caption(run: Path) -> None:
    config = str(run / "config.yaml")
    snakemake(run, "publish", "--cores", "1", "--configfile", config)
    text = (run / "results/report.html").read_text()
    records = _report_results(text)
    environment = json.loads((run / "results/environment.json").read_text())
    machine = f"Machine: {environment['machine']['cpu_model']}, "
    for name in DRAWN:
        caption = records[f"results/figures/{name}.png"]["caption"]
        what = re.split(r"[.{]", FIGURES[name].caption)[0]  # its start, up to a value
        assert what in caption and machine in caption, (name, caption)
        assert "{" not in caption  # every placeholder filled
    assert f"at least {REPEATS} pairs" in records["results/figures/store_time_log.png"]["caption"]
    for table in (*TABLES, "usage", "latency", "noise", "cost"):
        assert machine in records[f"results/tables/{table}.csv"]["caption"]
    for path in ("results/tables/summary.md", "results/environment.json", "results/config.yaml"):
        assert records[path]["caption"], path
    with zipfile.ZipFile(run / "results/report.zip") as archive:
        names = archive.namelist()
    assert any(n.endswith("report.html") for n in names)
    assert sum(n.endswith(".png") for n in names) >= len(DRAWN)


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("STOREBENCH_REQUIRE_CHROMIUM"),
    reason="needs Debian's chromium (CI installs it)",
)
def test_report_shows_every_figure_with_its_caption_in_chromium(run: Path, tmp_path: Path) -> None:
    """Open the report in headless Chromium and click through it as a reader would."""
    from playwright.sync_api import sync_playwright

    report = run / "results/report.html"
    if not report.exists():
        snakemake(run, "publish", "--cores", "1", "--configfile", str(run / "config.yaml"))
    records = _report_results(report.read_text())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for name in DRAWN:
            # The menu: Figures, then the figure's topic, then the figure's row.
            page.goto(report.as_uri())
            page.get_by_text("Figures", exact=True).first.click()
            page.get_by_text(FIGURES[name].topic, exact=True).first.click()
            row = page.locator("tr", has_text=name).first
            row.locator("a[iconname=eye]").click()
            image = page.locator("img[src^='data:image/png']").first
            image.wait_for()
            box = image.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 200, name
            page.screenshot(path=tmp_path / f"{name}.png")
            page.locator("tr", has_text=name).first.locator(
                "a[iconname=information-circle]"
            ).click()
            text = page.inner_text("body")
            caption = records[f"results/figures/{name}.png"]["caption"]
            first = html.unescape(re.sub(r"<[^>]+>", "", caption)).split(".")[0]
            assert first in text and "Machine: " in text, name
        browser.close()


def test_cost_table_counts_every_job_per_stage_and_n(run: Path) -> None:
    rows = {(r["stage"], r["n"]): r for r in read_csv(run / "results/tables/cost.csv")}
    for n in CUTOFFS:
        assert int(rows[("store", str(n))]["jobs"]) == len(FORMATS)
        assert int(rows[("read", str(n))]["jobs"]) == len(FORMATS) * 4
        assert int(rows[("usage", str(n))]["jobs"]) == len(FORMATS)
        assert float(rows[("read", str(n))]["max_rss_mb"]) > 0  # sampled: short jobs read low
    assert int(rows[("parallel", str(PARALLEL["cutoffs"][0]))]["jobs"]) == len(FORMATS) * len(
        PARALLEL["workers"]
    ) * len(PARALLEL["caches"])
    assert int(rows[("latency", "")]["jobs"]) == len(FORMATS)
    assert int(rows[("dataset", "")]["jobs"]) == 1
    # Summed wall time is the jobs' own, as Snakemake timed them.
    store_1000 = sum(
        float(read_table_tsv(p)[0]["s"])
        for p in (run / "results/benchmarks/store").glob("*/1000.tsv")
    )
    assert float(rows[("store", "1000")]["wall_s"]) == pytest.approx(store_1000)


def test_summary_ranks_every_format(run: Path) -> None:
    text = (run / "results/tables/summary.md").read_text()
    sections = text.split("### ")[1:]
    questions = [s.splitlines()[0] for s in sections]
    assert questions[0] == "Which format stores fastest?"
    assert questions[-1] == "Which format is smallest on disk?"
    assert len(questions) == 6 + HAS_TORCH
    store = {
        r["format"]: r
        for r in read_csv(run / "results/tables/store.csv")
        if int(r["n"]) == max(CUTOFFS) and r["measurement"] == "store"
    }
    rows = [line.split("|")[1:-1] for line in sections[0].splitlines() if line.startswith("| ")]
    assert [c.strip() for c in rows[0]] == [
        "rank",
        "format",
        "× raw [interval]",
        "store s [interval]",
        "images/s",
        "MB/s",
        "interval",
    ]
    ranked = [
        (cells[1].strip(), cells[2].split("[")[0], cells[3].split("[")[0]) for cells in rows[1:]
    ]
    ratio = {fmt: float(r["ratio"]) for fmt, r in store.items()}
    assert sorted(f for f, _, _ in ranked) == sorted(ratio)
    # a rank, or the range of ranks the run allows (1 to 3, with an en dash)
    ranks = [tuple(int(x) for x in cells[0].strip().split("–")) for cells in rows[1:]]
    assert ranks == sorted(ranks)  # listed in rank order, ...
    pairs = zip(itertools.pairwise(ranked), itertools.pairwise(ranks), strict=True)
    for (a, b), (ra, rb) in pairs:
        assert ra < rb or ratio[a[0]] <= ratio[b[0]]  # ... then by ratio
    # one job per cell in this run: every row says so, with its coverage
    assert all(cells[6].strip().startswith("job, ") for cells in rows[1:])
    for fmt, r, seconds in ranked:
        assert float(r) == pytest.approx(ratio[fmt], rel=5e-3)
        assert float(seconds) == pytest.approx(float(store[fmt]["median"]), rel=5e-3)
        assert float(store[fmt]["ratio_lo"]) <= ratio[fmt] <= float(store[fmt]["ratio_hi"])


def test_stage_summary_from_benchmarks(run: Path) -> None:
    from storebench.present.cost import stage_rows

    rows = {r["stage"]: r for r in stage_rows(run / "results/benchmarks")}
    jobs = len(FORMATS) * len(CUTOFFS)
    assert rows["store"]["jobs"] == jobs and rows["read"]["jobs"] >= jobs * 4
    assert rows["usage"]["jobs"] == jobs and rows["figures"]["jobs"] == len(
        DRAWN
    )  # 13 without torch
    assert all(r["wall_s"] > 0 for r in rows.values())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storebench",
            "stages",
            "--benchmarks",
            str(run / "results/benchmarks"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines()[0].split()[:2] == ["stage", "jobs"]
    assert out.stdout.splitlines()[-1].startswith("total")


def test_latency_table(run: Path) -> None:
    rows = read_csv(run / "results/tables/latency.csv")
    assert {(r["format"], r["mode"]) for r in rows} == {
        (f, m) for f in FORMATS for m in ("open_read_close", "lookup")
    }
    for row in rows:
        assert int(row["samples"]) == 50 and int(row["n"]) == max(CUTOFFS)
        assert 0 < float(row["p50"]) <= float(row["p95"]) <= float(row["p99"]) <= float(row["max"])


def test_noise_table_lists_exactly_the_noisy_rows(run: Path) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    threshold = config["noise_threshold"]
    noisy = {
        (r["format"], r["n"], r["measurement"], r["cache"], r["order"]): r["reason"]
        for r in read_csv(run / "results/tables/noise.csv")
    }
    expected = {}
    for table in TABLES:
        for r in read_csv(run / f"results/tables/{table}.csv"):
            key = (r["format"], r["n"], r["measurement"], r["cache"], r["order"])
            # judged on the job's own interval; the run's drift widens ratio_lo..ratio_hi
            ratio, lo, hi = (float(r[k]) for k in ("ratio", "ratio_job_lo", "ratio_job_hi"))
            assert float(r["ratio_lo"]) <= lo and hi <= float(r["ratio_hi"])
            if max(hi / ratio - 1, 1 - lo / ratio) > threshold:
                expected[key] = "ratio interval"
            if r.get("slow_probes") and int(r["slow_probes"]) > 0:
                expected[key] = "file creation slow"
    assert noisy.keys() == expected.keys()
    for key, reason in expected.items():
        assert reason in noisy[key]
    # Every store sample was probed.
    for r in read_csv(run / "results/tables/store.csv"):
        assert float(r["create_latency_us_max"]) > 0


def test_environment(run: Path) -> None:
    env = yaml.safe_load((run / "results/environment.json").read_text())
    assert env["machine"]["cpu_count"] >= 1 and env["machine"]["memory_bytes"] > 2**30
    assert env["filesystem"]["type"] and env["filesystem"]["block_size"] >= 512
    for package in ("numpy", "pillow", "lmdb", "h5py", "snakemake"):
        assert env["versions"][package][0].isdigit(), package
    for library in ("pillow_zlib", "lmdb_c", "hdf5"):
        assert env["libraries"][library][0].isdigit(), library


def test_benchmark_compare_of_a_run_with_itself(run: Path) -> None:
    table = str(run / "results/tables/read.csv")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storebench",
            "benchmark",
            "compare",
            "--tables",
            table,
            table,
            "--min-n",
            "100",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    rows = len(FORMATS) * 1 * 4  # n = 1000 only, 2 caches x 2 orders
    assert len(lines) == rows + 2
    assert lines[-1].startswith(f"{rows} of {rows} medians within 10%")
    assert all(line.split()[-1] == "1.000" for line in lines[1:-1])


def test_benchmark_replay_cuts_every_job_and_compares(run: Path) -> None:
    results = str(run / "results")

    def replay(repeats: int) -> tuple[str, float, float]:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "storebench",
                "benchmark",
                "replay",
                results,
                results,
                "--repeats",
                str(repeats),
                "--time-cap-s",
                "0",
                "--min-n",
                "100",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = re.search(r"A \(.*\): pairs took ([\d,.]+) s; replayed ([\d,.]+) s", out)
        assert found, out
        return out, *(float(found[i].replace(",", "")) for i in (1, 2))

    # every job took REPEATS pairs: one pair each replays in less time
    out, took, replayed = replay(1)
    assert 0 < replayed < took
    # this run measured no cell in rounds, so there is nothing to compare, and it says so
    assert (
        "as replayed:" in out and "verdict: none: no store or read cells measured in rounds" in out
    )
    # the policy the run was measured with replays every job as it was
    _, took, replayed = replay(REPEATS)
    assert replayed == took


def test_benchmark_interleaved_reads_every_store(run: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storebench",
            "benchmark",
            "interleaved",
            "--results",
            str(run / "results"),
            "--config",
            str(run / "config.yaml"),
            "--n",
            "1000",
            "--rounds",
            "3",
            "--formats",
            "hdf5_gzip",
            "lmdb",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split("|")[1:-1] for line in out.stdout.splitlines() if line.startswith("| ")]
    table = {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}
    assert list(table) == ["raw", "hdf5_gzip", "lmdb"]  # the floor comes first, added
    assert table["raw"][3:] == ["1.00", "1.00", "1.00"]
    for name in ("hdf5_gzip", "lmdb"):
        median, low, high = map(float, table[name][:3])
        assert 0 < low <= median <= high


def test_parallel_readers(run: Path) -> None:
    images = np.load(run / "results/dataset/images.npy")
    labels = np.load(run / "results/dataset/labels.npy")
    rows = read_csv(run / "results/tables/parallel.csv")
    keys = {(r["format"], int(r["n"]), r["cache"], int(r["workers"])) for r in rows}
    assert keys == {
        (f, n, c, p)
        for f in FORMATS
        for n in PARALLEL["cutoffs"]
        for c in PARALLEL["caches"]
        for p in PARALLEL["workers"]
    }
    for row in rows:
        n, median = int(row["n"]), float(row["median"])
        assert float(row["images_per_s"]) == pytest.approx(n / median)
        if row["workers"] == "1":
            assert float(row["speedup"]) == 1.0
        assert float(row["residency_max"]) < 0.05 if row["cache"] == "cold" else True
        path = (
            run
            / "results/measurements/parallel"
            / row["format"]
            / row["n"]
            / f"{row['cache']}-p{row['workers']}.json"
        )
        result = yaml.safe_load(path.read_text())
        order = read_indices(n, "random", seed=0)
        shards = np.array_split(order, int(row["workers"]))
        assert result["shard_checksums"] == [checksum(images[s], labels[s]) for s in shards]
        assert len(result["worker_pids"]) == int(row["workers"])


def test_training_loop_rows_say_how_busy_each_format_keeps_the_accelerator(run: Path) -> None:
    rows = read_csv(run / "results/tables/training.csv")
    loaders = [("threads", w) for w in TRAINING["threads"]]
    loaders += [("processes", w) for w in TRAINING["processes"]] if HAS_TORCH else []
    assert {(r["format"], r["loader"], int(r["workers"])) for r in rows} == {
        (f, loader, w) for f in FORMATS for loader, w in loaders
    }
    for row in rows:
        assert 0 < float(row["au_lo"]) <= float(row["au"]) <= float(row["au_hi"]) <= 1
        assert float(row["step_ms"]) == TRAINING["step_ms"] and int(row["crop"]) == 24
        assert float(row["first_batch_s"]) > 0 and float(row["pss_peak_mb"]) > 0
        assert int(row["pairs"]) == TRAINING["repeats"]  # its own fewest pairs
    summary = (run / "results/tables/summary.md").read_text()
    assert "To keep one accelerator 90% busy at a step of 20 ms per batch of 64" in summary
    for figure in ("training_au", "training_workers"):
        assert (run / f"results/figures/{figure}.png").stat().st_size > 10_000


@pytest.mark.skipif(not HAS_TORCH, reason="the torch extra is not installed")
def test_dataloader_epochs(run: Path) -> None:
    images = np.load(run / "results/dataset/images.npy")
    labels = np.load(run / "results/dataset/labels.npy")
    rows = read_csv(run / "results/tables/dataloader.csv")
    assert {(r["format"], int(r["num_workers"])) for r in rows} == {
        (f, w) for f in FORMATS for w in DATALOADER["num_workers"]
    }
    for row in rows:
        n = int(row["n"])
        assert int(row["batch_size"]) == DATALOADER["batch_size"] and int(row["pairs"]) == REPEATS
        assert float(row["images_per_s"]) == pytest.approx(n / float(row["median"]))
        path = (
            run
            / "results/measurements/dataloader"
            / row["format"]
            / row["n"]
            / f"b{row['batch_size']}-w{row['num_workers']}.json"
        )
        order = read_indices(n, "random", seed=0)
        result = yaml.safe_load(path.read_text())
        assert result["checksum"] == checksum(images[order], labels[order])


@pytest.mark.slow
def test_rounds_measure_the_large_cells_again_in_a_new_order_each_round(
    tmp_path: Path, sample: Path
) -> None:
    """Cells at n >= rounds.from_n: their own job is round 1, then one job per round;
    the tables take their intervals from the spread between rounds."""
    rounds = {
        "from_n": 1000,
        "to_n": None,
        "min_rounds": 4,
        "max_rounds": 5,
        "precision": 0.04,
        "budget_min": 5,
        "cell_s": 0.05,
        "max_pairs": 3,
    }
    config = local_config(
        tmp_path,
        sample,
        ("raw", "png", "lmdb"),
        n_images=2000,
        cutoffs=[100, 1000],
        repeats=REPEATS,
        rounds=rounds,
        test_slowdown={"lmdb": 1.3},
    )
    tables_out = ["results/tables/read.csv", "results/tables/store.csv"]
    snakemake(tmp_path, "--cores", "2", "--configfile", str(config), "--", *tables_out)
    files = sorted((tmp_path / "results/measurements/round").glob("r*.json"))
    assert [f.name for f in files] == ["r2.json", "r3.json", "r4.json", "r5.json"]
    by_cell: dict[tuple, dict[int, dict]] = {}
    for path in files:
        data = json.loads(path.read_text())
        for record in data["records"]:
            assert record["n"] == 1000 and record["round"] == data["round"]
            assert record.get("slowdown", 1) == (1.3 if record["format"] == "lmdb" else 1)
            if record.get("cache"):  # a read: of the round's own copy, but PNG's files
                assert record["store_copy"] == (record["format"] != "png")
            key = (record["format"], record.get("cache", ""), record.get("order", ""))
            by_cell.setdefault(key, {})[record["round"]] = record
    assert len(by_cell) == 3 * 5  # every format's store and 4 reads
    for rounds_of_cell in by_cell.values():
        assert {2, 3, 4} <= set(rounds_of_cell)  # the minimum, then as needed
        firsts = [rounds_of_cell[r]["first"][0] for r in sorted(rounds_of_cell)]
        assert all(a != b for a, b in itertools.pairwise(firsts))  # balanced across rounds
    orders = [
        [
            (r["format"], r.get("cache"), r.get("order"))
            for r in json.loads(f.read_text())["records"]
        ]
        for f in files[:3]
    ]
    assert orders[0] != orders[1] or orders[1] != orders[2]  # a fresh order each round
    assert not (tmp_path / "results/scratch/round/copies").exists()  # deleted after each round
    # a round measures stores and reads; each table takes its own
    read_rows = read_csv(tmp_path / "results/tables/read.csv")
    store_rows = read_csv(tmp_path / "results/tables/store.csv")
    assert {row["measurement"] for row in read_rows} == {"read"}
    assert {row["measurement"] for row in store_rows} == {"store", "store_durable"}
    assert len(read_rows) == 3 * 2 * 4 and len(store_rows) == 3 * 2 * 2
    assert all(int(r["rounds"]) >= 4 for r in store_rows if int(r["n"]) == 1000)
    for row in read_rows:
        if int(row["n"]) == 1000:
            coverage = {"4": "0.875", "5": "0.9375"}[row["rounds"]]
            assert row["coverage"] == coverage
            assert row["interval"] == f"{float(coverage):.1%} over {row['rounds']} rounds (median)"
            assert row["stopped"] in ("precision", "max_rounds", "budget")
            assert len(stats.parse_rounds(row["round_values"])) == int(row["rounds"])
        else:
            assert row["rounds"] == "" and row["interval"].startswith("one job: ")
    # one run checks itself, odd rounds against even
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "storebench",
            "compare",
            str(tmp_path / "results"),
            "--min-n",
            "1000",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "odd rounds (A) against even rounds (B)" in out and "\nverdict: " in out
    # --forcerun round reruns the rounds and what reads them, not a store or a read
    plan = snakemake(
        tmp_path, "-n", "--configfile", str(config), "--forcerun", "round", "--", *tables_out
    )
    assert job_counts(plan.stdout) == {"round": 4, "table": 2}


@pytest.mark.slow
def test_with_keep_going_a_failed_format_is_named_and_the_rest_still_reported(
    tmp_path: Path, sample: Path
) -> None:
    """One format's jobs fail (its library cannot be imported); with --keep-going the
    others' tables, summary, verdict and figures are made in results/partial/, the
    failed format named, and a rerun that can import it completes the run."""
    config = local_config(
        tmp_path,
        sample,
        ("raw", "png", "lmdb", "hdf5"),
        n_images=1000,
        cutoffs=[10, 100],
        repeats=REPEATS,
        rounds=NO_ROUNDS,
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    # as if the lmdb package were broken: every storebench job that imports it fails
    # (Snakemake's own process, which plans the jobs, still imports it)
    (broken / "sitecustomize.py").write_text(
        "import sys\n"
        "class Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lmdb' and sys.argv[0].endswith('storebench/__main__.py'):\n"
        "            raise ImportError('lmdb is broken')\n"
        "sys.meta_path.insert(0, Broken())\n"
    )
    args = ("--cores", "2", "--configfile", str(config))
    failed = snakemake(tmp_path, *args, "--keep-going", check=False, pythonpath=broken)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert "lmdb: no results for store (n=10, n=100)" in said, said
    assert "partial results from what finished: results/partial/summary.md" in said
    partial = tmp_path / "results/partial"
    summary = (partial / "summary.md").read_text()
    assert summary.startswith("# Partial results: the run did not finish")
    assert (
        "- lmdb: no results for store (n=10, n=100); read (n=10 cold-random, "
        "n=10 cold-sequential, n=10 warm-random and 5 more); single; usage (n=10, n=100); "
        "latency\n" in summary
    ), summary
    assert "## Verdict at n = 100 images" in summary and "| **hdf5** |" in summary
    read_rows = read_csv(partial / "tables/read.csv")
    assert {r["format"] for r in read_rows} == {"raw", "png", "hdf5"}
    assert {int(r["n"]) for r in read_rows} == {10, 100} and len(read_rows) == 3 * 2 * 4
    assert (partial / "figures/read_time_log.png").stat().st_size > 10_000
    # nothing complete was made from the partial results, and the rerun remakes them
    assert not (tmp_path / "results/tables/summary.md").exists()
    assert not (tmp_path / "results/measurements/store/lmdb").exists() or not any(
        (tmp_path / "results/measurements/store/lmdb").iterdir()
    )
    snakemake(tmp_path, *args)
    assert {r["format"] for r in read_csv(tmp_path / "results/tables/read.csv")} == {
        "raw",
        "png",
        "lmdb",
        "hdf5",
    }
    assert not partial.exists()  # the complete run removed the partial one
    # without --keep-going nothing partial is written: the run stops at the failure
    stopped = snakemake(tmp_path, *args, "--forcerun", "store", check=False, pythonpath=broken)
    assert stopped.returncode != 0 and not partial.exists()
