"""The image-size sweep: each size's run, its table and figure, and where rankings change."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from storebench import sweep

from conftest import ROOT


def _cell(fmt: str, n: int, median: float, measurement: str = "read", **where: str) -> dict:
    return {
        "format": fmt,
        "n": n,
        "measurement": measurement,
        "cache": where.get("cache", "warm"),
        "order": where.get("order", "random"),
        "median": median,
        "median_lo": median * 0.98,
        "median_hi": median * 1.02,
        "ratio": 1.0,
        "ratio_lo": 0.9,
        "ratio_hi": 1.1,
    }


def test_rows_are_per_image_and_a_swap_is_named() -> None:
    tables = {
        32: {
            "read": [_cell("a", 1000, 1.0), _cell("b", 1000, 2.0)],
            "store": [_cell("a", 1000, 3.0, "store"), _cell("a", 1000, 9.0, "store_durable")],
            "usage": [{"format": "a", "bytes_per_image": 3100.0}],
        },
        64: {"read": [_cell("a", 250, 1.0), _cell("b", 250, 0.5)]},
    }
    rows = sweep.rows(tables)
    first = next(
        r for r in rows if r["size"] == 32 and r["format"] == "a" and r["measurement"] == "read"
    )
    assert first["s_per_image"] == pytest.approx(1e-3) and first["image_bytes"] == 3072
    assert first["mb_per_s"] == pytest.approx(1000 * 3072 / 1.0 / 1e6)
    assert first["bytes_per_image"] == 3100.0
    assert not any(r["measurement"] == "store_durable" for r in rows)
    changes = sweep.ranking_changes(rows)
    assert changes == [
        "read, warm cache, random order: a is faster than b per image at 32 px, slower at 64 px"
    ]
    text = sweep.markdown(rows, 3.0)
    assert "32 px (n=1,000)" in text and "64 px (n=250)" in text and changes[0] in text


def test_overlapping_intervals_are_not_a_swap() -> None:
    tables = {
        32: {"read": [_cell("a", 100, 1.0), _cell("b", 100, 1.01)]},
        64: {"read": [_cell("a", 100, 1.01), _cell("b", 100, 1.0)]},
    }
    assert sweep.ranking_changes(sweep.rows(tables)) == []


def test_each_size_gets_the_same_bytes_and_its_own_config() -> None:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["size_sweep"] = {"sizes": [32, 256], "megabytes": 60, "formats": ["png", "hdf5"]}
    assert sweep.images_at(32, 60) == 20_480 and sweep.images_at(256, 60) == 320
    sub = sweep.sub_config(config, 256, "/data/archive.tar.gz")
    assert sub["dataset"]["size"] == [256, 256] and sub["n_images"] == 320
    assert sub["cutoffs"] == [320] and sub["size_sweep"]["sizes"] == []
    assert sub["parallel"]["cutoffs"] == [] and sub["dataloader"]["cutoffs"] == []
    assert list(sub["formats"]) == ["raw", "png", "hdf5"]  # the floor is kept
    assert sub["cifar10"]["archive"] == "/data/archive.tar.gz"
    assert config["size_sweep"]["sizes"] == [32, 256]  # the outer config is untouched


@pytest.mark.slow
def test_the_sweep_runs_each_size_and_draws_its_figure(tmp_path: Path, sample: Path) -> None:
    from conftest import local_config, snakemake

    work = tmp_path / "run"
    work.mkdir()
    config = local_config(
        work,
        sample,
        ("raw", "png", "hdf5"),
        n_images=100,
        cutoffs=[100],
        repeats=2,
        size_sweep={"sizes": [8, 16], "megabytes": 0.05, "formats": None},
    )
    snakemake(work, "results/figures/image_size.png", "--cores", "2", "--configfile", str(config))
    results = work / "results"
    for size, n in ((8, 273), (16, 68)):
        meta = json.loads((results / f"sizes/{size}/results/dataset/dataset.json").read_text())
        assert meta["shape"] == [size, size, 3] and meta["n_images"] == n
    with open(results / "tables/image_size.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = {(int(r["size"]), r["format"], r["measurement"], r["cache"], r["order"]) for r in rows}
    assert len(cells) == 2 * 3 * (1 + 4)  # sizes x formats x (store + 4 reads)
    assert {int(r["n"]) for r in rows if r["size"] == "8"} == {273}
    assert all(float(r["s_per_image"]) > 0 and float(r["mb_per_s"]) > 0 for r in rows)
    assert "Where the ranking changes" in (results / "tables/image_size.md").read_text()
    assert (results / "figures/image_size.png").stat().st_size > 10_000
    assert np.load(results / "sizes/16/results/dataset/images.npy").shape == (68, 16, 16, 3)
