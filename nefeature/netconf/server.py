"""The NETCONF server: RFC 6241 operations over the datastores and the live device.

SSH, framing and session threads come from the PyPI ``netconf`` package
(fixed in ``compat``); everything a client sees is decided here.  Each
<rpc> arrives on its session's thread; the handler parses it and runs what
touches the device on the asyncio loop that owns it (``call_in_loop``), so
datastores and engines are only ever touched from one thread, and writes
one <rpc-reply> carrying every attribute of the <rpc> (RFC 6241 4.2).  The
device is seen through ``nefeature.netconf.device.ManagedDevice`` only.

The data plane has priority.  What runs on the loop for a <get> is short:
the state the subtree filter can reach (``nefeature.state``: counters,
per-pool counts, index look-ups) and, for the lease table, a snapshot of
the immutable lease objects.  Merging with the configuration, filtering,
serializing and sending happen on the session's thread, the lease entries
streamed in pieces (``compat.NetconfSession.send_parts``).  The process's
GIL switch interval is lowered to SWITCH_INTERVAL so that a session thread
formatting a large reply gives the loop the interpreter back within a
millisecond.  A <get> may ask for one page of the lease table
(nefeature-list-pagination: limit, offset or cursor).

Errors are :class:`NetconfError` raised where they arise (datastores,
validation, edit) and serialized here with error-type, error-tag,
error-severity, error-app-tag, error-path (with the namespace declarations
its prefixes need), error-message and error-info.

Notifications (RFC 5277, with interleave): a session that sent
<create-subscription> receives, as they happen, netconf-config-change
(RFC 6470) after every change of running, and the device's events
(``publish``: VRRP new master, remote backup protection lost and resumed,
profile state changes, pool threshold).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import paramiko
from lxml import etree

from nefeature.datastore.errors import ErrorInfo, NetconfError
from nefeature.datastore.schema import modules, namespaces
from nefeature.datastore.validation import parse_config_xml, validate_config, validate_raw
from nefeature.datastore.xmlform import MODES, subtree_filter, to_xml
from nefeature.netconf import monitoring, rpcs
from nefeature.netconf.auth import Users
from nefeature.netconf.compat import NetconfServer
from nefeature.netconf.device import ManagedDevice
from nefeature.netconf.filters import FilterNode, lookup, parse_filter, select
from nefeature.netconf.notifications import ConfigChanged, notification_content
from nefeature.state import LEASE_LIST_PATH, LeaseEntries, merge_trees, operational_state

log = logging.getLogger("nefeature.netconf")

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIFICATION = "urn:ietf:params:xml:ns:netconf:notification:1.0"
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
WITH_DEFAULTS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
PAGINATION = "urn:nefeature:yang:nefeature-list-pagination"
RPC_TIMEOUT = 120.0
SWITCH_INTERVAL = 0.001  # seconds a thread may hold the GIL while another waits for it

#: Top-level members of the server's own state, and who builds each (JSON form).
SERVER_STATE = ("ietf-netconf-monitoring:netconf-state", "ietf-yang-library:modules-state",
                "nc-notifications:netconf")

def call_in_loop(loop: asyncio.AbstractEventLoop, function: Callable, *args):
    """Run ``function`` on the loop's thread and wait for its result here."""
    future: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # handed back to the caller's thread
            future.set_exception(error)

    loop.call_soon_threadsafe(run)
    return future.result(timeout=RPC_TIMEOUT)


def nc(tag: str) -> str:
    return f"{{{NC}}}{tag}"


def error_element(error: NetconfError) -> etree._Element:
    element = etree.Element(nc("rpc-error"), nsmap={None: NC})
    etree.SubElement(element, nc("error-type")).text = error.error_type
    etree.SubElement(element, nc("error-tag")).text = error.tag
    etree.SubElement(element, nc("error-severity")).text = error.severity
    if error.app_tag:
        etree.SubElement(element, nc("error-app-tag")).text = error.app_tag
    if error.path:
        prefixes = {name: ns for name, ns in namespaces().items() if f"{name}:" in error.path}
        etree.SubElement(element, nc("error-path"), nsmap=prefixes).text = error.path
    message = etree.SubElement(element, nc("error-message"))
    message.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    message.text = error.message
    if error.info:
        info = etree.SubElement(element, nc("error-info"))
        for item in error.info:
            etree.SubElement(info, nc(item.name)).text = item.value
    return element


def _text(rpc: etree._Element, tag: str, namespace: str = NC) -> str | None:
    child = rpc.find(f"{{{namespace}}}{tag}")
    return None if child is None else (child.text or "").strip()


def _datastore_name(container: etree._Element | None, allowed=("running", "candidate", "startup")):
    if container is None:
        raise NetconfError("protocol", "missing-element", "the datastore is missing",
                           info=())
    children = [c for c in container if isinstance(c.tag, str)]
    if len(children) != 1:
        raise NetconfError("protocol", "missing-element", "exactly one datastore expected")
    name = etree.QName(children[0])
    if name.namespace == NC and name.localname in allowed:
        return name.localname, None
    if name.namespace == NC and name.localname == "config":
        return None, children[0]
    raise NetconfError("protocol", "bad-element", f"unsupported datastore {name.localname}",
                       info=())


def load_authorized_keys(path: str | Path) -> list[paramiko.PKey]:
    keys = []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            try:
                keys.append(paramiko.PKey.from_type_string(parts[0], __import__("base64")
                                                           .b64decode(parts[1])))
            except (ValueError, paramiko.SSHException):
                log.warning("skipping an unreadable key in %s", path)
    return keys


def host_key_file(state_dir: Path) -> str:
    """The SSH host key, generated on first start (RSA 3072)."""
    path = state_dir / "ssh_host_rsa_key"
    if not path.exists():
        key = paramiko.RSAKey.generate(3072)
        key.write_private_key_file(str(path))
        os.chmod(path, 0o600)
        log.info("generated SSH host key %s", path)
    return str(path)


class StreamedData:
    """A <data> reply whose lease entries are streamed in place of their marker."""

    def __init__(self, data: etree._Element, entries: LeaseEntries | None) -> None:
        self.data = data
        self.entries = entries

    def parts(self, reply: etree._Element) -> Iterator[str]:
        # The <data> is serialized on its own and not moved into the reply: moving an
        # element to another document drops the namespace declarations that only
        # identityref values (text) use.
        reply.append(etree.Comment("data"))
        head, _, tail = etree.tostring(reply).decode().partition("<!--data-->")
        yield head
        text = etree.tostring(self.data).decode()
        if self.entries is None:
            yield text
        else:
            before, _, after = text.partition(f"<!--{LeaseEntries.marker}-->")
            yield before
            yield from self.entries.chunks()
            yield after
        yield tail


def _now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class NetconfHandler:
    """Every RPC of every session (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, device: ManagedDevice) -> None:
        self.loop = loop
        self.device = device
        self.sessions: dict[int, object] = {}
        self.subscriptions: dict[int, etree._Element | None] = {}
        self.counters = monitoring.ServerCounters(netconf_start_time=_now_text())
        self.lock_times: dict[str, str] = {}
        self._closed: set[int] = set()
        self.lock = threading.Lock()

    # --- hello and session life (called by compat.NetconfSession) ---

    def nc_append_capabilities(self, capabilities: etree._Element) -> None:
        for uri in monitoring.hello_capabilities():
            etree.SubElement(capabilities, "capability").text = uri

    def session_opened(self, session) -> None:
        with self.lock:
            self.sessions[session.session_id] = session
            self.counters.in_sessions += 1
            self.counters.sessions[session.session_id] = monitoring.SessionRecord(
                session.session_id, session.username or "", getattr(session, "source_host", None),
                getattr(session, "login_time", None) or _now_text())
        log.info("NETCONF session %d opened (user %s from %s)", session.session_id,
                 session.username, getattr(session, "source_host", "?"))

    def hello_refused(self) -> None:
        with self.lock:
            self.counters.in_bad_hellos += 1

    def session_closed(self, session, sid: int | None = None) -> None:
        sid = sid if sid is not None else session.session_id
        if sid is None:
            return
        with self.lock:
            if sid in self._closed or sid not in self.sessions:
                return
            self._closed.add(sid)
            self.sessions.pop(sid, None)
            self.subscriptions.pop(sid, None)
            self.counters.sessions.pop(sid, None)
        log.info("NETCONF session %d closed", sid)
        try:
            call_in_loop(self.loop, self.device.datastores.session_closed, sid)
        except (RuntimeError, concurrent.futures.TimeoutError):
            pass  # the device is stopping

    def _count(self, session, **increments: int) -> None:
        with self.lock:
            record = self.counters.sessions.get(session.session_id)
            for name, value in increments.items():
                setattr(self.counters, name, getattr(self.counters, name) + value)
                if record is not None:
                    setattr(record, name, getattr(record, name) + value)

    # --- messages ---

    def handle_message(self, session, message: str) -> None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                                 load_dtd=False, remove_comments=True)
        try:
            document = etree.fromstring(message.strip().encode("utf-8"), parser)
        except etree.XMLSyntaxError as error:
            self._send_error(session, None, NetconfError("rpc", "malformed-message",
                                                         f"not well-formed XML: {error}"))
            return
        if document.getroottree().docinfo.doctype:
            self._send_error(session, document, NetconfError(
                "rpc", "malformed-message", "document type declarations are not accepted"))
            return
        if document.tag != nc("rpc"):
            self._send_error(session, None, NetconfError(
                "rpc", "unknown-element", f"expected <rpc>, got {etree.QName(document).localname}"))
            return
        if document.get("message-id") is None:
            self._send_error(session, document, NetconfError(
                "rpc", "missing-attribute", "the <rpc> has no message-id",
                info=(_info("bad-attribute", "message-id"), _info("bad-element", "rpc"))))
            return
        self._count(session, in_rpcs=1)
        operations = [c for c in document if isinstance(c.tag, str)]
        try:
            if len(operations) != 1:
                raise NetconfError("rpc", "malformed-message", "an <rpc> holds one operation")
            reply = self.dispatch(session, operations[0])
        except NetconfError as error:
            self._send_error(session, document, error)
            return
        except Exception as error:  # a bug: report it, keep the session
            log.exception("NETCONF operation failed")
            self._send_error(session, document, NetconfError(
                "application", "operation-failed", f"internal error: {error}"))
            return
        try:
            self._send_reply(session, document, reply)
        except Exception as error:  # the client went away while a long reply was sent
            log.info("NETCONF session %s: reply not sent: %s", session.session_id, error)
            return
        operation = etree.QName(operations[0]).localname
        if operation == "close-session":
            session.close()

    def _reply_element(self, rpc: etree._Element | None) -> etree._Element:
        attributes = dict(rpc.attrib) if rpc is not None else {}
        nsmap = dict(rpc.nsmap) if rpc is not None else {}
        nsmap[None] = NC
        return etree.Element(nc("rpc-reply"), attrib=attributes, nsmap=nsmap)

    def _send_reply(self, session, rpc, content) -> None:
        reply = self._reply_element(rpc)
        if isinstance(content, StreamedData):
            session.send_parts(content.parts(reply))
            return
        if content is None:
            etree.SubElement(reply, nc("ok"))
        elif isinstance(content, list):
            reply.extend(content)
        else:
            reply.append(content)
        session.send_message(etree.tostring(reply).decode())

    def _send_error(self, session, rpc, error: NetconfError) -> None:
        reply = self._reply_element(rpc)
        for single in error.every():
            reply.append(error_element(single))
        self._count(session, out_rpc_errors=1, in_bad_rpcs=int(error.error_type == "rpc"))
        session.send_message(etree.tostring(reply).decode())

    # --- dispatch ---

    def dispatch(self, session, operation: etree._Element):
        name = etree.QName(operation)
        handlers = {
            (NC, "get"): self.rpc_get,
            (NC, "get-config"): self.rpc_get_config,
            (NC, "edit-config"): self.rpc_edit_config,
            (NC, "copy-config"): self.rpc_copy_config,
            (NC, "delete-config"): self.rpc_delete_config,
            (NC, "lock"): self.rpc_lock,
            (NC, "unlock"): self.rpc_unlock,
            (NC, "close-session"): lambda s, o: None,
            (NC, "kill-session"): self.rpc_kill_session,
            (NC, "commit"): self.rpc_commit,
            (NC, "cancel-commit"): self.rpc_cancel_commit,
            (NC, "discard-changes"): self.rpc_discard_changes,
            (NC, "validate"): self.rpc_validate,
            (MONITORING, "get-schema"): self.rpc_get_schema,
            (NOTIFICATION, "create-subscription"): self.rpc_create_subscription,
        }
        for (module_name, rpc_name), function in rpcs.DEVICE_RPCS.items():
            handlers[(namespaces()[module_name], rpc_name)] = (
                lambda s, o, f=function: f(self.device, self._in_loop, o))
        handler = handlers.get((name.namespace, name.localname))
        if handler is None:
            raise NetconfError("protocol", "operation-not-supported",
                               f"operation {name.localname} is not supported",
                               info=(_info("bad-element", name.localname),))
        return handler(session, operation)

    def _in_loop(self, function, *args):
        return call_in_loop(self.loop, function, *args)

    # --- retrieval ---

    @staticmethod
    def _with_defaults(operation) -> str:
        mode = _text(operation, "with-defaults", WITH_DEFAULTS)
        if mode is None:
            return "explicit"
        if mode not in MODES:
            raise NetconfError("application", "invalid-value", f"with-defaults {mode}")
        return mode

    @staticmethod
    def _filter(operation) -> list[FilterNode] | None:
        """The parsed subtree filter (an empty list selects nothing), or None: no filter."""
        element = operation.find(nc("filter"))
        if element is None:
            return None
        kind = element.get("type") or element.get(nc("type")) or "subtree"
        if kind != "subtree":
            raise NetconfError("protocol", "bad-attribute",
                               f"filter type '{kind}' is not supported (no :xpath capability)",
                               info=(_info("bad-attribute", "type"),
                                     _info("bad-element", "filter")))
        return parse_filter(element)

    @staticmethod
    def _pagination(operation) -> tuple[int | None, int, str | None] | None:
        """nefeature-list-pagination parameters of a <get>: (limit, offset, cursor)."""
        element = operation.find(f"{{{PAGINATION}}}list-pagination")
        if element is None:
            return None

        def number(tag: str, minimum: int) -> int | None:
            text = _text(element, tag, PAGINATION)
            if text is None:
                return None
            try:
                value = int(text)
                if not minimum <= value <= 0xFFFFFFFF:
                    raise ValueError
            except ValueError:
                raise NetconfError("protocol", "invalid-value", f"{tag} {text}",
                                   info=(_info("bad-element", tag),)) from None
            return value

        limit, offset = number("limit", 1), number("offset", 0)
        cursor = _text(element, "cursor", PAGINATION)
        if offset is not None and cursor is not None:
            raise NetconfError("protocol", "invalid-value", "offset and cursor exclude each other",
                               info=(_info("bad-element", "cursor"),))
        if cursor is not None:
            from nefeature.state import parse_cursor

            try:
                parse_cursor(cursor)
            except ValueError:
                raise NetconfError("protocol", "invalid-value", f"cursor {cursor}",
                                   info=(_info("bad-element", "cursor"),)) from None
        return limit, offset or 0, cursor

    @staticmethod
    def _config_view(explicit: dict, mode: str) -> dict:
        return explicit if mode in ("explicit",) else with_defaults(explicit)

    def rpc_get_config(self, session, operation):
        source, _ = _datastore_name(operation.find(nc("source")))
        mode = self._with_defaults(operation)
        filters = self._filter(operation)
        explicit = self._in_loop(self.device.datastores.content, source)
        tree = select(self._config_view(explicit, mode), filters)
        data = etree.Element(nc("data"), nsmap={None: NC})
        return StreamedData(to_xml(tree, data, mode), None)

    def _device_state(self, filters):
        """On the loop: the running configuration, the state the filter can reach (the lease
        list as a snapshot), the datastore locks."""
        device = self.device
        state = operational_state(device.config, device.dhcp, device.vrrp, device.vrrp_errors,
                                  device.now(), device.backup, device.channel_tcp_states(),
                                  filters=filters, lazy=True, protocol_now=device.protocol_now())
        locks = {name: holder for name, holder in device.datastores.locks.items() if holder}
        return device.datastores.content("running"), state, locks

    def _server_state(self, filters, locks: dict[str, int]) -> dict:
        state: dict = {}
        if lookup(filters, (SERVER_STATE[0],)) is not None:
            with self.lock:
                held = {name: (holder, self.lock_times.get(name, _now_text()))
                        for name, holder in locks.items()}
                state.update(monitoring.netconf_state(self.counters, held))
        if lookup(filters, (SERVER_STATE[1],)) is not None:
            state.update(monitoring.modules_state())
        if lookup(filters, (SERVER_STATE[2],)) is not None:
            state.update(monitoring.streams_state())
        return state

    def rpc_get(self, session, operation):
        mode = self._with_defaults(operation)
        filters = self._filter(operation)
        page = self._pagination(operation)
        explicit, state, locks = self._in_loop(self._device_state, filters)
        state.update(self._server_state(filters, locks))
        tree = select(merge_trees(self._config_view(explicit, mode), state), filters)
        entries = _lease_entries(tree)
        if entries is not None and page is not None:
            entries.page(*page)
        data = etree.Element(nc("data"), nsmap={None: NC})
        to_xml(tree, data, mode)
        return StreamedData(data, entries)

    def rpc_get_schema(self, session, operation):
        identifier = _text(operation, "identifier", MONITORING)
        version = _text(operation, "version", MONITORING)
        form = _text(operation, "format", MONITORING)
        if form not in (None, "yang", "ncm:yang") and not (form or "").endswith(":yang"):
            raise NetconfError("application", "invalid-value", f"format {form} is not available")
        for module in modules():
            if module.name == identifier and version in (None, "", module.revision):
                data = etree.Element(f"{{{MONITORING}}}data", nsmap={None: MONITORING})
                data.text = module.path.read_text()
                return data
        raise NetconfError("application", "invalid-value", f"no schema {identifier}",
                           info=())

    # --- editing ---

    def rpc_edit_config(self, session, operation):
        target, _ = _datastore_name(operation.find(nc("target")), ("running", "candidate"))
        config = operation.find(nc("config"))
        if config is None:
            raise NetconfError("protocol", "missing-element", "edit-config needs <config>",
                               info=(_info("bad-element", "config"),))
        default = _text(operation, "default-operation") or "merge"
        test = _text(operation, "test-option") or "test-then-set"
        error_option = _text(operation, "error-option") or "stop-on-error"
        if error_option not in ("stop-on-error", "rollback-on-error"):
            raise NetconfError("protocol", "operation-not-supported",
                               f"error-option {error_option} is not supported")
        datastores = self.device.datastores
        if target == "candidate":  # edited and validated here, installed on the loop
            base = self._in_loop(datastores.content, "candidate")
            edited, validated = datastores.prepare_edit(base, config, default, test)
            if self._in_loop(datastores.install_candidate_edit, session.session_id, base,
                             edited, validated, test):
                return None
        self._in_loop(datastores.edit_config, session.session_id, target, config, default,
                      test, error_option)
        return None

    def rpc_copy_config(self, session, operation):
        target, _ = _datastore_name(operation.find(nc("target")))
        source, inline = _datastore_name(operation.find(nc("source")))
        if inline is not None:
            inline = parse_config_xml(etree.tostring(inline))
        self._in_loop(self.device.datastores.copy_config, session.session_id, target, source,
                      inline)
        return None

    def rpc_delete_config(self, session, operation):
        target, _ = _datastore_name(operation.find(nc("target")))
        self._in_loop(self.device.datastores.delete_config, session.session_id, target)
        return None

    def rpc_lock(self, session, operation):
        target, _ = _datastore_name(operation.find(nc("target")))
        self._in_loop(self.device.datastores.lock, session.session_id, target)
        with self.lock:
            self.lock_times[target] = _now_text()
        return None

    def rpc_unlock(self, session, operation):
        target, _ = _datastore_name(operation.find(nc("target")))
        self._in_loop(self.device.datastores.unlock, session.session_id, target)
        return None

    def rpc_commit(self, session, operation):
        confirmed = operation.find(nc("confirmed")) is not None
        timeout_text = _text(operation, "confirm-timeout")
        try:
            timeout = int(timeout_text) if timeout_text else 600
            if timeout < 1:
                raise ValueError
        except ValueError:
            raise NetconfError("protocol", "invalid-value",
                               f"confirm-timeout {timeout_text}") from None
        self._in_loop(self.device.commit, session.session_id, confirmed, timeout,
                      _text(operation, "persist"), _text(operation, "persist-id"))
        return None

    def rpc_cancel_commit(self, session, operation):
        self._in_loop(self.device.cancel_commit, session.session_id,
                      _text(operation, "persist-id"))
        return None

    def rpc_discard_changes(self, session, operation):
        self._in_loop(self.device.datastores.discard_changes, session.session_id)
        return None

    def rpc_validate(self, session, operation):
        """Validation is pure: it runs here, on the content the loop hands over."""
        source, inline = _datastore_name(operation.find(nc("source")))
        if inline is not None:
            validate_config(parse_config_xml(etree.tostring(inline)))
        else:
            validate_raw(self._in_loop(self.device.datastores.content, source))
        return None

    def rpc_kill_session(self, session, operation):
        text = _text(operation, "session-id")
        try:
            target = int(text or "")
        except ValueError:
            raise NetconfError("protocol", "invalid-value", f"session-id {text}") from None
        if target == session.session_id:
            raise NetconfError("protocol", "invalid-value", "a session cannot kill itself")
        with self.lock:
            victim = self.sessions.get(target)
        if victim is None:
            raise NetconfError("protocol", "invalid-value", f"no session {target}")
        victim.close()
        self.session_closed(victim, target)
        with self.lock:
            self.counters.dropped_sessions += 1
        return None

    # --- notifications ---

    def rpc_create_subscription(self, session, operation):
        stream = _text(operation, "stream", NOTIFICATION) or "NETCONF"
        if stream != "NETCONF":
            raise NetconfError("application", "invalid-value", f"no stream {stream}")
        if operation.find(f"{{{NOTIFICATION}}}startTime") is not None:
            raise NetconfError("protocol", "operation-failed",
                               "replay is not supported (no :replay capability)")
        with self.lock:
            if session.session_id in self.subscriptions:
                raise NetconfError("protocol", "operation-failed",
                                   "this session already has a subscription")
            self.subscriptions[session.session_id] = operation.find(f"{{{NOTIFICATION}}}filter")
        return None

    def publish(self, event) -> None:
        """A device event: its notification, if the model defines one, to every subscriber."""
        content = notification_content(event)
        if content is not None:
            self.notify(content)

    def config_changed(self, session: int, datastore: str) -> None:
        """Datastores commit listener: RFC 6470 netconf-config-change."""
        with self.lock:
            owner = self.sessions.get(session)
        self.publish(ConfigChanged(session, getattr(owner, "username", None), datastore))

    def notify(self, content: etree._Element) -> None:
        """Send a notification to every subscribed session (any thread)."""
        notification = etree.Element(f"{{{NOTIFICATION}}}notification",
                                     nsmap={None: NOTIFICATION})
        etree.SubElement(notification, f"{{{NOTIFICATION}}}eventTime").text = \
            datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        notification.append(content)
        with self.lock:
            targets = [(self.sessions.get(sid), flt) for sid, flt in self.subscriptions.items()]
        for session, event_filter in targets:
            if session is None:
                continue
            if event_filter is not None:
                holder = etree.Element("holder")
                holder.append(etree.fromstring(etree.tostring(content)))
                if not len(subtree_filter(holder, event_filter)):
                    continue
            self._count(session, out_notifications=1)
            threading.Thread(target=self._send_notification, daemon=True,
                             args=(session, etree.tostring(notification).decode())).start()

    @staticmethod
    def _send_notification(session, text: str) -> None:
        try:
            session.send_message(text)
        except Exception as error:  # the session went away meanwhile
            log.debug("notification not delivered: %s", error)


def _lease_entries(tree: dict) -> LeaseEntries | None:
    node = tree
    for member in LEASE_LIST_PATH:
        if not isinstance(node, dict) or member not in node:
            return None
        node = node[member]
    return node if isinstance(node, LeaseEntries) else None


def with_defaults(explicit: dict) -> dict:
    """The configuration with every default filled in (report-all)."""
    from yangson.enumerations import ContentType

    from nefeature.datastore.schema import data_model

    return data_model().from_raw(explicit).add_defaults(ContentType.config).raw_value()


def _info(name: str, value: str) -> ErrorInfo:
    return ErrorInfo(name, value)


def start_server(loop, device: ManagedDevice, host: str, port: int, state_dir: Path,
                 passwords: dict[str, str],
                 keys: dict[str, list]) -> tuple[NetconfServer, NetconfHandler]:
    """Listen for NETCONF over SSH; the handler's ``publish`` takes the device's events."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    handler = NetconfHandler(loop, device)
    device.datastores.commit_listeners.append(handler.config_changed)
    server = NetconfServer(Users(passwords, keys), handler, host, port, host_key_file(state_dir))
    return server, handler
