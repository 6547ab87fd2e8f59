"""The YANG model of the device, loaded once for validation and lookup.

The modules in ``nefeature/yang/`` are the source of truth
(docs/architecture.md).  They ship inside the package and are found with
:mod:`importlib.resources`, so an installed wheel needs no checkout.  This
module finds them, reads each one's name, revision, namespace and prefix,
builds the RFC 7895 YANG library that yangson needs, and keeps one yangson
:class:`DataModel` per process.  The NETCONF server uses the same
:class:`ModuleInfo` records for <get-schema> and the YANG library.

Three kinds of module: the device's own (``OWN_MODULES``, the data the
device is configured with), the NETCONF server's (``SERVER_MODULES``: the
protocol, monitoring, with-defaults, notifications, the YANG library and
list pagination, each with the features the server implements), and the
modules these import only for their types and extensions
(``IMPORTED_MODULES``).  ``data_model`` (validation) covers the device's
modules; ``served_model`` adds the server's state (monitoring, YANG library,
event streams), so that <get> serializes and filters all of it the same way.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from yangson import DataModel

#: Our modules, in import order (each imports only earlier ones).
OWN_MODULES = (
    "nefeature-interfaces",
    "nefeature-vrrp",
    "nefeature-rbs",
    "nefeature-dhcp-server",
)

#: Modules the NETCONF server implements: name -> features it supports.
SERVER_MODULES: dict[str, tuple[str, ...]] = {
    "ietf-netconf": ("writable-running", "candidate", "confirmed-commit", "rollback-on-error",
                     "validate", "startup"),
    "ietf-netconf-with-defaults": (),
    "ietf-netconf-monitoring": (),
    "ietf-yang-library": (),
    "ietf-netconf-notifications": (),
    "notifications": (),
    "nc-notifications": (),
    "nefeature-list-pagination": (),
}

#: Modules imported for their types and extensions only.
IMPORTED_MODULES = ("ietf-inet-types", "ietf-yang-types", "ietf-netconf-acm",
                    "ietf-yang-metadata")

#: Server modules with data nodes (state) that the data model serves.
_STATE_MODULES = ("ietf-netconf-monitoring", "ietf-yang-library", "nc-notifications",
                  "notifications")


@dataclass(frozen=True)
class ModuleInfo:
    """What the YANG library says about one module."""

    name: str
    revision: str
    namespace: str
    prefix: str
    path: Path
    implemented: bool
    features: tuple[str, ...] = ()


class SchemaNotFound(Exception):
    """The schema directory, or a module in it, is missing: the message names which."""


def yang_dir() -> Path:
    """The directory holding the modules: ``$NEFEATURE_YANG_DIR``, else the package's ``yang/``."""
    configured = os.environ.get("NEFEATURE_YANG_DIR")
    if configured:
        directory, origin = Path(configured), "$NEFEATURE_YANG_DIR"
    else:
        directory, origin = Path(str(resources.files("nefeature") / "yang")), "the package"
    if not directory.is_dir():
        raise SchemaNotFound(f"the YANG schema directory {directory} ({origin}) does not exist")
    return directory


def _statement_argument(text: str, keyword: str, path: Path) -> str:
    match = re.search(rf'^\s*{keyword}\s+"?([^";\s]+)"?\s*[;{{]', text, re.M)
    if match is None:
        raise ValueError(f"{path}: no '{keyword}' statement")
    return match.group(1)


def _read_module(path: Path, implemented: bool, features: tuple[str, ...] = ()) -> ModuleInfo:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaNotFound(f"the YANG module {path.stem} is missing: no file {path}") from None
    return ModuleInfo(
        name=_statement_argument(text, "module", path),
        revision=_statement_argument(text, "revision", path),
        namespace=_statement_argument(text, "namespace", path),
        prefix=_statement_argument(text, "prefix", path),
        path=path,
        implemented=implemented,
        features=features,
    )


def _module_path(directory: Path, name: str) -> Path:
    own = directory / f"{name}.yang"
    return own if own.exists() else directory / "ietf" / f"{name}.yang"


@functools.cache
def modules(directory: Path | None = None) -> tuple[ModuleInfo, ...]:
    """Every module of the YANG library: ours, the server's (implemented), the imported."""
    directory = directory or yang_dir()
    own = tuple(_read_module(directory / f"{name}.yang", True) for name in OWN_MODULES)
    server = tuple(_read_module(_module_path(directory, name), True, features)
                   for name, features in SERVER_MODULES.items())
    imported = tuple(_read_module(_module_path(directory, name), False)
                     for name in IMPORTED_MODULES)
    return own + server + imported


def namespaces() -> dict[str, str]:
    """Module name -> XML namespace, for every module of the model."""
    return {module.name: module.namespace for module in modules()}


def yang_library(module_infos: tuple[ModuleInfo, ...]) -> dict:
    """The RFC 7895 ``modules-state`` document for these modules."""
    entries = []
    for module in module_infos:
        entry = {
            "name": module.name,
            "revision": module.revision,
            "namespace": module.namespace,
            "conformance-type": "implement" if module.implemented else "import",
        }
        if module.features:
            entry["feature"] = list(module.features)
        entries.append(entry)
    set_id = "-".join(f"{m.name}@{m.revision}" for m in module_infos)
    return {"ietf-yang-library:modules-state": {"module-set-id": set_id, "module": entries}}


def _model(names: tuple[str, ...]) -> DataModel:
    module_infos = tuple(m for m in modules() if m.name in names)
    search_path = sorted({str(module.path.parent) for module in module_infos})
    return DataModel(json.dumps(yang_library(module_infos)), search_path)


@functools.cache
def data_model() -> DataModel:
    """The yangson data model of the device's modules (built once, ~0.5 s): validation."""
    return _model(OWN_MODULES + ("ietf-inet-types", "ietf-yang-types"))


@functools.cache
def served_model() -> DataModel:
    """The device's modules and the server's state (monitoring, YANG library, streams):
    what <get> serializes and filters."""
    return _model(OWN_MODULES + _STATE_MODULES + ("ietf-inet-types", "ietf-yang-types"))
