"""libyang decides whether a configuration is valid; yangson explains why not.

Both validators read the same modules in ``nefeature/yang/`` (docs/architecture.md:
the model is the single source of truth), and neither holds a rule of its
own.  They differ in speed and in what their errors say.  libyang (C, the
PyPI binding ``libyang==2.8.0`` built against Debian 12's libyang 2.1)
parses, validates and fills in the defaults of the 100-pool configuration
in about 4 ms; yangson (pure Python) takes about 85 ms, but its errors
carry everything an <rpc-error> needs (error-app-tag, a JSON-path we turn
into the error-path, the type that was violated).  So
``nefeature.datastore.validation`` asks libyang first:

* accepted: the configuration is valid, and the tree with defaults is
  libyang's RFC 7951 JSON print of it (``WD_ALL``, empty containers kept),
  the same tree yangson's ``add_defaults`` builds: a test compares the two;
* rejected (:class:`Rejected`): yangson validates the same configuration
  and raises the error, so every rpc-error is the same with or without
  libyang.  Should yangson accept what libyang rejected, the two disagree;
  libyang's first error becomes the rpc-error (its error-app-tag mapped as
  RFC 7950 section 15 says) and the disagreement is logged.

Where the binding is missing (it compiles against ``libyang2-dev``, which
``make test`` installs as root on Debian) or ``NEFEATURE_VALIDATOR=yangson``
is set, yangson alone validates, as before.

A rule the caller already knows to hold can be left out
(``check(..., skipped=...)``): validation memoises the pairwise pool-overlap
``must`` that way (250 ms in libyang at 100 pools).  Leaving it out uses a
second context compiled with a deviation module that deletes exactly that
``must``; the module is generated from the model's own compiled text of it,
so nothing is restated.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass

from nefeature.datastore.schema import OWN_MODULES, modules

try:  # the binding is optional: see the module docstring
    import libyang
    from _libyang import ffi, lib
    from libyang.util import c2str, ly_array_iter, str2c
except ImportError:  # pragma: no cover - exercised where libyang2-dev is missing
    libyang = None

log = logging.getLogger(__name__)

#: A rule to leave out: (schema path of the node the must is on, its error-app-tag).
SkippedMust = tuple[str, str]

_PRINT_FLAGS = 0
_PARSE_FLAGS = 0
_VALIDATE_FLAGS = 0
if libyang is not None:
    _PRINT_FLAGS = (lib.LYD_PRINT_WITHSIBLINGS | lib.LYD_PRINT_WD_ALL | lib.LYD_PRINT_SHRINK
                    | lib.LYD_PRINT_KEEPEMPTYCONT)
    _PARSE_FLAGS = lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
    _VALIDATE_FLAGS = lib.LYD_VALIDATE_NO_STATE


def available() -> bool:
    """Whether libyang is to judge validity (binding installed and not switched off)."""
    return libyang is not None and os.environ.get("NEFEATURE_VALIDATOR", "") != "yangson"


@dataclass(frozen=True)
class LibyangError:
    """One error item of libyang's log (``struct ly_err_item``)."""

    vecode: int
    message: str
    location: str | None  # 'Data location "/m:a/b[k='v']", line number 1.'
    app_tag: str | None

    @property
    def path(self) -> str | None:
        """The data path in our error-path form: ``/m:a/b[k="v"]``."""
        match = re.search(r'location "([^"]*)"', self.location or "")
        if match is None:
            return None
        return re.sub(r"\[([^=\]]+)='([^']*)'\]", r'[\1="\2"]', match.group(1))


class Rejected(Exception):
    """libyang found the configuration invalid."""

    def __init__(self, errors: list[LibyangError]) -> None:
        super().__init__("; ".join(e.message for e in errors) or "invalid data")
        self.errors = errors


def check(document: str, skipped: tuple[SkippedMust, ...] = ()) -> dict:
    """Validate a configuration (RFC 7951 JSON text); return it with defaults filled in.

    Raises :class:`Rejected` with libyang's errors when it is not valid.
    """
    context = _context(tuple(sorted(skipped)))
    tree = ffi.new("struct lyd_node **")
    status = lib.lyd_parse_data_mem(context.cdata, str2c(document), lib.LYD_JSON,
                                    _PARSE_FLAGS, _VALIDATE_FLAGS, tree)
    if status != lib.LY_SUCCESS:
        errors = []
        item = lib.ly_err_first(context.cdata)
        while item:
            errors.append(LibyangError(item.vecode, c2str(item.msg) or "invalid data",
                                       c2str(item.path), c2str(item.apptag)))
            item = item.next
        lib.ly_err_clean(context.cdata, ffi.NULL)
        raise Rejected(errors)
    if tree[0] == ffi.NULL:
        return {}
    try:
        text = ffi.new("char **")
        if lib.lyd_print_mem(text, tree[0], lib.LYD_JSON, _PRINT_FLAGS) != lib.LY_SUCCESS:
            raise RuntimeError("libyang could not print a validated tree")
        try:
            return json.loads(c2str(text[0]))
        finally:
            lib.free(text[0])
    finally:
        lib.lyd_free_all(tree[0])


@functools.cache
def _context(skipped: tuple[SkippedMust, ...]) -> "libyang.Context":
    """Our modules compiled once; with ``skipped``, plus a deviation deleting those musts."""
    # Errors (not warnings) are stored in the context, each with the data path it concerns.
    lib.ly_log_level(lib.LY_LLERR)
    lib.ly_log_options(lib.LY_LOSTORE)
    lib.ly_set_log_clb(ffi.NULL, True)
    search_path = ":".join(sorted({str(module.path.parent) for module in modules()}))
    context = libyang.Context(search_path)
    for name in OWN_MODULES:
        context.load_module(name)
    if skipped:
        context.parse_module_str(_deviation_module(context, skipped))
    return context


_PARSED_NODE_TYPES = {"SList": "list", "SContainer": "container", "SLeaf": "leaf",
                      "SLeafList": "leaflist"}


def _deviation_module(context: "libyang.Context", skipped: tuple[SkippedMust, ...]) -> str:
    """A YANG module whose deviations delete the given musts, as the model words them."""
    imports, deviations = set(), []
    for path, app_tag in skipped:
        node = next(context.find_path(path))
        parsed = ffi.cast(f"struct lysp_node_{_PARSED_NODE_TYPES[type(node).__name__]} *",
                          node.cdata_parsed)
        conditions = [c2str(must.arg.str) for must in ly_array_iter(parsed.musts)
                      if c2str(must.eapptag) == app_tag]
        if not conditions:
            raise ValueError(f"{path} has no must with error-app-tag {app_tag}")
        steps, module = [], None
        for step in path.strip("/").split("/"):
            module, _, name = step.rpartition(":") if ":" in step else (module, "", step)
            imports.add(module)
            steps.append(f"{module}:{name}")
        deletes = "".join(f' must "{_quoted(condition)}";' for condition in conditions)
        deviations.append(f'deviation "/{"/".join(steps)}" {{ deviate delete {{{deletes} }} }}')
    return "\n".join([
        "module nefeature-validation-memo {",
        "  yang-version 1.1;",
        '  namespace "urn:nefeature:yang:nefeature-validation-memo";',
        "  prefix nfmemo;",
        *(f"  import {name} {{ prefix {name}; }}" for name in sorted(imports)),
        *(f"  {deviation}" for deviation in deviations),
        "}",
    ])


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
