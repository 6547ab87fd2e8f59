"""One device: configuration, lease journal, DHCP engine and sockets, wired together.

This is the asyncio shell around the sans-IO engines (DESIGN.md section 3):
it moves datagrams between the sockets and the engine, commits each batch's
lease changes to the journal before sending that batch's replies, and arms
one timer for the engine's next deadline.  Later parts (VRRP, remote
backup, NETCONF) are wired in here too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from nefeature.config.model import DeviceConfig
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.server import SERVER_PORT, DhcpServer, Received
from nefeature.dhcp.transport import DhcpSockets

log = logging.getLogger("nefeature")


class Device:
    """A running device (``nefeature run``)."""

    def __init__(self, config: DeviceConfig, state_dir: str | Path,
                 dhcp_port: int = SERVER_PORT, clock=time.time) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.journal = LeaseJournal(self.state_dir / "leases.sqlite")
        self.dhcp = DhcpServer(config, self.journal.load())
        self.dhcp.handle_timer(self.clock())  # leases that ran out while we were down
        self._commit(self.dhcp.table.take_pending())
        self.dhcp_port = dhcp_port
        self.sockets: DhcpSockets | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopped = asyncio.Event()

    def _commit(self, pending) -> None:
        if pending:
            self.journal.commit(pending)

    def on_batch(self, batch: list[Received]) -> None:
        """Engine, then journal, then the wire: no ACK before its lease is on disk."""
        now = self.clock()
        replies = []
        for packet in batch:
            replies.extend(self.dhcp.receive(packet, now))
        self._commit(self.dhcp.table.take_pending())
        for reply in replies:
            self.sockets.send(reply)
        self.dhcp.events.clear()  # no consumer until remote backup is wired in
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.dhcp.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.dhcp.handle_timer(self.clock())
        self._commit(self.dhcp.table.take_pending())
        self.dhcp.events.clear()
        self._arm_timer()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        direct = [i.linux_name for i in self.config.interfaces if i.dhcp_server]
        self.sockets = DhcpSockets(loop, self.on_batch, direct, port=self.dhcp_port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopped.set)
        self._arm_timer()
        log.info("serving DHCP on port %d (direct on %s), %d leases loaded", self.dhcp_port,
                 ", ".join(direct) or "no interface", len(self.dhcp.table))
        try:
            await self._stopped.wait()
        finally:
            self.close()

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        self._commit(self.dhcp.table.take_pending())
        self.journal.close()
        log.info("stopped")
