"""One device: configuration, lease journal, DHCP and VRRP engines and their sockets.

This is the asyncio shell around the sans-IO engines (DESIGN.md section 3).
It moves bytes between sockets and engines, turns engine output into side
effects (replies, advertisements, virtual addresses), and arms one timer
for the earliest deadline of any engine.

* DHCP: each batch of datagrams goes through the engine; the batch's lease
  changes are committed to the journal, then its replies are sent, so no
  DHCPACK leaves before its lease is on disk.
* Hot backup: pools bound to a backup profile are served by the VRRP
  master only; lease events go to the peer over the remote backup channel
  (TCP), and in strict mode a DHCPACK waits for the peer's acknowledgement
  (``nefeature.backup.hotbackup``).
* VRRP: one router per configured group; a raw socket per interface (or an
  emulated LAN on loopback); the kernel's link events start and stop the
  routers on their own interface and feed interface tracking; a router
  that becomes master adds its virtual IPs, one that stops removes them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from ipaddress import IPv4Address
from pathlib import Path

from nefeature.backup.hotbackup import HotBackup, ProtectDown, RbpStateChanged
from nefeature.backup.transport import ChannelConnector
from nefeature.config.model import DeviceConfig
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.server import SERVER_PORT, DhcpServer, Received
from nefeature.dhcp.transport import DhcpSockets
from nefeature.linkstate import LinkMonitor, link_is_up
from nefeature.vrrp.packet import VrrpPacketError, parse_ipv4
from nefeature.vrrp.router import State, VrrpNewMaster, VrrpRouter, VrrpStateChanged
from nefeature.vrrp.transport import (
    EmulatedVrrpLink,
    NoVirtualAddresses,
    RawVrrpLink,
    VirtualAddresses,
)

log = logging.getLogger("nefeature")

#: RFC 8347 global VRRP counters (errors not tied to one virtual router).
VRRP_GLOBAL_COUNTERS = ("checksum-errors", "version-errors", "vrid-errors", "ip-ttl-errors",
                        "packet-length-errors", "invalid-type-pkts-rcvd")


class Device:
    """A running device (``nefeature run``)."""

    def __init__(self, config: DeviceConfig, state_dir: str | Path,
                 dhcp_port: int = SERVER_PORT, emulated_lan: tuple[str, int] | None = None,
                 clock=time.time) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.emulated_lan = emulated_lan
        self.journal = LeaseJournal(self.state_dir / "leases.sqlite")
        self.dhcp = DhcpServer(config, self.journal.load())
        self.dhcp.handle_timer(self.clock())  # leases that ran out while we were down
        self._commit()
        self.dhcp_port = dhcp_port
        self.linux_name = {i.name: i.linux_name for i in config.interfaces}
        self.vrrp: dict[tuple[str, int], VrrpRouter] = {}
        for group in config.vrrp_groups:
            interface = config.interface(group.interface)
            self.vrrp[group.key] = VrrpRouter(group, int(interface.address.ip))
        self.vrrp_errors = dict.fromkeys(VRRP_GLOBAL_COUNTERS, 0)
        self.vrrp_events: list = []  # for NETCONF notifications
        self.backup = HotBackup(config, self.dhcp, self.vrrp, started=self.clock())
        self.connectors: dict[str, ChannelConnector] = {}
        self.backup_events: list = []  # for NETCONF notifications
        self.sockets: DhcpSockets | None = None
        self._links: dict[str, RawVrrpLink | EmulatedVrrpLink] = {}
        self._virtual: dict[tuple[str, int], VirtualAddresses | NoVirtualAddresses] = {}
        self._monitor: LinkMonitor | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stopped = asyncio.Event()

    # --- DHCP ---

    def _commit(self) -> None:
        pending = self.dhcp.table.take_pending()
        if pending:
            self.journal.commit(pending)

    def on_dhcp_batch(self, batch: list[Received]) -> None:
        """Engine, journal, peer, wire: no ACK before its lease is on disk (and, in
        strict hot backup, on the peer's disk)."""
        now = self.clock()
        replies = []
        for packet in batch:
            replies.extend(self.dhcp.receive(packet, now))
        leaving = self.backup.route_replies(replies, self.dhcp.events, now)
        self.dhcp.events.clear()
        self._commit()
        self._flush_channels()
        self._send_replies(leaving)
        self._arm_timer()

    def _send_replies(self, replies) -> None:
        if self.sockets is not None:
            for reply in replies:
                self.sockets.send(reply)

    # --- remote backup ---

    def on_channel_activity(self, service: str) -> None:
        """A channel received something, or its connection went away."""
        now = self.clock()
        leaving, applied = self.backup.on_channel_events(service, now)
        if applied:
            self._commit()  # the peer's leases are on our disk before we acknowledge
            self.backup.channels[service].acknowledge(now)
        self._send_replies(leaving)
        self._after_vrrp()

    def _flush_channels(self) -> None:
        for connector in self.connectors.values():
            connector.flush()
        for event in self.backup.events:
            if isinstance(event, ProtectDown):
                log.info("remote backup %s: %s (%s)", event.service,
                         "protected: peer connected" if event.resumed else "protect down",
                         event.reason)
            elif isinstance(event, RbpStateChanged):
                log.info("remote backup profile %s: %s -> %s", event.profile, event.old,
                         event.new)
        self.backup_events.extend(self.backup.events)
        self.backup.events.clear()
        del self.backup_events[:-1000]

    # --- VRRP ---

    def _start_vrrp(self, loop: asyncio.AbstractEventLoop) -> None:
        for (interface_name, _vrid), router in self.vrrp.items():
            linux = self.linux_name[interface_name]
            if linux not in self._links:
                if self.emulated_lan:
                    self._links[linux] = EmulatedVrrpLink(
                        loop, *self.emulated_lan, router.primary_address,
                        lambda data, name=linux: self.on_vrrp_datagram(name, data))
                else:
                    self._links[linux] = RawVrrpLink(
                        loop, linux, router.primary_address,
                        lambda data, name=linux: self.on_vrrp_datagram(name, data))
            interface = self.config.interface(interface_name)
            self._virtual[router.group.key] = (
                NoVirtualAddresses() if self.emulated_lan
                else VirtualAddresses(linux, interface.address))
        watched = set(self._links)
        for router in self.vrrp.values():
            watched |= {self.linux_name[t.interface] for t in router.group.tracks}
        if watched:
            self._monitor = LinkMonitor(loop, watched, self.on_link_change)
        now = self.clock()
        for router in self.vrrp.values():
            for track in router.group.tracks:
                if not link_is_up(self.linux_name[track.interface]):
                    router.link_changed(track.interface, False, now)
            if self.emulated_lan or link_is_up(self.linux_name[router.group.interface]):
                router.startup(now)
        self._after_vrrp()

    def on_vrrp_datagram(self, linux_name: str, datagram: bytes) -> None:
        try:
            received = parse_ipv4(datagram)
        except VrrpPacketError as error:
            self.vrrp_errors[error.counter] += 1
            return
        router = next((r for (name, vrid), r in self.vrrp.items()
                       if vrid == received.advertisement.vrid
                       and self.linux_name[name] == linux_name), None)
        if router is None:
            self.vrrp_errors["vrid-errors"] += 1
            return
        router.receive(received, self.clock())
        self._after_vrrp()

    def on_link_change(self, linux_name: str, up: bool) -> None:
        now = self.clock()
        log.info("link %s %s", linux_name, "up" if up else "down")
        for router in self.vrrp.values():
            if self.linux_name[router.group.interface] == linux_name:
                if not up:
                    router.shutdown(now)
                elif router.group.recover_delay:
                    asyncio.get_running_loop().call_later(
                        router.group.recover_delay, self._recovered, router)
                else:
                    router.startup(now)
            for track in router.group.tracks:
                if self.linux_name[track.interface] == linux_name:
                    router.link_changed(track.interface, up, now)
        self._after_vrrp()

    def _recovered(self, router: VrrpRouter) -> None:
        if self._monitor is None or self._monitor.state.get(
                self.linux_name[router.group.interface], True):
            router.startup(self.clock())
            self._after_vrrp()

    def _after_vrrp(self) -> None:
        """Send what the routers queued, act on their state changes, follow roles."""
        for _ in range(4):  # roles may open a preemption gate, which changes a state
            self._vrrp_output()
            self.backup.update_roles(self.clock())
            if not any(r.outgoing or r.events for r in self.vrrp.values()):
                break
        self._flush_channels()
        self._arm_timer()

    def _vrrp_output(self) -> None:
        for key, router in self.vrrp.items():
            link = self._links.get(self.linux_name[key[0]])
            for advertisement in router.outgoing:
                if link is not None:
                    link.send(advertisement)
            router.outgoing.clear()
            for event in router.events:
                if isinstance(event, VrrpStateChanged):
                    log.info("VRRP %s vrid %d: %s -> %s (%s)", event.interface, event.vrid,
                             event.old.value, event.new.value, event.reason)
                    virtual = self._virtual.get(key)
                    if virtual is not None and event.new is State.MASTER:
                        virtual.add(router.virtual_addresses)
                    elif virtual is not None and event.old is State.MASTER:
                        virtual.remove(router.virtual_addresses)
                elif isinstance(event, VrrpNewMaster):
                    log.info("VRRP %s vrid %d: new master %s (%s)", event.interface, event.vrid,
                             IPv4Address(event.master_ip), event.reason)
            self.vrrp_events.extend(router.events)
            router.events.clear()
        del self.vrrp_events[:-1000]

    # --- the one timer ---

    def _next_deadline(self) -> float | None:
        deadlines = [self.dhcp.next_deadline(), self.backup.next_deadline()]
        deadlines += [r.next_deadline() for r in self.vrrp.values()]
        return min((d for d in deadlines if d is not None), default=None)

    def _arm_timer(self) -> None:
        deadline = self._next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        now = self.clock()
        dhcp_deadline = self.dhcp.next_deadline()
        if dhcp_deadline is not None and dhcp_deadline <= now:
            self.dhcp.handle_timer(now)
            self.backup.route_replies([], self.dhcp.events, now)  # expiries reach the peer
            self.dhcp.events.clear()
            self._commit()
        for router in self.vrrp.values():
            deadline = router.next_deadline()
            if deadline is not None and deadline <= now:
                router.handle_timer(now)
        self._send_replies(self.backup.handle_timer(now))
        self._after_vrrp()

    # --- life cycle ---

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        direct = [i.linux_name for i in self.config.interfaces if i.dhcp_server]
        self.sockets = DhcpSockets(loop, self.on_dhcp_batch, direct, port=self.dhcp_port)
        self._start_vrrp(loop)
        for name, channel in self.backup.channels.items():
            connector = ChannelConnector(loop, self.config.rbs_service(name), channel,
                                         self.on_channel_activity, self.clock)
            self.connectors[name] = connector
            await connector.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopped.set)
        self._arm_timer()
        log.info("serving DHCP on port %d (direct on %s), %d leases loaded; %d VRRP group(s)",
                 self.dhcp_port, ", ".join(direct) or "no interface", len(self.dhcp.table),
                 len(self.vrrp))
        try:
            await self._stopped.wait()
        finally:
            self.close()

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        """Stop cleanly: a VRRP master says priority 0 and drops its virtual IPs."""
        now = self.clock()
        for router in self.vrrp.values():
            router.shutdown(now)
        self._after_vrrp()
        if self._timer is not None:
            self._timer.cancel()
        for connector in self.connectors.values():
            connector.close()
        for link in self._links.values():
            link.close()
        self._links.clear()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        self._commit()
        self.journal.close()
        log.info("stopped")
