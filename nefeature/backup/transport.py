"""TCP for the remote backup channel: listen and connect, keep one connection.

Both devices listen on their source address and the service port and both
try to connect to the peer (every ``RECONNECT_INTERVAL`` while down).  When
two connections meet during the handshake, the one opened by the device
with the lower address survives, on both sides alike; once a connection is
up, a new one is refused.  The bytes go to and from the device's sans-IO
core (``channel_connected``, ``channel_received``, ``channel_lost``; the
core's ``SendChannel`` and ``CloseChannel`` come back as ``write`` and
``drop``).

A batch backup goes out one page per turn of the event loop, as the
channel's window of unacknowledged pages allows, and not at all while the
socket's buffer is above its high-water mark (asyncio's ``pause_writing``):
DHCP, VRRP and heartbeats keep their turns, and a slow peer holds the batch
back instead of the master's memory filling up.  The receiving side applies
the pages it read one per turn too (``batch_step``), so what the loop reads
between two pages (the peer's real-time updates) goes first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from ipaddress import IPv4Address
from typing import Protocol

from nefeature.config.model import RbsService

log = logging.getLogger(__name__)

RECONNECT_INTERVAL = 1.0
WRITE_BUFFER_HIGH = 1 << 20  # bytes queued in asyncio before batch pages wait


class ChannelOwner(Protocol):
    """What a connector needs of the device (``nefeature.node.Device``)."""

    def channel_connected(self, service: str) -> None: ...

    def channel_received(self, service: str, data: bytes) -> None: ...

    def channel_lost(self, service: str, reason: str) -> None: ...

    def batch_step(self, service: str) -> None: ...

    def channel_is_up(self, service: str) -> bool: ...


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
            self.connector.owner.channel_received(self.connector.name, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connector.lost(self, "connection closed" if exc is None else str(exc))


class ChannelConnector:
    """The TCP side of one remote-backup-service."""

    def __init__(self, loop: asyncio.AbstractEventLoop, service: RbsService,
                 owner: ChannelOwner) -> None:
        self.loop = loop
        self.service = service
        self.name = service.name
        self.owner = owner
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
            up = self.owner.channel_is_up(self.name)
            if up or not self._opener_is_lower(connection) or self._opener_is_lower(current):
                connection.transport.close()  # keep the one we have
                return
            self.current = None  # the new one wins the tie-break
            current.transport.close()
            self.owner.channel_lost(self.name,
                                     "replaced by the peer's connection")
        self.current = connection
        self.writing_paused = False
        self.tcp_state = "connected"
        self.owner.channel_connected(self.name)

    def lost(self, connection: _Connection, reason: str) -> None:
        if connection is not self.current:
            return
        self.current = None
        self.tcp_state = "listening" if self.server is not None else "initial"
        self._schedule_reconnect()
        self.owner.channel_lost(self.name, reason)

    def write(self, data: bytes) -> None:
        if self.current is not None:
            self.current.transport.write(data)

    def drop(self) -> None:
        """The core refused the connection (bad frame, wrong key, silent peer)."""
        if self.current is not None:
            self.current.transport.close()

    def pace_batch(self) -> None:
        """A batch step may run (a page to send or one of the peer's to apply): on the next
        loop turn, unless the socket is full."""
        if self.current is not None and not self.writing_paused and self._next_page is None:
            self._next_page = self.loop.call_soon(self._batch_step)

    def flush(self) -> None:
        if self.owner.channel_is_up(self.name):
            self.pace_batch()

    def _batch_step(self) -> None:
        self._next_page = None
        if self.current is not None and not self.writing_paused:
            self.owner.batch_step(self.name)

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
