"""A format's environment of its own: the job runs whole in it, or stops in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storebench import formatenv
from storebench.errors import StorebenchError

from conftest import ROOT

MDS = json.dumps({"kind": "mds"})


def _job(tmp_path: Path, envs: Path, spec: str = MDS) -> subprocess.CompletedProcess:
    """A usage job of a format, as a rule runs it."""
    (tmp_path / "store").mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "storebench",
        "usage",
        "--format",
        "x",
        "--spec",
        spec,
        "--store",
        str(tmp_path / "store"),
        "--n",
        "10",
        "--result",
        str(tmp_path / "usage.json"),
    ]
    env = {**os.environ, formatenv.VARIABLE: str(envs)}
    env.pop(formatenv.ENTERED, None)
    env["PYTHONPATH"] = str(ROOT / "workflow")
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


def test_the_formats_environment_is_named_by_its_kind() -> None:
    assert formatenv.of_spec(MDS) == "mds"
    assert formatenv.of_spec({"kind": "hdf5"}) is None
    assert formatenv.of_spec(None) is None
    assert formatenv.requirements("mds").is_file()


def test_a_job_whose_environment_is_not_built_stops_in_one_line(tmp_path: Path) -> None:
    done = _job(tmp_path, tmp_path / "envs")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("storebench: error: the mds environment is not built at ")
    assert "python -m storebench env mds --envs" in done.stderr
    assert not (tmp_path / "usage.json").exists()


def test_a_format_of_the_projects_own_environment_is_not_sent_anywhere(tmp_path: Path) -> None:
    """The same job for a format without an environment of its own runs here (and
    fails on its missing dataset, not on an environment)."""
    done = _job(tmp_path, tmp_path / "envs", json.dumps({"kind": "npy"}))
    assert "environment" not in done.stderr


def test_the_job_replaces_itself_with_the_environments_python_once(
    tmp_path: Path, monkeypatch
) -> None:
    """Built: the job's process becomes the environment's Python with the same
    arguments. Replaced once and still elsewhere (a python that is not a virtual
    environment of its folder): one line instead of replacing itself again and again."""
    folder = tmp_path / "envs" / "mds"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").write_text("")
    (folder / formatenv.READY).write_text("{}")
    monkeypatch.setenv(formatenv.VARIABLE, str(tmp_path / "envs"))
    monkeypatch.delenv(formatenv.ENTERED, raising=False)
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    formatenv.run_in("mds", ["store", "--format", "mds"])
    python = str(folder / "bin" / "python")
    assert calls == [(python, [python, "-m", "storebench", "store", "--format", "mds"])]
    assert os.environ[formatenv.ENTERED] == "mds"
    with pytest.raises(StorebenchError, match=r"runs another Python .*delete the folder and rer"):
        formatenv.run_in("mds", ["store"])
    assert len(calls) == 1


def test_a_build_that_fails_leaves_no_ready_file(tmp_path: Path, monkeypatch) -> None:
    wanted = tmp_path / "broken.txt"
    wanted.write_text("storebench-no-such-package-anywhere==0.0.1\n")
    monkeypatch.setattr(formatenv, "requirements", lambda name: wanted)
    folder = tmp_path / "envs" / "broken"
    folder.mkdir(parents=True)
    (folder / formatenv.READY).write_text("{}")  # an earlier build's, now stale
    with pytest.raises(StorebenchError, match=r"^the broken environment could not be built"):
        formatenv.build("broken", folder)
    assert not (folder / formatenv.READY).exists()


def test_an_environment_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StorebenchError, match=r"^no environment 'nosuch': .*nosuch.txt"):
        formatenv.build("nosuch", tmp_path / "nosuch")


def test_a_job_outside_the_workflow_is_told_where_environments_live(monkeypatch) -> None:
    monkeypatch.delenv(formatenv.VARIABLE, raising=False)
    with pytest.raises(StorebenchError, match="run the job from the workflow"):
        formatenv.place("mds")
