"""The configuration reference, rendered: docs/configuration.md from config.yaml's
comments and values and the schema's descriptions and bounds.

One source per fact: what a section is for is the comment above it in config.yaml,
what a key means and which values it takes is the schema, its default is the value
in config.yaml. ``python -m storebench config-docs`` writes the block between the
markers of docs/configuration.md; ``--check`` fails when that block is stale (a
test runs it), so the reference cannot drift from the files it is made from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from storebench.errors import StorebenchError

START, END = "<!-- config:start -->", "<!-- config:end -->"


def section_comments(config_text: str) -> dict[str, str]:
    """The comment block right above each top-level key of config.yaml, as prose."""
    found: dict[str, str] = {}
    block: list[str] = []
    for line in config_text.splitlines():
        if line.startswith("#"):
            block.append(line.lstrip("#").strip())
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", line)
        if match:
            found[match.group(1)] = " ".join(x for x in block if x).strip()
        if line.strip() == "" or match:
            block = []
    return found


def _value(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, dict) and len(json.dumps(value)) > 40:
        return f"{len(value)} entries (see config.yaml)"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _bounds(node: Mapping[str, Any]) -> str:
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    left = "" if low is None else f"{'>' if 'exclusiveMinimum' in node else '≥'} {low}"
    right = "" if high is None else f"{'<' if 'exclusiveMaximum' in node else '≤'} {high}"
    return ", ".join(x for x in (left, right) if x)


def allowed(node: Mapping[str, Any]) -> str:
    """Which values a schema node takes, in a few words."""
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(allowed(option) for option in node["oneOf"])
    kind = node.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    words = " or ".join(str(k) for k in kinds if k)
    if "array" in kinds and isinstance(node.get("items"), Mapping):
        words = words.replace("array", f"list of ({allowed(node['items'])})")
    bounds = _bounds(node)
    return f"{words} {bounds}".strip() if bounds else words


def rows(
    schema: Mapping[str, Any], values: Mapping[str, Any] | None, prefix: str = ""
) -> Iterator[tuple[str, str, str, str]]:
    """(key, default, allowed values, meaning) for every key under ``schema``."""
    for name, node in (schema.get("properties") or {}).items():
        key = f"{prefix}{name}"
        value = (values or {}).get(name) if isinstance(values, Mapping) else None
        if node.get("type") == "object" and "properties" in node:
            yield from rows(node, value, f"{key}.")
            continue
        description = " ".join(str(node.get("description", "")).split())
        yield key, _value(value), allowed(node), description


def render(schema_path: Path, config_path: Path) -> str:
    """The reference: per top-level section, config.yaml's comment and a table."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    text = Path(config_path).read_text()
    config = yaml.safe_load(text)
    comments = section_comments(text)
    out: list[str] = []
    for name, node in schema["properties"].items():
        out += [f"### `{name}`", ""]
        about = comments.get(name) or " ".join(str(node.get("description", "")).split())
        if about:
            out += [about, ""]
        out += ["| key | default | values | meaning |", "|---|---|---|---|"]
        single = {"properties": {name: node}}
        for key, default, values, meaning in rows(single, config):
            cell = meaning.replace("|", "\\|")
            out.append(f"| `{key}` | {default} | {values} | {cell} |")
        out.append("")
    return "\n".join(out)


def update(doc: Path, schema_path: Path, config_path: Path, check: bool = False) -> bool:
    """Write the rendered reference between the markers of ``doc``; with ``check``,
    write nothing and say whether it is up to date."""
    text = Path(doc).read_text()
    if START not in text or END not in text:
        raise StorebenchError(f"{doc}: no {START} ... {END} block; restore the markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{START}\n{render(schema_path, config_path)}{END}{tail}"
    if check:
        return new == text
    if new != text:
        Path(doc).write_text(new)
    return True
