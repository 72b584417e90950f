"""config.yaml: the shipped one is valid; every bad value is named by its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from storebench.config import check, normalize
from storebench.errors import StorebenchError

from conftest import ROOT

SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text())
GOOD = copy.deepcopy(SHIPPED)
normalize(GOOD)


def test_shipped_config_is_valid_and_official() -> None:
    formats = check(GOOD)
    kinds = {name: fmt.kind for name, fmt in formats.items()}
    assert {"png", "lmdb", "lmdb_raw", "hdf5", "hdf5_gzip", "tfrecord", "raw"} <= set(formats)
    assert kinds["raw"] == "npy" and kinds["tfrecord"] == "tfrecord"
    assert formats["lmdb_raw"].value == "raw" and formats["hdf5"].chunk is None
    assert formats["hdf5_gzip"].compression == "gzip"
    assert GOOD["cifar10"]["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert GOOD["cifar10"]["md5"] == "c58f30108f718f92721af3b95e74349a"
    assert GOOD["cifar10"]["archive"] is None
    assert GOOD["cutoffs"] == [10, 100, 1000, 10000, 100000]
    assert GOOD["n_images"] == 100000


def _with(path: str, value: Any) -> dict:
    config = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return config


def test_experiment_cutoffs_follow_the_largest_cutoff() -> None:
    """config.yaml leaves them null, so changing cutoffs alone gives a valid run."""
    assert SHIPPED["parallel"]["cutoffs"] is None and SHIPPED["dataloader"]["cutoffs"] is None
    assert GOOD["parallel"]["cutoffs"] == GOOD["dataloader"]["cutoffs"] == [100000]
    config = copy.deepcopy(SHIPPED) | {"n_images": 1000, "cutoffs": [10, 100]}
    normalize(config)
    check(config)
    assert config["parallel"]["cutoffs"] == config["dataloader"]["cutoffs"] == [100]
    config = _with("parallel.cutoffs", [])
    normalize(config)
    assert config["parallel"]["cutoffs"] == []  # none stays none


def test_whole_numbers_typed_as_strings_are_numbers() -> None:
    """What `snakemake --config n_images=1000 'cutoffs=[10,100]'` hands over."""
    config = copy.deepcopy(SHIPPED) | {"n_images": "1000", "cutoffs": ["10", " 100"], "seed": "-0"}
    config["sampling"] = {**config["sampling"], "precision": "0.1", "max_pairs": "8"}
    normalize(config)
    check(config)
    assert config["n_images"] == 1000 and config["cutoffs"] == [10, 100] and config["seed"] == 0
    assert config["sampling"]["precision"] == 0.1 and config["sampling"]["max_pairs"] == 8
    assert config["caches"] == ["warm", "cold"]  # strings where strings belong stay


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["10", "1e2"], r"cutoffs.1: '1e2' is not of type 'integer'"),
        (["10", "ten"], r"cutoffs.1: 'ten' is not of type 'integer'"),
        (["10", "10.0"], r"cutoffs.1: '10.0' is not of type 'integer'"),
    ],
)
def test_strings_that_are_not_whole_numbers_are_still_refused(value: list, message: str) -> None:
    config = copy.deepcopy(SHIPPED) | {"cutoffs": value}
    normalize(config)
    with pytest.raises(StorebenchError, match=message):
        check(config)


def test_scale_config_is_complete_valid_and_official() -> None:
    """The shipped 1,000,000-image config replaces config.yaml, so it must hold every key."""
    scale = yaml.safe_load((ROOT / "workflow/configs/scale-1m.yaml").read_text())
    assert set(scale) == set(GOOD)
    formats = check(scale)
    assert set(formats) == {"raw", "lmdb_raw", "hdf5", "tfrecord"}
    assert scale["n_images"] == max(scale["cutoffs"]) == 1_000_000
    assert scale["cifar10"] == GOOD["cifar10"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("colour", "red", "Additional properties are not allowed .'colour'"),
        ("cifar10.mirror", "x", r"cifar10: Additional properties"),
        ("cifar10.md5", "abc", "cifar10.md5: 'abc' does not match"),
        ("cifar10.url", "ftp://x", "cifar10.url"),
        ("n_images", 0, "n_images: 0 is less than the minimum of 1"),
        ("n_images", 10.5, "n_images: 10.5 is not of type 'integer'"),
        ("repeats", -1, "repeats: -1 is less than the minimum of 1"),
        ("repeats", "3", "repeats: '3' is not of type 'integer'"),
        ("cutoffs", [10, 10], "cutoffs: .* has non-unique elements"),
        ("cutoffs", [], "cutoffs: .* should be non-empty"),
        ("cutoffs", [10, 200000], r"cutoffs: \[200000\] exceed n_images=100000"),
        ("formats", {}, "formats: .* should be non-empty"),
        ("formats.png.kind", "gif", "formats.png.kind: unknown kind 'gif'"),
        ("formats.png.kind", KeyError, "formats.png: 'kind' is a required property"),
        ("repeats", KeyError, "'repeats' is a required property"),
        ("parallel.workers", [0, 2], "parallel.workers.0: 0 is less than the minimum of 1"),
        ("parallel.workers", [], "parallel.workers: .* should be non-empty"),
        ("parallel.caches", ["hot"], "parallel.caches.0: 'hot' is not one of"),
        ("parallel.cutoffs", [50], r"parallel.cutoffs: \[50\] are not in cutoffs"),
        ("dataloader.cutoffs", [100, 7], r"dataloader.cutoffs: \[7\] are not in cutoffs"),
        ("dataloader.num_workers", [-1], "dataloader.num_workers.0: -1 is less than the minimum"),
        ("dataloader.batch_size", 0, "dataloader.batch_size: 0 is less than the minimum of 1"),
        ("dataloader", KeyError, "'dataloader' is a required property"),
        ("training.step_ms", 0, "training.step_ms: 0 is less than or equal to the minimum of 0"),
        ("training.step_ms", -5, "training.step_ms: -5 is less than or equal to the minimum"),
        ("training.batch_size", 0, "training.batch_size: 0 is less than the minimum of 1"),
        ("training.step", "gpt5-b200", "training.step: 'gpt5-b200' is not one of"),
        ("training.crop", 64, "training.crop: 64 px is larger than the images .32 px.; set"),
        ("training.target_au", 1.5, "training.target_au: 1.5 is greater than the maximum of 1"),
        ("training.threads", [0], "training.threads.0: 0 is less than the minimum of 1"),
        ("training.cutoffs", [7], r"training.cutoffs: \[7\] are not in cutoffs"),
        ("dataset.kind", "mnist", "dataset.kind: 'mnist' is not one of"),
        ("dataset.kind", "imagefolder", "dataset.path: kind imagefolder needs the folder"),
        ("dataset.path", "/data/images", "dataset.path: kind cifar10 makes its own images"),
        ("dataset.size", 0, "dataset.size: 0 is less than the minimum of 1"),
        ("dataset.size", [32, 32, 3], r"dataset.size: \[32, 32, 3\] is too long"),
        ("dataset.size", [9000, 32], "dataset.size.0: 9000 is greater than the maximum of 8192"),
        ("dataset.colour", "red", "dataset: Additional properties"),
        ("n_images", 3000.0, "n_images: 3000.0 is not of type 'integer'"),
        ("n_images", True, "n_images: True is not of type 'integer'"),
        ("n_images", 10**9, "n_images: 1000000000 is greater than the maximum"),
        ("noise_threshold", float("nan"), "noise_threshold: nan is not of type 'number'"),
        ("filesystem_probe.max_wait_s", float("inf"), "max_wait_s: inf is not of type 'number'"),
        ("cifar10.md5", "c58f30108f718f92721af3b95e74349a\n", "cifar10.md5: .* control character"),
        ("cifar10.url", "https://x/a.tar.gz\r", "cifar10.url: .* control character"),
        ("parallel.workers", [1, 4096], "parallel.workers.1: 4096 is greater than the maximum"),
        ("formats.png.compress_level", True, "formats.png.compress_level: True is not a whole"),
        ("formats.hdf5_gzip.level", 4.0, "formats.hdf5_gzip.level: 4.0 is not a whole number"),
        ("rounds.to_n", 1000, "rounds: to_n=1000 is below from_n=10000, so no cell"),
        ("rounds.to_n", 0, "rounds.to_n: 0 is less than the minimum of 1"),
        ("rounds.to_n", KeyError, "rounds: 'to_n' is a required property"),
    ],
)
def test_bad_values_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(StorebenchError, match=message) as info:
        check(_with(path, value))
    assert "\n" not in str(info.value)


def test_a_dataset_section_is_optional_and_a_square_size_is_two_sides() -> None:
    config = copy.deepcopy(SHIPPED)
    del config["dataset"]
    normalize(config)
    check(config)
    assert config["dataset"] == {"kind": "cifar10", "path": None, "size": None}
    config["dataset"]["size"] = 64
    normalize(config)
    assert config["dataset"]["size"] == [64, 64]
    config = copy.deepcopy(SHIPPED) | {"dataset": {"kind": "imagefolder", "path": "x"}}
    normalize(config)
    assert config["dataset"] == {"kind": "imagefolder", "path": "x", "size": None}


def test_a_null_crop_is_the_images_own_smaller_side() -> None:
    """config.yaml's crop: null crops CIFAR-10 to 32 px, a resized set to its smaller
    side, and leaves a folder at native sizes to its job (its smallest image)."""
    config = copy.deepcopy(SHIPPED)
    assert config["training"]["crop"] is None
    normalize(config)
    check(config)
    assert config["training"]["crop"] == 32
    config = copy.deepcopy(SHIPPED) | {"dataset": {"kind": "cifar10", "size": [24, 40]}}
    normalize(config)
    check(config)
    assert config["training"]["crop"] == 24
    config = copy.deepcopy(SHIPPED) | {"dataset": {"kind": "imagefolder", "path": "x"}}
    normalize(config)
    assert config["training"]["crop"] is None
    config = copy.deepcopy(SHIPPED) | {"dataset": {"kind": "cifar10", "size": [24, 40]}}
    config["training"]["crop"] = 32  # set by hand, it is still checked against the images
    normalize(config)
    with pytest.raises(StorebenchError, match=r"training.crop: 32 px is larger .*\(24 px\)"):
        check(config)


@pytest.mark.parametrize("name", ["1e3", "nan", "inf", "Infinity", "123", 123, 10, "png_", "-x"])
def test_a_format_name_the_outputs_would_misread_is_refused(name: Any) -> None:
    """A name that reads back from a table as a number (YAML's ``1_0:`` is the number 10),
    or ends in ``_`` (a link in the report's markup), is refused in one line."""
    config = _with("formats.raw", KeyError)
    config["formats"] = {name: {"kind": "npy"}, "raw": {"kind": "npy"}}
    with pytest.raises(StorebenchError, match="is not a usable format name") as info:
        check(config)
    assert "\n" not in str(info.value) and repr(name) in str(info.value)


@pytest.mark.parametrize("name", ["a", "png_fast", "hdf5-lzf", "x1", "nano", "info"])
def test_a_format_name_that_reads_as_text_is_accepted(name: str) -> None:
    config = _with("formats.raw", KeyError)
    config["formats"] = {name: {"kind": "npy"}, "raw": {"kind": "npy"}}
    assert name in check(config)


def test_a_config_file_yaml_would_misread_is_refused(tmp_path: Path) -> None:
    """A key given twice in one section (YAML keeps the last, silently) and an anchor
    bomb (nested aliases) are refused, naming the file, before anything walks them."""
    from storebench.config import check_file

    good = tmp_path / "good.yaml"
    good.write_text("a: 1\nb: {c: 2, d: [1, 2]}\nbase: &x {k: 1}\nother: *x\n")
    check_file(good)
    twice = tmp_path / "twice.yaml"
    twice.write_text("repeats: 3\nsampling:\n  precision: 0.05\n  precision: 0.5\n")
    with pytest.raises(StorebenchError, match=r"twice.yaml, line 4: the key 'precision' is"):
        check_file(twice)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghi":
        previous = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [{', '.join(['*' + previous] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")  # 9**9 entries if expanded
    with pytest.raises(StorebenchError, match=r"bomb.yaml: 72 YAML aliases"):
        check_file(bomb)
    # fewer aliases than that, nested seven deep: 63 aliases, 33 million values when
    # expanded (Snakemake's own loader took 40 s and 3.7 GB merging it); measured here
    # without expanding it
    small = tmp_path / "small_bomb.yaml"
    small.write_text("\n".join(lines[:8]) + "\n")
    with pytest.raises(
        StorebenchError, match=r"small_bomb.yaml: its YAML aliases \(\*name\) expand"
    ):
        check_file(small)
    check_file(ROOT / "config.yaml")  # about 180 values
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a\n  - 1\n  - *a\n")
    with pytest.raises(StorebenchError, match=r"loop.yaml: a YAML anchor refers to itself"):
        check_file(loop)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(StorebenchError, match=r"broken\.yaml: cannot be read as YAML") as info:
        check_file(broken)
    assert "\n" not in str(info.value)


def test_the_slurm_profile_runs_one_timed_job_at_a_time_on_a_whole_node() -> None:
    """On a cluster every node measures the same shared file system: the profile caps
    the rules that take a unit of ``bench`` at one at a time, each on its own node."""
    import re

    profile = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert "bench=1" in profile["resources"]
    rules_text = "\n".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    timed = [
        name
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t].*\n|\n)*)", rules_text, re.M)
        if "bench=1" in body
    ]
    assert {"store", "read", "round"} <= set(timed)
    for name in timed:
        assert "--exclusive" in profile["set-resources"][name]["slurm_extra"], name


def test_a_format_of_an_extra_not_installed_stops_the_run_before_any_job(monkeypatch) -> None:
    """loaders.yaml's formats without the loaders extra: one line naming the package and
    the install command; with it, the config is taken."""
    from storebench import provenance

    config = copy.deepcopy(SHIPPED)
    config["formats"] |= yaml.safe_load((ROOT / "workflow/configs/loaders.yaml").read_text())[
        "formats"
    ]
    normalize(config)
    found = provenance.package_version
    monkeypatch.setattr(
        provenance, "package_version", lambda p: "not installed" if p == "pylance" else found(p)
    )
    with pytest.raises(StorebenchError, match=r"^formats.lance: kind 'lance' needs pylance, wh"):
        check(config)
    monkeypatch.setattr(provenance, "package_version", lambda p: "1.0")
    assert {"lance", "arrayrecord", "litdata"} <= set(check(config))
