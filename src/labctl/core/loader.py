"""Read a topology file: YAML with every value's position, then validation.

`load_topology` either returns a valid Topology or raises ConfigError with
every problem found (syntax, unknown keys, wrong types, bad references,
names, addresses), each with file:line:column and a path like `links[2].a`.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from labctl.core.document import Document, PathKey, format_path
from labctl.core.model import PROBE_KINDS, Topology
from labctl.core.validate import semantic_problems
from labctl.errors import ConfigError, Problem
from labctl.examples import shipped

__all__ = ["Document", "PathKey", "format_path", "load_topology", "model_problems"]

MAX_FILE_BYTES = 1024 * 1024
"""A topology is a few kilobytes; anything over a megabyte is a mistake."""


class _Builder:
    """Turns a composed YAML node tree into Python data, recording positions."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.problems: list[Problem] = []
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node)
                child = (*path, key if isinstance(key, str | int) else str(key))
                if not isinstance(key, str):
                    hint = ""
                    if isinstance(key, bool | int | float):
                        hint = " (YAML reads unquoted on/off/yes/no as booleans: quote the key)"
                    self._add(key_node, path, f"keys must be strings, got {key!r}{hint}")
                    continue
                if key in result:
                    self._add(key_node, child, f"duplicate key {key!r}")
                    continue
                self.doc.positions[child] = _mark(key_node)
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.doc.positions[(*path, index)] = _mark(item)
                items.append(self.build(item, (*path, index)))
            return items
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._constructor.construct_object(node, deep=True)
        return self.build(node, ())

    def _add(self, node: yaml.Node, path: PathKey, message: str) -> None:
        line, column = _mark(node)
        self.problems.append(Problem(self.doc.file, line, column, format_path(path), message))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def parse_yaml(text: str, file: str) -> Document:
    doc = Document(file=file, data=None, positions={(): (1, 1)})
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = err.problem or err.context or "invalid YAML"
        raise ConfigError(
            [Problem(file, line, column, "", f"YAML syntax error: {reason}")]
        ) from None
    except yaml.YAMLError as err:
        raise ConfigError([Problem(file, 1, 1, "", f"YAML error: {err}")]) from None
    if root is None:
        raise ConfigError(
            [
                Problem(
                    file,
                    1,
                    1,
                    "",
                    "the file is empty; a topology needs at least "
                    "`name:` and `nodes:` (see topologies/seed.yaml)",
                )
            ]
        )
    builder = _Builder(doc)
    doc.data = builder.build(root, ())
    doc.parse_problems = builder.problems
    return doc


def read_topology_text(path: str | Path) -> str:
    file = str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                [
                    Problem(
                        file,
                        1,
                        1,
                        "",
                        f"file is {size} bytes; a topology may be at most {MAX_FILE_BYTES} bytes",
                    )
                ]
            )
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(file, 1, 1, "", "no such file")]) from None
    except IsADirectoryError:
        raise ConfigError(
            [Problem(file, 1, 1, "", "is a directory, not a topology file")]
        ) from None
    except PermissionError:
        raise ConfigError([Problem(file, 1, 1, "", "permission denied reading the file")]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError([Problem(file, line, 1, "", "not UTF-8 text")]) from None


def structure_problems(doc: Document) -> tuple[Topology | None, list[Problem]]:
    """Check keys and types with the pydantic model; map its errors to file positions."""
    if not isinstance(doc.data, dict):
        return None, [doc.problem((), "a topology must be a mapping with `name:` and `nodes:`")]
    try:
        return Topology.model_validate(doc.data), list(doc.parse_problems)
    except ValidationError as err:
        return None, doc.parse_problems + [_pydantic_problem(doc, e) for e in err.errors()]


def value_problems(
    doc: Document, path: PathKey, value: object, model: type[Any]
) -> tuple[Any, list[Problem]]:
    """Check one value found at `path` of `doc` against a pydantic model (a part
    that the document's own model leaves open); problems carry file positions."""
    try:
        return model.model_validate(value), []
    except ValidationError as err:
        problems = []
        for error in err.errors():
            located = {**error, "loc": (*path, *error["loc"])}
            problems.append(_pydantic_problem(doc, located, model, model_at=len(path)))
        return None, problems


def _pydantic_problem(
    doc: Document, error: Any, root: type[Any] = Topology, model_at: int = 0
) -> Problem:
    """`root` is the model of the document below the first `model_at` path parts."""
    loc: PathKey = _probe_loc(
        tuple(part for part in error["loc"] if not _is_union_tag(part)), root, model_at
    )
    kind = error["type"]
    value = error.get("input")
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        return doc.problem(
            (*loc, "kind"), f"unknown probe kind {tag!r} (one of: {', '.join(PROBE_KINDS)})"
        )
    if kind == "union_tag_not_found":
        return doc.problem(loc, f"missing required key 'kind' (one of: {', '.join(PROBE_KINDS)})")
    if kind == "string_pattern_mismatch" and loc[-1:] == ("bitrate",):
        return doc.problem(
            loc,
            f"{value!r} is not a bit rate: a number with an optional K, M or G "
            "(bits per second), e.g. 10M; 0 means unlimited",
        )
    if kind == "extra_forbidden":
        parent = _probe_fields(doc, loc) if root is Topology else None
        if parent is None:
            parent = _model_fields_at(loc[model_at:-1], root)
        allowed = f" (allowed: {', '.join(parent)})" if parent else ""
        return doc.problem(loc, f"unknown key {loc[-1]!r}{allowed}")
    if kind == "missing":
        line, column = doc.position(loc[:-1])
        return Problem(
            doc.file, line, column, format_path(loc), f"missing required key {loc[-1]!r}"
        )
    if kind in {
        "string_type",
        "int_type",
        "bool_type",
        "float_type",
        "dict_type",
        "list_type",
        "model_type",
        "model_attributes_type",
    }:
        expected = {
            "string_type": "a string",
            "int_type": "an integer",
            "bool_type": "true or false",
            "float_type": "a number",
            "dict_type": "a mapping",
            "list_type": "a list",
            "model_type": "a mapping",
            "model_attributes_type": "a mapping",
        }[kind]
        hint = ""
        if kind == "string_type" and isinstance(value, bool | int | float):
            # YAML reads on/off/yes/no as booleans and 1.0 as a number (the "Norway problem").
            hint = "; quote it to make it a string"
        return doc.problem(loc, f"expected {expected}, got {_describe(value)}{hint}")
    if kind in {"enum", "literal_error"}:
        allowed = error.get("ctx", {}).get("expected", "")
        return doc.problem(loc, f"{value!r} is not one of {allowed}")
    bounds = {
        "less_than_equal": ("le", "at most"),
        "greater_than_equal": ("ge", "at least"),
        "greater_than": ("gt", "more than"),
        "less_than": ("lt", "less than"),
    }
    if kind in bounds:
        key, words = bounds[kind]
        limit = error.get("ctx", {}).get(key)
        return doc.problem(loc, f"{value!r} is out of range: must be {words} {limit}")
    return doc.problem(loc, error["msg"][0].lower() + error["msg"][1:])


def _probe_loc(loc: PathKey, root: type[Any], model_at: int) -> PathKey:
    """A topology's probes are a union told apart by `kind`: pydantic puts the kind into
    the location (probes.0.tcp.port), the file has none (probes[0].port)."""
    if (
        root is Topology
        and model_at == 0
        and len(loc) > 2
        and loc[0] == "probes"
        and loc[2] in PROBE_KINDS
    ):
        return (*loc[:2], *loc[3:])
    return loc


def _probe_fields(doc: Document, loc: PathKey) -> list[str] | None:
    """The keys a probe of the file's `kind` allows, for a key directly in a probe."""
    if len(loc) != 3 or loc[0] != "probes" or not isinstance(doc.data, dict):
        return None
    probes = doc.data.get("probes")
    index = loc[1]
    if not isinstance(probes, list) or not isinstance(index, int) or index >= len(probes):
        return None
    item = probes[index]
    kind = item.get("kind") if isinstance(item, dict) else None
    model = PROBE_KINDS.get(kind) if isinstance(kind, str) else None
    return list(model.model_fields) if model is not None else None


def _is_union_tag(part: object) -> bool:
    # pydantic adds the union member's type name ("int", "float") to the location.
    return isinstance(part, str) and part in {
        "int",
        "float",
        "str",
        "bool",
        "constrained-int",
        "constrained-float",
        "function-after[...]",
    }


def _model_fields_at(path: PathKey, root: type[Any] = Topology) -> list[str]:
    """Names of the keys allowed at a path, for 'unknown key' messages."""
    from pydantic import BaseModel

    current: type[BaseModel] | None = root
    depth = 0
    while current is not None and depth < len(path):
        field_info = current.model_fields.get(str(path[depth]))
        if field_info is None:
            return []
        annotation = field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current, depth = annotation, depth + 1
            continue
        args = typing.get_args(annotation)
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        # list[Link] / dict[str, Node] also consume the index or key part of the path.
        step = 2 if typing.get_origin(annotation) in (list, dict) else 1
        current, depth = nested[0], depth + step
    return list(current.model_fields) if current is not None else []


def _describe(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def model_problems(doc: Document, model: type[Any]) -> tuple[Any, list[Problem]]:
    """Check `doc` against any pydantic model; problems carry file positions."""
    if not isinstance(doc.data, dict):
        return None, [doc.problem((), "expected a mapping at the top level")]
    try:
        return model.model_validate(doc.data), list(doc.parse_problems)
    except ValidationError as err:
        return None, doc.parse_problems + [_pydantic_problem(doc, e, model) for e in err.errors()]


def load_topology(path: str | Path) -> tuple[Topology, Document]:
    """Load and fully validate a topology file. Raises ConfigError listing every problem."""
    path = shipped(path) or path
    doc = parse_yaml(read_topology_text(path), str(path))
    topology, problems = structure_problems(doc)
    if topology is not None:
        problems += semantic_problems(topology, doc)
    if problems:
        raise ConfigError(problems)
    assert topology is not None
    return topology, doc
