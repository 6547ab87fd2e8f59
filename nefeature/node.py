"""The asyncio shell of one device: sockets, one timer, the journal's thread.

Everything a device decides is in the sans-IO ``nefeature.core.DeviceCore``;
this module only moves bytes and time in and out of it:

* DHCP datagrams (UDP, and AF_PACKET on directly served interfaces), VRRP
  advertisements (a raw socket per interface, or the emulated LAN of the
  demo), the remote backup TCP connections and the kernel's link events go
  in as the core's inputs, stamped with the monotonic and the wall clock;
* the core's outputs go out: datagrams, channel bytes, virtual addresses
  on the interfaces, journal writes (in line, or on a thread of their own
  while a checkpoint holds the journal, so the loop gathers the next group
  commit meanwhile), links to watch, and events to log and to notify over
  NETCONF;
* one ``call_at`` timer for the core's next deadline.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from lxml import etree

from nefeature import service
from nefeature.backup.hotbackup import (
    STRICT_WAIT,
    BatchBackupDone,
    PeerUnresponsive,
    ProtectDown,
    RbpStateChanged,
)
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
from nefeature.datastore.startup import STARTUP_FILE, StartupTooNew, read_startup, write_startup
from nefeature.datastore.validation import ValidatedConfig, validate_config_text
from nefeature.dhcp.events import PoolThresholdExceeded
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.server import SERVER_PORT, Received
from nefeature.dhcp.transport import DhcpSockets
from nefeature.linkstate import LinkMonitor, link_is_up
from nefeature.vrrp.router import VrrpNewMaster, VrrpStateChanged
from nefeature.vrrp.transport import (
    EmulatedVrrpLink,
    NoVirtualAddresses,
    RawVrrpLink,
    VirtualAddresses,
)

log = logging.getLogger("nefeature")

GC_FREEZE_INTERVAL = 10.0  # seconds between moving survivors out of the collector's way


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
        self.datastores = Datastores(validated, self.apply_config, self._save_startup,
                                     startup=self._load_startup())
        self.datastores.commit_listeners.append(self._config_changed)
        self.emulated_lan = emulated_lan
        self.dhcp_port = dhcp_port
        self.journal = LeaseJournal(self.state_dir / "leases.sqlite")
        self.journal.checkpoint_in_background()
        gc.disable()  # a million leases load in half the time without the collector's passes
        try:
            self.core = DeviceCore(build_device_config(validated.raw), self.journal.load(),
                                   now=time.monotonic(), wall=time.time())
        finally:
            gc.enable()
        self.core.dhcp.relay_port = relay_port
        self._journal_thread = ThreadPoolExecutor(1, thread_name_prefix="lease-journal")
        self._writing: tuple[int, Future] | None = None  # the journal write in flight
        self._closed = False
        self.connectors: dict[str, ChannelConnector] = {}
        self.vrrp_events: list = []  # the last events, for the memory probe
        self.backup_events: list = []
        # On the emulated LAN links exist only here: all up, SIGUSR1 cuts the tracked
        # ones and SIGUSR2 restores them (what `make demo` does to DeviceA's uplink).
        self.emulated_links: dict[str, bool] = {}
        self.sockets: DhcpSockets | None = None
        self._links: dict[str, RawVrrpLink | EmulatedVrrpLink] = {}
        self._virtual: dict[tuple[str, int], VirtualAddresses | NoVirtualAddresses] = {}
        self._monitor: LinkMonitor | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = asyncio.Event()

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
        method(*args, time.monotonic(), time.time())
        self._drain()

    def on_dhcp_batch(self, batch: list[Received]) -> None:
        self._input(self.core.dhcp_received, batch)

    def on_vrrp_datagram(self, linux_name: str, datagram: bytes) -> None:
        self._input(self.core.vrrp_received, linux_name, datagram)

    # from the ChannelConnectors
    def channel_connected(self, service: str) -> None:
        self._input(self.core.channel_connected, service)

    def channel_received(self, service: str, data: bytes) -> None:
        self._input(self.core.channel_received, service, data)

    def channel_lost(self, service: str, reason: str) -> None:
        self._input(self.core.channel_lost, service, reason)

    def send_batch_page(self, service: str) -> None:
        self._input(self.core.send_batch_page, service)

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

    def _journal_done(self, write_id: int, future: Future) -> None:
        if self._closed:
            return
        self._writing = None
        future.result()  # a failed write stops the device: nothing is acknowledged after it
        self._input(self.core.journal_committed, write_id)

    # --- outputs ---

    def _drain(self) -> None:
        core = self.core
        while (output := core.next_event()) is not None:
            kind = type(output)
            if kind is SendDhcp:
                if self.sockets is not None:
                    self.sockets.send(output.reply)
            elif kind is WriteJournal:
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
        for name, connector in self.connectors.items():
            if core.batch_pending(name):
                connector.pace_batch()
        self._arm_timer()

    def _write(self, output: WriteJournal) -> None:
        """Run a journal write: in line when the journal's write lock is free (one
        write() to the WAL, tens of microseconds: the ACKs leave in this same turn of
        the loop), else on the journal thread, which waits for the checkpoint holding
        the lock while the loop goes on serving.  Either way one write is in flight, and
        what arrives meanwhile gathers in the core for the next (group commit)."""
        if self.journal.try_commit(output.changes):
            self.core.journal_committed(output.write_id, time.monotonic(), time.time())
            return
        if self._loop is None:  # not running (start-up, shutdown): wait in line
            self.journal.commit(output.changes)
            self.core.journal_committed(output.write_id, time.monotonic(), time.time())
            return
        loop = self._loop
        future = self._journal_thread.submit(self.journal.commit, output.changes)
        self._writing = (output.write_id, future)
        future.add_done_callback(lambda future, write_id=output.write_id:
                                        loop.call_soon_threadsafe(self._journal_done,
                                                                  write_id, future))

    def _set_virtual(self, output: VirtualAddressesChanged) -> None:
        virtual = self._virtual.get(output.key)
        if virtual is None:
            virtual = self._virtual[output.key] = (
                NoVirtualAddresses() if self.emulated_lan or output.interface_address is None
                else VirtualAddresses(output.linux_name, output.interface_address))
        (virtual.add if output.present else virtual.remove)(output.addresses)

    def _watch(self, names: frozenset[str]) -> None:
        if self.emulated_lan:
            for name in names:
                self.emulated_links.setdefault(name, True)
        elif self._monitor is None:
            self._monitor = LinkMonitor(self._loop, names, self.on_link_change)
        else:
            self._monitor.watch(names)
        self._open_links()

    def _link_states(self) -> dict[str, bool]:
        names = {self.core.linux_name[r.group.interface] for r in self.core.vrrp.values()}
        names |= {self.core.linux_name[t.interface] for r in self.core.vrrp.values()
                  for t in r.group.tracks}
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
        for service in services:
            connector = ChannelConnector(self._loop, service, self)
            self.connectors[service.name] = connector
            self._loop.create_task(connector.start())

    def _on_event(self, event) -> None:
        """Log an engine event and send its NETCONF notification."""
        if isinstance(event, VrrpStateChanged):
            log.info("VRRP %s vrid %d: %s -> %s (%s)", event.interface, event.vrid,
                     event.old.value, event.new.value, event.reason)
        elif isinstance(event, VrrpNewMaster):
            log.info("VRRP %s vrid %d: new master %s (%s)", event.interface, event.vrid,
                     IPv4Address(event.master_ip), event.reason)
            self._notify("nefeature-vrrp", "vrrp-new-master-event", [
                ("interface", event.interface), ("vrid", str(event.vrid)),
                ("master-ip-address", str(IPv4Address(event.master_ip))),
                ("new-master-reason", event.reason)])
        elif isinstance(event, PoolThresholdExceeded):
            log.warning("pool %s: %d of %d addresses in use (threshold %d)", event.pool,
                        event.allocated, event.total, event.threshold_addresses)
            self._notify("nefeature-dhcp-server", "address-pool-utilization-threshold-exceeded", [
                ("pool-name", event.pool), ("total-pool-addresses", str(event.total)),
                ("max-allocated-addresses", str(event.threshold_addresses)),
                ("allocated-address-count", str(event.allocated))])
        elif isinstance(event, ProtectDown):
            log.info("remote backup %s: %s (%s)", event.service,
                     "protected: peer connected" if event.resumed else "protect down",
                     event.reason)
            self._notify("nefeature-rbs", "rbs-protect-down-resume" if event.resumed
                         else "rbs-protect-down", [("rbs-name", event.service),
                                                    ("protect-type", "dhcp-server"),
                                                    ("reason", event.reason)])
        elif isinstance(event, PeerUnresponsive):
            log.warning("remote backup %s: the peer acknowledged nothing for %.1f s: %d "
                        "DHCPACK(s) sent without its copy", event.service, STRICT_WAIT,
                        event.replies)
        elif isinstance(event, BatchBackupDone):
            log.info("remote backup profile %s: batch backup of %d leases %s", event.profile,
                     event.leases, "sent" if event.sent else "received")
        elif isinstance(event, RbpStateChanged):
            log.info("remote backup profile %s: %s -> %s", event.profile, event.old, event.new)
            self._notify("nefeature-rbs", "rbp-state-change", [
                ("profile-name", event.profile), ("old-state", event.old),
                ("new-state", event.new), ("reason", event.reason)])
        events = self.vrrp_events if isinstance(event, (VrrpStateChanged, VrrpNewMaster)) \
            else self.backup_events
        events.append(event)
        del events[:-1000]

    # --- the one timer ---

    def _arm_timer(self) -> None:
        if self._loop is None:
            return
        deadlines = [self.core.next_deadline()]
        confirm = self.datastores.next_deadline()  # wall clock
        if confirm is not None:
            deadlines.append(confirm - time.time() + time.monotonic())
        deadline = min((d for d in deadlines if d is not None), default=None)
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
        gc.freeze()
        self._loop.call_later(GC_FREEZE_INTERVAL, self._freeze_heap)

    async def run(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        gc.collect()
        gc.set_threshold(50_000, 20, 20)  # fewer young passes at thousands of packets/s
        self._freeze_heap()
        direct = [i.linux_name for i in self.core.config.interfaces if i.dhcp_server]
        self.sockets = DhcpSockets(loop, self.on_dhcp_batch, direct, port=self.dhcp_port)
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
        is checkpointed."""
        service.notify("STOPPING=1")
        if self._timer is not None:
            self._timer.cancel()
        self._closed = True
        self._loop = None  # from here on, journal writes happen in line
        if self._writing is not None:
            write_id, future = self._writing
            future.result()
            self.core.journal_committed(write_id, time.monotonic(), time.time())
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
        self._journal_thread.shutdown()
        self.journal.close()
        log.info("stopped")

    # --- management (NETCONF): called on the loop thread ---

    def _notify(self, module: str, name: str, leaves: list[tuple[str, str]]) -> None:
        if self.netconf is None:
            return
        from nefeature.datastore.schema import namespaces

        namespace = namespaces()[module]
        element = etree.Element(f"{{{namespace}}}{name}", nsmap={None: namespace})
        for leaf, value in leaves:
            etree.SubElement(element, f"{{{namespace}}}{leaf}").text = value
        self.netconf.notify(element)

    def _config_changed(self, session: int, datastore: str) -> None:
        """RFC 6470 netconf-config-change after every change of running."""
        if self.netconf is None:
            return
        namespace = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
        element = etree.Element(f"{{{namespace}}}netconf-config-change", nsmap={None: namespace})
        changed_by = etree.SubElement(element, f"{{{namespace}}}changed-by")
        session_object = self.netconf.sessions.get(session)
        etree.SubElement(changed_by, f"{{{namespace}}}username").text = \
            getattr(session_object, "username", None) or "system"
        etree.SubElement(changed_by, f"{{{namespace}}}session-id").text = str(session)
        etree.SubElement(element, f"{{{namespace}}}datastore").text = datastore
        self.netconf.notify(element)

    def _load_startup(self) -> dict | None:
        path = self.state_dir / STARTUP_FILE
        if not path.exists():
            return None
        try:
            return validate_config_text(read_startup(path)).explicit
        except (NetconfError, StartupTooNew) as error:
            log.error("%s is not a valid configuration (%s): ignored", path, error)
            return None

    def _save_startup(self, explicit: dict) -> None:
        write_startup(self.state_dir, explicit)

    def config_tree(self, source: str, mode: str) -> dict:
        explicit = self.datastores.content(source)
        return explicit if mode in ("explicit",) else with_defaults(explicit)

    def state_tree(self, mode: str) -> dict:
        from nefeature.state import merge_trees, operational_state

        config = self.config_tree("running", mode)
        tcp_states = {name: c.tcp_state for name, c in self.connectors.items()}
        core = self.core
        state = operational_state(core.config, core.dhcp, core.vrrp, core.vrrp_errors,
                                  self.clock(), core.backup, tcp_states)
        return merge_trees(copy.deepcopy(config), state)

    def commit(self, session: int, confirmed: bool, timeout: int, persist: str | None,
               persist_id: str | None) -> None:
        self.datastores.commit(session, self.clock(), confirmed, timeout, persist, persist_id)
        self._arm_timer()

    def cancel_commit(self, session: int, persist_id: str | None) -> None:
        self.datastores.cancel_commit(session, persist_id)

    def rpc_reset_statistics(self, session: int, operation) -> None:
        self.core.reset_statistics()
        return None

    def rpc_reset_address_state(self, session: int, operation):
        from nefeature.datastore.schema import namespaces

        namespace = namespaces()["nefeature-dhcp-server"]

        def text(tag):
            child = operation.find(f"{{{namespace}}}{tag}")
            return None if child is None else (child.text or "").strip()

        pool = text("pool-name")
        if pool not in self.core.dhcp.pools:
            raise NetconfError("application", "data-missing", f"no pool {pool}",
                               app_tag="instance-required")
        start, end = text("start-ip-address"), text("end-ip-address")
        try:
            first = int(IPv4Address(start)) if start else None
            last = int(IPv4Address(end)) if end else None
        except ValueError as error:
            raise NetconfError("application", "invalid-value", str(error)) from None
        count = self.core.reset_addresses(pool, first, last, text("reset-flag"),
                                          time.monotonic(), time.time())
        self._drain()
        output = etree.Element(f"{{{namespace}}}reset-count", nsmap={None: namespace})
        output.text = str(count)
        return output

    def rpc_batch_backup_now(self, session: int, operation) -> None:
        from nefeature.datastore.schema import namespaces

        namespace = namespaces()["nefeature-rbs"]
        element = operation.find(f"{{{namespace}}}rbs-name")
        name = None if element is None else (element.text or "").strip()
        if name not in self.core.channels:
            raise NetconfError("application", "data-missing",
                               f"no remote-backup-service {name} with a dhcp-server profile",
                               app_tag="instance-required")
        if not self.core.batch_backup_now(name, time.monotonic(), time.time()):
            raise NetconfError("application", "operation-failed",
                               f"remote-backup-service {name} is not connected: the batch "
                               "backup runs when the peer connects")
        self._drain()
        return None

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
        changes = self.core.apply_config(old, new, time.monotonic(), time.time())
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


def with_defaults(explicit: dict) -> dict:
    """The configuration with every default filled in (report-all)."""
    from yangson.enumerations import ContentType

    from nefeature.datastore.schema import data_model

    return data_model().from_raw(explicit).add_defaults(ContentType.config).raw_value()
