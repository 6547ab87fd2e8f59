"""What makes ``nefeature run`` a service: version, logging, readiness, reload.

* Version: :func:`version_text` names the release, the YANG module
  revisions, the lease journal's schema version and the remote backup
  protocol's, what an upgrade may change (docs/operations.md).
* Logging goes to stderr.  Under systemd (stderr connected to the journal,
  which ``$JOURNAL_STREAM`` says, see systemd.exec(5)) each line starts with
  its syslog priority, ``<3>`` for an error, and carries no timestamp: the
  journal stores both itself (sd-daemon(3)).  On a terminal or into a file
  lines keep the timestamp and the level name.
* Readiness: with ``Type=notify`` the device sends ``READY=1`` to
  ``$NOTIFY_SOCKET`` once it serves, ``RELOADING=1`` around a reload and
  ``STOPPING=1`` when it stops (sd_notify(3)); without the variable nothing
  is sent.
* Reload (SIGHUP, ``systemctl reload``): the startup configuration the
  device would start from now (``nefeature.datastore.startup``) is read,
  validated and committed through the datastores like a NETCONF commit by
  the system: the same two-phase apply, leases kept, a netconf-config-change
  notification.  A file that fails leaves the running configuration as it
  was, and the log says why.  SIGTERM stops the device cleanly:
  ``nefeature.node.Device.close``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

log = logging.getLogger("nefeature")

LOG_LEVELS = ("debug", "info", "warning", "error")

#: Python logging level -> syslog priority (RFC 5424 section 6.2.1), as journald reads it.
SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                   logging.CRITICAL: 2}

#: sysexits.h EX_CONFIG: refused to start on a configuration or state it must not use;
#: the unit's RestartPreventExitStatus keeps systemd from restarting into the same refusal.
EXIT_CONFIG = 78


def release() -> str:
    """This release's version (the installed distribution's, else the package's)."""
    from importlib import metadata

    try:
        return metadata.version("nefeature")
    except metadata.PackageNotFoundError:  # a checkout on sys.path without an install
        from nefeature import __version__

        return __version__


def version_text() -> str:
    """``nefeature --version``: the release, the model's revisions, the journal schema, the
    remote backup protocol (two devices must speak the same one to sync)."""
    from nefeature.backup.frames import PROTOCOL_VERSION
    from nefeature.datastore.schema import modules
    from nefeature.dhcp.journal import SCHEMA_VERSION

    revisions = ", ".join(f"{m.name}@{m.revision}" for m in modules() if m.implemented)
    return (f"nefeature {release()}\nYANG modules: {revisions}\n"
            f"lease journal schema: {SCHEMA_VERSION}\n"
            f"remote backup protocol: {PROTOCOL_VERSION}")


# --- logging ---

class JournalFormatter(logging.Formatter):
    """``<priority>logger: message``, the form journald parses from a stream (sd-daemon(3))."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING
                                       else 3)
        text = super().format(record)
        # every line of a multi-line record (a traceback) gets the priority, or journald
        # stores the continuation lines as separate entries at the default level
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def stderr_is_journal() -> bool:
    """Whether stderr is the stream systemd connected to the journal ($JOURNAL_STREAM)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    try:
        status = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream != "" and f"{status.st_dev}:{status.st_ino}" == f"{device}:{inode}"


def setup_logging(level: str = "info") -> None:
    """Log to stderr at ``level``, in the journal's form under systemd."""
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


# --- systemd readiness ---

def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to the service manager; False where there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        log.warning("could not tell the service manager %r: %s", state, error)
        return False
    return True


# --- reload ---

def reload_startup(datastores, state_dir: Path, configured: Path | None) -> bool:
    """Commit the startup configuration again (SIGHUP); False, with the reason logged, if not.

    The file is the one the device would start from now: the saved startup
    configuration when there is one, else the ``--startup`` file.
    """
    from nefeature.datastore.errors import NetconfError
    from nefeature.datastore.startup import StartupTooNew, read_startup, startup_source
    from nefeature.datastore.validation import validate_config_text

    if configured is None:
        log.error("reload: this device was started without a startup file")
        return False
    source = startup_source(state_dir, configured)
    notify("RELOADING=1")
    try:
        validated = validate_config_text(read_startup(source))
        changed = datastores.reload(validated)
    except OSError as error:
        log.error("reload: %s: %s; the running configuration is unchanged",
                  error.filename or source, error.strerror)
        return False
    except StartupTooNew as error:
        log.error("reload: %s; the running configuration is unchanged", error)
        return False
    except NetconfError as error:
        log.error("reload: %s: %s: %s; the running configuration is unchanged", source,
                  error.path or "/", error.message)
        return False
    finally:
        notify("READY=1")
    log.info("reload: %s %s", source, "committed" if changed else "is the running "
             "configuration already: nothing to change")
    return True
