"""The verdict: which format wins each need, by how much, and when it is a tie."""

from __future__ import annotations

import pytest

from storebench.present import verdict


def _read(fmt: str, ratio: float, half: float = 0.02, **where: str) -> dict:
    return {
        "format": fmt,
        "n": 1000,
        "measurement": where.get("measurement", "read"),
        "cache": where.get("cache", "cold"),
        "order": where.get("order", "random"),
        "ratio": ratio,
        "ratio_lo": ratio * (1 - half),
        "ratio_hi": ratio * (1 + half),
    }


def test_the_winner_leaves_the_floor_out_and_states_its_margin() -> None:
    rows = [_read("raw", 1.0), _read("a", 2.0), _read("b", 3.0)]
    found = verdict.pick(rows, "raw")
    assert found["winner"] == "a" and found["runner_up"] == "b" and not found["tie"]
    assert found["margin"] == pytest.approx(1.5)
    assert found["margin_lo"] == pytest.approx(3.0 * 0.98 / (2.0 * 1.02))
    assert found["margin_hi"] == pytest.approx(3.0 * 1.02 / (2.0 * 0.98))


def test_overlapping_intervals_are_a_tie() -> None:
    found = verdict.pick([_read("a", 2.0, 0.1), _read("b", 2.1, 0.1)], None)
    assert found["tie"] and found["winner"] == "a"


def test_all_round_is_the_lowest_geometric_mean_over_the_needs() -> None:
    needs = {
        "store": [_read("a", 1.0), _read("b", 4.0), _read("c", 2.0)],
        "read": [_read("a", 4.0), _read("b", 1.0), _read("c", 2.0)],
    }
    # a: sqrt(1 * 4) = 2, b: sqrt(4 * 1) = 2, c: sqrt(2 * 1.9) = 1.95
    needs["read"][2]["ratio"] = 1.9
    best = verdict.all_round(needs, None)
    assert best["winner"] == "c" and best["scores"]["c"] == pytest.approx((2 * 1.9) ** 0.5)
    # 2.5% apart, with intervals of +/-2% a row: the run shows c ahead of both
    assert best["tied"] == []
    # with +/-20% a row it cannot: a tie (no longer "within 5%" of point estimates)
    wide = {
        need: [_read(r["format"], r["ratio"], 0.2) for r in rows] for need, rows in needs.items()
    }
    assert set(verdict.all_round(wide, None)["tied"]) == {"a", "b"}


def test_the_verdict_names_a_pick_per_need_in_markdown_and_rst() -> None:
    tables = {
        "read": [
            _read(f, r, cache=c)
            for f, r in (("raw", 1), ("a", 2), ("b", 5))
            for c in ("cold", "warm")
        ],
        "store": [_read(f, r, measurement="store") for f, r in (("raw", 1), ("a", 9), ("b", 3))],
        "usage": [
            {"format": f, "n": 1000, "bytes_per_image": b}
            for f, b in (("raw", 3100), ("a", 4000), ("b", 2000))
        ],
        "latency": [],
    }
    text = verdict.markdown(tables, "raw", 1000)
    assert (
        "| the fastest shuffled training reads, cold cache (data on disk) | **a** | 2.50x" in text
    )
    assert "| the fastest writes | **b** | 3.00x faster than a [" in text
    assert "| the smallest store on disk | **b** | 2.00x smaller than a |" in text  # exact
    assert "a good all-round choice" in text and "raw" not in text.split("out).")[1]
    rst = verdict.rst(tables, "raw", 1000)
    assert rst.startswith("Verdict at n = 1,000 images\n===========================\n")
    assert "   * - the fastest writes\n     - **b**\n" in rst


def test_the_verdict_says_which_intervals_its_margins_have() -> None:
    one_job = {"read": [_read("raw", 1.0), _read("a", 2.0)]}
    text = verdict.markdown(one_job, "raw", 1000)
    assert "one job each" in text and "round-paired" not in text
    rounds = {"read": [{**r, "round_values": "1:0.1 2:0.2"} for r in one_job["read"]]}
    text = verdict.markdown(rounds, "raw", 1000)
    assert "round-paired differences" in text and "one job each" not in text
