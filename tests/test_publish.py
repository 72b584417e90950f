"""Captions, the summary tables and the README examples block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from storebench.errors import StorebenchError
from storebench.present import catalog, figures, publish

from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
ENVIRONMENT = {
    "machine": {"cpu_model": "Test CPU", "usable_cpus": 2, "memory_bytes": 24 * 2**30},
    "os": {"system": "Linux", "release": "6.1"},
    "filesystem": {"type": "ext4", "device": "/dev/vda"},
    "python": "3.11.7",
    "versions": {"numpy": "2.4.6", "pillow": "13.0.0", "lmdb": "3.0.0", "h5py": "3.16.0"},
}


def test_every_figure_and_table_has_a_caption() -> None:
    for name, record in catalog.FIGURES.items():
        assert callable(figures.drawer(name)) and set(record.tables) <= {*catalog.TABLES}
        caption = publish.figure_caption(name, CONFIG, ENVIRONMENT)
        assert "{" not in caption and "}" not in caption, name
        assert caption.endswith(
            "Machine: Test CPU, 2 CPUs, 24 GiB RAM, Linux 6.1; ext4 file system on /dev/vda; "
            "Python 3.11.7, numpy 2.4.6, pillow 13.0.0, lmdb 3.0.0, h5py 3.16.0."
        )
    caption = publish.figure_caption("read_time_log", CONFIG, ENVIRONMENT)
    assert f"at least {CONFIG['repeats']} pairs" in caption and "within ±5%" in caption
    assert "seeded with 0" in publish.figure_caption("read_order", CONFIG, ENVIRONMENT)
    assert "P = 1, 2" in publish.figure_caption("parallel_scaling", CONFIG, ENVIRONMENT)
    for table in (
        "store",
        "read",
        "single",
        "latency",
        "usage",
        "parallel",
        "dataloader",
        "noise",
        "summary",
    ):
        assert "{" not in publish.table_caption(table, CONFIG, None)


def _row(fmt: str, kind: str, n: int, median: float, **extra: object) -> dict:
    floor = {"store": 1.0, "read": 0.2}[str(extra["measurement"])]
    ratio = median / floor
    return {
        "format": fmt,
        "kind": kind,
        "n": n,
        "median": median,
        "median_lo": median * 0.9,
        "median_hi": median * 1.1,
        "ratio": ratio,
        "ratio_lo": ratio * 0.99,
        "ratio_hi": ratio * 1.01,
        "pairs": 6,
        "stopped": "precision",
        **extra,
    }


def test_summary_ranks_by_the_ratio_to_the_floor() -> None:
    store = [
        _row("raw", "npy", 100, 1.0, measurement="store"),
        _row("png", "png", 100, 8.0, measurement="store"),
        _row("hdf5", "hdf5", 100, 0.5, measurement="store"),
        _row("png", "png", 10, 0.01, measurement="store"),
    ]
    read = [
        _row(f, k, 100, t, measurement="read", cache="warm", order="sequential")
        for f, k, t in (("raw", "npy", 0.2), ("png", "png", 4.0), ("hdf5", "hdf5", 0.3))
    ]
    usage = [
        {"format": f, "kind": k, "n": 100, "allocated_bytes": b * 2**20}
        for f, k, b in (("raw", "npy", 3), ("png", "png", 4), ("hdf5", "hdf5", 3))
    ]
    text = publish.summary_markdown({"store": store, "read": read, "usage": usage}, None, 3)
    assert text.startswith("## Verdict at n = 100 images")  # which format to pick, first
    assert "\n## Summary at n = 100 images\n" in text
    sections = {s.splitlines()[0]: s for s in text.split("### ")[1:]}
    stores = sections["Which format stores fastest?"]
    assert "| 1 | hdf5 | 0.5 [0.495–0.505] | 0.5 [0.45–0.55] | 200 |  | job, 6 pairs |" in stores
    assert "| 3 | png | 8 [7.92–8.08] | 8 [7.2–8.8] | 12 |  | job, 6 pairs |" in stores
    warm = sections["Which format reads fastest from a warm cache, in order?"]
    assert "| 2 | hdf5 | 1.5 [1.48–1.51] | 0.3 [0.27–0.33] | 333 |  | job, 6 pairs |" in warm
    assert "cold cache" not in text  # no cold reads measured, no cold table
    assert "| 3 | png | 4 | 1.33 | 1.33 |" in sections["Which format is smallest on disk?"]


def test_examples_write_the_results_page_and_the_readme_verdict(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    (results / "figures").mkdir()
    summary = "## Verdict at n = 100 images\n\npick hdf5\n\n## Summary at n = 100 images\n\nrows\n"
    (results / "tables/summary.md").write_text(summary)
    (results / "figures/store_time_log.png").write_bytes(b"png")
    (results / "figures/tradeoff.png").write_bytes(b"png2")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    (results / "config.yaml").write_text(yaml.safe_dump(config))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{publish.START}\nold\n{publish.END}\nrest\n")
    page = tmp_path / "docs/results.md"
    page.parent.mkdir()
    figures = tmp_path / "workflow/report/examples"
    copied = publish.update_examples(results, readme, page, figures, list(catalog.FIGURES))
    assert sorted(copied) == ["store_time_log", "tradeoff"]
    assert (figures / "tradeoff.png").read_bytes() == b"png2"
    # the README gets the verdict only, a level down, with the one figure and a link
    text = readme.read_text()
    block = text.split(publish.START)[1].split(publish.END)[0]
    assert text.startswith("intro\n") and text.endswith(f"{publish.END}\nrest\n")
    assert "### Verdict at n = 100 images" in block and "pick hdf5" in block
    assert "rows" not in block and "](workflow/report/examples/tradeoff.png)" in block
    assert "[docs/results.md](docs/results.md)" in block
    # the page is written whole: the run, the summary, every figure copied, its caption
    written = page.read_text()
    assert written.startswith("# Example results\n") and "## Summary at n = 100 images" in written
    assert "A run of 11 formats on 100,000 images" in written
    assert "![store_time_log](../workflow/report/examples/store_time_log.png)" in written
    assert catalog.FIGURES["tradeoff"].caption.split("{")[0].strip() in written
    readme.write_text("no markers\n")
    with pytest.raises(StorebenchError, match="no <!-- verdict:start -->"):
        publish.update_examples(results, readme, page, figures, [])


def test_figures_are_written_as_png_svg_and_pdf(tmp_path: Path) -> None:
    from PIL import Image

    rows = [
        {
            "format": f,
            "kind": "npy",
            "n": n,
            "files": 1,
            "apparent_bytes": 3072 * n,
            "allocated_bytes": 4096 * n,
            "bytes_per_image": 4096.0,
        }
        for f in ("raw", "png")
        for n in (10, 100, 1000)
    ]
    paths = [tmp_path / f"f.{ext}" for ext in ("png", "svg", "pdf")]
    figures.render("disk_bytes_per_image", {"usage": rows}, paths, ["raw", "png"])
    with Image.open(paths[0]) as image:
        assert image.width == round(figures.WIDTH_IN * figures.DPI)  # one column at 200 dpi
    assert "<svg" in paths[1].read_text()
    assert paths[2].read_bytes().startswith(b"%PDF")


def test_cost_rows_group_benchmarks_by_stage_and_n(tmp_path: Path) -> None:
    from storebench.present.cost import cost_rows

    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {
        "store/png/100.tsv": "2.0\t0:00:02\t300\t1\t1\t1\t1\t1\t1\t1.5\n",
        "store/hdf5/100.tsv": "1.0\t0:00:01\t200\t1\t1\t1\t1\t1\t1\t0.5\n",
        "read/png/100/warm-random.tsv": "3.0\t0:00:03\t400\t1\t1\t1\t1\t1\t1\t2.5\n",
        "latency/png.tsv": "4.0\t0:00:04\t-\t-\t-\t-\t-\t-\t-\t-\n",
        "dataset.tsv": "5.0\t0:00:05\t900\t1\t1\t1\t1\t1\t1\t4\n",
    }
    paths = []
    for name, line in files.items():
        path = tmp_path / "results/benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + line)
        paths.append(path)
    rows = {(r["stage"], r["n"]): r for r in cost_rows(paths)}
    assert set(rows) == {("store", 100), ("read", 100), ("latency", ""), ("dataset", "")}
    store = rows[("store", 100)]
    assert (store["jobs"], store["wall_s"], store["cpu_s"], store["max_rss_mb"]) == (
        2,
        3.0,
        2.0,
        300,
    )
    assert rows[("latency", "")]["max_rss_mb"] == ""


def test_every_format_of_a_big_config_has_its_own_colour_and_marker() -> None:
    # 11 formats by default; a shared (colour, marker) would make two lines one in a legend.
    names = [f"format{k}" for k in range(40)]
    styles = figures.Palette(tuple(names)).styles(names)
    pairs = [(style["color"], style["marker"]) for style in styles.values()]
    assert len(set(pairs)) == len(names)
    colours = [style["color"] for style in styles.values()]
    assert len(set(colours[:16])) == 16  # no colour repeats among the first 16


def test_labels_cover_no_marker_and_no_other_label() -> None:
    # A stack of three points (each within a label's height of the next), two markers
    # side by side where a label to the right would sit, and one point far away.
    on_page = {
        "top": (100, 130),
        "middle": (102, 124),
        "low": (101, 118),
        "hdf5": (200, 100),
        "parquet": (208, 100),
        "far": (300, 60),
    }
    radius = dict.fromkeys(on_page, 3.0)
    bounds = (0.0, 0.0, 400.0, 200.0)
    places = figures._label_places(on_page, radius, bounds)
    boxes = {
        name: figures._label_box(*on_page[name], dx, dy, figures.LABEL_CHAR_PT * len(name))
        for name, (dx, dy, _) in places.items()
    }
    markers = {name: (x - 3, y - 3, x + 3, y + 3) for name, (x, y) in on_page.items()}
    for name, box in boxes.items():
        assert all(figures._overlap(box, m) == 0 for m in markers.values()), name
        others = [b for other, b in boxes.items() if other != name]
        assert all(figures._overlap(box, b) == 0 for b in others), name
        assert bounds[0] <= box[0] and box[2] <= bounds[2]
        assert bounds[1] <= box[1] and box[3] <= bounds[3]
    # a lone point keeps the first place, right of its marker, with no leader line
    assert places["far"] == (3.0 + figures.LABEL_GAP_PT, 0.0, False)
    # hdf5's label cannot go right (parquet's marker is there): it goes elsewhere
    assert places["hdf5"][0] <= 0 or places["hdf5"][1] != 0
    # at the axes' right edge, a label goes left rather than out of the axes
    edge = figures._label_places({"webdataset": (395, 100)}, {"webdataset": 3.0}, bounds)
    assert edge["webdataset"][0] < 0


def _table(tmp_path: Path, name: str = "read", **cells: Any) -> Path:
    from storebench.present.tables import TIMING_COLUMNS, write_csv

    row = dict.fromkeys(TIMING_COLUMNS, "")
    row.update(format="nan", kind="npy", n=1000, measurement="read", ratio=1.5)
    row.update(ratio_lo=1.4, ratio_hi=1.7, interval="one job: 96.9% for its own median")
    row.update(cells)
    path = tmp_path / f"{name}.csv"
    write_csv([row], TIMING_COLUMNS, path)
    return path


def test_a_table_reads_back_names_as_text_and_numbers_as_numbers(tmp_path: Path) -> None:
    from storebench.present.tables import read_table

    (row,) = read_table(_table(tmp_path))
    assert row["format"] == "nan" and row["n"] == 1000 and row["ratio"] == 1.5


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing-column", r"read\.csv: no column 'ratio_hi' .*--forcerun table"),
        ("text", r"read\.csv, line 2, column ratio: 'fast' is not a finite number"),
        ("nan", r"read\.csv, line 2, column median: 'nan' is not a finite number"),
        ("outside", r"read\.csv, line 2: ratio 2\.5 lies outside its own interval"),
        ("negative", r"read\.csv, line 2, column ratio_lo: -1\.4 is not a positive ratio"),
        ("truncated", r"read\.csv, line 2: not as many cells as the header has columns"),
    ],
)
def test_a_table_the_workflow_did_not_write_is_refused_in_one_line(
    damage: str, message: str, tmp_path: Path
) -> None:
    """An older table, a hand-edited cell, a cut file: one line naming the file, line and
    column and how to remake it; not a traceback, not a NaN ranked first."""
    from storebench.present.tables import read_table

    cells = {"text": {"ratio": "fast"}, "nan": {"median": "nan"}, "outside": {"ratio": 2.5}}
    cells["negative"] = {"ratio_lo": -1.4}
    path = _table(tmp_path, **cells.get(damage, {}))
    text = path.read_text()
    if damage == "missing-column":
        header, row = text.splitlines()
        at = header.split(",").index("ratio_hi")
        drop = lambda line: ",".join(c for i, c in enumerate(line.split(",")) if i != at)  # noqa: E731
        path.write_text(f"{drop(header)}\n{drop(row)}\n")
    elif damage == "truncated":
        path.write_text(text[: text.index("\n") + 20])  # the header and part of a row
    with pytest.raises(StorebenchError, match=message) as info:
        read_table(path)
    assert "\n" not in str(info.value)


def test_machine_strings_read_as_themselves_in_a_report_caption() -> None:
    """A CPU model or mount source holding markup characters (``_``, ``*``, backquotes,
    ``|``) goes into the report's captions (reStructuredText) as text, not markup and
    not an error box."""
    from docutils.core import publish_doctree
    from docutils.nodes import system_message

    odd = "Xeon*2 `fast` _x_ |y| vg-root_ a\\b [c] <d> e:f"
    environment = {
        "machine": {"cpu_model": odd, "usable_cpus": 2, "memory_bytes": 2**34},
        "os": {"system": "Linux", "release": "6.1_custom"},
        "filesystem": {"type": "ext4", "device": "/dev/mapper/vg-root_"},
        "versions": {"numpy": "2.0"},
        "python": "3.12",
    }
    text = publish.machine(environment)
    tree = publish_doctree(text, settings_overrides={"report_level": 5, "halt_level": 5})
    assert not list(tree.findall(system_message)), text
    shown = tree.astext()
    assert odd in shown and "/dev/mapper/vg-root_" in shown and "6.1_custom" in shown


def test_a_title_wider_than_the_figure_is_shrunk_to_fit_and_a_short_one_is_kept() -> None:
    import matplotlib.pyplot as plt

    from storebench.present import figures

    for text, shrunk in (
        ("Read n images back (warm cache, sequential order), all", True),
        ("warm", False),
    ):
        fig, ax = plt.subplots(figsize=(figures.WIDTH_IN, 2), layout="constrained")
        ax.set_title(text, fontsize=9)
        figures._fit_titles(fig)
        box = ax.title.get_window_extent(fig.canvas.get_renderer())
        assert (ax.title.get_fontsize() < 9) == shrunk
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width
        plt.close(fig)
