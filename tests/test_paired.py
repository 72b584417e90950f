"""Paired measurement: intervals, adaptive sampling, the floor's reads, ties, compare."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from storebench import host, measure, pagecache, provenance, sampling, stats, validation
from storebench.chunks import read_rows
from storebench.errors import StorebenchError
from storebench.formats import make_format
from storebench.present import publish, replay, tables
from storebench.sampling import Policy, run_pairs

N = 300


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    return (
        rng.integers(0, 256, (N, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 10, N, dtype=np.uint8),
    )


# --- statistics ------------------------------------------------------------------------


def test_median_interval_coverage_is_honest() -> None:
    three = stats.median_interval([3.0, 1.0, 2.0])
    assert (three["lo"], three["median"], three["hi"]) == (1.0, 2.0, 3.0)
    assert three["coverage"] == pytest.approx(0.75)  # min..max of 3: not 95%
    six = stats.median_interval(range(6))
    assert (six["lo"], six["hi"]) == (0, 5) and six["coverage"] == pytest.approx(1 - 2 / 64)
    # 100 samples: the classic ranks 40 and 61 (1-based), coverage just above 95%.
    hundred = stats.median_interval(range(1, 101))
    assert (hundred["lo"], hundred["hi"]) == (40, 61) and 0.95 <= hundred["coverage"] < 0.97
    # 1,000 latency samples: the ranks 469 and 532 of the published tables, found at once
    # (a sum of binomial terms per candidate rank took 50 s a latency table).
    thousand = stats.median_interval(range(1, 1001))
    assert (thousand["lo"], thousand["hi"]) == (469, 532)


def test_precise_needs_full_coverage_and_a_narrow_interval() -> None:
    assert not stats.precise([2.0] * 5, 0.05)  # 5 pairs cannot reach 95%
    assert stats.precise([2.0] * 6, 0.05)
    assert not stats.precise([1.0, 2.0, 2.0, 2.0, 2.0, 3.0], 0.05)


def test_clearly_before_needs_intervals_that_do_not_overlap() -> None:
    rows = [
        {"ratio": 1.0, "lo": 0.9, "hi": 1.1},
        {"ratio": 1.05, "lo": 1.0, "hi": 1.2},  # overlaps the first: none clearly better
        {"ratio": 1.3, "lo": 1.15, "hi": 1.4},  # only the first is clearly better
        {"ratio": 3.0, "lo": 2.9, "hi": 3.1},  # all three are
    ]
    assert stats.clearly_before(rows[0], rows[2]) and not stats.clearly_before(rows[1], rows[2])


# --- the paired runner -----------------------------------------------------------------


def _trial(values: list[float], calls: list[str], name: str):
    it = itertools.cycle(values)

    def trial() -> dict[str, float]:
        calls.append(name)
        return {"x_s": next(it)}

    return trial


def test_pairs_alternate_in_random_order_and_stop_when_precise() -> None:
    calls: list[str] = []
    policy = Policy(min_pairs=3, max_pairs=50, precision=0.05, time_cap_s=60)
    result = run_pairs(_trial([2.0], calls, "A"), _trial([1.0], calls, "B"), policy, seed=1)
    # A constant ratio of 2 is precise as soon as 6 pairs give 95% coverage.
    assert result["sampling"]["stopped"] == "precision" and result["sampling"]["pairs"] == 6
    assert result["samples"]["x_s"] == [2.0] * 6 and result["reference_samples"]["x_s"] == [1.0] * 6
    pairs = [calls[i : i + 2] for i in range(0, len(calls), 2)]
    assert all(sorted(p) == ["A", "B"] for p in pairs)  # every pair: one of each
    assert [{"format": "A", "reference": "B"}[f] for f in result["first"]] == [p[0] for p in pairs]
    assert len(set(result["first"])) == 2  # both orders occur
    assert len(result["cpu_s"]) == 6 and min(result["cpu_s"]) > 0


def test_noisy_pairs_stop_at_the_time_cap_or_max_pairs() -> None:
    calls: list[str] = []
    noisy = _trial([1.0, 3.0, 0.5, 2.0, 5.0], calls, "A")
    capped = run_pairs(
        noisy,
        _trial([1.0], calls, "B"),
        Policy(min_pairs=4, max_pairs=1000, precision=0.05, time_cap_s=0.0),
    )
    assert capped["sampling"]["stopped"] == "time_cap" and capped["sampling"]["pairs"] == 4
    most = run_pairs(
        noisy,
        _trial([1.0], calls, "B"),
        Policy(min_pairs=2, max_pairs=9, precision=0.05, time_cap_s=60),
    )
    assert most["sampling"]["stopped"] == "max_pairs" and most["sampling"]["pairs"] == 9


def test_time_spent_before_a_pair_is_not_on_the_time_cap() -> None:
    # A store's wait for a quiet file system (before_pair) is not sampling: 0.3 s of it
    # in each pair must not end, at a 0.25 s cap, a job whose pairs take microseconds.
    calls: list[str] = []
    policy = Policy(min_pairs=2, max_pairs=8, precision=0.0, time_cap_s=0.25)

    def wait(order: tuple[str, str]) -> dict[str, Any]:
        assert sorted(order) == ["format", "reference"]
        time.sleep(0.3)
        return {"waited_s": 0.3}

    # A CPU probe that costs nothing: the real one (48 PNG decodes per pair) would put
    # 8 pairs near the cap on a loaded machine.
    result = run_pairs(
        _trial([1.0, 2.0], calls, "A"),
        _trial([1.0], calls, "B"),
        policy,
        cpu=lambda: 0.0,  # type: ignore[arg-type]
        before_pair=wait,
    )
    assert result["sampling"]["stopped"] == "max_pairs" and result["sampling"]["pairs"] == 8
    assert result["sampling"]["before_pair_s"] >= 8 * 0.3
    assert len(result["before_pair"]) == 8


def test_a_short_reference_runs_several_times_a_pair_and_gives_its_median() -> None:
    calls: list[str] = []
    policy = Policy(
        min_pairs=4,
        max_pairs=4,
        precision=0.0,
        time_cap_s=60,
        reference_share=0.25,
        max_reference_runs=5,
    )
    reference = _trial([1.0, 1.0, 4.0], calls, "B")  # a slow outlier every third run
    result = run_pairs(
        _trial([12.0], calls, "A"), reference, policy, seed=3, first_side="reference"
    )
    # The first pair, floor first, knows nothing yet (one run); then 0.25 * 12 / 1 = 3
    # runs a pair, judged by the runs' own median.
    assert [len(block["x_s"]) for block in result["reference_runs"]] == [1, 3, 3, 3]
    assert calls.count("A") == 4 and calls.count("B") == 10
    # A pair's reference value is the median of its runs: the outlier does not move it.
    assert result["reference_samples"]["x_s"] == [1.0, 1.0, 1.0, 1.0]
    assert len(result["cpu_s"]) == 4  # one CPU probe before each pair, outside it
    # Format first, its time in that pair sizes the floor's runs at once ...
    calls.clear()
    first = run_pairs(
        _trial([12.0], calls, "A"), _trial([1.0], calls, "B"), policy, first_side="format"
    )
    assert [len(block["x_s"]) for block in first["reference_runs"]] == [3, 3, 3, 3]
    # ... and a hint from earlier rounds does when the floor goes first
    hinted = run_pairs(
        _sequence([12.0]), _sequence([1.0]), policy, first_side="reference", format_hint_s=12.0
    )
    assert [len(block["read_s"]) for block in hinted["reference_runs"]] == [3, 3, 3, 3]
    # A reference as long as the format runs once; the cap bounds a very short one.
    same = run_pairs(_sequence([1.0]), _sequence([1.0]), policy, first_side="format")
    assert {len(block["read_s"]) for block in same["reference_runs"]} == {1}
    short = run_pairs(_sequence([1000.0]), _sequence([1.0]), policy, first_side="format")
    assert {len(block["read_s"]) for block in short["reference_runs"]} == {5}


# --- the floor reads the bytes the fastest way, and right ------------------------------


@pytest.mark.parametrize(
    "indices",
    [
        np.arange(N),
        np.arange(17, 90),
        np.random.default_rng(0).permutation(N),
        np.random.default_rng(1).integers(0, N, 40),
        np.array([5, 5, 4, 3, 3, 200, 6]),
        np.sort(np.random.default_rng(2).choice(N, 150, replace=False)),
        np.array([7]),
    ],
    ids=["all", "range", "permutation", "sparse", "repeats", "sorted-half", "one"],
)
def test_read_rows_scatters_every_row_into_place(indices, data, tmp_path: Path) -> None:
    images, _ = data
    path = tmp_path / "rows.bin"
    path.write_bytes(b"H" * 80 + images.tobytes())
    out = np.zeros((len(indices), 32, 32, 3), np.uint8)
    fd = os.open(path, os.O_RDONLY)
    try:
        read_rows(fd, 80, indices, out)
    finally:
        os.close(fd)
    np.testing.assert_array_equal(out, images[indices])


def test_read_rows_refuses_a_short_file(data, tmp_path: Path) -> None:
    images, _ = data
    path = tmp_path / "short.bin"
    path.write_bytes(images[:10].tobytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="short read"):
            read_rows(fd, 0, np.arange(20), np.zeros((20, 32, 32, 3), np.uint8))
    finally:
        os.close(fd)


@pytest.mark.parametrize("cache", ["warm", "cold"])
@pytest.mark.parametrize("indices", ["range", "dense", "sparse"])
def test_the_floor_reads_right_in_every_way(cache, indices, data, tmp_path: Path) -> None:
    images, labels = data
    fmt = make_format("raw", {"kind": "npy"})
    fmt.write(tmp_path, images, labels)
    wanted = {
        "range": np.arange(10, 250),
        "dense": np.random.default_rng(3).permutation(N),
        "sparse": np.array([3, 290, 150, 151, 7]),
    }[indices]
    if cache == "cold":
        pagecache.evict(fmt.files(tmp_path))
    else:
        pagecache.load(fmt.files(tmp_path))
    out, out_labels = np.zeros((len(wanted), 32, 32, 3), np.uint8), np.zeros(len(wanted), np.uint8)
    with fmt.open(tmp_path) as reader:
        reader.read_into(wanted, out, out_labels)
        with pytest.raises(IndexError):
            reader.read_into(np.array([N]), out[:1], out_labels[:1])
    np.testing.assert_array_equal(out, images[wanted])
    np.testing.assert_array_equal(out_labels, labels[wanted])


# --- paired jobs ----------------------------------------------------------------------


def test_a_read_is_paired_with_the_floor_and_both_validated(data, tmp_path: Path) -> None:
    images, labels = data
    fmt, floor = make_format("png", {"kind": "png"}), make_format("raw", {"kind": "npy"})
    (tmp_path / "png").mkdir()
    (tmp_path / "raw").mkdir()
    fmt.write(tmp_path / "png", images, labels)
    floor.write(tmp_path / "raw", images, labels)
    indices = measure.read_indices(N, "random", 4)
    result = measure.measure_read(
        fmt,
        tmp_path / "png",
        images,
        labels,
        indices,
        "cold",
        reference=(floor, tmp_path / "raw"),
        policy=Policy(min_pairs=3, max_pairs=4, precision=0.0, time_cap_s=0),
    )
    assert len(result["samples"]["read_s"]) == len(result["reference_samples"]["read_s"]) == 3
    # A PNG read is long beside the floor's: the floor runs several times a pair, each
    # run cold (its residency measured), the pair's value their median.
    runs = [len(block["read_s"]) for block in result["reference_runs"]]
    assert runs[0] == 1 and max(runs) > 1
    assert len(result["reference_residency_before"]) == sum(runs) and result["cache_verified"]
    assert result["checksum"] == validation.checksum(images[indices], labels[indices])
    # PNG decodes every image; the floor copies bytes: every pair says so.
    ratios = stats.ratios(result["samples"]["read_s"], result["reference_samples"]["read_s"])
    assert min(ratios) > 1


def test_a_retaken_read_leaves_no_record_beside_the_pairs_kept(
    data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = data
    fmt, floor = make_format("png", {"kind": "png"}), make_format("raw", {"kind": "npy"})
    for name, store in (("png", fmt), ("raw", floor)):
        (tmp_path / name).mkdir()
        store.write(tmp_path / name, images, labels)
    _ticks(monkeypatch, [0, 100, 0])  # the host steals 10% of the second pair's ticks
    result = measure.measure_read(
        fmt,
        tmp_path / "png",
        images,
        labels,
        measure.read_indices(N, "random", 4),
        "cold",
        reference=(floor, tmp_path / "raw"),
        policy=Policy(min_pairs=3, max_pairs=3, precision=0.0, time_cap_s=0, max_steal=0.05),
    )
    assert result["sampling"]["retaken"] == 1 and len(result["retaken"]) == 1
    runs = sum(len(block["read_s"]) for block in result["reference_runs"])
    assert len(result["residency_before"]) == len(result["samples"]["read_s"]) == 3
    assert len(result["reference_residency_before"]) == runs
    assert len(result["cpu_s"]) == 3  # one probe per pair kept


def test_a_wrong_reference_fails_the_job(data, tmp_path: Path) -> None:
    images, labels = data
    fmt, floor = make_format("hdf5", {"kind": "hdf5"}), make_format("raw", {"kind": "npy"})
    (tmp_path / "h").mkdir()
    (tmp_path / "r").mkdir()
    fmt.write(tmp_path / "h", images, labels)
    floor.write(tmp_path / "r", images[::-1].copy(), labels)  # not the dataset
    with pytest.raises(StorebenchError, match="images differ"):
        measure.measure_read(
            fmt,
            tmp_path / "h",
            images,
            labels,
            np.arange(N),
            "warm",
            2,
            reference=(floor, tmp_path / "r"),
        )


def test_quiet_level_is_the_runs_lowest_probe(tmp_path: Path, monkeypatch) -> None:
    baseline = tmp_path / "quiet.json"
    baseline.write_text(json.dumps({"create_latency_us": 30.0}))
    probes = iter([200.0, 150.0, 85.0])
    monkeypatch.setattr(host, "create_latency_us", lambda folder, keep: next(probes))
    monkeypatch.setattr(host.time, "sleep", lambda s: None)
    quiet = host.QuietFilesystem(tmp_path, max_wait_s=5, factor=3, baseline=baseline)
    assert quiet.threshold_us() == 90.0  # 3 x 30 us
    found = quiet.wait()
    assert found["create_latency_us"] == 85.0 and found["waited_s"] == 1.0 and not found["slow"]
    # A lower level lowers the run's baseline for later jobs.
    monkeypatch.setattr(host, "create_latency_us", lambda folder, keep: 4.0)
    quiet.wait()
    assert json.loads(baseline.read_text())["create_latency_us"] == 4.0
    assert quiet.threshold_us() == 54.0  # at least 50 us above a very quiet level


def test_probe_keeps_its_files_in_the_trash(tmp_path: Path) -> None:
    """Deleting the probe's files would slow the next probe and store down."""
    (tmp_path / "stores").mkdir()
    latency = host.create_latency_us(tmp_path / "stores", files=20, keep=tmp_path / "trash")
    assert latency > 0
    assert list((tmp_path / "stores").iterdir()) == []
    kept = list((tmp_path / "trash").rglob("*"))
    assert sum(p.is_file() for p in kept) == 20
    host.create_latency_us(tmp_path / "stores", files=5)  # no trash: deleted at once
    assert list((tmp_path / "stores").iterdir()) == []
    assert sum(p.is_file() for p in (tmp_path / "trash").rglob("*")) == 20


def test_fingerprint_follows_the_formats_code_and_libraries(monkeypatch) -> None:
    png, lmdb = make_format("png", {"kind": "png"}), make_format("lmdb", {"kind": "lmdb"})
    raw = make_format("raw", {"kind": "npy"})
    before = {"png": provenance.fingerprint(png, raw), "lmdb": provenance.fingerprint(lmdb, raw)}
    assert before["png"] != before["lmdb"]
    real = provenance.package_version
    monkeypatch.setattr(provenance, "package_version", lambda p: "99.0" if p == "lmdb" else real(p))
    assert provenance.fingerprint(png, raw) == before["png"]  # PNG does not run lmdb
    assert provenance.fingerprint(lmdb, raw) != before["lmdb"]


def test_a_job_imports_only_the_libraries_its_formats_run() -> None:
    # webdataset imports torch (3 s) when torch is installed; a job that reads any format,
    # webdataset's own reads included, must not pay that, and a timed write must not either.
    code = """
import sys
from pathlib import Path
import numpy as np
from storebench import provenance
from storebench.formats import make_format
png, raw = make_format("png", {"kind": "png"}), make_format("raw", {"kind": "npy"})
made = provenance.describe("png", png, 10, reference=("raw", raw))
assert set(made["versions"]) == {"python", "storebench", "storebench_code", "numpy", "pillow"}
wds = make_format("wds", {"kind": "webdataset", "shard": 4})
provenance.describe("wds", wds, 10, reference=("raw", raw))
print("webdataset" in sys.modules, flush=True)
wds.load_writer()
print("webdataset" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True"]


def test_a_tfrecord_result_records_and_fingerprints_its_own_libraries(monkeypatch) -> None:
    tfrecord, raw = (
        make_format("tfrecord", {"kind": "tfrecord"}),
        make_format("raw", {"kind": "npy"}),
    )
    made = provenance.describe("tfrecord", tfrecord, 10, reference=("raw", raw), dataset={"x": 1})
    for library in ("tfrecord", "protobuf", "crc32c", "numpy", "pillow"):
        assert made["versions"][library][0].isdigit(), library
    assert made["reference"] == {"format": "raw", "kind": "npy", "options": {}}
    assert made["run"] == {"dataset": {"x": 1}} and made["n"] == 10
    before = made["versions"]["storebench_code"]
    assert before == provenance.fingerprint(tfrecord, raw)
    real = provenance.package_version
    monkeypatch.setattr(
        provenance, "package_version", lambda p: "99.0" if p == "protobuf" else real(p)
    )
    assert provenance.fingerprint(tfrecord, raw) != before  # a new protobuf reruns its jobs


def test_fingerprint_ignores_modules_that_measure_nothing(monkeypatch) -> None:
    """Editing what a run says before it starts, or a figure, reruns no timed job."""
    read: list[str] = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: (read.append(self.name), real(self))[1])
    provenance.fingerprint(make_format("raw", {"kind": "npy"}))
    assert "measure.py" in read and "sampling.py" in read and "npy.py" in read
    assert not {
        "plan.py",
        "diskspace.py",
        "figures.py",
        "tables.py",
        "cost.py",
        "catalog.py",
    } & set(read)


# --- tables, summary, compare ---------------------------------------------------------


def _row(fmt: str, ratio: float, width: float, seconds: float, **extra: Any) -> dict[str, Any]:
    return {
        "format": fmt,
        "kind": "npy" if fmt == "raw" else "x",
        "n": 10_000,
        "measurement": "read",
        "cache": "warm",
        "order": "random",
        "workers": "",
        "num_workers": "",
        "unit": "s",
        "pairs": 6,
        "ratio": ratio,
        "ratio_lo": ratio * (1 - width),
        "ratio_hi": ratio * (1 + width),
        "coverage": 0.97,
        "median": seconds,
        "median_lo": seconds * 0.95,
        "median_hi": seconds * 1.05,
        "reference": "raw",
        "reference_median": seconds / ratio,
        "reference_lo": seconds / ratio * 0.95,
        "reference_hi": seconds / ratio * 1.05,
        "cpu_ms": 3.0,
        "steal": 0.01,
        "stopped": "precision",
        "retaken": "",  # not recorded (results older than the retake)
        **extra,
    }


def test_summary_ranks_by_ratio_and_marks_ties() -> None:
    read = [
        _row("raw", 1.0, 0.03, 0.1),
        _row("a", 1.02, 0.03, 0.102),
        _row("b", 5.0, 0.02, 0.5, stopped="time_cap"),
    ]
    store = [{**r, "measurement": "store", "cache": "", "order": ""} for r in read]
    usage = [
        {"format": f, "kind": "x", "n": 10_000, "allocated_bytes": 2**20} for f in ("raw", "a", "b")
    ]
    text = publish.summary_markdown({"store": store, "read": read, "usage": usage}, None, 3)
    assert "| 1–2 | raw | 1 [0.97–1.03]" in text  # the run cannot order raw and a
    assert "| 1–2 | a | 1.02" in text
    assert (
        "| 3 | b | 5 [4.9–5.1] | 0.5 [0.475–0.525] | 20,000 |  | job, 97.0%, 6 pairs (time_cap) |"
        in text
    )
    assert "CPU probe" in text


def _run(folder: Path, rows: list[dict[str, Any]]) -> Path:
    (folder / "tables").mkdir(parents=True)
    columns = list(dict.fromkeys([*tables.TIMING_COLUMNS, *rows[0]]))  # as the rule writes
    rows = [dict.fromkeys(columns, "") | row for row in rows]
    tables.write_table(rows, columns, folder / "tables" / "read.csv", folder / "tables" / "read.md")
    return folder


def _sequence(values: list[float], key: str = "read_s") -> Any:
    it = itertools.cycle(values)
    return lambda: {key: next(it)}


def test_replay_cuts_a_job_to_the_pairs_a_shorter_policy_takes() -> None:
    # 8 pairs of a 1 s read against a 0.5 s floor (the values the trials report)
    taken = run_pairs(_sequence([1.0, 1.3, 0.9, 1.1]), _sequence([0.5]), Policy.exactly(8), 3)
    short, saved = replay.cut(taken, replay.Shorter(2, 2.5, 0.05))
    # the time cap (2.5 s) is passed in the second pair, but its two ratios (2.0, 2.6)
    # disagree by more than the precision: the live policy takes a third pair, and so
    # does its replay
    assert short["samples"]["read_s"] == [1.0, 1.3, 0.9]
    assert short["reference_samples"]["read_s"] == [0.5, 0.5, 0.5]
    assert len(short["first"]) == len(short["reference_runs"]) == 3
    assert len(short["cpu_s"]) == 3  # one CPU probe per pair, kept alike
    assert short["sampling"]["pairs"] == 3 and short["sampling"]["stopped"] == "replayed"
    assert saved > 5 * 1.4  # five pairs of at least 0.9 + 0.5 s
    # two pairs that agree stop at the time cap
    agreeing = run_pairs(_sequence([1.0, 1.01]), _sequence([0.5]), Policy.exactly(8), 3)
    assert replay.cut(agreeing, replay.Shorter(2, 2.5, 0.05))[0]["sampling"]["pairs"] == 2
    assert taken["samples"]["read_s"] == [1.0, 1.3, 0.9, 1.1] * 2  # the original is kept
    # a policy that would not have stopped sooner keeps the job as it was
    assert replay.cut(taken, replay.Shorter(8, 2.5, 0.05)) == (taken, 0.0)
    # a steady ratio stops by precision, at the 6 pairs a 95% interval needs
    steady = run_pairs(_sequence([1.0]), _sequence([0.5]), Policy.exactly(10), 3)
    assert replay.cut(steady, replay.Shorter(2, 1e9, 0.05))[0]["sampling"]["pairs"] == 6


def test_robust_sd_ignores_one_wild_value() -> None:
    assert stats.robust_sd([0.0, 0.01, -0.01, 0.02, -0.02, 5.0]) < 0.03
    assert stats.robust_sd([1.0, 2.0]) == 0.0


def test_run_drift_is_recorded_and_widens_no_interval() -> None:
    """Every job times the same floor and CPU probe: where the CPU's speed moves against
    the floor's from job to job, the table records that drift, but no interval is
    widened by a run-wide number (rounds measure it per cell)."""
    drift = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0]
    moving = [
        _row(f, 3.0, 0.02, 0.3, cpu_ms=3.0 * d, reference_median=0.1)
        for f, d in zip("abcdef", drift, strict=True)
    ]
    steady = [_row(f, 3.0, 0.02, 0.3, reference_median=0.1) for f in "abcdef"]
    tables.add_run_drift(moving)
    tables.add_run_drift(steady)
    expected = stats.robust_sd(np.log(drift) - np.median(np.log(drift)))
    assert expected > 0.04
    for row in moving:
        assert row["drift"] == pytest.approx(expected)
        assert (row["ratio_lo"], row["ratio_hi"]) == (3.0 * 0.98, 3.0 * 1.02)
        assert row["time_drift"] == pytest.approx(expected)
    for row in steady:
        assert row["drift"] == 0.0
    # cells of other sizes or cache states are judged against their own cell's median
    other = [_row("a", 2.0, 0.02, 0.2, n=100, cpu_ms=9.0, reference_median=0.1)]
    other += [_row("b", 2.0, 0.02, 0.2, n=100, cpu_ms=9.0, reference_median=0.1)]
    mixed = tables.add_run_drift(steady + other)
    assert {row["drift"] for row in mixed} == {0.0}


def test_noise_judges_the_jobs_own_interval(tmp_path: Path) -> None:
    row = _row("a", 3.0, 0.2, 0.3) | {"ratio_job_lo": 2.97, "ratio_job_hi": 3.03}
    noisy = _row("b", 3.0, 0.02, 0.3) | {"ratio_job_lo": 2.0, "ratio_job_hi": 4.5}
    path = _run(tmp_path, [row, noisy]) / "tables" / "read.csv"
    found = tables.noisy_rows([path], 0.1)
    assert [r["format"] for r in found] == ["b"] and "+/-50%" in found[0]["reason"]


def test_summary_says_how_far_the_run_drifted() -> None:
    rows = [_row("raw", 1.0, 0.03, 0.1, drift=0.05), _row("a", 2.0, 0.03, 0.2, drift=0.05)]
    assert "drifted against the floor by 5.0%" in publish.reference_speeds(rows)
    assert "drifted" not in publish.reference_speeds([_row("a", 2.0, 0.03, 0.2)])


def test_every_pair_records_the_share_of_cpu_time_the_host_stole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 800 10 0 0 40 7 0\ncpu0 50 0 25 400 5 0 0 20 7 0\n")
    assert host.cpu_ticks(stat) == (40, 1000)  # guest time is inside user: not added
    assert host.steal_share((40, 1000), (70, 1100)) == pytest.approx(0.3)
    assert host.steal_share((40, 1000), (40, 1000)) is None  # no ticks passed
    assert host.steal_share(None, (40, 1000)) is None
    stat.write_text("intr 1 2 3\n")
    assert host.cpu_ticks(stat) is None and host.cpu_ticks(tmp_path / "none") is None
    # each pair reads the ticks before and after it: 10% stolen in pair 1, none in pair 2
    readings = iter([(0, 0), (10, 100), (10, 100), (10, 200)])
    monkeypatch.setattr(host, "cpu_ticks", lambda: next(readings))
    taken = run_pairs(_sequence([1.0]), _sequence([0.5]), Policy.exactly(2), 3)
    assert taken["steal"] == [pytest.approx(0.1), 0.0] and taken["ticks"] == [(10, 100), (0, 100)]
    # the table shows a job's stolen ticks over all its ticks (not the mean of the shares:
    # a pair of 100 ticks weighs as much as one of 10,000)
    assert host.job_steal(taken) == pytest.approx(0.05)
    assert host.job_steal({"ticks": [(1, 2), (0, 998)]}) == pytest.approx(0.001)
    assert host.job_steal({"steal": [0.5, 0.0, None]}) == pytest.approx(0.25)  # older results
    assert host.job_steal({}) is None
    # a replay keeps one entry per pair kept
    short = replay.cut(taken, replay.Shorter(1, 0.0, 0.05))[0]
    assert short["steal"] == [pytest.approx(0.1)] and short["ticks"] == [(10, 100)]


def _ticks(monkeypatch: pytest.MonkeyPatch, stolen_per_pair: list[int]) -> None:
    """/proc/stat as the pairs see it: pair i loses ``stolen_per_pair[i]`` ticks (10 ms
    each; the last value repeats)."""
    state = {"read": 0, "stolen": 0, "total": 0}

    def cpu_ticks() -> tuple[int, int]:
        if state["read"] % 2:  # the reading after a pair
            pair = state["read"] // 2
            state["stolen"] += stolen_per_pair[min(pair, len(stolen_per_pair) - 1)]
        state["read"] += 1
        state["total"] += 1000
        return state["stolen"], state["total"]

    monkeypatch.setattr(host, "cpu_ticks", cpu_ticks)


def test_a_pair_the_host_stole_from_is_kept_raw_and_retaken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pair 2 lost 1 s of the machine's 10 s of CPU time to other guests (10%; its format
    # half shows it: 9.0 s): retaken.
    _ticks(monkeypatch, [0, 100, 0])
    calls: list[str] = []
    policy = Policy(
        min_pairs=3,
        max_pairs=3,
        precision=0.0,
        time_cap_s=0.0,
        max_steal=0.05,
        max_reference_runs=1,
    )
    result = run_pairs(
        _trial([1.0, 9.0, 1.1, 1.2], calls, "A"),
        _trial([0.5], calls, "B"),
        policy,
        seed=4,
        cpu=lambda: 0.0,  # type: ignore[arg-type]
    )
    assert result["samples"]["x_s"] == [1.0, 1.1, 1.2]  # the disturbed pair is not counted
    assert len(result["first"]) == len(result["steal"]) == len(result["reference_runs"]) == 3
    assert result["sampling"]["retaken"] == 1 and result["sampling"]["disturbed"] == 0
    [again] = result["retaken"]
    assert again["samples"] == {"x_s": 9.0} and again["reference_runs"] == {"x_s": [0.5]}
    assert again["ticks"] == (100, 1000) and again["calls"] == {"format": [1], "reference": [1]}
    assert calls.count("A") == calls.count("B") == 4  # four pairs ran, three kept
    # what a caller recorded per call lines up with the pairs kept
    per_call = ["call 0", "call 1", "call 2", "call 3"]
    kept = sampling.kept_calls(per_call, result["retaken"], "format")
    assert kept == ["call 0", "call 2", "call 3"]


def test_retakes_are_bounded_and_a_disturbed_pair_past_them_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _ticks(monkeypatch, [100])  # the host steals 10% in every pair
    calls: list[str] = []
    policy = Policy(min_pairs=2, max_pairs=4, precision=0.0, time_cap_s=0.0, max_steal=0.05)
    result = run_pairs(
        _trial([1.0], calls, "A"),
        _trial([0.5], calls, "B"),
        policy,
        cpu=lambda: 0.0,  # type: ignore[arg-type]
    )
    # past the time cap a job retakes at most min_pairs pairs, then keeps them and says so
    assert result["sampling"]["retaken"] == 2 and result["sampling"]["disturbed"] == 2
    assert result["sampling"]["pairs"] == 2 and calls.count("A") == 4
    # one tick stolen (10 ms) is no evidence; max_steal 1 keeps every pair
    _ticks(monkeypatch, [1])
    one_tick = run_pairs(_sequence([0.001]), _sequence([0.001]), policy, cpu=lambda: 0.0)  # type: ignore[arg-type]
    assert one_tick["sampling"]["retaken"] == 0
    _ticks(monkeypatch, [50])  # 5% of the machine's time: not more than max_steal
    assert run_pairs(_sequence([1.0]), _sequence([0.5]), policy)["sampling"]["retaken"] == 0
    _ticks(monkeypatch, [100])
    keep_all = dataclasses.replace(policy, max_steal=1)
    assert run_pairs(_sequence([1.0]), _sequence([0.5]), keep_all)["sampling"]["retaken"] == 0


def test_the_time_cap_takes_a_third_pair_when_two_disagree() -> None:
    policy = Policy(min_pairs=2, max_pairs=10, precision=0.05, time_cap_s=0.0)
    probe = {"cpu": lambda: 0.0}
    # 2.0 and 3.0 against 1.0: one of them was disturbed; a third pair settles it
    split = run_pairs(_sequence([2.0, 3.0, 2.1]), _sequence([1.0]), policy, **probe)  # type: ignore[arg-type]
    assert split["samples"]["read_s"] == [2.0, 3.0, 2.1]
    assert split["sampling"]["stopped"] == "time_cap"
    # two ratios within +/- precision of their median: two pairs are enough
    agree = run_pairs(_sequence([2.0, 2.1]), _sequence([1.0]), policy, **probe)  # type: ignore[arg-type]
    assert agree["samples"]["read_s"] == [2.0, 2.1]
    assert agree["sampling"]["stopped"] == "time_cap"
    # max_pairs still ends it
    two = dataclasses.replace(policy, max_pairs=2)
    assert (
        run_pairs(_sequence([2.0, 3.0]), _sequence([1.0]), two, **probe)["sampling"]["pairs"] == 2
    )  # type: ignore[arg-type]
