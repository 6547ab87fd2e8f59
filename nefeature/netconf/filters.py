"""RFC 6241 section 6 subtree filters, applied to data before it becomes XML.

A filter is parsed once into :class:`FilterNode` trees.  ``select`` applies
it to a tree in yangson's JSON form (the form of the datastores and of
``nefeature.state``), so a <get> serializes only what the filter keeps,
and ``lookup`` tells the state producer which parts of the state a filter
can reach at all, so it builds nothing else (filter pushdown).

The rules (RFC 6241 6.2 and 6.4):

* a selection node (an empty element) selects the node and its subtree;
* a containment node (an element with child elements) selects what its
  children select;
* content match nodes (leaves with text) are conditions on their siblings:
  when all of them match, the content match leaves are selected, and when a
  level has content match nodes only, all siblings are selected (6.2.5);
* every list entry in a reply carries its keys, first (RFC 6241 6.2.5 and
  RFC 7950 7.8.5: a reply entry without them is not valid data);
* a namespace-less filter element matches any module's node of that name;
* an empty filter selects nothing (6.4.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from yangson.schemanode import InternalNode, LeafListNode, ListNode

from nefeature.datastore.schema import namespaces, served_model

#: ``lookup`` result: the filter keeps the whole subtree at that path.
ALL = "all"


@dataclass
class FilterNode:
    module: str | None  # the module of the element's namespace; None: any
    name: str
    value: str | None = None  # text of a content match node
    children: list[FilterNode] = field(default_factory=list)

    @property
    def is_content_match(self) -> bool:
        return self.value is not None and not self.children

    @property
    def is_selection(self) -> bool:
        return self.value is None and not self.children

    def matches(self, module: str, name: str) -> bool:
        return name == self.name and (self.module is None or self.module == module)


def parse_filter(element: etree._Element) -> list[FilterNode]:
    """The filter's top-level nodes (an empty list selects nothing)."""
    module_of = {namespace: module for module, namespace in namespaces().items()}
    return [_parse(child, module_of) for child in _elements(element)]


def _parse(element: etree._Element, module_of: dict[str, str]) -> FilterNode:
    qname = etree.QName(element)
    module = module_of.get(qname.namespace, qname.namespace) if qname.namespace else None
    children = [_parse(child, module_of) for child in _elements(element)]
    text = (element.text or "").strip()
    return FilterNode(module, qname.localname, text if text and not children else None,
                      children)


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _member(schema_node, parent_module: str | None) -> str:
    return (schema_node.name if schema_node.ns == parent_module
            else f"{schema_node.ns}:{schema_node.name}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _child_schema(schema_parent, node: FilterNode):
    for child in schema_parent.data_children():
        if node.matches(child.ns, child.name):
            yield child


def select(tree: dict, filters: list[FilterNode] | None) -> dict:
    """What ``filters`` keep of ``tree`` (top level: module-qualified members)."""
    if filters is None:
        return tree
    return _select_level(tree, filters, served_model().schema, None, ()) or {}


def select_entry(entry: dict, filters: list[FilterNode], list_node: ListNode) -> dict | None:
    """What the children of one list's filter node keep of one entry (None: not selected)."""
    return _select_level(entry, filters, list_node, list_node.ns,
                         tuple(name for name, _ in list_node.keys))


def _select_level(value: dict, filters: list[FilterNode], schema_parent, module: str | None,
                  keys: tuple[str, ...]) -> dict | None:
    """One level of RFC 6241 6.2: None when a content match fails or nothing is selected."""
    content = [f for f in filters if f.is_content_match]
    for node in content:
        if not any(_content_matches(value.get(_member(child, module)), node.value)
                   for child in _child_schema(schema_parent, node)):
            return None
    if content and len(content) == len(filters):
        return value  # content match nodes only: every sibling (6.2.5)
    out: dict = {key: value[key] for key in keys if key in value}
    selected = bool(content)
    for node in filters:
        for child in _child_schema(schema_parent, node):
            member = _member(child, module)
            if member not in value:
                continue
            if node.is_content_match:
                out[member] = _matching_items(value[member], node.value) \
                    if isinstance(child, LeafListNode) else value[member]
            elif node.is_selection:
                out[member] = value[member]
                selected = True
            elif isinstance(child, ListNode) and hasattr(value[member], "filtered"):
                kept = value[member].filtered(node.children)  # a streamed list's entries
                if kept is not None:
                    out[member] = kept if member not in out else out[member].merged(kept)
                    selected = True
            elif isinstance(child, ListNode):
                child_keys = tuple(name for name, _ in child.keys)
                entries = []
                for entry in value[member]:
                    kept = _select_level(entry, node.children, child, child.ns, child_keys)
                    if kept is not None:
                        entries.append(kept)
                if entries:
                    out[member] = _merge_entries(out.get(member), entries, child_keys)
                    selected = True
            elif isinstance(child, InternalNode):
                kept = _select_level(value[member], node.children, child, child.ns, ())
                if kept is not None:
                    out[member] = _merge(out.get(member), kept)
                    selected = True
    return out if selected else None


def _content_matches(value: Any, wanted: str) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(_text(item) == wanted for item in value)
    return _text(value) == wanted


def _matching_items(values: list, wanted: str) -> list:
    return [item for item in values if _text(item) == wanted]


def _merge(old: dict | None, new: dict) -> dict:
    """Two filter nodes of the same container: what either keeps."""
    if old is None:
        return new
    merged = dict(old)
    for member, value in new.items():
        if member in merged and isinstance(value, dict) and isinstance(merged[member], dict):
            merged[member] = _merge(merged[member], value)
        else:
            merged[member] = value
    return merged


def _merge_entries(old: list | None, new: list, keys: tuple[str, ...]) -> list:
    """Two filter nodes of the same list: entries by key, what either keeps."""
    if old is None:
        return new
    by_key = {tuple(entry.get(k) for k in keys): entry for entry in old}
    for entry in new:
        key = tuple(entry.get(k) for k in keys)
        by_key[key] = _merge(by_key[key], entry) if key in by_key else entry
    return list(by_key.values())


def lookup(filters: list[FilterNode] | None, path: tuple[str, ...]) -> str | list[FilterNode] | None:
    """How much of the subtree at ``path`` (member names, the first one module-qualified)
    the filter can select: ``ALL``, None (nothing), or the filter nodes found at the
    path's end (their conditions and selections still apply)."""
    if filters is None:
        return ALL
    level: list[FilterNode] = filters
    found: list[FilterNode] = []
    for depth, member in enumerate(path):
        module, _, name = member.rpartition(":")
        if depth and level and all(f.is_content_match for f in level):
            return ALL  # content matches only: every sibling is selected
        found = [f for f in level if f.name == name and (not module or f.module in (None, module))]
        if not found:
            return None
        if any(f.is_selection for f in found):
            return ALL
        level = [child for f in found for child in f.children]
    return found
