"""The package's layers: presentation apart from measurement, in imports and in the
fingerprint that decides which timed jobs rerun."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import storebench
from storebench import provenance
from storebench.formats import make_format
from storebench.present import catalog

PACKAGE = Path(storebench.__file__).parent
# The modules whose code runs inside timed jobs, or builds what they time.
MEASURING = {
    "measure",
    "sampling",
    "host",
    "roundjob",
    "single",
    "parallel",
    "torchdata",
    "training",
    "pagecache",
    "usage",
    "validation",
    "chunks",
    "cli_jobs",
    "formats",
    "payload",
}
# Entry points above both layers: they dispatch to either.
ENTRY = {"cli", "cli_results", "__main__"}


def _imports(path: Path) -> set[str]:
    """The storebench modules a file imports (``storebench.x.y`` as ``x.y``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "storebench":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("storebench."):
                found.add(node.module.removeprefix("storebench."))
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("storebench.")
                for a in node.names
                if a.name.startswith("storebench.")
            }
    return found


def _modules(folder: Path) -> dict[str, Path]:
    return {p.relative_to(PACKAGE).with_suffix("").as_posix(): p for p in folder.rglob("*.py")}


def test_presentation_imports_nothing_that_measures() -> None:
    for name, path in _modules(PACKAGE / "present").items():
        bad = {m for m in _imports(path) if m.split(".")[0] in MEASURING}
        assert not bad, f"{name} imports {sorted(bad)}, which measure"


def test_nothing_that_measures_imports_the_presentation() -> None:
    for name, path in _modules(PACKAGE).items():
        if name.startswith("present/") or name.split("/")[0] in ENTRY:
            continue
        bad = {m for m in _imports(path) if m == "present" or m.startswith("present.")}
        if name.split("/")[0] in MEASURING:
            assert not bad, f"{name} (measuring) imports {sorted(bad)}"


def test_the_import_check_finds_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "x.py"
    module.write_text(
        "from storebench import measure, stats\nfrom storebench.present import tables\n"
    )
    assert _imports(module) == {"measure", "stats", "present"}
    module.write_text("from storebench.present.tables import read_table\n")
    assert _imports(module) == {"present.tables"}


def _fingerprints() -> tuple[str, str]:
    provenance.code_version.cache_clear()
    raw = make_format("raw", {"kind": "npy"})
    return provenance.fingerprint(raw), provenance.code_version()


@pytest.mark.parametrize(
    ("changed", "reruns"),
    [
        ("present/catalog.py", False),  # a caption reworded
        ("present/verdict.py", False),  # the verdict reworded
        ("present/publish.py", False),
        ("cli_results.py", False),
        ("measure.py", True),  # the measuring code
        ("protocol.py", True),  # the read orders and the sampling policy
    ],
)
def test_rewording_the_presentation_reruns_no_timed_job(
    monkeypatch: pytest.MonkeyPatch, changed: str, reruns: bool
) -> None:
    before = _fingerprints()
    real = Path.read_bytes
    target = PACKAGE / changed
    assert target.is_file()

    def edited(self: Path) -> bytes:
        data = real(self)
        return data + b"\n# reworded\n" if self == target else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    after = _fingerprints()
    monkeypatch.undo()
    provenance.code_version.cache_clear()
    assert (after[0] != before[0], after[1] != before[1]) == (reruns, reruns)


def test_one_list_of_timing_tables() -> None:
    assert catalog.TIMING_TABLES == (
        "store",
        "read",
        "single",
        "parallel",
        "dataloader",
        "training",
    )
    assert all(catalog.TABLES[name].timing for name in catalog.TIMING_TABLES)
