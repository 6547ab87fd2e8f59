"""Configuration and state as XML: one canonical serialization, with-defaults, subtree filters.

``to_xml`` writes a tree in yangson's JSON form as XML in schema order, with
system-ordered lists sorted by key, so the same configuration is always the
same bytes (Ansible decides "changed" by comparing text).  The with-defaults
modes of RFC 6243 section 3 are applied leaf by leaf: ``explicit`` writes
the tree as stored, ``report-all`` the tree with defaults, ``trim`` leaves
out leaves equal to their default, ``report-all-tagged`` marks them with
``wd:default="true"``.

``subtree_filter`` implements RFC 6241 section 6: selection, containment
and content-match nodes, namespace-qualified.
"""

from __future__ import annotations

import copy
from typing import Any

from lxml import etree
from yangson.datatype import IdentityrefType
from yangson.schemanode import InternalNode, LeafListNode, LeafNode, ListNode

from nefeature.datastore.schema import namespaces, served_model

WITH_DEFAULTS_NS = "urn:ietf:params:xml:ns:netconf:default:1.0"
WD_DEFAULT = f"{{{WITH_DEFAULTS_NS}}}default"
MODES = ("explicit", "report-all", "report-all-tagged", "trim")


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == [None]:
        return None  # type empty
    return str(value)


def _is_default(schema_node: LeafNode, value: Any) -> bool:
    default = schema_node.default
    return default is not None and schema_node.type.to_raw(default) == value


def to_xml(tree: dict, parent: etree._Element, mode: str = "explicit") -> etree._Element:
    """Append ``tree`` (JSON form, top-level members module-qualified) under ``parent``."""
    _write(tree, parent, served_model().schema, None, mode, namespaces())
    return parent


def _write(tree: dict, parent: etree._Element, schema_parent: Any, module: str | None,
           mode: str, module_namespaces: dict[str, str]) -> None:
    for schema_node in _children_in_order(schema_parent):
        member = schema_node.name if schema_node.ns == module else f"{schema_node.ns}:{schema_node.name}"
        if member not in tree:
            continue
        value = tree[member]
        namespace = module_namespaces[schema_node.ns]
        tag = f"{{{namespace}}}{schema_node.name}"
        nsmap = None if schema_node.ns == module else {None: namespace}
        if isinstance(schema_node, ListNode) and hasattr(value, "marker"):
            # A list streamed into the reply by its producer (nefeature.state.LeaseEntries).
            parent.append(etree.Comment(value.marker))
            value.annotate(parent)
        elif isinstance(schema_node, ListNode):
            entries = value
            if not schema_node.user_ordered:
                keys = [k for k, _ in schema_node.keys]
                entries = sorted(value, key=lambda e: tuple(str(e.get(k)) for k in keys))
            for entry in entries:
                element = etree.SubElement(parent, tag, nsmap=nsmap)
                _write(entry, element, schema_node, schema_node.ns, mode, module_namespaces)
        elif isinstance(schema_node, LeafListNode):
            for item in value:
                etree.SubElement(parent, tag, nsmap=nsmap).text = _text(item)
        elif isinstance(schema_node, LeafNode):
            default = _is_default(schema_node, value)
            if default and mode == "trim":
                continue
            text = _text(value)
            if isinstance(schema_node.type, IdentityrefType):
                text, declaration = _identity_text(value)
                nsmap = {None: namespace, **(nsmap or {}), **declaration}  # tag unprefixed
            element = etree.SubElement(parent, tag, nsmap=nsmap)
            element.text = text
            if default and mode == "report-all-tagged":
                element.set(WD_DEFAULT, "true")
        elif isinstance(schema_node, InternalNode):
            element = etree.SubElement(parent, tag, nsmap=nsmap)
            _write(value, element, schema_node, schema_node.ns, mode, module_namespaces)
            if len(element) == 0 and not schema_node.presence:
                parent.remove(element)  # an empty non-presence container says nothing


def _identity_text(value: str) -> tuple[str, dict[str, str]]:
    """An identityref's JSON form 'module:identity' as XML 'prefix:identity' and the
    declaration of that prefix (RFC 7950 9.10.3)."""
    from nefeature.datastore.schema import modules

    module, _, identity = value.rpartition(":")
    info = next((m for m in modules() if m.name == module), None)
    if info is None:
        return value, {}
    return f"{info.prefix}:{identity}", {info.prefix: info.namespace}


def _children_in_order(schema_parent: Any) -> list:
    """Schema order, except that a list entry's keys come first (RFC 7950 7.8.5)."""
    children = schema_parent.data_children()
    if isinstance(schema_parent, ListNode):
        keys = [name for name, _ in schema_parent.keys]
        children = sorted(children, key=lambda c: keys.index(c.name) if c.name in keys
                          else len(keys))
    return children


def canonical_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, pretty_print=True)


# --- RFC 6241 section 6: subtree filtering ---


def _matches(data: etree._Element, filter_node: etree._Element) -> bool:
    data_name, filter_name = etree.QName(data), etree.QName(filter_node)
    if data_name.localname != filter_name.localname:
        return False
    return filter_name.namespace is None or data_name.namespace == filter_name.namespace


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def _is_content_match(node: etree._Element) -> bool:
    return not _elements(node) and bool((node.text or "").strip())


def subtree_filter(data: etree._Element, filter_element: etree._Element) -> etree._Element:
    """A copy of ``data`` (a <data> element) holding only what the filter selects."""
    out = etree.Element(data.tag, nsmap=data.nsmap)
    if not _elements(filter_element):
        return out  # an empty filter selects nothing (RFC 6241 6.4.2)
    _filter_level(data, filter_element, out)
    return out


def _filter_level(data_parent: etree._Element, filter_parent: etree._Element,
                  out_parent: etree._Element) -> bool:
    filters = _elements(filter_parent)
    content_matches = [f for f in filters if _is_content_match(f)]
    for match in content_matches:
        if not any(_matches(d, match) and (d.text or "").strip() == match.text.strip()
                   for d in _elements(data_parent)):
            return False
    only_content = len(content_matches) == len(filters)
    for data in _elements(data_parent):
        if only_content and content_matches:
            out_parent.append(copy.deepcopy(data))  # all siblings selected (6.2.5)
            continue
        for node in filters:
            if not _matches(data, node):
                continue
            if _is_content_match(node) or not _elements(node):
                out_parent.append(copy.deepcopy(data))  # content match or selection node
                break
            shallow = etree.SubElement(out_parent, data.tag, nsmap=data.nsmap)
            if _filter_level(data, node, shallow):
                break
            out_parent.remove(shallow)
    return True
