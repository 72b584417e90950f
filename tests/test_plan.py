"""What a run says before its first job: jobs, disk, time, and a non-Linux notice."""

from __future__ import annotations

from pathlib import Path

from storebench import plan
from storebench.plan import GiB, benchmark_seconds, describe, platform_notice


def test_linux_says_nothing_and_other_systems_get_one_line() -> None:
    assert platform_notice("linux") is None
    notice = platform_notice("darwin")
    assert notice is not None and "\n" not in notice
    assert "darwin, not Linux" in notice and "posix_fadvise" in notice


def test_benchmark_seconds_reads_snakemake_benchmark_files(tmp_path: Path) -> None:
    good = tmp_path / "good.tsv"
    good.write_text("s\th:m:s\tmax_rss\n2.5\t0:00:02\t10\n3.5\t0:00:03\t11\n")
    assert benchmark_seconds(good) == 3.0
    broken = tmp_path / "broken.tsv"
    broken.write_text("s\th:m:s\nnot-a-number\t0\n")
    assert benchmark_seconds(broken) is None
    assert benchmark_seconds(tmp_path / "missing.tsv") is None
    assert benchmark_seconds(None) is None


def test_describe_counts_jobs_disk_and_known_time(tmp_path: Path) -> None:
    lines = describe(
        {"read": 4, "store": 2}, 3 * GiB, 10 * GiB, [60.0, None, 30.0, None, None, 90.0], tmp_path
    )
    assert lines[0] == "storebench: 6 jobs planned: read 4, store 2"
    assert (
        lines[1] == f"storebench: disk: about 3.0 GiB needed at most, 10.0 GiB free at {tmp_path}"
    )
    assert lines[2] == (
        "storebench: time: 3 of these jobs took 3.0 min when they last ran here; 3 have no record"
    )


def test_describe_without_any_earlier_run_points_at_the_readme(tmp_path: Path) -> None:
    lines = describe({"store": 1}, 0, GiB, [None], tmp_path)
    assert "no job of this plan has run here before" in lines[2]


def test_a_second_run_in_the_same_results_is_refused(tmp_path) -> None:
    import pytest

    from storebench.errors import StorebenchError

    held = plan.lock_run(tmp_path / "results")
    try:
        with pytest.raises(StorebenchError, match=r"another storebench run \(pid \d+\)") as info:
            plan.lock_run(tmp_path / "results")
        assert "\n" not in str(info.value)
    finally:
        held.close()
    plan.lock_run(tmp_path / "results").close()  # free again once the first run is over
