"""What the YANG model says about a command: its help text and its values' types.

The shell's ``?`` text for a configuration keyword is the first sentence of
the ``description`` of the schema node the keyword configures, without the
``(VRP '...')`` note the modules add for readers of the model; a parameter's
allowed values (``INTEGER<1-254>``, ``STRING<1-64>``) and the check made as
the line is typed are the node's YANG type: its range, length and pattern.
The shell keeps no copy of a range, so the model and the CLI cannot
disagree.  Some parameters are written in other units than the model keeps
(seconds for centiseconds): a ``scale`` converts, and the range shown is the
model's range in the CLI's unit.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from yangson.datatype import (
    EnumerationType,
    IntegralType,
    LeafrefType,
    StringType,
    UnionType,
)
from yangson.schemanode import InternalNode

from nefeature.datastore.schema import data_model


@functools.cache
def node(path: str) -> Any:
    """The schema node at a data path (``/module:top/child/...``); KeyError if none."""
    found = data_model().get_data_node(path)
    if found is None:
        raise KeyError(f"no schema node {path}")
    return found


def descendant(path: str, name: str) -> str | None:
    """The data path of the nearest node called ``name`` at or below ``path`` (breadth first)."""
    queue = [(path, node(path))]
    while queue:
        current_path, current = queue.pop(0)
        if current.name == name:
            return current_path
        if isinstance(current, InternalNode):
            for child in current.data_children():
                if child.config:
                    step = child.name if child.ns == current.ns or current.ns is None \
                        else f"{child.ns}:{child.name}"
                    queue.append((f"{current_path}/{step}", child))
    return None


def help_text(path: str) -> str:
    """A node's description, first sentence, without the '(VRP ...)' note."""
    text = " ".join((node(path).description or "").split())
    text = re.sub(r"\s*\((VRP|NE form|CE/AR form)[^)]*\)", "", text)
    sentence = re.split(r"(?<=[a-z0-9)'])\.(\s|$)", text, maxsplit=1)[0]
    return sentence.rstrip(".:")


def leaf_type(path: str) -> Any:
    return node(path).type


def _intervals(data_type: Any) -> list[list[int]]:
    """A range's intervals, or the integer type's own bounds (uint8: 0..255)."""
    constraint = getattr(data_type, "range", None)
    return constraint.intervals if constraint is not None else [list(data_type._range)]


def _scaled(intervals: list[list[int]], scale: float) -> list[list[int]]:
    """The model's intervals in the CLI's unit (CLI value * scale = model value)."""
    result = []
    for interval in intervals:
        low, high = interval[0], interval[-1]
        result.append([math.ceil(low / scale), math.floor(high / scale)])
    return result


def describe(data_type: Any, scale: float = 1) -> str:
    """VRP's way of naming what a parameter takes, from the model's type."""
    if isinstance(data_type, LeafrefType):
        return describe(data_type.ref_type, scale)
    if isinstance(data_type, IntegralType):
        intervals = _intervals(data_type)
        parts = [f"{i[0]}-{i[-1]}" if i[0] != i[-1] else f"{i[0]}"
                 for i in _scaled(intervals, scale)]
        return f"INTEGER<{','.join(parts)}>"
    name = getattr(data_type, "name", None)
    if name in ("ipv4-address-no-zone", "ipv4-address"):
        return "IP_ADDR<X.X.X.X>"
    if name == "ipv4-netmask":
        return "IP_MASK<X.X.X.X> or INTEGER<0-32>"
    if name == "mac-address":
        return "MAC_ADDR<H-H-H>"
    if isinstance(data_type, EnumerationType):
        return "{ " + " | ".join(data_type.enum) + " }"
    if isinstance(data_type, (StringType, UnionType)):
        length = getattr(data_type, "length", None)
        if length is not None and length.intervals:
            low, high = length.intervals[0][0], length.intervals[-1][-1]
            return f"STRING<{low}-{high}>"
        return "STRING"
    return str(data_type)


def accepts(data_type: Any, value: Any) -> bool:
    """Whether the model's type takes this (already converted) value."""
    cooked = data_type.parse_value(str(value).lower() if isinstance(value, bool) else str(value))
    return cooked is not None and cooked in data_type


def error_message(data_type: Any) -> str | None:
    """The model's own error-message for a bad value, if it has one."""
    for constraint in (getattr(data_type, "range", None), getattr(data_type, "length", None)):
        if constraint is not None and constraint.error_message not in (None, "not in range",
                                                                        "invalid length"):
            return constraint.error_message
    for pattern in getattr(data_type, "patterns", None) or ():
        if pattern.error_message and not pattern.error_message.startswith("pattern '"):
            return pattern.error_message
    return None
