"""The asyncio shell of one device: sockets, one timer, the journal in line.

Everything a device decides is in the sans-IO ``nefeature.core.DeviceCore``;
this module only moves bytes and time in and out of it:

* DHCP datagrams (UDP, and AF_PACKET on directly served interfaces), VRRP
  advertisements (a raw socket per interface, or the emulated LAN of the
  demo), the remote backup TCP connections and the kernel's link events go
  in as the core's inputs, stamped with the monotonic and the wall clock;
* the core's outputs go out: datagrams, channel bytes, virtual addresses
  on the interfaces, journal writes (in line: one append to the journal's
  log, whose folding into SQLite runs in the journal's own process), links
  to watch, and events to log and to notify over NETCONF;
* one ``call_at`` timer for the core's next deadline.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from nefeature import service, slowtrace
from nefeature.backup.transport import ChannelConnector
from nefeature.config.model import DeviceConfig, build_device_config
from nefeature.core import (
    ChannelsChanged,
    CloseChannel,
    DeviceCore,
    Notify,
    SendChannel,
    SendDhcp,
    SendVrrp,
    VirtualAddressesChanged,
    WatchLinks,
    WriteJournal,
)
from nefeature.datastore.datastores import Datastores
from nefeature.datastore.errors import NetconfError
from nefeature.datastore.startup import load_startup, save_startup
from nefeature.datastore.validation import ValidatedConfig
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.server import SERVER_PORT, Received, Reply
from nefeature.dhcp.transport import DhcpSockets
from nefeature.eventlog import log_event
from nefeature.linkstate import LinkMonitor, link_is_up
from nefeature.vrrp.transport import (
    EmulatedVrrpLink,
    NoVirtualAddresses,
    RawVrrpLink,
    VirtualAddresses,
    remove_leftovers,
)

log = logging.getLogger("nefeature")

GC_FREEZE_INTERVAL = 10.0  # seconds between moving survivors out of the collector's way
JOURNAL_RETRY = 0.1  # seconds before a failed journal write is tried again, doubling...
JOURNAL_RETRY_MAX = 5.0  # ... up to this
#: Leases the table may gain from the peer before they are moved out of the collector's way
#: too: fewer than make a young pass (50,000 new objects, about 20,000 leases), so none runs
#: during a batch backup (each took 4-16 ms, for nothing: the leases live on).
GC_FREEZE_GROWTH = 5_000


@dataclass(frozen=True)
class NetconfSettings:
    host: str
    port: int
    passwords: dict[str, str]
    keys: dict[str, list]


class Device:
    """A running device (``nefeature run``)."""

    def __init__(self, validated: ValidatedConfig, state_dir: str | Path,
                 dhcp_port: int = SERVER_PORT, emulated_lan: tuple[str, int] | None = None,
                 netconf: NetconfSettings | None = None, relay_port: int = SERVER_PORT,
                 startup_file: str | Path | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.startup_file = None if startup_file is None else Path(startup_file)  # for SIGHUP
        self.netconf_settings = netconf
        self.netconf_server = None
        self.netconf = None  # the NetconfHandler once the server runs
        self.datastores = Datastores(validated, self.apply_config,
                                     lambda explicit: save_startup(self.state_dir, explicit),
                                     startup=load_startup(self.state_dir))
        self.emulated_lan = emulated_lan
        self.dhcp_port = dhcp_port
        self.journal = LeaseJournal(self.state_dir / "leases.sqlite")
        gc.collect()
        gc.disable()  # a million leases load in half the time without the collector's passes
        try:
            self.core = DeviceCore(build_device_config(validated.raw), self.journal.load(),
                                   now=time.monotonic(), wall=time.time(),
                                   synced_until=self.journal.load_synced_until(),
                                   splits=self.journal.load_splits())
        finally:
            gc.freeze()  # the loaded table, out of the collector's way (a pass: 0.3 s a million)
            gc.enable()
        self.journal.fold_in_background()  # once loaded: its start takes no CPU from the load
        self.core.dhcp.relay_port = relay_port
        self._closed = False
        self.connectors: dict[str, ChannelConnector] = {}
        self.recent_events: list = []  # the last engine events, for the memory probe
        # On the emulated LAN links exist only here: all up, SIGUSR1 cuts the tracked
        # ones and SIGUSR2 restores them (what `make demo` does to DeviceA's uplink).
        self.emulated_links: dict[str, bool] = {}
        self.sockets: DhcpSockets | None = None
        self._links: dict[str, RawVrrpLink | EmulatedVrrpLink] = {}
        self._virtual: dict[tuple[str, int], VirtualAddresses | NoVirtualAddresses] = {}
        self._monitor: LinkMonitor | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._freeze_timer: asyncio.TimerHandle | None = None
        self._failed_write: WriteJournal | None = None  # tried again by _write_retry
        self._write_retry: asyncio.TimerHandle | None = None
        self._write_failures = 0  # in a row
        self._dropped_while_failing = 0  # DHCP datagrams not taken meanwhile
        self._write_failing_since = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()
        self._frozen_table_size = len(self.core.dhcp.table)  # at the last gc.freeze()
        self._receiving_batch = False  # the journal's folding is held for a batch backup
        limit = slowtrace.threshold()
        self._trace = None if limit is None else slowtrace.SlowTrace(limit)

    # what the management plane reads
    config = property(lambda self: self.core.config)
    dhcp = property(lambda self: self.core.dhcp)
    vrrp = property(lambda self: self.core.vrrp)
    backup = property(lambda self: self.core.backup)
    vrrp_errors = property(lambda self: self.core.vrrp_errors)

    @staticmethod
    def clock() -> float:
        return time.time()

    # --- inputs ---

    def _input(self, method, *args) -> None:
        """Give the core an input, then carry out what it asks for."""
        trace = self._trace
        if trace is None:
            method(*args, time.monotonic(), time.time())
            self._drain()
            return
        started, cpu, before = time.perf_counter(), time.thread_time(), len(self.core.dhcp.table)
        method(*args, time.monotonic(), time.time())
        self._drain()
        trace.input_done(method.__name__, started, cpu, before, len(self.core.dhcp.table))

    def on_dhcp_batch(self, batch: list[Received]) -> None:
        if self._failed_write is not None:
            # The journal cannot be written: as a process blocked on its disk, the device
            # takes no DHCP, so nothing gathers that could not be acknowledged anyway.
            self._dropped_while_failing += len(batch)
            return
        if self._trace is not None:
            self._trace.received(batch)
        self._input(self.core.dhcp_received, batch)

    def on_vrrp_datagram(self, linux_name: str, datagram: bytes) -> None:
        self._input(self.core.vrrp_received, linux_name, datagram)

    # from the ChannelConnectors
    def channel_connected(self, service: str) -> None:
        self._input(self.core.channel_connected, service)

    def channel_received(self, service: str, data: bytes) -> None:
        self._input(self.core.channel_received, service, data)
        self._after_batch_input()

    def channel_lost(self, service: str, reason: str) -> None:
        self._input(self.core.channel_lost, service, reason)
        self._after_batch_input()

    def batch_step(self, service: str) -> None:
        self._input(self.core.batch_step, service)
        self._after_batch_input()

    def _after_batch_input(self) -> None:
        """What a batch backup arriving asks of the process: no collector passes over the
        leases it adds by the hundred thousand a second (they would hold the acks back:
        90 ms seen), and no folding of the journal until it is in (``hold_folding``)."""
        if len(self.core.dhcp.table) >= self._frozen_table_size + GC_FREEZE_GROWTH:
            self._freeze_heap_now()
        receiving = self.core.receiving_batch()
        if receiving != self._receiving_batch:
            self._receiving_batch = receiving
            self.journal.hold_folding(receiving)

    def channel_is_up(self, service: str) -> bool:
        return self.core.channel_is_up(service)

    def on_link_change(self, linux_name: str, up: bool) -> None:
        log.info("link %s %s", linux_name, "up" if up else "down")
        if up and not self.emulated_lan:
            self._open_links()  # the interface may have just appeared
        self._input(self.core.link_changed, linux_name, up)

    def set_emulated_tracked_links(self, up: bool) -> None:
        """Emulated LAN only: every tracked link goes down (or up), as a cable would."""
        tracked = {self.core.linux_name[t.interface] for r in self.core.vrrp.values()
                   for t in r.group.tracks}
        for name in sorted(tracked):
            if self.emulated_links.get(name, True) != up:
                self.emulated_links[name] = up
                self.on_link_change(name, up)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._input(self.core.handle_timer)
        deadline = self.datastores.next_deadline()
        if deadline is not None and deadline <= self.clock():
            log.warning("confirmed commit not confirmed in time: rolling back")
            self.datastores.handle_timer(self.clock())
        self._arm_timer()

    # --- outputs ---

    def _drain(self) -> None:
        core = self.core
        replies: list[Reply] = []  # sent together, before any other kind of output
        while (output := core.next_event()) is not None:
            kind = type(output)
            if kind is SendDhcp:
                replies.append(output.reply)
                if self._trace is not None:
                    self._trace.sent(output.reply)
                continue
            if replies:
                self._send_replies(replies)
                replies = []
            if kind is WriteJournal:
                self._write(output)
            elif kind is SendChannel:
                connector = self.connectors.get(output.service)
                if connector is not None:
                    connector.write(output.data)
            elif kind is SendVrrp:
                link = self._links.get(output.linux_name)
                if link is not None:
                    link.send(output.advertisement)
            elif kind is VirtualAddressesChanged:
                self._set_virtual(output)
            elif kind is CloseChannel:
                log.warning("remote backup %s: %s", output.service, output.reason)
                connector = self.connectors.get(output.service)
                if connector is not None:
                    connector.drop()
            elif kind is Notify:
                self._on_event(output.event)
            elif kind is WatchLinks:
                self._watch(output.names)
            elif kind is ChannelsChanged:
                self._connect_channels(output.services)
        if replies:
            self._send_replies(replies)
        for name, connector in self.connectors.items():
            if core.batch_pending(name):
                connector.pace_batch()
        self._arm_timer()

    def _send_replies(self, replies: list[Reply]) -> None:
        if self.sockets is not None:
            self.sockets.send(replies)

    def _write(self, output: WriteJournal) -> None:
        """Run a journal write in line: one append to the log, a few microseconds, so the
        ACKs waiting for it leave in this same turn of the loop.  What arrives while it
        runs gathers in the core for the next (group commit).

        A write that fails (a full disk, an I/O error) is tried again, after
        ``JOURNAL_RETRY`` doubling up to ``JOURNAL_RETRY_MAX``, for as long as it
        fails: meanwhile the core holds its DHCPACKs and its leases' updates for the
        peer, and the device takes no DHCP (``on_dhcp_batch``), as a process blocked on
        its disk would not.  Nothing is acknowledged that is not on disk, and nothing is
        lost once there is room."""
        started = time.perf_counter() if self._trace is not None else 0.0
        try:
            self.journal.commit(output.changes, output.synced_until, output.splits)
        except OSError as error:
            self._write_failed(output, error)
            return
        if self._trace is not None:
            self._trace.journal_s += time.perf_counter() - started
        if self._write_failures:
            log.warning("lease journal: written again after %.1f s and %d failed attempts; "
                        "%d DHCP datagrams were not taken meanwhile",
                        time.monotonic() - self._write_failing_since, self._write_failures,
                        self._dropped_while_failing)
            self._write_failures = self._dropped_while_failing = 0
        self.core.journal_committed(output.write_id, time.monotonic(), time.time())

    def _write_failed(self, output: WriteJournal, error: OSError) -> None:
        if not self._write_failures:
            self._write_failing_since = time.monotonic()
            log.error("lease journal: write failed (%s); the DHCPACKs and peer updates of "
                      "its %d lease change(s) wait, no DHCP is taken, and the write is tried "
                      "again until it succeeds", error, len(output.changes))
        self._write_failures += 1
        self._failed_write = output
        if self._loop is not None:
            delay = min(JOURNAL_RETRY * 2 ** (self._write_failures - 1), JOURNAL_RETRY_MAX)
            self._write_retry = self._loop.call_later(delay, self._retry_write)

    def _retry_write(self) -> None:
        self._write_retry = None
        output, self._failed_write = self._failed_write, None
        if output is not None:
            self._write(output)
            self._drain()

    def _set_virtual(self, output: VirtualAddressesChanged) -> None:
        virtual = self._virtual.get(output.key)
        if virtual is None:
            virtual = self._virtual[output.key] = (
                NoVirtualAddresses() if self.emulated_lan or output.interface_address is None
                else VirtualAddresses(output.linux_name, output.interface_address))
        if output.present:
            virtual.add(output.addresses, output.virtual_mac)
        else:
            virtual.remove(output.addresses)
        if output.group_gone:
            del self._virtual[output.key]
            virtual.close()

    def _watch(self, names: frozenset[str]) -> None:
        if self.emulated_lan:
            for name in names:
                self.emulated_links.setdefault(name, True)
        elif self._monitor is None:
            self._monitor = LinkMonitor(self._loop, names, self.on_link_change)
        else:
            self._monitor.watch(names)
        self._open_links()

    def _link_states(self, config: DeviceConfig | None = None) -> dict[str, bool]:
        """Up or down, now, for every link the configuration's VRRP groups use."""
        config = config or self.core.config
        linux = {i.name: i.linux_name for i in config.interfaces}
        names = {linux[g.interface] for g in config.vrrp_groups}
        names |= {linux[t.interface] for g in config.vrrp_groups for t in g.tracks}
        if self.emulated_lan:
            return {name: self.emulated_links.get(name, True) for name in names}
        return {name: link_is_up(name) for name in names}

    def _open_links(self) -> None:
        """A VRRP socket per interface with groups; a missing one is reported, not fatal."""
        for router in self.core.vrrp.values():
            linux = self.core.linux_name[router.group.interface]
            if linux in self._links:
                continue
            receive = lambda data, name=linux: self.on_vrrp_datagram(name, data)  # noqa: E731
            try:
                self._links[linux] = (
                    EmulatedVrrpLink(self._loop, *self.emulated_lan, router.primary_address,
                                     receive)
                    if self.emulated_lan else
                    RawVrrpLink(self._loop, linux, router.primary_address, receive))
            except OSError as error:
                log.error("VRRP on %s: %s; its groups stay in Initialize until it appears",
                          linux, error)

    def _connect_channels(self, services) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.connectors = {}
        for rbs in services:
            connector = ChannelConnector(self._loop, rbs, self)
            self.connectors[rbs.name] = connector
            self._loop.create_task(connector.start())

    def _on_event(self, event) -> None:
        """Log an engine event and hand it to the NETCONF server for its notifications."""
        log_event(event)
        if self.netconf is not None:
            self.netconf.publish(event)
        self.recent_events.append(event)
        del self.recent_events[:-1000]

    # --- the one timer ---

    def _arm_timer(self) -> None:
        if self._loop is None:
            return
        deadline = self.core.next_deadline()
        confirm = self.datastores.next_deadline()  # wall clock
        if confirm is not None:
            confirm += time.monotonic() - time.time()
            if deadline is None or confirm < deadline:
                deadline = confirm
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        # loop.time() is time.monotonic() for asyncio's default and uvloop's loops
        self._timer = self._loop.call_at(deadline, self._on_timer)

    # --- life cycle ---

    def _freeze_heap(self) -> None:
        """Keep the garbage collector's full passes short (~50 ms stalls otherwise):
        what lives long (leases, the model) moves out of its way, again and again."""
        self._freeze_heap_now()
        self._freeze_timer = self._loop.call_later(GC_FREEZE_INTERVAL, self._freeze_heap)

    def _freeze_heap_now(self) -> None:
        gc.freeze()
        self._frozen_table_size = len(self.core.dhcp.table)

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        gc.collect()
        gc.set_threshold(50_000, 20, 20)  # fewer young passes at thousands of packets/s
        self._freeze_heap()
        if self._trace is not None:
            self._trace.start_ticker(loop)
            self.journal.trace = True
        direct = [i.linux_name for i in self.core.config.interfaces if i.dhcp_server]
        self.sockets = DhcpSockets(loop, self.on_dhcp_batch, direct, port=self.dhcp_port)
        if not self.emulated_lan:  # what a previous run that died as master left behind
            remove_leftovers({self.core.linux_name[name] for name, _ in self.core.vrrp})
        self._input(self.core.start, self._link_states())
        if self.netconf_settings is not None:
            from nefeature.netconf.server import start_server

            settings = self.netconf_settings
            self.netconf_server, self.netconf = start_server(
                loop, self, settings.host, settings.port, self.state_dir, settings.passwords,
                settings.keys)
            log.info("NETCONF over SSH on %s port %d", settings.host, self.netconf_server.port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopped.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_startup)
        if self.emulated_lan:
            loop.add_signal_handler(signal.SIGUSR1, self.set_emulated_tracked_links, False)
            loop.add_signal_handler(signal.SIGUSR2, self.set_emulated_tracked_links, True)
        log.info("serving DHCP on port %d (direct on %s), %d leases loaded; %d VRRP group(s)",
                 self.dhcp_port, ", ".join(direct) or "no interface",
                 len(self.core.dhcp.table), len(self.core.vrrp))
        service.notify("READY=1")
        try:
            await self._stopped.wait()
        finally:
            self.close()

    def stop(self) -> None:
        self._stopped.set()

    def reload_startup(self) -> bool:
        """SIGHUP: commit the startup configuration again (``nefeature.service``)."""
        reloaded = service.reload_startup(self.datastores, self.state_dir, self.startup_file)
        self._arm_timer()
        return reloaded

    def close(self) -> None:
        """Stop cleanly: a VRRP master says priority 0 and drops its virtual IPs; the
        journal gets what is pending, then the replies waiting for it leave, and the journal
        is folded and checkpointed."""
        service.notify("STOPPING=1")
        for timer in (self._timer, self._freeze_timer, self._write_retry):
            if timer is not None:
                timer.cancel()
        self._closed = True
        self._loop = None
        self._retry_write()  # a write still failing: one last try
        self.core.stop(time.monotonic(), time.time())
        self._drain()
        for connector in self.connectors.values():
            connector.close()
        if self.netconf_server is not None:
            self.netconf_server.close()
        for link in self._links.values():
            link.close()
        self._links.clear()
        for virtual in self._virtual.values():
            virtual.close()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        try:
            self.journal.close()
        except (OSError, sqlite3.Error) as error:  # a full disk: the log keeps every lease
            log.error("lease journal: not folded at stop (%s); the next start folds it", error)
        log.info("stopped")

    # --- management: what nefeature.netconf.device.ManagedDevice asks of a device ---

    def now(self) -> float:
        return time.time()

    def protocol_now(self) -> float:
        return time.monotonic()

    def channel_tcp_states(self) -> dict[str, str]:
        return {name: connector.tcp_state for name, connector in self.connectors.items()}

    def commit(self, session: int, confirmed: bool, timeout: int, persist: str | None,
               persist_id: str | None) -> None:
        self.datastores.commit(session, time.time(), confirmed, timeout, persist, persist_id)
        self._arm_timer()

    def cancel_commit(self, session: int, persist_id: str | None) -> None:
        self.datastores.cancel_commit(session, persist_id)

    def reset_statistics(self) -> None:
        self.core.reset_statistics()

    def reset_address_state(self, pool: str, start: int | None, end: int | None,
                            flag: str | None) -> int:
        count = self.core.reset_addresses(pool, start, end, flag, time.monotonic(), time.time())
        self._drain()
        return count

    def batch_backup_now(self, service: str) -> bool:
        started = bool(self.core.batch_backup_now(service, time.monotonic(), time.time()))
        self._drain()
        return started

    # --- live apply: the device's half of the two-phase commit ---

    def apply_config(self, old: DeviceConfig, new: DeviceConfig) -> None:
        """Prepare (every Linux interface the change needs exists, or operation-failed and
        nothing changes), then apply in the core, then the sockets for direct service."""
        for interface in new.interfaces:
            needed = interface.dhcp_server or any(g.interface == interface.name
                                                  for g in new.vrrp_groups)
            if needed and not self.emulated_lan:
                try:
                    socket.if_nametoindex(interface.linux_name)
                except OSError:
                    raise NetconfError(
                        "application", "operation-failed",
                        f"interface {interface.name}: Linux interface {interface.linux_name} "
                        "does not exist", path=f'/nefeature-interfaces:interfaces/interface'
                        f'[name="{interface.name}"]') from None
        changes = self.core.apply_config(old, new, time.monotonic(), time.time(),
                                         self._link_states(new))
        if not changes:
            return
        if self.sockets is not None:
            direct = sorted(i.linux_name for i in new.interfaces if i.dhcp_server)
            if direct != sorted(i.linux_name for i in old.interfaces if i.dhcp_server):
                self.sockets.close()
                self.sockets = DhcpSockets(self._loop, self.on_dhcp_batch, direct,
                                           port=self.dhcp_port)
        log.info("configuration applied: %d change(s)", changes)
        if self._loop is not None:
            self._drain()
