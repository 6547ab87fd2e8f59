"""Validate configuration XML against the YANG model, with NETCONF errors.

Input is instance data in either of the two forms docs/architecture.md
allows: the top-level nodes of our modules side by side (what
``yanglint -t config`` reads), or the same nodes inside a NETCONF
``<config>`` element.  yangson parses and validates it (defaults added
first, so ``must`` expressions see them), and every failure becomes a
:class:`NetconfError` with the error-tag and error-app-tag RFC 7950
section 15 assigns and an instance-identifier error-path:

==========================  ================  ======================
violation                   error-tag         error-app-tag
==========================  ================  ======================
type, range, length,        invalid-value     (ours, if the model
pattern                                       names one)
unknown element             unknown-element   --
unknown namespace           unknown-namespace --
mandatory node missing      data-missing      missing-choice for a
                                              choice
leafref without target      data-missing      instance-required
must                        operation-failed  the must's
                                              error-app-tag, else
                                              must-violation
unique, duplicate entry     operation-failed  data-not-unique
min/max-elements            operation-failed  too-few-elements /
                                              too-many-elements
==========================  ================  ======================

XML is parsed without DTDs, entities or network access.

Where the libyang binding is installed, libyang judges validity first and
supplies the defaults (about 20 times faster); only a configuration it
rejects is validated here by yangson, which raises the error above.  So
the errors are yangson's either way (``nefeature.datastore.libyang_validator``
explains the split).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from yangson.enumerations import ContentType, ValidationScope
from yangson.exceptions import (
    MissingModuleNamespace,
    RawDataError,
    RawMemberError,
    RawTypeError,
    SchemaError,
    SemanticError,
    ValidationError,
    YangsonException,
    YangTypeError,
)
from yangson.instance import RootNode
from yangson.instvalue import ArrayValue, ObjectValue
from yangson.schemanode import ChoiceNode

from nefeature.config.model import DeviceConfig, build_device_config
from nefeature.datastore import libyang_validator
from nefeature.datastore.errors import ErrorInfo, NetconfError
from nefeature.datastore.schema import data_model

log = logging.getLogger(__name__)

NETCONF_BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

_PARSER = etree.XMLParser(
    remove_comments=True,
    remove_pis=True,
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
)

#: yangson SemanticError tags -> (error-tag, error-app-tag) per RFC 7950 section 15.
_SEMANTIC_TAGS = {
    "instance-required": ("data-missing", "instance-required"),
    "too-few-elements": ("operation-failed", "too-few-elements"),
    "too-many-elements": ("operation-failed", "too-many-elements"),
    "non-unique-key": ("operation-failed", "data-not-unique"),
    "repeated-leaf-list-value": ("operation-failed", "data-not-unique"),
    "data-not-unique": ("operation-failed", "data-not-unique"),
    "must-violation": ("operation-failed", "must-violation"),
}

_SEMANTIC_MESSAGES = {
    "too-few-elements": "too few entries",
    "too-many-elements": "too many entries",
    "non-unique-key": "two entries have the same key",
    "repeated-leaf-list-value": "the same value is listed twice",
    "data-not-unique": "two entries have the same value where it must be unique",
    "must-violation": "a constraint of the model is not met",
}


@dataclass(frozen=True)
class ValidatedConfig:
    """A configuration that passed validation.

    ``explicit`` is what was configured (JSON form, no defaults); ``raw`` the
    same with defaults added.
    """

    raw: dict[str, Any]
    explicit: dict[str, Any]


def parse_config_xml(data: str | bytes) -> etree._Element:
    """Parse instance XML, bare or wrapped, into a ``<config>`` element.

    Raises NetconfError(malformed-message) when the text is not XML.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = re.sub(rb"^\s*<\?xml[^>]*\?>", b"", data)
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        root = None  # several top-level nodes: wrap them below
    if root is not None and etree.QName(root).localname in ("config", "data"):
        return root
    wrapped = b'<config xmlns="' + NETCONF_BASE_NS.encode() + b'">' + data + b"</config>"
    try:
        return etree.fromstring(wrapped, _PARSER)
    except etree.XMLSyntaxError as error:
        raise NetconfError("rpc", "malformed-message", f"not well-formed XML: {error}") from None


def validate_config(config: etree._Element) -> ValidatedConfig:
    """Validate a ``<config>`` element's children as a complete configuration."""
    try:
        instance = data_model().from_xml(config)
    except MissingModuleNamespace as error:
        namespace = error.args[0] if error.args else None
        raise NetconfError(
            "application",
            "unknown-namespace",
            f"no module of this device has the namespace {namespace}",
            info=(ErrorInfo("bad-namespace", str(namespace)),),
        ) from None
    except RawDataError as error:
        raise _raw_error(config, error) from None
    if libyang_validator.available():
        # yangson keeps a value its type rejects in the instance but leaves it out of
        # raw_value(), so libyang would judge a configuration without it: check types
        # here (cheap; the costly rules are the semantic ones libyang judges).
        try:
            instance.validate(ValidationScope.syntax, ContentType.config)
        except ValidationError as error:
            raise _validation_error(error) from None
        except (TypeError, YangsonException):
            pass  # not a type error: libyang and yangson judge it below
    return _validate(instance.raw_value(), lambda: instance)


def validate_raw(explicit: dict[str, Any]) -> ValidatedConfig:
    """Validate a configuration in JSON form (no defaults needed)."""

    def instance() -> RootNode:
        try:
            return data_model().from_raw(explicit)
        except YangsonException as error:
            raise NetconfError("application", "invalid-value", f"invalid data: {error}") from None

    return _validate(explicit, instance)


def validator() -> str:
    """The validator that judges validity here: ``libyang`` or ``yangson``."""
    return "libyang" if libyang_validator.available() else "yangson"


def _validate(explicit: dict[str, Any], instance: Callable[[], RootNode]) -> ValidatedConfig:
    """libyang's verdict where it is available, yangson's (and always yangson's errors)."""
    signature = _PAIRWISE.signature(explicit)
    if not libyang_validator.available():
        return _validate_with_yangson(instance(), signature)
    text = json.dumps(explicit)
    skipped = (_PAIRWISE.RULE,) if _PAIRWISE.passed(signature) else ()
    try:
        raw = libyang_validator.check(text, skipped)
    except libyang_validator.Rejected as rejected:
        _validate_with_yangson(instance(), signature)  # raises the error users get
        log.warning("libyang rejects a configuration that yangson accepts: %s", rejected)
        raise _libyang_error(rejected.errors[0]) from None
    _PAIRWISE.remember(signature)
    return ValidatedConfig(raw=raw, explicit=json.loads(text))


class _PairwiseMustMemo:
    """Evaluate the pool-overlap ``must`` once per distinct set of pool subnets.

    That rule compares every pool with every other; in yangson's XPath it
    costs seconds at 100 pools (libyang: 250 ms), and a commit that changes
    one DNS server would pay it again.  Its result depends only on each
    pool's name and addressing, so a set that passed once passes again: the
    rule stays in the model (and in yanglint's checks), only its
    re-evaluation is skipped, by either validator.
    """

    RULE = ("/nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool", "pool-overlap")

    def __init__(self) -> None:
        self._passed: list[frozenset] = []

    @staticmethod
    def signature(explicit: dict[str, Any]) -> frozenset:
        pools = explicit.get("nefeature-dhcp-server:dhcp", {}).get("server", {}) \
            .get("ip-pools", {}).get("ip-pool", [])
        return frozenset((p.get("ip-pool-name"), repr(p.get("gateway")), repr(p.get("network")))
                         for p in pools)

    def passed(self, signature: frozenset) -> bool:
        return signature in self._passed

    def skipping(self, signature: frozenset):
        """A context in which yangson leaves the rule out, when this set already passed it."""
        if not self.passed(signature):
            return contextlib.nullcontext()
        path, app_tag = self.RULE
        return _without_musts(data_model().get_data_node(path), app_tag)

    def remember(self, signature: frozenset) -> None:
        if signature not in self._passed:
            self._passed = (self._passed + [signature])[-32:]


class _without_musts:
    def __init__(self, node: Any, app_tag: str) -> None:
        self.node, self.app_tag, self.saved = node, app_tag, None

    def __enter__(self) -> None:
        self.saved = self.node.must
        self.node.must = [m for m in self.saved if m.error_tag != self.app_tag]

    def __exit__(self, *exc) -> None:
        self.node.must = self.saved


_PAIRWISE = _PairwiseMustMemo()


def _validate_with_yangson(explicit_instance: RootNode, signature: frozenset) -> ValidatedConfig:
    with _PAIRWISE.skipping(signature):
        validated = _validate_instance_fully(explicit_instance)
    _PAIRWISE.remember(signature)
    return validated


def _validate_instance_fully(explicit_instance: RootNode) -> ValidatedConfig:
    try:
        instance = explicit_instance.add_defaults(ContentType.config)
        # Structure and types first, so a missing mandatory leaf is reported
        # as such rather than as a 'must' that could not see it.
        try:
            instance.validate(ValidationScope.syntax, ContentType.config)
        except TypeError:
            # yangson 1.7.9 cannot name the members of a mandatory choice whose
            # cases hold only optional nodes; find the unset choice ourselves.
            error = _unset_mandatory_choice(instance)
            if error is None:
                raise
            raise error from None
        instance.validate(ValidationScope.semantics, ContentType.config)
    except ValidationError as error:
        raise _validation_error(error) from None
    except YangsonException as error:
        raise NetconfError("application", "invalid-value", f"invalid data: {error}") from None
    return ValidatedConfig(raw=instance.raw_value(), explicit=explicit_instance.raw_value())


def validate_config_text(data: str | bytes) -> ValidatedConfig:
    """Parse and validate instance XML text in one step."""
    return validate_config(parse_config_xml(data))


def _libyang_error(error: libyang_validator.LibyangError) -> NetconfError:
    """libyang's own error, for a configuration only libyang rejects."""
    app_tag = error.app_tag
    if app_tag in _SEMANTIC_TAGS:
        error_tag, app_tag = _SEMANTIC_TAGS[app_tag]
    elif app_tag == "missing-choice":
        error_tag = "data-missing"
    elif app_tag:
        error_tag = "operation-failed"  # a must with the model's error-app-tag
    else:
        error_tag = "invalid-value"
    return NetconfError("application", error_tag, error.message, error.path, app_tag)


def _instance_path(error: ValidationError) -> str:
    route = str(error.instance.instance_route())
    return route if route else "/"


def _validation_error(error: ValidationError) -> NetconfError:
    path = _instance_path(error)
    if isinstance(error, YangTypeError):
        app_tag = None if error.tag == "invalid-type" else error.tag
        return NetconfError("application", "invalid-value", _type_message(error), path, app_tag)
    if isinstance(error, SchemaError):
        return _schema_error(error, path)
    if isinstance(error, SemanticError):
        tag = error.tag or "must-violation"
        base_tag = tag.split(":", 1)[0]
        if base_tag == "instance-required":
            error_tag, app_tag = _SEMANTIC_TAGS[base_tag]
            leaf = path.rsplit("/", 1)[-1].split(":")[-1]
            message = f'"{error.instance.value}" is not configured: {leaf} must name an existing one'
        elif base_tag in _SEMANTIC_TAGS:
            error_tag, app_tag = _SEMANTIC_TAGS[base_tag]
            message = error.message or _SEMANTIC_MESSAGES[base_tag]
        else:  # a must with our own error-app-tag
            error_tag, app_tag = "operation-failed", tag
            message = error.message or _SEMANTIC_MESSAGES["must-violation"]
        info: tuple[ErrorInfo, ...] = ()
        if app_tag == "data-not-unique":
            info = (ErrorInfo("non-unique", path),)
        return NetconfError("application", error_tag, message, path, app_tag, info)
    return NetconfError("application", "operation-failed", str(error), path)


_YANGSON_DEFAULT_MESSAGES = ("not in range", "invalid length", "pattern '", "expected ")


def _type_message(error: YangTypeError) -> str:
    return type_error_message(error.instance.schema_node.type, error.instance.value,
                              error.message)


def type_error_message(data_type: Any, value: Any, message: str | None) -> str:
    """The model's error-message if it has one, else what is allowed."""
    message = (message or "").removesuffix(f": {value}")
    if message and not message.startswith(_YANGSON_DEFAULT_MESSAGES):
        return message
    if message == "not in range":
        detail = f"the allowed range is {data_type.range}"
    elif message == "invalid length":
        detail = f"the allowed length is {data_type.length}"
    elif message.startswith("pattern '"):
        detail = "it does not have the required format"
    else:
        detail = message or "wrong type"
    return f'"{value}" is not a valid value: {detail}'


def _schema_error(error: SchemaError, path: str) -> NetconfError:
    tag = error.tag or ""
    if tag.endswith("missing-data"):
        names = re.findall(r"'([^']+)'", error.message or "")
        choice = _enclosing_choice(error.instance.schema_node, names)
        if choice is not None:
            return NetconfError(
                "application",
                "data-missing",
                "one of " + ", ".join(sorted(names)) + " must be configured here",
                path,
                "missing-choice",
                (ErrorInfo("missing-choice", choice),),
            )
        return NetconfError(
            "application",
            "data-missing",
            "missing mandatory " + ", ".join(f"'{name}'" for name in sorted(names)),
            path,
            info=tuple(ErrorInfo("bad-element", name) for name in sorted(names)),
        )
    member = error.message or "?"
    return NetconfError(
        "application",
        "bad-element",
        f"'{member}' cannot be configured here: it is state data, or another"
        " case of the same choice is already configured",
        path,
        info=(ErrorInfo("bad-element", member),),
    )


def _choice_member_names(choice: ChoiceNode) -> set[str]:
    names = set()
    for case in choice.children:
        for node in getattr(case, "children", [case]):
            names |= _choice_member_names(node) if isinstance(node, ChoiceNode) else {node.iname()}
    return names


def _unset_mandatory_choice(node: Any) -> NetconfError | None:
    """A data-missing error for the first mandatory choice with no case set."""
    value = node.value
    if isinstance(value, ObjectValue):
        for child in node.schema_node.children:
            if isinstance(child, ChoiceNode) and child.mandatory:
                names = _choice_member_names(child)
                if not names & set(value):
                    path = str(node.instance_route()) or "/"
                    return NetconfError(
                        "application", "data-missing",
                        "one of " + ", ".join(sorted(names)) + " must be configured here",
                        path, "missing-choice", (ErrorInfo("missing-choice", child.name),))
        children = [node[name] for name in value]
    elif isinstance(value, ArrayValue):
        children = [node[index] for index in range(len(value))]
    else:
        children = []
    for child_node in children:
        error = _unset_mandatory_choice(child_node)
        if error is not None:
            return error
    return None


def _enclosing_choice(schema_node: Any, names: list[str]) -> str | None:
    """The choice that all the missing members are alternatives of, if any."""
    choices = set()
    for name in names:
        child = schema_node.get_data_child(name.split(":")[-1], schema_node.ns)
        node = child.parent if child is not None else None
        while node is not None and node is not schema_node and not isinstance(node, ChoiceNode):
            node = node.parent
        choices.add(node.name if isinstance(node, ChoiceNode) else None)
    return choices.pop() if len(choices) == 1 and None not in choices else None


def _raw_error(config: etree._Element, error: RawDataError) -> NetconfError:
    """Map a parse-time error, whose pointer counts list entries, to a path."""
    path, leaf_name = _pointer_to_path(config, str(error.path))
    if isinstance(error, RawMemberError):
        return NetconfError(
            "application",
            "unknown-element",
            f"unknown element '{leaf_name}'",
            path,
            info=(ErrorInfo("bad-element", leaf_name),),
        )
    assert isinstance(error, RawTypeError)
    expected = error.message.removeprefix("expected ")
    value = _element_text(config, str(error.path))
    return NetconfError(
        "application",
        "invalid-value",
        f'"{value}" is not a valid value: expected {expected}',
        path,
        info=(ErrorInfo("bad-element", leaf_name),),
    )


def _pointer_steps(pointer: str) -> list[tuple[str, int | None]]:
    """Split a yangson JSON pointer into (qualified name, list index) steps.

    Pointers look like ``/nefeature-rbs:rbs/services/service=<missing>/0/tcp-port``.
    """
    steps: list[tuple[str, int | None]] = []
    for part in pointer.strip("/").split("/"):
        if part.isdigit() and steps:
            steps[-1] = (steps[-1][0], int(part))
        else:
            steps.append((part.split("=", 1)[0], None))
    return steps


def _walk(config: etree._Element, pointer: str) -> list[tuple[etree._Element | None, str]]:
    """The XML element at each step of a pointer (None once it cannot be found)."""
    element: etree._Element | None = config
    found = []
    for name, index in _pointer_steps(pointer):
        local = name.split(":", 1)[-1]
        matches = [] if element is None else [
            child for child in element if etree.QName(child).localname == local
        ]
        element = matches[index or 0] if len(matches) > (index or 0) else None
        found.append((element, name))
    return found


def _pointer_to_path(config: etree._Element, pointer: str) -> tuple[str, str]:
    """Instance path of a pointer, with list keys read from the XML itself."""
    model = data_model()
    schema_node = model.schema
    parts = []
    module = None
    for element, name in _walk(config, pointer):
        if ":" in name:
            module, local = name.split(":", 1)
        else:
            local = name  # same module as its parent
        child = schema_node.get_data_child(local, module) if schema_node is not None else None
        step = name
        keys = getattr(child, "keys", None)
        if keys and element is not None:
            predicates = []
            for key_name, _key_module in keys:
                key_element = [c for c in element if etree.QName(c).localname == key_name]
                if key_element:
                    predicates.append(f'[{key_name}="{(key_element[0].text or "").strip()}"]')
            step += "".join(predicates)
        parts.append(step)
        schema_node = child
    leaf_name = parts[-1].split(":")[-1] if parts else ""
    return "/" + "/".join(parts), leaf_name


def _element_text(config: etree._Element, pointer: str) -> str:
    steps = _walk(config, pointer)
    element = steps[-1][0] if steps else None
    return "" if element is None else (element.text or "").strip()


def load_config(data: str | bytes) -> DeviceConfig:
    """Validate instance XML (bare or in <config>) and build its DeviceConfig.

    Raises NetconfError on the first violation of the model.
    """
    return build_device_config(validate_config_text(data).raw)


def load_config_file(path: str | Path) -> DeviceConfig:
    return load_config(Path(path).read_bytes())
