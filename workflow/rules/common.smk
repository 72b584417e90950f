import json
import shlex
import shutil
import sys
from pathlib import Path

# The storebench package lives in workflow/; jobs run `python -m storebench`.
PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_DIR)
shell.prefix(
    "set -euo pipefail; "
    f"export PYTHONPATH={shlex.quote(PACKAGE_DIR)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

import storebench.config  # noqa: E402
from storebench.errors import StorebenchError  # noqa: E402
from storebench.figures import FIGURES  # noqa: E402

try:
    storebench.config.check(config)
except StorebenchError as error:
    raise WorkflowError(f"config.yaml: {error}") from None

ENV = "../../envs/storebench.yaml"
RESULTS = "results"
TRASH = f"{RESULTS}/.trash"
FORMATS = list(config["formats"])
CUTOFFS = config["cutoffs"]
TABLES = ("store", "read", "single", "usage")


wildcard_constraints:
    format="|".join(FORMATS),
    n=r"\d+",
    table="|".join(TABLES),
    figure="|".join(FIGURES),


def get_archive():
    """The archive to extract: the local one from config, else the download."""
    return config["cifar10"].get("archive") or f"{RESULTS}/data/cifar-10-python.tar.gz"


def get_format_spec(wildcards):
    """The format's config entry as JSON, for the job's command line."""
    return json.dumps(config["formats"][wildcards.format])


def get_table_inputs(wildcards):
    """Result files of one table, in config order of formats, then cutoffs."""
    if wildcards.table == "single":
        return expand(rules.single.output.result, format=FORMATS)
    pattern = {
        "store": rules.store.output.result,
        "read": rules.read.output.result,
        "usage": rules.usage.output.result,
    }[wildcards.table]
    return expand(pattern, format=FORMATS, n=CUTOFFS)


def get_table_kind(wildcards):
    return "usage" if wildcards.table == "usage" else "timing"


def get_figure_tables(wildcards):
    """The tables one figure is drawn from, by table name."""
    needed = FIGURES[wildcards.figure][0]
    return {name: f"{RESULTS}/tables/{name}.csv" for name in needed}


def get_figure_table_args(wildcards, input):
    return " ".join(f"--table {name}={path}" for name, path in input.items())


def get_final_outputs():
    """Every table and figure of a full run."""
    return expand(
        f"{RESULTS}/tables/{{table}}.{{ext}}", table=TABLES, ext=("csv", "md")
    ) + expand(
        f"{RESULTS}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=("png", "svg")
    )


def empty_trash():
    """Delete replaced stores once no timed job can be slowed down by it."""
    shutil.rmtree(TRASH, ignore_errors=True)


def get_bench_threads(wildcards):
    """Timed jobs take every core, so no other job runs beside them."""
    return workflow.cores
