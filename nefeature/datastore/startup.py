"""The startup configuration on disk: which file a device starts from, and its YANG revisions.

A device starts from ``STATE/startup.xml`` once copy-config to startup
(RFC 6241 section 8.7; the shell's ``save``) has written one, and from the
file given with ``--startup`` otherwise; SIGHUP reloads the same file
(``nefeature.service``).  The saved file is the ``<config>`` element of the
explicit configuration, after a processing instruction that names the
revision of each module it was saved with::

    <?nefeature-yang nefeature-interfaces@2026-11-28 nefeature-vrrp@2026-11-28 ...?>

YANG's update rules (RFC 7950 section 11) let a newer revision of a module
read configuration written for an older one, not the reverse.  So a file
saved with a revision newer than this release's, or with a module this
release lacks, is refused (:class:`StartupTooNew`) with a message naming
the module and both revisions; nothing is guessed.  A file without the
instruction (written by hand, or saved before the rule) is read as it is.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lxml import etree

from nefeature.datastore.schema import modules
from nefeature.datastore.xmlform import to_xml

log = logging.getLogger("nefeature")

STARTUP_FILE = "startup.xml"
REVISIONS_TARGET = "nefeature-yang"
NETCONF_BASE_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"

#: The revisions instruction, before the first element (after an XML declaration or comments).
_REVISIONS = re.compile(
    rb"\A\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<\?" + REVISIONS_TARGET.encode()
    + rb"\s+(.*?)\?>", re.S)


class StartupTooNew(Exception):
    """A startup file saved by a newer release: its message says which module and what to do."""


def our_revisions() -> dict[str, str]:
    """Module name -> revision, for the modules this release implements."""
    return {module.name: module.revision for module in modules() if module.implemented}


def saved_revisions(text: bytes) -> dict[str, str] | None:
    """The module revisions a file says it was saved with; None when it says nothing."""
    match = _REVISIONS.match(text)
    if match is None:
        return None
    revisions = {}
    for item in match.group(1).decode("utf-8", "replace").split():
        name, _, revision = item.partition("@")
        revisions[name] = revision
    return revisions


def check_revisions(text: bytes, origin: str | Path) -> None:
    """Refuse a file saved with a module revision newer than ours (or a module we lack)."""
    saved = saved_revisions(text)
    if not saved:
        return
    ours = our_revisions()
    for name, revision in sorted(saved.items()):
        if name not in ours:
            raise StartupTooNew(
                f"{origin} was saved with the YANG module {name}@{revision}, which this release "
                "does not have: run the release that saved it, or start from another file")
        if revision > ours[name]:
            raise StartupTooNew(
                f"{origin} was saved with {name} revision {revision}, newer than this "
                f"release's {ours[name]}: run the release that saved it, or start from "
                "another file")


def read_startup(path: str | Path) -> bytes:
    """A startup file's text, refused if a newer release saved it (OSError if unreadable)."""
    text = Path(path).read_bytes()
    check_revisions(text, path)
    return text


def startup_source(state_dir: str | Path, configured: str | Path) -> Path:
    """The file a device starts (or reloads) from: the saved one, else the configured one."""
    saved = Path(state_dir) / STARTUP_FILE
    return saved if saved.exists() else Path(configured)


def render_startup(explicit: dict) -> bytes:
    """The saved form of an explicit configuration: revisions instruction, then ``<config>``."""
    from nefeature import __version__

    data = etree.Element(f"{{{NETCONF_BASE_NS}}}config", nsmap={None: NETCONF_BASE_NS})
    to_xml(explicit, data)
    revisions = " ".join(f"{name}@{revision}" for name, revision in our_revisions().items())
    return (f"<?xml version='1.0' encoding='UTF-8'?>\n"
            f"<?{REVISIONS_TARGET} {revisions}?>\n"
            f"<!-- saved by nefeature {__version__}: while this file exists the device starts "
            f"from it, not from its startup option -->\n").encode() \
        + etree.tostring(data, pretty_print=True)


def write_startup(state_dir: str | Path, explicit: dict) -> Path:
    """Save the startup configuration atomically (a crash leaves the old file or the new)."""
    path = Path(state_dir) / STARTUP_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(render_startup(explicit))
    temporary.replace(path)
    return path


def load_startup(state_dir: str | Path) -> dict | None:
    """The saved startup configuration (explicit form) for the startup datastore, or None.

    A file that is not a valid configuration, or one a newer release saved, is
    reported and ignored here: the device still starts (from ``--startup``).
    """
    from nefeature.datastore.errors import NetconfError
    from nefeature.datastore.validation import validate_config_text

    path = Path(state_dir) / STARTUP_FILE
    if not path.exists():
        return None
    try:
        return validate_config_text(read_startup(path)).explicit
    except (NetconfError, StartupTooNew) as error:
        log.error("%s is not a valid configuration (%s): ignored", path, error)
        return None


def save_startup(state_dir: str | Path, explicit: dict) -> None:
    """copy-config to startup: write the file (``write_startup``)."""
    write_startup(state_dir, explicit)
