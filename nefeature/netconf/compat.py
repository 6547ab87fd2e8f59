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
"""

from __future__ import annotations

import io
import logging
import socket
import threading

import netconf.base as netconf_base
import netconf.server as netconf_server
from lxml import etree
from netconf import NSMAP
from netconf.error import ChannelClosed, FramingError, SessionError
from sshutil.server import SSHServerSocket

log = logging.getLogger(__name__)

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


class NetconfSession(netconf_server.NetconfServerSession):
    """A server session whose RPCs all go to the server's handler."""

    def __init__(self, channel, server, extra_args, debug):
        # NetconfServerSession.__init__ calls the base class's _open_session
        # explicitly, which would skip ours: set the session up here instead.
        self.send_lock = threading.Lock()
        self.username = channel.get_transport().get_username() if channel else None
        self.server = server
        self.methods = server.server_methods
        netconf_base.NetconfSession.__init__(self, channel, debug, server._allocate_session_id())
        self._open_session(True)

    def send_message(self, msg):
        with self.send_lock:  # fix 5
            super().send_message(msg)

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


class NetconfServer(netconf_server.NetconfSSHServer):
    """The netconf package's SSH server, bound to one address (fix 2)."""

    def __init__(self, server_ctl, handler, host: str, port: int, host_key: str) -> None:
        # Attributes the package's server and socket classes rely on.
        self.server_methods = handler
        self.handler = handler
        self.session_id = 1
        self.session_locks_lock = threading.Lock()
        self.session_locks = {"running": 0, "candidate": 0}
        self.server_ctl = server_ctl
        self.server_socket_class = SSHServerSocket
        self.server_session_class = NetconfSession
        self.extra_args = None
        self.debug = False
        self.host_key = netconf_server.ssh.RSAKey.from_private_key_file(host_key)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(100)
        self.port = listener.getsockname()[1]
        self.ports = {family: self.port}
        self.close_wsocket, self.close_rsocket = socket.socketpair()
        self.lock = threading.Lock()
        self.sockets = []
        self.thread = threading.Thread(None, self._accept_socket_thread,
                                       name="netconf-accept", args=[listener], daemon=True)
        self.thread.start()

    def __del__(self):
        pass  # the package logs an ERROR here
