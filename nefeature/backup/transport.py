"""TCP for the remote backup channel: listen and connect, keep one connection.

Both devices listen on their source address and the service port and both
try to connect to the peer (every ``RECONNECT_INTERVAL`` while down).  When
two connections meet during the handshake, the one opened by the device
with the lower address survives, on both sides alike; once a connection is
up, a new one is refused.  The bytes go to and from the sans-IO
``BackupChannel``; ``on_activity`` lets the device act on its events.

A batch backup goes out one page per turn of the event loop, as the
channel's window of unacknowledged pages allows, and not at all while the
socket's buffer is above its high-water mark (asyncio's ``pause_writing``):
DHCP, VRRP and heartbeats keep their turns, and a slow peer holds the batch
back instead of the master's memory filling up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from ipaddress import IPv4Address

from nefeature.backup.channel import BackupChannel, ChannelState
from nefeature.config.model import RbsService

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0
WRITE_BUFFER_HIGH = 1 << 20  # bytes queued in asyncio before batch pages wait


class _Connection(asyncio.Protocol):
    def __init__(self, connector: ChannelConnector, initiated_by_us: bool) -> None:
        self.connector = connector
        self.initiated_by_us = initiated_by_us
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self.connector.adopt(self)

    def pause_writing(self) -> None:
        self.connector.writing_paused = True

    def resume_writing(self) -> None:
        self.connector.writing_paused = False
        self.connector.flush()

    def data_received(self, data: bytes) -> None:
        if self.connector.current is self:
            self.connector.channel.data_received(data, self.connector.clock())
            self.connector.after_input()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connector.lost(self, "connection closed" if exc is None else str(exc))


class ChannelConnector:
    """The TCP side of one remote-backup-service."""

    def __init__(self, loop: asyncio.AbstractEventLoop, service: RbsService,
                 channel: BackupChannel, on_activity: Callable[[str], None], clock) -> None:
        self.loop = loop
        self.service = service
        self.channel = channel
        self.on_activity = on_activity
        self.clock = clock
        self.current: _Connection | None = None
        self.server: asyncio.AbstractServer | None = None
        self._closing = False
        self._reconnect: asyncio.TimerHandle | None = None
        self._next_page: asyncio.Handle | None = None
        self.writing_paused = False
        self.tcp_state = "initial"

    async def start(self) -> None:
        try:
            self.server = await self.loop.create_server(
                lambda: _Connection(self, False), str(self.service.source), self.service.port,
                reuse_address=True)
            self.tcp_state = "listening"
        except OSError as error:
            log.error("remote backup %s: cannot listen on %s:%s: %s", self.service.name,
                      self.service.source, self.service.port, error)
        self._try_connect()

    def _try_connect(self) -> None:
        self._reconnect = None
        if self._closing or self.current is not None:
            return
        self.tcp_state = "connecting" if self.tcp_state != "listening" else "listening"
        task = self.loop.create_task(self.loop.create_connection(
            lambda: _Connection(self, True), str(self.service.peer), self.service.port,
            local_addr=(str(self.service.source), 0)))
        task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is not None:
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if not self._closing and self._reconnect is None and self.current is None:
            self._reconnect = self.loop.call_later(RECONNECT_INTERVAL, self._try_connect)

    def _opener_is_lower(self, connection: _Connection) -> bool:
        ours = IPv4Address(str(self.service.source)) < IPv4Address(str(self.service.peer))
        return connection.initiated_by_us == ours

    def adopt(self, connection: _Connection) -> None:
        if not connection.initiated_by_us:
            remote = connection.transport.get_extra_info("peername")
            if remote is None or remote[0] != str(self.service.peer):
                log.warning("remote backup %s: refused a connection from %s (not the peer)",
                            self.service.name, remote[0] if remote else "?")
                connection.transport.close()
                return
        current = self.current
        if current is not None:
            up = self.channel.state is ChannelState.UP
            if up or not self._opener_is_lower(connection) or self._opener_is_lower(current):
                connection.transport.close()  # keep the one we have
                return
            self.current = None  # the new one wins the tie-break
            current.transport.close()
            self.channel.connection_lost(self.clock(), "replaced by the peer's connection")
        self.current = connection
        self.writing_paused = False
        self.tcp_state = "connected"
        self.channel.connection_made(self.clock())
        self.flush()

    def lost(self, connection: _Connection, reason: str) -> None:
        if connection is not self.current:
            return
        self.current = None
        self.tcp_state = "listening" if self.server is not None else "initial"
        self.channel.connection_lost(self.clock(), reason)
        self.on_activity(self.service.name)
        self._schedule_reconnect()

    def after_input(self) -> None:
        self.on_activity(self.service.name)
        self.flush()

    def flush(self) -> None:
        """Write what the channel queued; drop the connection if it asked to."""
        connection = self.current
        if connection is None:
            return
        data = self.channel.data_to_send()
        if data:
            connection.transport.write(data)
        if self.channel.close_reason:
            log.warning("remote backup %s: %s", self.service.name, self.channel.close_reason)
            connection.transport.close()
        elif self.channel.batch_pending and not self.writing_paused and self._next_page is None:
            self._next_page = self.loop.call_soon(self._send_batch_page)

    def _send_batch_page(self) -> None:
        self._next_page = None
        if self.current is not None and not self.writing_paused:
            self.channel.send_batch_page()
            self.flush()

    def close(self) -> None:
        self._closing = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._next_page is not None:
            self._next_page.cancel()
        if self.current is not None:
            self.current.transport.close()
        if self.server is not None:
            self.server.close()
