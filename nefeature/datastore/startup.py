"""The startup datastore on disk (RFC 6241 8.7): one XML file in the state directory.

``load_startup`` reads it back at start (a file that is not a valid
configuration is reported and ignored); ``save_startup`` writes it
atomically (a temporary file renamed over the old one), as copy-config to
startup asks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lxml import etree

from nefeature.datastore.errors import NetconfError
from nefeature.datastore.validation import validate_config_text
from nefeature.datastore.xmlform import to_xml

log = logging.getLogger("nefeature")

STARTUP_FILE = "startup.xml"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def load_startup(state_dir: Path) -> dict | None:
    """The saved startup configuration (explicit JSON form), or None."""
    path = Path(state_dir) / STARTUP_FILE
    if not path.exists():
        return None
    try:
        return validate_config_text(path.read_bytes()).explicit
    except NetconfError as error:
        log.error("%s is not a valid configuration (%s): ignored", path, error)
        return None


def save_startup(state_dir: Path, explicit: dict) -> None:
    """Write the startup configuration in the NETCONF <config> form."""
    data = etree.Element(f"{{{NC}}}config", nsmap={None: NC})
    to_xml(explicit, data)
    path = Path(state_dir) / STARTUP_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(etree.tostring(data, pretty_print=True))
    temporary.replace(path)
