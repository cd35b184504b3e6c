"""YAML that remembers where things are.

``load(text, path)`` parses one YAML document with PyYAML's safe rules and
returns plain dicts, lists and scalars, except that every mapping is a
``PosDict`` and every sequence a ``PosList`` that remember the 1-based line of
each key or item and the YAML node of each value (so a block scalar's style
and position are known). Syntax errors, several documents and duplicate keys
become LabError with the file and line.
"""

from __future__ import annotations

from typing import Any

import yaml

from netlab.errors import LabError


class PosDict(dict):
    """A mapping with ``line`` (where it starts), ``key_line[k]`` and ``node[k]``."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.key_line: dict[Any, int] = {}
        self.node: dict[Any, yaml.Node] = {}

    def line_of(self, key: Any) -> int:
        return self.key_line.get(key, self.line)

    def value_line(self, key: Any) -> int:
        node = self.node.get(key)
        return node.start_mark.line + 1 if node is not None else self.line_of(key)


class PosList(list):
    """A sequence with ``line`` and, per item, ``item_line[i]`` and ``node[i]``."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.item_line: list[int] = []
        self.node: list[yaml.Node] = []

    def line_of(self, index: int) -> int:
        return self.item_line[index] if index < len(self.item_line) else self.line


def load(text: str, path: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _convert(loader, root, path)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = err.problem or err.context or "not valid YAML"
        if "expected a single document" in (err.context or ""):
            problem = "one YAML document expected, found a second one ('---')"
        raise LabError(f"YAML syntax error: {problem}", path=path, line=line) from None
    except yaml.YAMLError as err:  # e.g. a reader error on a control character
        raise LabError(f"YAML syntax error: {err}", path=path) from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = PosDict(line)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise LabError("a key must be a plain word", path=path,
                               line=key_node.start_mark.line + 1)
            key = loader.construct_object(key_node)
            if key == "<<":
                raise LabError("YAML merge keys ('<<') are not supported in lab files",
                               path=path, line=key_node.start_mark.line + 1)
            if key in out:
                raise LabError(f"duplicate key '{key}' (first at line {out.key_line[key]})",
                               path=path, line=key_node.start_mark.line + 1)
            out[key] = _convert(loader, value_node, path)
            out.key_line[key] = key_node.start_mark.line + 1
            out.node[key] = value_node
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = PosList(line)
        for item in node.value:
            seq.append(_convert(loader, item, path))
            seq.item_line.append(item.start_mark.line + 1)
            seq.node.append(item)
        return seq
    return loader.construct_object(node)


def scalar_lines(node: yaml.Node | None, value: str, fallback: int) -> list[tuple[int, str]]:
    """Split a string scalar into (line, text) pairs, with each line's place in the file.

    A literal block (``|``) keeps its lines one to one: line k of the value is
    k lines below the indicator. Other styles sit on the line where they start.
    """
    lines = value.split("\n")
    if node is None or not isinstance(node, yaml.ScalarNode):
        return [(fallback, text) for text in lines]
    start = node.start_mark.line + 1
    if node.style == "|":
        return [(start + 1 + i, text) for i, text in enumerate(lines)]
    return [(start, text) for text in lines]
