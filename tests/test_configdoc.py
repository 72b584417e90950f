"""The configuration reference is rendered from config.yaml and the schema, and kept so."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from storebench import cli
from storebench.errors import StorebenchError
from storebench.present import configdoc

from conftest import ROOT

DOC = ROOT / "docs" / "configuration.md"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
CONFIG = ROOT / "config.yaml"


def test_the_committed_reference_is_rendered_from_the_current_files() -> None:
    assert configdoc.update(DOC, SCHEMA, CONFIG, check=True), (
        "docs/configuration.md is stale: run `python -m storebench config-docs`"
    )


def test_every_key_has_its_default_its_values_and_its_meaning() -> None:
    text = configdoc.render(SCHEMA, CONFIG)
    assert "| `rounds.min_rounds` | `12` | integer ≥ 2, ≤ 100 | The fewest rounds" in text
    assert '| `caches` | `["warm", "cold"]` | list of (one of `warm`, `cold`) |' in text
    assert "| `cifar10.archive` | `null` | string or null |" in text
    # a section's prose is the comment above it in config.yaml
    rounds = text.split("### `rounds`", 1)[1].split("###", 1)[0]
    assert "At from_n <= n <= to_n every store and read is measured in rounds" in rounds


def test_a_changed_schema_makes_the_reference_stale_and_the_check_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, schema = tmp_path / "configuration.md", tmp_path / "schema.yaml"
    shutil.copyfile(DOC, doc)
    schema.write_text(
        SCHEMA.read_text().replace("DataLoader batch size.", "Images per DataLoader batch.")
    )
    assert not configdoc.update(doc, schema, CONFIG, check=True)
    argv = ["config-docs", "--doc", str(doc), "--schema", str(schema), "--config", str(CONFIG)]
    assert cli.main([*argv, "--check"]) == 1
    assert doc.read_text() == DOC.read_text()  # a check writes nothing
    assert cli.main(argv) == 0
    assert "Images per DataLoader batch." in doc.read_text()
    assert cli.main([*argv, "--check"]) == 0
    doc.write_text("no markers\n")
    with pytest.raises(StorebenchError, match="no <!-- config:start -->"):
        configdoc.update(doc, schema, CONFIG)
