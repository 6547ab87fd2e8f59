"""<edit-config> semantics on a datastore held in yangson's JSON form (RFC 6241 section 7.2).

A datastore's content is the "explicit" configuration: exactly what users
set, no defaults (the with-defaults ``explicit`` view, RFC 6243).  An edit
is the ``<config>`` element of an <edit-config>; it is walked together with
the schema, so every element is known to be a container, list entry
(matched by its keys), leaf-list entry (matched by value) or leaf, and its
text is converted to the leaf's type before anything changes.

Operations (``nc:operation``, inherited, starting from default-operation):
``merge`` and ``replace`` create or update, ``create`` fails with
data-exists when the node is there, ``delete`` fails with data-missing when
it is not, ``remove`` deletes quietly, ``none`` only descends.  Setting a
node of one ``choice`` case removes the nodes of the other cases (RFC 7950
section 7.9.6).  Errors are :class:`NetconfError` with the RFC 6241
Appendix A tag and the error-path of the offending node; the input tree is
never modified (the caller gets a new one).  An edit is all or nothing, so
the walk goes on past a bad element and reports every problem it finds (up
to MAX_REPORTED_ERRORS), each as its own <rpc-error>, as netopeer2 does.
"""

from __future__ import annotations

import copy
from typing import Any

from lxml import etree
from yangson.schemanode import (
    CaseNode,
    ChoiceNode,
    InternalNode,
    LeafListNode,
    LeafNode,
    ListNode,
    SequenceNode,
)

from nefeature.datastore.errors import ErrorInfo, NetconfError
from nefeature.datastore.schema import data_model, namespaces
from nefeature.datastore.validation import type_error_message

NETCONF_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
OPERATION = f"{{{NETCONF_NS}}}operation"
OPERATIONS = ("merge", "replace", "create", "delete", "remove", "none")
MAX_REPORTED_ERRORS = 50  # a hostile edit must not buy a huge reply


def apply_edit(datastore: dict, config: etree._Element, default_operation: str = "merge") -> dict:
    """The datastore after the edit (a new dict; ``datastore`` is left as it was)."""
    result = copy.deepcopy(datastore)
    model = data_model()
    module_by_namespace = {ns: name for name, ns in namespaces().items()}
    _edit_children(result, config, model.schema, default_operation, "", module_by_namespace,
                   top=True)
    return result


def _qualified(element: etree._Element, module_by_namespace: dict[str, str],
               path: str) -> tuple[str, str]:
    qname = etree.QName(element)
    module = module_by_namespace.get(qname.namespace or "")
    if module is None:
        raise NetconfError("application", "unknown-namespace",
                           f"no module of this device has the namespace {qname.namespace}",
                           path or "/", info=(ErrorInfo("bad-element", qname.localname),
                                              ErrorInfo("bad-namespace", qname.namespace or "")))
    return module, qname.localname


def _member_name(schema_node: Any, parent_module: str | None) -> str:
    return schema_node.name if schema_node.ns == parent_module else f"{schema_node.ns}:{schema_node.name}"


def _edit_children(target: dict, edit_parent: etree._Element, schema_parent: Any,
                   inherited: str, path: str, module_by_namespace: dict[str, str],
                   top: bool = False) -> None:
    errors: list[NetconfError] = []
    for element in edit_parent:
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        try:
            _edit_child(target, element, schema_parent, inherited, path, module_by_namespace, top)
        except NetconfError as error:
            errors.append(error)
            if sum(len(e.every()) for e in errors) >= MAX_REPORTED_ERRORS:
                break
    if errors:
        raise NetconfError.combined(errors, MAX_REPORTED_ERRORS)


def _edit_child(target: dict, element: etree._Element, schema_parent: Any, inherited: str,
                path: str, module_by_namespace: dict[str, str], top: bool) -> None:
    parent_module = None if top else schema_parent.ns
    module, local = _qualified(element, module_by_namespace, path)
    schema_node = schema_parent.get_data_child(local, module)
    if schema_node is None or not schema_node.config:
        raise NetconfError("application", "unknown-element",
                           f"unknown element '{local}'", f"{path}/{module}:{local}" if top
                           else f"{path}/{local}", info=(ErrorInfo("bad-element", local),))
    operation = element.get(OPERATION, inherited)
    if operation not in OPERATIONS:
        raise NetconfError("protocol", "bad-attribute",
                           f"unknown operation '{operation}'", path or "/",
                           info=(ErrorInfo("bad-attribute", "operation"),
                                 ErrorInfo("bad-element", local)))
    member = _member_name(schema_node, parent_module)
    step = f"{path}/{module}:{local}" if top or schema_node.ns != parent_module \
        else f"{path}/{local}"
    if isinstance(schema_node, ListNode):
        _edit_list_entry(target, member, element, schema_node, operation, step,
                         module_by_namespace)
    elif isinstance(schema_node, LeafListNode):
        _edit_leaf_list_entry(target, member, element, schema_node, operation, step)
    elif isinstance(schema_node, LeafNode):
        _edit_leaf(target, member, element, schema_node, operation, step)
    else:
        _edit_container(target, member, element, schema_node, operation, step,
                        module_by_namespace)


def _clear_other_cases(target: dict, schema_node: Any, parent_module: str | None) -> None:
    """RFC 7950 7.9.6: a node of one case removes the nodes of the other cases."""
    node = schema_node
    while node.parent is not None and not isinstance(node.parent, ChoiceNode):
        if not isinstance(node.parent, CaseNode):
            return
        node = node.parent
    choice = node.parent
    if choice is None:
        return
    for case in choice.children:
        if case is node:
            continue
        for member_node in _data_members(case):
            target.pop(_member_name(member_node, parent_module), None)


def _data_members(node: Any) -> list:
    if isinstance(node, (CaseNode, ChoiceNode)):
        return [m for child in node.children for m in _data_members(child)]
    return [node]


def _leaf_value(element: etree._Element, schema_node: Any, path: str) -> Any:
    cooked = schema_node.type.from_xml(element)
    if cooked is None or cooked not in schema_node.type:
        text = (element.text or "").strip()
        message = type_error_message(schema_node.type, text if cooked is None else cooked,
                                     schema_node.type.error_message)
        raise NetconfError("application", "invalid-value", message, path,
                           info=(ErrorInfo("bad-element", schema_node.name),))
    return schema_node.type.to_raw(cooked)


def _check_existence(operation: str, exists: bool, name: str, path: str) -> None:
    """create needs the node absent, delete needs it present (RFC 6241 7.2)."""
    if operation == "create" and exists:
        raise NetconfError("application", "data-exists", f"'{name}' already exists", path)
    if operation == "delete" and not exists:
        raise NetconfError("application", "data-missing", f"'{name}' does not exist", path)


def _edit_leaf(target: dict, member: str, element, schema_node, operation: str, path: str) -> None:
    _check_existence(operation, member in target, schema_node.name, path)
    if operation in ("delete", "remove"):
        target.pop(member, None)
    elif operation != "none":
        target[member] = _leaf_value(element, schema_node, path)
        _clear_other_cases(target, schema_node, schema_node.parent.ns if
                           schema_node.parent else None)


def _edit_container(target: dict, member: str, element, schema_node: InternalNode,
                    operation: str, path: str, module_by_namespace) -> None:
    _check_existence(operation, member in target, schema_node.name, path)
    if operation in ("delete", "remove"):
        target.pop(member, None)
        return
    if operation == "replace":
        target[member] = {}
    container = target.setdefault(member, {})
    _clear_other_cases(target, schema_node, schema_node.parent.ns if schema_node.parent else None)
    child_operation = "merge" if operation in ("create", "replace") else operation
    _edit_children(container, element, schema_node, child_operation, path, module_by_namespace)
    if not container and operation == "none":
        target.pop(member, None)


def _keys_of(element: etree._Element, schema_node: ListNode, path: str) -> dict[str, Any]:
    keys = {}
    for key_name, _key_module in schema_node.keys:
        key_element = next((c for c in element if isinstance(c.tag, str)
                            and etree.QName(c).localname == key_name), None)
        if key_element is None:
            raise NetconfError("protocol", "missing-element",
                               f"list entry without its key '{key_name}'", path,
                               info=(ErrorInfo("bad-element", key_name),))
        keys[key_name] = _leaf_value(key_element, schema_node.get_child(key_name), path)
    return keys


def _edit_list_entry(target: dict, member: str, element, schema_node: ListNode, operation: str,
                     path: str, module_by_namespace) -> None:
    keys = _keys_of(element, schema_node, path)
    step = path + "".join(f'[{k}="{v}"]' for k, v in keys.items())
    entries = target.setdefault(member, [])
    index = next((i for i, e in enumerate(entries)
                  if all(e.get(k) == v for k, v in keys.items())), None)
    if operation == "create" and index is not None:
        raise NetconfError("application", "data-exists", "this entry already exists", step)
    if operation == "delete" and index is None:
        raise NetconfError("application", "data-missing", "this entry does not exist", step)
    if operation in ("delete", "remove"):
        if index is not None:
            del entries[index]
    elif operation == "none" and index is None:
        entry = dict(keys)
        _edit_children(entry, element, schema_node, "none", step, module_by_namespace)
        if len(entry) > len(keys):
            entries.append(entry)  # a descendant asked for a change: the entry comes along
    else:
        if operation == "replace" or index is None:
            entry = dict(keys)
            if index is None:
                entries.append(entry)
            else:
                entries[index] = entry
        else:
            entry = entries[index]
        child_operation = "merge" if operation in ("create", "replace") else operation
        _edit_children(entry, element, schema_node, child_operation, step, module_by_namespace)
    if not entries:
        target.pop(member, None)


def _edit_leaf_list_entry(target: dict, member: str, element, schema_node: SequenceNode,
                          operation: str, path: str) -> None:
    value = _leaf_value(element, schema_node, path)
    values = target.setdefault(member, [])
    step = f'{path}[.="{value}"]'
    if operation == "create" and value in values:
        raise NetconfError("application", "data-exists", "this value is already listed", step)
    if operation == "delete" and value not in values:
        raise NetconfError("application", "data-missing", "this value is not listed", step)
    if operation in ("delete", "remove"):
        if value in values:
            values.remove(value)
    elif operation != "none" and value not in values:
        values.append(value)
    if not values:
        target.pop(member, None)
