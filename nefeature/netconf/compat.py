"""Fixes to the PyPI ``netconf`` 2.1.0 package, in one place (tooling.md section 1.3).

We use the package for SSH (paramiko), framing and session threads only;
each fix below has a regression test in tests/conformance/test_compat.py.

1. base:1.0 framing spins at 100 % CPU after the peer disconnects
   (``_receive_10`` loops on empty reads): replaced by a version that raises
   ChannelClosed on EOF.  Both framings refuse a message over MAX_MESSAGE
   (the package buffered anything, so one client could exhaust memory).
2. The server binds every address (``::``); ``NetconfServer`` binds the one
   address it is given.
3. The session's RPC dispatch (lock/unlock reply, kill-session killing the
   caller, XPath filters silently ignored, namespace-less error-info, RPC
   namespaces stripped) is replaced: ``NetconfSession`` hands every <rpc>
   to ``handler.handle(session, rpc)``, which owns all semantics.
4. The client hello is accepted in either framing (ncclient may chunk it,
   ncclient#524), and a session whose hello is bad is closed.
5. Replies and notifications are written from several threads: sends are
   serialized by a per-session lock.
6. A hello is built without calling a missing ``nc_append_capabilities``.
7. The SSH door: the package ran the SSH banner and key exchange in its one
   accept thread, so one silent TCP connection held every login up (15 s
   each) and a few locked controllers out.  Here the accept thread only
   accepts: each connection gets a thread of its own for banner, key
   exchange and authentication, within ``LOGIN_GRACE`` seconds; at most
   ``PER_SOURCE_STARTUPS`` unauthenticated connections per source address
   and, as OpenSSH's ``MaxStartups start:rate:full``, beyond ``STARTUPS[0]``
   unauthenticated connections new ones are refused with a probability
   rising from ``STARTUPS[1]`` % to 100 % at ``STARTUPS[2]``.  A source the
   login throttle blocks is refused at accept.  A probe that disconnects is
   one INFO line, not a traceback (paramiko's own log is silenced).
8. Long replies are streamed (``NetconfSession.send_parts``): each piece is
   one RFC 6242 chunk, so a reply of 100,000 leases is never one string.
"""

from __future__ import annotations

import io
import logging
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone

import netconf.base as netconf_base
import netconf.server as netconf_server
from lxml import etree
from netconf import NSMAP
import paramiko
from netconf.error import ChannelClosed, FramingError, SessionError
from sshutil.server import SSHServerSocket

log = logging.getLogger("nefeature.netconf")
SSH_LOG = "nefeature.netconf.ssh"  # paramiko's per-transport log: silenced (fix 7)
logging.getLogger(SSH_LOG).setLevel(logging.CRITICAL)

LOGIN_GRACE = 20.0  # seconds from TCP accept to an authenticated SSH connection
STARTUPS = (16, 30, 64)  # MaxStartups start:rate:full for unauthenticated connections
PER_SOURCE_STARTUPS = 8  # unauthenticated connections one source address may hold
SEND_BATCH = 256 * 1024  # bytes of a streamed reply written at once

MAX_MESSAGE = 32 * 1024 * 1024  # far above a 100,000-lease <get> reply


def _receive_10(self):
    """EOM framing that stops at EOF instead of spinning (fix 1)."""
    search_from = 0
    while True:
        end = self.rbuffer.find(b"]]>]]>", search_from)
        if end != -1:
            break
        if len(self.rbuffer) > MAX_MESSAGE:
            raise ChannelClosed(self)
        search_from = max(0, len(self.rbuffer) - 5)
        data = self.stream.recv(self.max_chunk)
        if not data:
            raise ChannelClosed(self)
        self.rbuffer += data
    message, self.rbuffer = self.rbuffer[:end], self.rbuffer[end + 6:]
    return message.decode("utf-8")


def _receive_chunk(self):
    """One RFC 6242 chunk ('\\n#<len>\\n<data>'), or None at '\\n##\\n'; bounded."""
    def fill(size: int) -> None:
        while len(self.rbuffer) < size:
            data = self.stream.recv(self.max_chunk)
            if not data:
                raise ChannelClosed(self)
            self.rbuffer += data

    fill(4)
    if self.rbuffer[:2] != b"\n#":
        raise FramingError(self.rbuffer[:20])
    while b"\n" not in self.rbuffer[2:13]:
        if len(self.rbuffer) > 13:
            raise FramingError(self.rbuffer[:20])
        fill(len(self.rbuffer) + 1)
    end = self.rbuffer.index(b"\n", 2)
    header, self.rbuffer = self.rbuffer[2:end], self.rbuffer[end + 1:]
    if header == b"#":
        return None
    if not header.isdigit() or not 0 < int(header) <= MAX_MESSAGE:
        raise FramingError(b"chunk length " + header[:12])
    length = int(header)
    fill(length)
    chunk, self.rbuffer = self.rbuffer[:length], self.rbuffer[length:]
    return chunk


def _receive_11(self):
    """Chunked framing with the same size cap as EOM framing (a 100 MB message is refused)."""
    total, chunks = 0, []
    for chunk in self._iter_receive_chunks():
        total += len(chunk)
        if total > MAX_MESSAGE:
            raise ChannelClosed(self)
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8")


netconf_base.NetconfFramingTransport._receive_10 = _receive_10
netconf_base.NetconfFramingTransport._receive_11 = _receive_11
netconf_base.NetconfFramingTransport._receive_chunk = _receive_chunk


def receive_hello(transport) -> str:
    """The client's hello, EOM-framed or (some clients) already chunked (fix 4)."""
    while True:
        buffer = transport.rbuffer
        stripped = buffer.lstrip(b" \t\r")
        if stripped.startswith(b"\n#"):
            transport.rbuffer = stripped
            return transport._receive_11()
        end = buffer.find(b"]]>]]>")
        if end != -1:
            transport.rbuffer = buffer[end + 6:]
            return buffer[:end].decode("utf-8")
        if len(buffer) > MAX_MESSAGE:
            raise SessionError("hello too long")
        data = transport.stream.recv(transport.max_chunk)
        if not data:
            raise ChannelClosed(transport)
        transport.rbuffer += data


def admit_startup(unauthenticated: int, chance: float,
                  startups: tuple[int, int, int] = STARTUPS) -> bool:
    """OpenSSH MaxStartups start:rate:full: may one more unauthenticated connection in?

    ``chance`` is uniform in [0, 1).  Below ``start`` every connection is
    admitted; from ``start`` the refusal probability is ``rate`` % and rises
    linearly to 100 % at ``full``.
    """
    start, rate, full = startups
    if unauthenticated < start:
        return True
    if unauthenticated >= full:
        return False
    refuse = rate / 100 + (1 - rate / 100) * (unauthenticated - start) / (full - start)
    return chance >= refuse


class NetconfSession(netconf_server.NetconfServerSession):
    """A server session whose RPCs all go to the server's handler."""

    def __init__(self, channel, server, extra_args, debug):
        # NetconfServerSession.__init__ calls the base class's _open_session
        # explicitly, which would skip ours: set the session up here instead.
        self.send_lock = threading.Lock()
        transport = channel.get_transport() if channel else None
        self.username = transport.get_username() if transport else None
        try:
            self.source_host = transport.getpeername()[0] if transport else None
        except (OSError, AttributeError):
            self.source_host = None
        self.login_time = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.server = server
        self.methods = server.server_methods
        netconf_base.NetconfSession.__init__(self, channel, debug, server._allocate_session_id())
        self._open_session(True)

    def send_message(self, msg):
        with self.send_lock:  # fix 5
            super().send_message(msg)

    def send_parts(self, parts: Iterable[str]) -> None:
        """One message from pieces, each framed as it comes (fix 8).

        Pieces are written in batches of at least SEND_BATCH bytes, the end of
        the message with the last: a small reply is one write (several small
        writes would meet Nagle's algorithm and the client's delayed ACK, 40 ms).
        """
        with self.send_lock:
            stream = self.pkt_stream
            if not stream or stream.stream is None:
                raise ChannelClosed(self)
            channel = stream.stream
            pending = bytearray()
            first = True
            for part in parts:
                data = ((netconf_base.XML_HEADER if first else "") + part).encode("utf-8")
                first = False
                if not data:
                    continue
                if self.new_framing:
                    pending += b"\n#%d\n" % len(data)
                pending += data
                if len(pending) >= SEND_BATCH:
                    channel.sendall(bytes(pending))
                    pending.clear()
            pending += b"\n##\n" if self.new_framing else b"]]>]]>"
            channel.sendall(bytes(pending))

    def _open_session(self, is_server):
        try:
            self.send_hello((netconf_base.NC_BASE_10, netconf_base.NC_BASE_11), self.session_id)
            hello = etree.parse(io.BytesIO(receive_hello(self.pkt_stream).strip().encode()),
                                etree.XMLParser(resolve_entities=False, no_network=True))
            root = hello.getroot()
            if root.tag != f"{{{NSMAP['nc']}}}hello":
                raise SessionError("first message is not a hello")
            if root.find("nc:session-id", namespaces=NSMAP) is not None:
                raise SessionError("client sent a session-id")
            for capability in root.xpath("nc:capabilities/nc:capability", namespaces=NSMAP):
                self.capabilities.add((capability.text or "").strip())
            if netconf_base.NC_BASE_11 in self.capabilities:
                self.new_framing = True
            elif netconf_base.NC_BASE_10 not in self.capabilities:
                raise SessionError("client speaks neither base:1.0 nor base:1.1")
            self.session_open = True
            self.server.handler.session_opened(self)
            self.reader_thread = threading.Thread(target=self._read_message_thread,
                                                  name=f"netconf-session-{self.session_id}")
            self.reader_thread.daemon = True
            self.reader_thread.keep_running = True
            self.reader_thread.start()
        except Exception as error:  # a bad hello ends the session
            log.info("NETCONF session %s refused: %s", self.session_id, error)
            self.server.handler.hello_refused()
            self.close()

    def _reader_handle_message(self, msg):
        if not self.session_open:
            return
        self.server.handler.handle_message(self, msg)

    def _reader_exits(self):
        self.server.handler.session_closed(self)

    def close(self):
        sid = self.session_id
        super().close()
        if sid is not None:
            self.server.handler.session_closed(self, sid)


class Connection(SSHServerSocket):
    """One TCP connection: SSH login in a thread of its own, then its channels (fix 7)."""

    def __init__(self, server: NetconfServer, client: socket.socket, source: str) -> None:
        # The attributes SSHServerSocket's channel loop and close() use.
        self.session_class = server.server_session_class
        self.extra_args = None
        self.server = server
        self.client_socket = client
        self.client_addr = source
        self.debug = False
        self.server_ctl = server.users.for_connection(source)
        self.sessions = []
        self.lock = threading.Lock()
        self.running = True
        self.ssh = None
        self.thread = threading.Thread(target=self._login_then_serve, daemon=True,
                                       name=f"netconf-connection-{source}")

    def _login_then_serve(self) -> None:
        source = self.client_addr
        started = time.monotonic()
        try:
            try:
                transport = paramiko.Transport(self.client_socket)
                transport.set_log_channel(SSH_LOG)
                transport.banner_timeout = transport.handshake_timeout = LOGIN_GRACE
                transport.auth_timeout = LOGIN_GRACE
                transport.add_server_key(self.server.host_key)
                with self.lock:
                    if not self.running:
                        return
                    self.ssh = transport
                transport.start_server(server=self.server_ctl)
                while not self.server_ctl.authenticated.wait(0.2):
                    if not self.running or not transport.is_active():
                        raise EOFError("the client went away")
                    if time.monotonic() - started > LOGIN_GRACE:
                        raise TimeoutError(f"no login within {LOGIN_GRACE:.0f} s")
            except (paramiko.SSHException, EOFError, OSError) as error:
                log.info("NETCONF connection from %s closed before login: %s", source,
                         error or type(error).__name__)
                self._drop()
                return
        finally:
            self.server.login_finished(source)
        self._accept_chan_thread()

    def _drop(self) -> None:
        with self.lock:
            self.running = False
            transport, self.ssh = self.ssh, None
            client, self.client_socket = self.client_socket, None
        if transport is not None:
            transport.close()
        if client is not None:
            client.close()
        self.server.remove_socket(self)

    def close(self) -> None:
        with self.lock:
            self.running = False
            sessions, self.sessions = self.sessions, []
            transport, self.ssh = self.ssh, None
            client, self.client_socket = self.client_socket, None
        for session in sessions:
            session.close()
        if transport is not None:
            transport.close()
        if client is not None:
            client.close()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=5)


class NetconfServer(netconf_server.NetconfSSHServer):
    """The netconf package's SSH server, bound to one address (fix 2), with the door of fix 7."""

    def __init__(self, users, handler, host: str, port: int, host_key: str) -> None:
        # Attributes the package's server and socket classes rely on.
        self.server_methods = handler
        self.handler = handler
        self.users = users
        self.session_id = 1
        self.session_locks_lock = threading.Lock()
        self.session_locks = {"running": 0, "candidate": 0}
        self.server_ctl = None  # one authentication object per connection instead
        self.server_socket_class = Connection
        self.server_session_class = NetconfSession
        self.extra_args = None
        self.debug = False
        self.host_key = netconf_server.ssh.RSAKey.from_private_key_file(host_key)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self.ports = {family: self.port}
        self.close_wsocket, self.close_rsocket = socket.socketpair()
        self.lock = threading.Lock()
        self.sockets = []
        self.unauthenticated: Counter[str] = Counter()  # per source address
        self.refused = 0
        self.thread = threading.Thread(None, self._accept_socket_thread,
                                       name="netconf-accept", args=[listener], daemon=True)
        self.thread.start()

    def _admit(self, source: str) -> bool:
        if self.users.blocked(source):
            log.warning("NETCONF connection from %s refused: too many failed logins", source)
            return False
        with self.lock:
            total = sum(self.unauthenticated.values())
            if self.unauthenticated[source] >= PER_SOURCE_STARTUPS or \
                    not admit_startup(total, random.random()):
                self.refused += 1
                refused = self.refused
            else:
                self.unauthenticated[source] += 1
                return True
        if refused == 1 or refused % 100 == 0:
            log.warning("NETCONF connection from %s refused: %d connections are not logged "
                        "in yet (%d refused so far)", source, total, refused)
        return False

    def login_finished(self, source: str) -> None:
        with self.lock:
            self.unauthenticated[source] -= 1
            if self.unauthenticated[source] <= 0:
                del self.unauthenticated[source]

    def _accept_socket_thread(self, listener: socket.socket) -> None:
        """Accept, admit, hand over: nothing here waits for a client (fix 7)."""
        while True:
            readable, _, _ = select.select([listener, self.close_rsocket], [], [])
            if self.close_rsocket in readable:
                with self.lock:
                    connections = list(self.sockets)
                for connection in connections:
                    connection.close()
                listener.close()
                self.close_rsocket.close()
                return
            try:
                client, address = listener.accept()
            except OSError:
                continue
            source = address[0]
            if not self._admit(source):
                client.close()
                continue
            connection = Connection(self, client, source)
            with self.lock:
                self.sockets.append(connection)
            connection.thread.start()

    def remove_socket(self, serversocket) -> None:
        with self.lock:
            if serversocket in self.sockets:
                self.sockets.remove(serversocket)

    def __del__(self):
        pass  # the package logs an ERROR here
