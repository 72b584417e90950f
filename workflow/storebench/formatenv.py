"""Environments of their own for formats whose library cannot share the project's.

A format whose library pins what the project's other libraries cannot have (MosaicML
Streaming's ``mosaicml-streaming`` requires ``numpy<2.2``; storebench pins 2.4.6, and
it imports torchvision, whose PyPI build needs a newer torch than the torch extra's)
names an environment (``Format.environment``). The workflow builds it once, a virtual
environment under ``results/envs/<name>/`` from the pinned ``envs/<name>.txt``
(``storebench env``, the ``format_env`` rule), and every job of such a format runs
whole in it: the job's command starts in the project's Python and replaces itself
with the environment's (:func:`run_in`), so the format and the floor it is paired
with are timed in the same process, with the same libraries. The checkout's package
comes first on ``PYTHONPATH`` there as everywhere (the rules' shell prefix).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storebench.errors import StorebenchError

# Where the workflow keeps the environments it builds (results/envs), for its jobs.
VARIABLE = "STOREBENCH_ENVS"
ROOT = Path(__file__).resolve().parents[2]
READY = "ready.json"
# Set by run_in before it replaces the process: a second replacement is a loop.
ENTERED = "STOREBENCH_IN_ENVIRONMENT"


def requirements(name: str) -> Path:
    """The pinned requirements of environment ``name`` (``envs/<name>.txt``)."""
    return ROOT / "envs" / f"{name}.txt"


def place(name: str, envs: str | Path | None = None) -> Path:
    """The folder of environment ``name``: below ``envs``, else below the folder the
    workflow names (:data:`VARIABLE`); one line if neither says where."""
    where = envs or os.environ.get(VARIABLE)
    if not where:
        raise StorebenchError(
            f"the {name} environment's place is unknown: run the job from the workflow "
            f"(it sets {VARIABLE}), or set {VARIABLE} to the folder that holds it"
        )
    return Path(where) / name


def python_of(folder: Path) -> Path:
    return folder / "bin" / "python"


def inside(folder: Path) -> bool:
    """Whether this process runs in the environment at ``folder``."""
    return Path(sys.prefix).resolve() == folder.resolve()


def build(name: str, folder: Path, python: str = sys.executable) -> dict[str, Any]:
    """Make the environment ``name`` at ``folder`` (a virtual environment of ``python``
    with ``envs/<name>.txt`` installed), check that it imports what the format needs,
    and write ``ready.json`` last (what it holds), so that a failed build leaves no
    ready file a rerun would trust."""
    wanted = requirements(name)
    if not wanted.is_file():
        raise StorebenchError(f"no environment {name!r}: {wanted} does not exist")
    (folder / READY).unlink(missing_ok=True)
    started = time.monotonic()
    steps = [
        [python, "-m", "venv", "--clear", str(folder)],
        [str(python_of(folder)), "-m", "pip", "install", "--quiet", "-r", str(wanted)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise StorebenchError(
                f"the {name} environment could not be built ({' '.join(step[2:5])}): "
                f"{last[:300]}; check the network to the package index and rerun"
            )
    versions = _versions(folder, wanted)
    record = {
        "name": name,
        "requirements": str(wanted.relative_to(ROOT)),
        "python": sys.version.split()[0],
        "packages": versions,
        "build_s": round(time.monotonic() - started, 1),
    }
    (folder / READY).write_text(json.dumps(record, indent=1) + "\n")
    return record


def _versions(folder: Path, wanted: Path) -> dict[str, str]:
    """The installed versions of the pinned packages, read in the environment."""
    names = [
        line.split("==")[0].strip()
        for line in wanted.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    ]
    script = (
        "import json, sys\nfrom importlib.metadata import version\n"
        "print(json.dumps({n: version(n) for n in sys.argv[1:]}))"
    )
    done = subprocess.run(
        [str(python_of(folder)), "-c", script, *names], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise StorebenchError(
            f"the environment at {folder} is broken ({done.stderr.strip()[-200:]}); "
            "delete it and rerun"
        )
    return json.loads(done.stdout)


def of_spec(spec: str | Mapping[str, Any] | None) -> str | None:
    """The environment a format spec's kind runs in, if it has one of its own."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = json.loads(spec)
    from storebench.formats import kind_class

    cls = kind_class(spec.get("kind"))
    return getattr(cls, "environment", None) if cls else None


def run_in(name: str, argv: Sequence[str]) -> None:
    """Replace this process with ``python -m storebench argv`` in environment ``name``,
    unless it already runs there; one line if the environment is not built."""
    folder = place(name)
    if inside(folder):
        return
    if os.environ.get(ENTERED) == name:  # replaced once, and still not there
        raise StorebenchError(
            f"the {name} environment at {folder} runs another Python ({sys.prefix}); "
            "delete the folder and rerun, so that the workflow builds it again"
        )
    python = python_of(folder)
    if not (folder / READY).is_file() or not python.is_file():
        raise StorebenchError(
            f"the {name} environment is not built at {folder}: run the workflow (its "
            f"format_env rule builds it), or: python -m storebench env {name} --envs "
            f"{folder.parent}"
        )
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[ENTERED] = name
    os.execv(str(python), [str(python), "-m", "storebench", *argv])
