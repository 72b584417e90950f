"""Result provenance: every result says what made it; a table refuses mixed runs."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storebench import provenance, results
from storebench.errors import StorebenchError


def _result(fmt: str = "png", n: int = 10, **changes: Any) -> dict[str, Any]:
    result = {
        "schema": provenance.RESULT_SCHEMA,
        "format": fmt,
        "kind": "png",
        "options": {"compress_level": 6},
        "n": n,
        "versions": provenance.versions(),
        "run": {
            "dataset": {"training_set_sha256": "ab" * 8, "n_images": 1000},
            "repeats": 3,
            "seed": 0,
        },
        "samples": {"store_s": [0.1, 0.2, 0.3]},
        "reference_samples": {"store_s": [0.1, 0.1, 0.1]},
        "sampling": {"pairs": 3, "stopped": "precision"},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = result
        for key in parents:
            node = node[key]
        node[last] = value
    return result


def _write(tmp_path: Path, results_list: list[dict[str, Any]]) -> list[Path]:
    """Write results as the workflow lays them out, oldest first."""
    paths = []
    for k, result in enumerate(results_list):
        path = tmp_path / "results/measurements/store" / result["format"] / f"{result['n']}.json"
        if path.exists():
            path = path.with_name(f"{result['n']}-{k}.json")
        results.write_json(result, path)
        os.utime(path, (1_000_000 + k, 1_000_000 + k))
        paths.append(path)
    return paths


def test_results_of_one_run_pass(tmp_path: Path) -> None:
    other = _result("hdf5", kind="hdf5", options={"chunk": None})  # other formats differ freely
    paths = _write(tmp_path, [_result(), _result(n=100), other])
    loaded = results.check_one_run(paths)
    assert [r["n"] for r in loaded] == [10, 100, 10]


def test_an_older_result_is_refused_in_one_line_naming_how_to_remake_it(tmp_path: Path) -> None:
    old = _result()
    del old["schema"]  # written before results were stamped
    (path,) = _write(tmp_path, [old])
    with pytest.raises(StorebenchError) as caught:
        results.check_one_run([path])
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "schema 1" in message
    assert "snakemake --cores 4 --forcerun store" in message
    # the current version passes; a round file is checked as a whole too
    assert results.check_one_run(_write(tmp_path / "new", [_result()]))
    round_file = tmp_path / "results/measurements/round/r2.json"
    results.write_json({"round": 2, "records": [{**_result(), "round": 2}]}, round_file)
    with pytest.raises(StorebenchError, match="--forcerun round"):
        results.check_one_run([round_file])
    # a result that lacks a declared field says which
    partial = _result()
    del partial["samples"]
    with pytest.raises(StorebenchError, match="it lacks samples"):
        results.check_one_run(_write(tmp_path / "partial", [partial]))


def test_a_cut_result_file_is_refused_in_one_line_naming_its_rule(tmp_path: Path) -> None:
    (path,) = _write(tmp_path, [_result()])
    text = path.read_text()
    for cut in (text[: len(text) // 2], "", "\xff\xfe"):
        path.write_text(cut, encoding="latin-1")
        with pytest.raises(StorebenchError, match="not a whole JSON file") as caught:
            results.check_one_run([path])
        message = str(caught.value)
        assert "\n" not in message and str(path) in message
        assert "snakemake --cores 4 --forcerun store" in message


def test_code_version_is_recorded() -> None:
    version = provenance.versions()["storebench_code"]
    assert len(version) == 12 and int(version, 16) >= 0
    assert version == provenance.code_version()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"versions__storebench_code": "0123456789ab"}, "versions.storebench_code"),
        ({"versions__h5py": "2.0.0"}, "versions.h5py"),
        ({"run__dataset__training_set_sha256": "cd" * 8}, "run.dataset.training_set_sha256"),
        ({"run__dataset__n_images": 2000}, "run.dataset.n_images"),
        ({"run__repeats": 5}, "run.repeats"),
        ({"run__seed": 1}, "run.seed"),
        ({"options": {"compress_level": 1}}, "options.compress_level"),
    ],
)
def test_mixed_runs_are_refused_naming_the_older_file(
    changes: dict[str, Any], field: str, tmp_path: Path
) -> None:
    old = _result(n=100, **changes)
    old_path, new_path = _write(tmp_path, [old, _result()])
    with pytest.raises(StorebenchError) as info:
        results.check_one_run([new_path, old_path])
    message = str(info.value)
    assert f"{field} is" in message and "\n" not in message
    assert message.index(str(old_path)) < message.index(str(new_path))  # older named first
    assert message.endswith("`snakemake --cores 4 --forcerun store`")


def test_table_command_refuses_and_writes_nothing(tmp_path: Path) -> None:
    stale = copy.deepcopy(_result(n=100))
    stale["versions"]["storebench_code"] = "0" * 12
    paths = _write(tmp_path, [stale, _result()])
    csv, md = tmp_path / "t.csv", tmp_path / "t.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "storebench",
            "--log",
            str(tmp_path / "t.log"),
            "table",
            "timing",
            "--csv",
            str(csv),
            "--md",
            str(md),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("storebench: error: results from different runs")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not csv.exists() and not md.exists()


def test_a_format_of_its_own_environment_shares_a_table_with_other_versions(tmp_path) -> None:
    """An MDS result made in the mds environment (numpy 2.1.3) beside the project's
    (numpy 2.4.6): one run. Two results of that environment that disagree are not."""
    mds = _result("mds", kind="mds", options={}, environment="mds")
    mds["versions"] = {**mds["versions"], "numpy": "2.1.3"}
    paths = _write(tmp_path, [_result(), mds])
    assert len(results.check_one_run(paths)) == 2
    unmarked = {k: v for k, v in mds.items() if k != "environment"}  # not said: refused
    with pytest.raises(StorebenchError, match=r"versions\.numpy is"):
        results.check_one_run(_write(tmp_path / "unmarked", [_result(), unmarked]))
    other = copy.deepcopy(mds)
    other["format"], other["versions"]["numpy"] = "mds_jpeg", "2.1.2"
    with pytest.raises(StorebenchError, match=r"versions\.numpy is '2\.1\.3'"):
        results.check_one_run(_write(tmp_path / "two", [mds, other]))
