"""The conda environment of the rules and pyproject.toml pin the same packages."""

from __future__ import annotations

import re
import tomllib

import yaml

from conftest import ROOT

# conda-forge name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"python-lmdb": "lmdb", "matplotlib-base": "matplotlib", "pytorch": "torch"}
DRIVER_ONLY = {"snakemake"}  # runs the workflow; not needed inside a rule's environment


def _conda(name: str = "storebench") -> dict[str, str]:
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip section: PyPI names, ==
            for pip_dep in dep["pip"]:
                name, _, version = pip_dep.partition("==")
                pins[name] = version
        elif dep != "pip":
            name, _, version = dep.partition("=")
            pins[CONDA_TO_PYPI.get(name, name)] = version
    return pins


def _pyproject(extra: str | None = None) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    deps = project["optional-dependencies"][extra] if extra else project["dependencies"]
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9.]*)", dep)
        assert match, f"pyproject dependency {dep!r} is not pinned with =="
        pins[match[1].lower()] = match[2]
    return pins


def test_every_rule_package_is_pinned_identically() -> None:
    conda, pip = _conda(), _pyproject()
    python = conda.pop("python")
    assert re.fullmatch(r"3\.\d+", python)
    assert conda == {k: v for k, v in pip.items() if k not in DRIVER_ONLY}
    assert set(pip) >= DRIVER_ONLY


def test_torch_environment_is_the_rule_environment_plus_the_torch_extra() -> None:
    assert _conda("torch") == {**_conda(), **_pyproject("torch")}
    assert set(_pyproject("torch")) == {"torch"}


def test_photos_environment_is_the_rule_environment_plus_the_photos_extra() -> None:
    assert _conda("photos") == {**_conda(), **_pyproject("photos")}
    assert set(_pyproject("photos")) == {"scikit-image"}


def test_every_rule_uses_the_pinned_environment() -> None:
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("conda:") == len(re.findall(r"^rule ", text, re.M)), rules.name
        for env in re.findall(r"conda:\s*\n\s*(\w+)", text):
            assert env in ("ENV", "TORCH_ENV", "PHOTOS_ENV"), f"{rules.name}: conda: {env}"
