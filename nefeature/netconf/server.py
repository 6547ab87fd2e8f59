"""The NETCONF server: RFC 6241 operations over the datastores and the live device.

SSH, framing and session threads come from the PyPI ``netconf`` package
(fixed in ``compat``); everything a client sees is decided here.  Each
<rpc> arrives on its session's thread; the handler parses it, runs the
operation on the asyncio loop that owns the device (``call_in_loop``), so
datastores and engines are only ever touched from one thread, and writes
one <rpc-reply> carrying every attribute of the <rpc> (RFC 6241 4.2).

Errors are :class:`NetconfError` raised where they arise (datastores,
validation, edit) and serialized here with error-type, error-tag,
error-severity, error-app-tag, error-path (with the namespace declarations
its prefixes need), error-message and error-info.

Notifications (RFC 5277, with interleave): a session that sent
<create-subscription> receives, as they happen, netconf-config-change
(RFC 6470) after every commit, and the device's events (VRRP new master,
remote backup protection lost and resumed, profile state changes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import paramiko
from lxml import etree

from nefeature.datastore.errors import ErrorInfo, NetconfError
from nefeature.datastore.schema import modules, namespaces
from nefeature.datastore.validation import parse_config_xml
from nefeature.datastore.xmlform import MODES, subtree_filter, to_xml
from nefeature.netconf.compat import NetconfServer

log = logging.getLogger(__name__)

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NOTIFICATION = "urn:ietf:params:xml:ns:netconf:notification:1.0"
MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
WITH_DEFAULTS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
YANG_LIBRARY = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
NETCONF_NOTIFICATIONS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
RPC_TIMEOUT = 120.0

CAPABILITIES = (
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0"
    "?basic-mode=explicit&also-supported=report-all,report-all-tagged,trim",
    f"{MONITORING}?module=ietf-netconf-monitoring&revision=2010-10-04",
)


def module_set_id() -> str:
    return hashlib.sha1("".join(f"{m.name}@{m.revision}" for m in modules()).encode()).hexdigest()


def module_capabilities() -> list[str]:
    """Each module (RFC 6020 5.6.4 form) and the YANG library (RFC 7950 5.6.4)."""
    return [f"{m.namespace}?module={m.name}&revision={m.revision}" for m in modules()] + [
        "urn:ietf:params:netconf:capability:yang-library:1.0?revision=2016-06-21"
        f"&module-set-id={module_set_id()}"]


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


class UserAuthentication(paramiko.ServerInterface):
    """Password and public-key users; failed attempts slow the next ones down."""

    def __init__(self, passwords: dict[str, str], keys: dict[str, list[paramiko.PKey]]) -> None:
        self.passwords = passwords
        self.keys = keys
        self.failures = 0
        self.lock = threading.Lock()

    def get_allowed_auths(self, username):
        methods = []
        if username in self.passwords:
            methods.append("password")
        if self.keys.get(username):
            methods.append("publickey")
        return ",".join(methods) or "password"

    def _failed(self):
        with self.lock:
            self.failures += 1
            delay = min(2.0, 0.1 * self.failures)
        time.sleep(delay)  # in the connection's own thread: others are not delayed
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        expected = self.passwords.get(username)
        if expected is not None and password and hmac.compare_digest(
                hashlib.sha256(password.encode()).digest(),
                hashlib.sha256(expected.encode()).digest()):
            return paramiko.AUTH_SUCCESSFUL
        return self._failed()

    def check_auth_publickey(self, username, key):
        if any(key == known for known in self.keys.get(username, ())):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel, name):
        return name == "netconf"


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


class NetconfHandler:
    """Every RPC of every session (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, device) -> None:
        self.loop = loop
        self.device = device
        self.sessions: dict[int, object] = {}
        self.subscriptions: dict[int, etree._Element | None] = {}
        self._closed: set[int] = set()
        self.lock = threading.Lock()

    # --- hello and session life (called by compat.NetconfSession) ---

    def nc_append_capabilities(self, capabilities: etree._Element) -> None:
        for uri in list(CAPABILITIES) + module_capabilities():
            etree.SubElement(capabilities, "capability").text = uri

    def session_opened(self, session) -> None:
        with self.lock:
            self.sessions[session.session_id] = session
        log.info("NETCONF session %d opened (user %s)", session.session_id, session.username)

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
        log.info("NETCONF session %d closed", sid)
        try:
            call_in_loop(self.loop, self.device.datastores.session_closed, sid)
        except (RuntimeError, concurrent.futures.TimeoutError):
            pass  # the device is stopping

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
        self._send_reply(session, document, reply)
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
        for module_name, rpc_name, method in (
                ("nefeature-dhcp-server", "reset-statistics", "rpc_reset_statistics"),
                ("nefeature-dhcp-server", "reset-address-state", "rpc_reset_address_state"),
                ("nefeature-rbs", "batch-backup-now", "rpc_batch_backup_now")):
            handlers[(namespaces()[module_name], rpc_name)] = (
                lambda s, o, m=method: self._in_loop(getattr(self.device, m), s.session_id, o))
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
    def _filter(operation) -> etree._Element | None:
        element = operation.find(nc("filter"))
        if element is None:
            return None
        kind = element.get("type") or element.get(nc("type")) or "subtree"
        if kind != "subtree":
            raise NetconfError("protocol", "bad-attribute",
                               f"filter type '{kind}' is not supported (no :xpath capability)",
                               info=(_info("bad-attribute", "type"),
                                     _info("bad-element", "filter")))
        return element

    def rpc_get_config(self, session, operation):
        source, _ = _datastore_name(operation.find(nc("source")))
        mode = self._with_defaults(operation)
        subtree = self._filter(operation)
        tree = self._in_loop(self.device.config_tree, source, mode)
        data = etree.Element(nc("data"), nsmap={None: NC})
        to_xml(tree, data, mode)
        return subtree_filter(data, subtree) if subtree is not None else data

    def rpc_get(self, session, operation):
        mode = self._with_defaults(operation)
        subtree = self._filter(operation)
        tree = self._in_loop(self.device.state_tree, mode)
        data = etree.Element(nc("data"), nsmap={None: NC})
        to_xml(tree, data, mode)
        data.append(self._netconf_state())
        data.append(self._yang_library())
        return subtree_filter(data, subtree) if subtree is not None else data

    def _netconf_state(self) -> etree._Element:
        state = etree.Element(f"{{{MONITORING}}}netconf-state", nsmap={None: MONITORING})
        capabilities = etree.SubElement(state, f"{{{MONITORING}}}capabilities")
        for uri in ["urn:ietf:params:netconf:base:1.0", "urn:ietf:params:netconf:base:1.1",
                    *CAPABILITIES, *module_capabilities()]:
            etree.SubElement(capabilities, f"{{{MONITORING}}}capability").text = uri
        datastores = etree.SubElement(state, f"{{{MONITORING}}}datastores")
        for name in ("running", "candidate", "startup"):
            datastore = etree.SubElement(datastores, f"{{{MONITORING}}}datastore")
            etree.SubElement(datastore, f"{{{MONITORING}}}name").text = name
        schemas = etree.SubElement(state, f"{{{MONITORING}}}schemas")
        for module in modules():
            schema = etree.SubElement(schemas, f"{{{MONITORING}}}schema")
            for tag, value in (("identifier", module.name), ("version", module.revision),
                               ("format", "yang"), ("namespace", module.namespace),
                               ("location", "NETCONF")):
                etree.SubElement(schema, f"{{{MONITORING}}}{tag}").text = value
        sessions = etree.SubElement(state, f"{{{MONITORING}}}sessions")
        with self.lock:
            current = dict(self.sessions)
        for sid, session in sorted(current.items()):
            entry = etree.SubElement(sessions, f"{{{MONITORING}}}session")
            etree.SubElement(entry, f"{{{MONITORING}}}session-id").text = str(sid)
            etree.SubElement(entry, f"{{{MONITORING}}}transport").text = "netconf-ssh"
            etree.SubElement(entry, f"{{{MONITORING}}}username").text = session.username or ""
        return state

    def _yang_library(self) -> etree._Element:
        library = etree.Element(f"{{{YANG_LIBRARY}}}modules-state", nsmap={None: YANG_LIBRARY})
        etree.SubElement(library, f"{{{YANG_LIBRARY}}}module-set-id").text = module_set_id()
        for module in modules():
            entry = etree.SubElement(library, f"{{{YANG_LIBRARY}}}module")
            for tag, value in (("name", module.name), ("revision", module.revision),
                               ("namespace", module.namespace),
                               ("conformance-type",
                                "implement" if module.implemented else "import")):
                etree.SubElement(entry, f"{{{YANG_LIBRARY}}}{tag}").text = value
        return library

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
        self._in_loop(self.device.datastores.edit_config, session.session_id, target, config,
                      default, test, error_option)
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
        source, inline = _datastore_name(operation.find(nc("source")))
        if inline is not None:
            inline = parse_config_xml(etree.tostring(inline))
        self._in_loop(self.device.datastores.validate, session.session_id, source, inline)
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
            threading.Thread(target=self._send_notification, daemon=True,
                             args=(session, etree.tostring(notification).decode())).start()

    @staticmethod
    def _send_notification(session, text: str) -> None:
        try:
            session.send_message(text)
        except Exception as error:  # the session went away meanwhile
            log.debug("notification not delivered: %s", error)


def _info(name: str, value: str) -> ErrorInfo:
    return ErrorInfo(name, value)


def start_server(loop, device, host: str, port: int, state_dir: Path,
                 passwords: dict[str, str], keys: dict[str, list]) -> tuple[NetconfServer,
                                                                             NetconfHandler]:
    handler = NetconfHandler(loop, device)
    server = NetconfServer(UserAuthentication(passwords, keys), handler, host, port,
                           host_key_file(state_dir))
    return server, handler
