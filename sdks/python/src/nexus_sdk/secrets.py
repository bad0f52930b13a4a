"""The ``nexus-secret:NAME`` reference format, walked over nested dicts, lists and tuples.

A reference is a whole string ``nexus-secret:NAME`` (NAME: letters, digits, ``.``, ``-``, ``_``; at
most 128), exactly as the broker's ``POST /api/v2/secrets/resolve`` treats it. Strings that merely
contain the prefix are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REFERENCE_PREFIX", "is_reference", "reference_name", "find_references", "replace_references"]

REFERENCE_PREFIX = "nexus-secret:"
_REFERENCE = re.compile(r"^nexus-secret:([A-Za-z0-9_.-]{1,128})$")


def reference_name(value: Any) -> str | None:
    """The NAME of a ``nexus-secret:NAME`` string, else None."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.match(value)
    return match.group(1) if match else None


def is_reference(value: Any) -> bool:
    return reference_name(value) is not None


def find_references(config: Any) -> list[str]:
    """Every referenced NAME in ``config`` (dict keys are not references), in first-seen order."""
    seen: dict[str, None] = {}

    def walk(node: Any) -> None:
        name = reference_name(node)
        if name is not None:
            seen.setdefault(name, None)
        elif isinstance(node, Mapping):
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(config)
    return list(seen)


def replace_references(config: Any, values: Mapping[str, str]) -> Any:
    """A copy of ``config`` with each reference whose NAME is in ``values`` replaced by its value.

    Containers are copied (dicts stay dicts, lists stay lists, tuples stay tuples); the input is not
    modified. References not in ``values`` are kept as they are.
    """

    def walk(node: Any) -> Any:
        name = reference_name(node)
        if name is not None:
            return values.get(name, node)
        if isinstance(node, Mapping):
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        if isinstance(node, tuple):
            return tuple(walk(value) for value in node)
        return node

    return walk(config)
