"""The YANG model of the device, loaded once for validation and lookup.

The modules in ``nefeature/yang/`` are the source of truth
(docs/architecture.md).  They ship inside the package and are found with
:mod:`importlib.resources`, so an installed wheel needs no checkout.  This
module finds them, reads each one's name, revision, namespace and prefix,
builds the RFC 7895 YANG library that yangson needs, and keeps one yangson
:class:`DataModel` per process.  The NETCONF server uses the same
:class:`ModuleInfo` records for <get-schema> and the YANG library.
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


@dataclass(frozen=True)
class ModuleInfo:
    """What the YANG library says about one module."""

    name: str
    revision: str
    namespace: str
    prefix: str
    path: Path
    implemented: bool


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


def _read_module(path: Path, implemented: bool) -> ModuleInfo:
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
    )


@functools.cache
def modules(directory: Path | None = None) -> tuple[ModuleInfo, ...]:
    """Our modules (implemented) and the IETF modules they import."""
    directory = directory or yang_dir()
    own = tuple(_read_module(directory / f"{name}.yang", True) for name in OWN_MODULES)
    imported = tuple(
        _read_module(path, False) for path in sorted((directory / "ietf").glob("*.yang"))
    )
    return own + imported


def namespaces() -> dict[str, str]:
    """Module name -> XML namespace, for every module of the model."""
    return {module.name: module.namespace for module in modules()}


def yang_library(module_infos: tuple[ModuleInfo, ...]) -> dict:
    """The RFC 7895 ``modules-state`` document for these modules."""
    entries = [
        {
            "name": module.name,
            "revision": module.revision,
            "namespace": module.namespace,
            "conformance-type": "implement" if module.implemented else "import",
        }
        for module in module_infos
    ]
    set_id = "-".join(f"{m.name}@{m.revision}" for m in module_infos)
    return {"ietf-yang-library:modules-state": {"module-set-id": set_id, "module": entries}}


@functools.cache
def data_model() -> DataModel:
    """The yangson data model of all our modules (built once, ~0.5 s)."""
    module_infos = modules()
    search_path = sorted({str(module.path.parent) for module in module_infos})
    return DataModel(json.dumps(yang_library(module_infos)), search_path)
