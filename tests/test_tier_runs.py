"""Storage tiers as runs: the config of a tier, its checks, the tiers table and figure,
and the experiment run again on a directory tier."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from storebench import config as configuration
from storebench import tiers
from storebench.errors import StorebenchError
from storebench.measure import read_indices
from storebench.present import figures, tables
from storebench.present import tiers as tier_tables
from storebench.present.verdict import Pick
from storebench.validation import checksum

from conftest import ROOT


def _config(**tier: Any) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["tiers"] = tier
    configuration.normalize(config)
    return config


def test_a_directory_tier_is_checked_before_any_job(tmp_path: Path) -> None:
    good = {"kind": "directory", "path": str(tmp_path)}
    configuration.check(_config(nfs=good))  # a folder that is there and writable
    cases = [
        ({"local": good}, "tiers.local: 'local' is the run itself"),
        ({"nfs": {**good, "path": "relative/x"}}, "tiers.nfs.path: 'relative/x' is relative"),
        (
            {"nfs": {**good, "path": str(tmp_path / "absent")}},
            f"tiers.nfs.path: {tmp_path / 'absent'} is not a directory; mount it",
        ),
        ({"nfs": {**good, "formats": ["png", "nope"]}}, "tiers.nfs.formats: ['nope'] are not"),
        ({"nfs": {**good, "cutoffs": [10, 7]}}, "tiers.nfs.cutoffs: [7] are not in cutoffs"),
        ({"nfs": {**good, "caches": ["hot"]}}, "tiers.nfs.caches.0: 'hot' is not one of"),
        ({"nfs": {**good, "orders": ["shards"]}}, "tiers.nfs.orders: ['shards'] are not in"),
        ({"nfs": {"kind": "s4", "path": str(tmp_path)}}, "tiers.nfs.kind: 's4' is not one of"),
        ({"n fs": good}, "tiers: 'n fs' does not match"),
    ]
    for tier, message in cases:
        with pytest.raises(StorebenchError, match="^" + message.replace("[", r"\[")):
            configuration.check(_config(**tier))
    assert not (tmp_path / "storebench").exists()  # checking wrote nothing


def test_a_file_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorebenchError, match="is not a directory"):
        configuration.check(_config(nfs={"kind": "directory", "path": str(tmp_path / "file")}))


def test_a_tiers_run_measures_its_formats_and_cutoffs_with_the_floor(tmp_path: Path) -> None:
    config = _config(
        nfs={"kind": "directory", "path": str(tmp_path), "formats": ["png"], "cutoffs": [1000]}
    )
    config["test_slowdown"] = {"png": 1.2, "hdf5": 1.2}
    sub = tiers.sub_config(config, "nfs", "relative.tar.gz")
    assert list(sub["formats"]) == ["raw", "png"]  # the floor kept
    assert sub["cutoffs"] == [1000] and sub["n_images"] == 1000
    assert sub["tiers"] == {} and sub["size_sweep"]["sizes"] == []
    assert sub["test_slowdown"] == {"png": 1.2}
    assert sub["cifar10"]["archive"] == str(Path("relative.tar.gz").resolve())
    assert sub["parallel"]["cutoffs"] == [] and sub["dataloader"]["cutoffs"] == []
    configuration.check(sub)  # the tier's run has a config of its own that is valid
    assert (
        tiers.work_folder("nfs", config["tiers"]["nfs"], tmp_path / "out")
        == tmp_path / "storebench" / "nfs"
    )
    # no narrowing: every format and cutoff of the run
    whole = tiers.sub_config(_config(nfs={"kind": "directory", "path": str(tmp_path)}), "nfs", None)
    assert list(whole["formats"]) == list(config["formats"])
    assert whole["cutoffs"] == config["cutoffs"]
    assert whole["caches"] == config["caches"] and whole["orders"] == config["orders"]


def test_a_tier_reads_only_the_caches_and_orders_it_names(tmp_path: Path) -> None:
    config = _config(
        nfs={"kind": "directory", "path": str(tmp_path), "caches": ["cold"], "orders": ["random"]}
    )
    config["latency_n"] = 100000
    sub = tiers.sub_config(config, "nfs", None)
    assert sub["caches"] == ["cold"] and sub["orders"] == ["random"]
    assert sub["latency_n"] == 100000  # the run's choice, a cutoff the tier measures
    configuration.check(sub)
    config["tiers"]["nfs"]["cutoffs"] = [10, 100]
    sub = tiers.sub_config(config, "nfs", None)
    assert sub["latency_n"] is None  # not measured there: the tier's largest
    configuration.check(sub)


def test_single_images_are_read_from_the_store_at_latency_n() -> None:
    config = _config()
    config["latency_n"] = 1000
    configuration.check(config)
    config["latency_n"] = 999
    with pytest.raises(StorebenchError, match=r"^latency_n: 999 is not in cutoffs \[10, "):
        configuration.check(config)


def test_the_filesystem_of_a_path_is_the_mount_that_holds_it(tmp_path: Path) -> None:
    found = tiers.filesystem(tmp_path)
    assert found["type"] not in ("", "unknown") and tmp_path.is_relative_to(found["mount"])
    root = tiers.filesystem(Path("/"))
    assert root["mount"] == "/"
    # a deeper mount wins over / for what is below it
    proc = tiers.filesystem(Path("/proc/self"))
    assert proc["type"] == "proc" and proc["mount"] == "/proc"


def _row(fmt: str, ratio: float, median: float, **where: Any) -> dict[str, Any]:
    return {
        "format": fmt,
        "kind": "npy" if fmt == "raw" else "x",
        "n": where.get("n", 1000),
        "measurement": where.get("measurement", "read"),
        "cache": where.get("cache", "cold"),
        "order": where.get("order", "random"),
        "median": median,
        "median_lo": median * 0.95,
        "median_hi": median * 1.05,
        "ratio": ratio,
        "ratio_lo": ratio * 0.95,
        "ratio_hi": ratio * 1.05,
        "interval": "95.0% over 6 rounds (median)",
        "pairs": 6,
    }


def _tier(ratios: dict[str, float]) -> dict[str, list[dict[str, Any]]]:
    """A tier's tables: cold shuffled reads and stores at the given ratios to the floor."""
    read = [_row(f, r, 0.1 * r) for f, r in ratios.items()]
    store = [
        _row(f, r, 0.2 * r, measurement="store", cache="", order="") for f, r in ratios.items()
    ]
    usage = [
        {"format": f, "kind": "x", "n": 1000, "bytes_per_image": 3100.0 + i}
        for i, f in enumerate(ratios)
    ]
    return {"read": read, "store": store, "usage": usage}


def test_the_tiers_speak_of_an_n_every_tier_measured() -> None:
    def tier(ns: list[int], rounds_at: int | None) -> dict[str, list[dict[str, Any]]]:
        rows = []
        for n in ns:
            row = _row("png", 2.0, 0.1, n=n)
            row["round_values"] = "1:0.69 2:0.70" if n == rounds_at else ""
            rows.append(row)
        return {"read": rows, "store": [], "usage": []}

    # local: rounds at 10,000; an object store measured 1,000 and 100,000 in one job each
    local = tier([1000, 10000, 100000], 10000)
    found = {"local": local, "s3": tier([1000, 100000], None)}
    assert tier_tables.common_n(found) == 100000
    found["nfs"] = tier([1000, 10000, 100000], 10000)
    assert tier_tables.common_n(found) == 100000
    # every tier measured the local tier's rounds: they speak of it
    assert tier_tables.common_n({"local": local, "nfs": found["nfs"]}) == 10000
    # no n in common: the smallest headline (its cells are empty elsewhere)
    assert tier_tables.common_n({"local": local, "x": tier([10], None)}) == 10
    assert tier_tables.common_n({}) is None


def test_each_tiers_cell_says_its_intervals_coverage() -> None:
    row = _row("png", 2.0, 0.1)
    assert tier_tables._coverage(row) == " 95% rounds"
    row["interval"] = "one job: 50.0% for its own median (drift between jobs not included)"
    assert tier_tables._coverage(row) == " 50%"
    row["interval"] = ""
    assert tier_tables._coverage(row) == ""


def test_the_tiers_table_puts_tiers_side_by_side_and_names_what_changes() -> None:
    found = {
        "local": _tier({"raw": 1.0, "png": 20.0, "hdf5": 1.2, "webdataset": 2.5}),
        "nfs": _tier({"raw": 1.0, "png": 40.0, "hdf5": 3.0, "webdataset": 1.5}),
    }
    where = {"local": "ext4 at /x", "nfs": "nfs4 at /mnt"}
    rows = tier_tables.rows(found, where)
    assert len(rows) == 2 * 4 * 2  # tiers x formats x (store + one read)
    png = next(
        r
        for r in rows
        if r["tier"] == "nfs" and r["format"] == "png" and r["measurement"] == "read"
    )
    assert png["images_per_s"] == pytest.approx(1000 / 4.0)
    assert png["images_per_s_lo"] < png["images_per_s"] < png["images_per_s_hi"]
    assert png["filesystem"] == "nfs4 at /mnt" and png["bytes_per_image"] == 3101.0
    text = tier_tables.markdown(rows, found, where)
    assert "| **local** | ext4 at /x" not in text and "- **nfs**: nfs4 at /mnt" in text
    # hdf5 is ahead of webdataset locally (1.2 against 2.5), behind it on nfs (3.0 > 1.5)
    assert "hdf5 is ahead of webdataset on local, behind it on nfs" in text
    assert "png is ahead" not in text  # png is behind both on both tiers
    assert "changes between tiers: hdf5 on local; webdataset on nfs" in text
    # a tie on one tier that holds the other tier's pick is no change of pick
    picks = {
        "need": {
            "local": Pick("need", ("hdf5", "lmdb"), "a tie"),
            "nfs": Pick("need", ("hdf5",), ""),
        }
    }
    assert tier_tables.pick_changes(picks, ["local", "nfs"]) == []
    picks["need"]["nfs"] = Pick("need", ("png",), "1.2x")
    assert tier_tables.pick_changes(picks, ["local", "nfs"]) == [
        "The pick for need changes between tiers: hdf5 or lmdb on local; png on nfs."
    ]
    # intervals that meet on one tier: no change claimed
    found["nfs"] = _tier({"raw": 1.0, "png": 40.0, "hdf5": 1.3, "webdataset": 1.25})
    text = tier_tables.markdown(tier_tables.rows(found, where), found, where)
    assert "ahead of" not in text and "nowhere beyond the intervals" in text


def test_the_tiers_figure_draws_every_tier(tmp_path: Path) -> None:
    found = {
        "local": _tier({"raw": 1.0, "png": 20.0, "hdf5": 1.2}),
        "nfs": _tier({"raw": 1.0, "png": 40.0, "hdf5": 3.0}),
    }
    rows = tier_tables.rows(found, {})
    out = tmp_path / "tiers.png"
    figures.render("tiers", {"tiers": rows}, [out], ["raw", "png", "hdf5"])
    assert out.stat().st_size > 10_000

    def cold_panel(rows: list[dict[str, Any]]) -> Any:
        fig = figures.draw("tiers", {"tiers": rows}, ["raw", "png", "hdf5"])
        return next(ax for ax in fig.axes if "cold" in ax.get_title())

    every = len(cold_panel(rows).patches)
    assert every == 6 and not [t for t in cold_panel(rows).texts if t.get_text() == "*"]
    # a cold read whose cache was not shown cold keeps its bar, starred
    for row in rows:
        if (row["tier"], row["format"], row["cache"]) == ("nfs", "png", "cold"):
            row["cache"] = tables.NOT_VERIFIED
    panel = cold_panel(rows)
    assert len(panel.patches) == every
    assert [t.get_text() for t in panel.texts] == ["*"]


def test_a_tier_that_cannot_run_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    from conftest import snakemake, write_config

    missing = tmp_path / "not-mounted"
    config = write_config(tmp_path, tiers={"nfs": {"kind": "directory", "path": str(missing)}})
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(config), check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "storebench:" in line]
    assert lines == [
        f"storebench: error: config.yaml: tiers.nfs.path: {missing} is not a directory; "
        "mount it (or create it) or fix the path"
    ]
    assert not (tmp_path / "results").exists() and not missing.exists()


@pytest.mark.slow
def test_the_experiment_runs_again_on_a_directory_tier(tmp_path: Path, sample: Path) -> None:
    from conftest import local_config, snakemake

    work, mount = tmp_path / "run", tmp_path / "mount"
    work.mkdir()
    mount.mkdir()
    config = local_config(
        work,
        sample,
        ("raw", "png", "hdf5"),
        n_images=100,
        cutoffs=[10, 100],
        repeats=2,
        tiers={"scratch": {"kind": "directory", "path": str(mount), "cutoffs": [100]}},
    )
    snakemake(work, "results/figures/tiers.png", "--cores", "2", "--configfile", str(config))
    results = work / "results"
    with open(results / "tables/tiers.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_tier = {t: [r for r in rows if r["tier"] == t] for t in ("local", "scratch")}
    # the local tier at both cutoffs, the directory tier at its one; store + 4 reads each
    assert {int(r["n"]) for r in by_tier["local"]} == {10, 100}
    assert {int(r["n"]) for r in by_tier["scratch"]} == {100}
    assert len(by_tier["scratch"]) == 3 * (1 + 4)
    assert all(float(r["images_per_s"]) > 0 for r in rows)
    # the tier's stores, dataset and results live on the tier, its tables are copied back
    inner = mount / "storebench" / "scratch" / "results"
    assert len(list((inner / "stores" / "png" / "100").glob("*.png"))) == 100
    assert not (results / "tiers" / "scratch" / "stores").exists()  # only tables come back
    images = np.load(inner / "dataset" / "images.npy")
    local = np.load(results / "dataset" / "images.npy")
    assert images.shape == (100, 32, 32, 3) and np.array_equal(images, local[:100])
    described = json.loads((results / "tiers/scratch/tier.json").read_text())
    assert described["work"] == str(mount / "storebench" / "scratch")
    assert described["filesystem"]["type"] not in ("", "unknown")
    # every read of the tier's run returned the dataset's images and labels
    labels = np.load(inner / "dataset" / "labels.npy")
    reads = sorted((inner / "measurements" / "read").rglob("*.json"))
    assert len(reads) == 3 * 4
    for path in reads:
        result = json.loads(path.read_text())
        index = read_indices(100, result["order"], seed=0)
        assert result["checksum"] == checksum(images[index], labels[index])
    text = (results / "tables/tiers.md").read_text()
    assert "### Verdict per tier at n = 100 images" in text and "| local | scratch |" in text
    assert (results / "figures/tiers.png").stat().st_size > 10_000
    assert math.isfinite(float(by_tier["scratch"][0]["ratio"]))


def test_the_tiers_csv_reads_back_with_local_rows_that_counted_no_requests(
    tmp_path: Path,
) -> None:
    """A local tier counts no requests: its cells are empty, not NaN (a table with NaN
    is refused as damaged, and the figure reads the table back)."""
    from storebench.present import tables

    found = {"local": _tier({"raw": 1.0, "png": 20.0}), "s3-wan": _tier({"raw": 1.0, "png": 7.0})}
    for row in found["s3-wan"]["read"]:
        row.update(remote_way="key", requests=1001.0, bytes_down=2.66e6)
    rows = tier_tables.rows(found, {})
    path = tmp_path / "tiers.csv"
    tables.write_csv(rows, tier_tables.COLUMNS, path)
    back = tables.read_table(path)
    local = [r for r in back if r["tier"] == "local"]
    remote = [r for r in back if r["tier"] == "s3-wan" and r["measurement"] == "read"]
    assert local and all(r["requests"] == "" and r["remote_way"] == "" for r in local)
    assert remote and all(r["requests"] == 1001 and r["remote_way"] == "key" for r in remote)
