"""One device: configuration, lease journal, DHCP and VRRP engines and their sockets.

This is the asyncio shell around the sans-IO engines (DESIGN.md section 3).
It moves bytes between sockets and engines, turns engine output into side
effects (replies, advertisements, virtual addresses), and arms one timer
for the earliest deadline of any engine.

* DHCP: each batch of datagrams goes through the engine; offers leave at
  once, the lease changes of every batch within COMMIT_WINDOW are committed
  to the journal in one transaction, then their ACKs leave: no DHCPACK
  before its lease is on disk.
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
import copy
import gc
import logging
import signal
import time
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from nefeature.backup.hotbackup import (
    STRICT_WAIT,
    BatchBackupDone,
    HotBackup,
    PeerUnresponsive,
    ProtectDown,
    RbpStateChanged,
)
from nefeature.backup.transport import ChannelConnector
from nefeature.config.diff import diff_configs
from nefeature.config.model import DeviceConfig, build_device_config
from nefeature.datastore.datastores import Datastores
from nefeature.datastore.errors import NetconfError
from nefeature.datastore.validation import ValidatedConfig, validate_config_text
from nefeature.datastore.xmlform import to_xml
from lxml import etree
from nefeature.dhcp.events import PoolThresholdExceeded
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
    remove_leftovers,
)

log = logging.getLogger("nefeature")

STARTUP_FILE = "startup.xml"
COMMIT_WINDOW = 0.001  # seconds of lease bindings written in one SQLite transaction
GC_FREEZE_INTERVAL = 10.0  # seconds between moving survivors out of the collector's way


@dataclass(frozen=True)
class NetconfSettings:
    host: str
    port: int
    passwords: dict[str, str]
    keys: dict[str, list]

#: RFC 8347 global VRRP counters (errors not tied to one virtual router).
VRRP_GLOBAL_COUNTERS = ("checksum-errors", "version-errors", "vrid-errors", "ip-ttl-errors",
                        "packet-length-errors", "invalid-type-pkts-rcvd")


class Device:
    """A running device (``nefeature run``)."""

    def __init__(self, validated: ValidatedConfig, state_dir: str | Path,
                 dhcp_port: int = SERVER_PORT, emulated_lan: tuple[str, int] | None = None,
                 netconf: NetconfSettings | None = None, relay_port: int = SERVER_PORT,
                 clock=time.time) -> None:
        config = build_device_config(validated.raw)
        self.config = config
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.netconf_settings = netconf
        self.netconf_server = None
        self.netconf = None  # the NetconfHandler once the server runs
        self.datastores = Datastores(validated, self.apply_config, self._save_startup,
                                     startup=self._load_startup())
        self.datastores.commit_listeners.append(self._config_changed)
        self.emulated_lan = emulated_lan
        self.journal = LeaseJournal(self.state_dir / "leases.sqlite")
        self.journal.checkpoint_in_background()
        self.dhcp = DhcpServer(config, self.journal.load())
        self.dhcp.relay_port = relay_port
        # On the emulated LAN links exist only here: all up, SIGUSR1 cuts the tracked
        # ones and SIGUSR2 restores them (what `make demo` does to DeviceA's uplink).
        self.emulated_links: dict[str, bool] = {}
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
        self._after_commit: list = []  # ACKs waiting for the group commit
        self._commit_timer: asyncio.TimerHandle | None = None
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
        self._dhcp_notifications()
        self.dhcp.events.clear()
        # Offers and NAKs carry no binding: out now.  ACKs wait for the group commit,
        # which collects the bindings of every batch arriving within COMMIT_WINDOW.
        self._send_replies([r for r in leaving if not r.durable])
        self._after_commit.extend(r for r in leaving if r.durable)
        if self.dhcp.table.pending and self._commit_timer is None:
            self._commit_timer = asyncio.get_running_loop().call_later(
                COMMIT_WINDOW, self._group_commit)
        self._arm_timer()

    def _group_commit_now(self) -> None:
        if self._commit_timer is not None:
            self._commit_timer.cancel()
        self._group_commit()

    def _group_commit(self) -> None:
        """Journal first, then the peer's copy, then the ACKs that depended on them."""
        self._commit_timer = None
        self._commit()
        self._flush_channels()
        waiting, self._after_commit = self._after_commit, []
        self._send_replies(waiting)

    def _send_replies(self, replies) -> None:
        if self.sockets is not None:
            for reply in replies:
                self.sockets.send(reply)

    def _dhcp_notifications(self) -> None:
        for event in self.dhcp.events:
            if isinstance(event, PoolThresholdExceeded):
                log.warning("pool %s: %d of %d addresses in use (threshold %d)", event.pool,
                            event.allocated, event.total, event.threshold_addresses)
                self._notify("nefeature-dhcp-server",
                             "address-pool-utilization-threshold-exceeded", [
                                 ("pool-name", event.pool),
                                 ("total-pool-addresses", str(event.total)),
                                 ("max-allocated-addresses", str(event.threshold_addresses)),
                                 ("allocated-address-count", str(event.allocated))])

    # --- remote backup ---

    def on_channel_activity(self, service: str) -> None:
        """A channel received something, or its connection went away."""
        now = self.clock()
        leaving, applied = self.backup.on_channel_events(service, now)
        if applied:
            self._group_commit_now()  # the peer's leases are on our disk before we acknowledge
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
                log.info("remote backup profile %s: %s -> %s", event.profile, event.old,
                         event.new)
                self._notify("nefeature-rbs", "rbp-state-change", [
                    ("profile-name", event.profile), ("old-state", event.old),
                    ("new-state", event.new), ("reason", event.reason)])
        self.backup_events.extend(self.backup.events)
        self.backup.events.clear()
        del self.backup_events[:-1000]

    # --- VRRP ---

    def _ensure_link(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int],
                     router: VrrpRouter, group=None) -> None:
        """The interface's VRRP socket, the group's virtual addresses, link watching
        (of ``group``'s tracks when given: a change adds them)."""
        linux = self.linux_name[key[0]]
        self._open_link(loop, linux, router.primary_address)
        if key not in self._virtual:
            self._virtual[key] = (NoVirtualAddresses() if self.emulated_lan else
                                  VirtualAddresses(linux, self.config.interface(key[0]).address))
        watched = {linux} | {self.linux_name[t.interface] for t in (group or router.group).tracks}
        if self.emulated_lan:
            for name in watched:
                self.emulated_links.setdefault(name, True)
        elif self._monitor is None:
            self._monitor = LinkMonitor(loop, watched, self.on_link_change)
        else:
            self._monitor.watch(watched)

    def _open_link(self, loop: asyncio.AbstractEventLoop, linux: str, primary: int) -> bool:
        """The interface's VRRP socket; a missing interface is reported, not fatal."""
        if linux in self._links:
            return True
        receive = lambda data, name=linux: self.on_vrrp_datagram(name, data)  # noqa: E731
        try:
            self._links[linux] = (
                EmulatedVrrpLink(loop, *self.emulated_lan, primary, receive)
                if self.emulated_lan else RawVrrpLink(loop, linux, primary, receive))
        except OSError as error:
            log.error("VRRP on %s: %s; its groups stay in Initialize until it appears", linux,
                      error)
            return False
        return True

    def _vrrp_output_of(self, key: tuple[str, int], router: VrrpRouter) -> None:
        link = self._links.get(self.linux_name.get(key[0], ""))
        for advertisement in router.outgoing:
            if link is not None:
                link.send(advertisement)
        router.outgoing.clear()

    def _start_vrrp(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.emulated_lan:
            remove_leftovers({self.linux_name[name] for name, _ in self.vrrp})
        for key, router in self.vrrp.items():
            self._ensure_link(loop, key, router)
            if not router.is_owner:
                # A previous run that crashed as master left its virtual IPs behind;
                # a router holds them only while it is master (as keepalived does).
                self._virtual[key].remove(router.virtual_addresses)
        now = self.clock()
        for router in self.vrrp.values():
            for name in self._links_down(router.group):
                router.link_changed(name, False, now)
            if self._link_up(self.linux_name[router.group.interface]):
                router.startup(now)
        self._after_vrrp()

    def _links_down(self, group) -> set[str]:
        """The group's tracked interfaces whose links are down now."""
        return {t.interface for t in group.tracks
                if not self._link_up(self.linux_name[t.interface])}

    def _link_up(self, linux_name: str) -> bool:
        if self.emulated_lan:
            return self.emulated_links.get(linux_name, True)
        return link_is_up(linux_name)

    def set_emulated_tracked_links(self, up: bool) -> None:
        """Emulated LAN only: every tracked link goes down (or up), as a cable would."""
        tracked = {self.linux_name[t.interface] for r in self.vrrp.values()
                   for t in r.group.tracks}
        for name in sorted(tracked):
            if self.emulated_links.get(name, True) != up:
                self.emulated_links[name] = up
                self.on_link_change(name, up)

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
                if up and not self._open_link(asyncio.get_running_loop(), linux_name,
                                              router.primary_address):
                    continue
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
            self._vrrp_output_of(key, router)
            for event in router.events:
                if isinstance(event, VrrpStateChanged):
                    log.info("VRRP %s vrid %d: %s -> %s (%s)", event.interface, event.vrid,
                             event.old.value, event.new.value, event.reason)
                    virtual = self._virtual.get(key)
                    if virtual is not None and event.new is State.MASTER:
                        virtual.add(router.virtual_addresses, router.virtual_mac)
                    elif virtual is not None and event.old is State.MASTER:
                        virtual.remove(router.virtual_addresses)
                elif isinstance(event, VrrpNewMaster):
                    log.info("VRRP %s vrid %d: new master %s (%s)", event.interface, event.vrid,
                             IPv4Address(event.master_ip), event.reason)
                    self._notify("nefeature-vrrp", "vrrp-new-master-event", [
                        ("interface", event.interface), ("vrid", str(event.vrid)),
                        ("master-ip-address", str(IPv4Address(event.master_ip))),
                        ("new-master-reason", event.reason)])
            self.vrrp_events.extend(router.events)
            router.events.clear()
        del self.vrrp_events[:-1000]

    # --- the one timer ---

    def _next_deadline(self) -> float | None:
        deadlines = [self.dhcp.next_deadline(), self.backup.next_deadline(),
                     self.datastores.next_deadline()]
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
        deadline = self.datastores.next_deadline()
        if deadline is not None and deadline <= now:
            log.warning("confirmed commit not confirmed in time: rolling back")
            self.datastores.handle_timer(now)
        self._after_vrrp()

    # --- life cycle ---

    def _freeze_heap(self) -> None:
        """Keep the garbage collector's full passes short (issue 3: ~50 ms stalls).

        Leases and the objects of the model live for long; moving what exists
        now into the permanent generation keeps the collector from scanning it
        again on every full pass.  Repeated while running, so the table built
        under load is frozen too.
        """
        gc.freeze()
        asyncio.get_running_loop().call_later(GC_FREEZE_INTERVAL, self._freeze_heap)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        gc.collect()
        gc.set_threshold(50_000, 20, 20)  # fewer young passes at thousands of packets/s
        self._freeze_heap()
        direct = [i.linux_name for i in self.config.interfaces if i.dhcp_server]
        self.sockets = DhcpSockets(loop, self.on_dhcp_batch, direct, port=self.dhcp_port)
        self._start_vrrp(loop)
        for name, channel in self.backup.channels.items():
            connector = ChannelConnector(loop, self.config.rbs_service(name), channel,
                                         self.on_channel_activity, self.clock)
            self.connectors[name] = connector
            await connector.start()
        if self.netconf_settings is not None:
            from nefeature.netconf.server import start_server

            settings = self.netconf_settings
            self.netconf_server, self.netconf = start_server(
                loop, self, settings.host, settings.port, self.state_dir, settings.passwords,
                settings.keys)
            log.info("NETCONF over SSH on %s port %d", settings.host, self.netconf_server.port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopped.set)
        if self.emulated_lan:
            loop.add_signal_handler(signal.SIGUSR1, self.set_emulated_tracked_links, False)
            loop.add_signal_handler(signal.SIGUSR2, self.set_emulated_tracked_links, True)
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
        if self._commit_timer is not None:
            self._commit_timer.cancel()
        self._commit()
        if self.sockets is not None:
            self._send_replies(self._after_commit)
            self.sockets.close()
            self.sockets = None
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
            return validate_config_text(path.read_bytes()).explicit
        except NetconfError as error:
            log.error("%s is not a valid configuration (%s): ignored", path, error)
            return None

    def _save_startup(self, explicit: dict) -> None:
        data = etree.Element("{urn:ietf:params:xml:ns:netconf:base:1.0}config",
                             nsmap={None: "urn:ietf:params:xml:ns:netconf:base:1.0"})
        to_xml(explicit, data)
        path = self.state_dir / STARTUP_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(etree.tostring(data, pretty_print=True))
        temporary.replace(path)

    def config_tree(self, source: str, mode: str) -> dict:
        explicit = self.datastores.content(source)
        return explicit if mode in ("explicit",) else with_defaults(explicit)

    def state_tree(self, mode: str) -> dict:
        from nefeature.state import merge_trees, operational_state

        config = self.config_tree("running", mode)
        tcp_states = {name: c.tcp_state for name, c in self.connectors.items()}
        state = operational_state(self.config, self.dhcp, self.vrrp, self.vrrp_errors,
                                  self.clock(), self.backup, tcp_states)
        return merge_trees(copy.deepcopy(config), state)

    def commit(self, session: int, confirmed: bool, timeout: int, persist: str | None,
               persist_id: str | None) -> None:
        self.datastores.commit(session, self.clock(), confirmed, timeout, persist, persist_id)
        self._arm_timer()

    def cancel_commit(self, session: int, persist_id: str | None) -> None:
        self.datastores.cancel_commit(session, persist_id)

    def rpc_reset_statistics(self, session: int, operation) -> None:
        self.dhcp.statistics.reset()
        return None

    def rpc_reset_address_state(self, session: int, operation):
        from nefeature.datastore.schema import namespaces

        namespace = namespaces()["nefeature-dhcp-server"]

        def text(tag):
            child = operation.find(f"{{{namespace}}}{tag}")
            return None if child is None else (child.text or "").strip()

        pool = text("pool-name")
        if pool not in self.dhcp.pools:
            raise NetconfError("application", "data-missing", f"no pool {pool}",
                               app_tag="instance-required")
        start, end = text("start-ip-address"), text("end-ip-address")
        try:
            count = self.dhcp.reset_addresses(
                pool, int(IPv4Address(start)) if start else None,
                int(IPv4Address(end)) if end else None, text("reset-flag"))
        except ValueError as error:
            raise NetconfError("application", "invalid-value", str(error)) from None
        self._commit()
        output = etree.Element(f"{{{namespace}}}reset-count", nsmap={None: namespace})
        output.text = str(count)
        return output

    def rpc_batch_backup_now(self, session: int, operation) -> None:
        from nefeature.datastore.schema import namespaces

        namespace = namespaces()["nefeature-rbs"]
        element = operation.find(f"{{{namespace}}}rbs-name")
        name = None if element is None else (element.text or "").strip()
        if name not in self.backup.channels:
            raise NetconfError("application", "data-missing",
                               f"no remote-backup-service {name} with a dhcp-server profile",
                               app_tag="instance-required")
        if not self.backup.batch_backup_now(name, self.clock()):
            raise NetconfError("application", "operation-failed",
                               f"remote-backup-service {name} is not connected: the batch "
                               "backup runs when the peer connects")
        self._flush_channels()
        return None

    # --- live apply: the device's half of the two-phase commit ---

    def apply_config(self, old: DeviceConfig, new: DeviceConfig) -> None:
        """Apply a validated change to the running engines, all or nothing.

        Prepare: everything that can fail (interfaces for new VRRP groups and
        direct DHCP service must exist) is checked before anything changes;
        a failure raises operation-failed and leaves the device as it was.
        Apply: the DHCP engine takes the new pools (leases kept), VRRP groups
        are created, reconfigured in place or stopped, and remote backup is
        rebuilt when its configuration changed.
        """
        diff = diff_configs(old, new)
        if not diff:
            return
        import socket as _socket

        for interface in new.interfaces:
            needed = interface.dhcp_server or any(g.interface == interface.name
                                                  for g in new.vrrp_groups)
            if needed and not self.emulated_lan:
                try:
                    _socket.if_nametoindex(interface.linux_name)
                except OSError:
                    raise NetconfError(
                        "application", "operation-failed",
                        f"interface {interface.name}: Linux interface {interface.linux_name} "
                        "does not exist", path=f'/nefeature-interfaces:interfaces/interface'
                        f'[name="{interface.name}"]') from None
        now = self.clock()
        self.config = new
        self.linux_name = {i.name: i.linux_name for i in new.interfaces}
        self.dhcp.apply_config(new)
        self._apply_vrrp(diff, now)
        if diff.of("rbs_services") or diff.of("rbs_profiles") or any(
                c.old is None or c.new is None or c.old.backup_profile != c.new.backup_profile
                for c in diff.of("pools")):
            self._rebuild_backup(now)
        else:
            self.backup.config = new
        if self.sockets is not None:
            direct = sorted(i.linux_name for i in new.interfaces if i.dhcp_server)
            if direct != sorted(i.linux_name for i in old.interfaces if i.dhcp_server):
                loop = asyncio.get_running_loop()
                self.sockets.close()
                self.sockets = DhcpSockets(loop, self.on_dhcp_batch, direct, port=self.dhcp_port)
        log.info("configuration applied: %d change(s)", len(diff.changes))
        self._after_vrrp()

    def _apply_vrrp(self, diff, now: float) -> None:
        for change in diff.of("vrrp_groups"):
            key = change.key
            if change.kind == "deleted":
                router = self.vrrp.pop(key)
                was_master = router.state is State.MASTER
                router.shutdown(now)
                self._vrrp_output_of(key, router)
                virtual = self._virtual.pop(key, None)
                if virtual is not None:
                    if was_master:
                        virtual.remove(router.virtual_addresses)
                    virtual.close()
            elif change.kind == "created":
                interface = self.config.interface(change.new.interface)
                router = VrrpRouter(change.new, int(interface.address.ip))
                self.vrrp[key] = router
                self._ensure_link(asyncio.get_running_loop(), key, router)
                for name in self._links_down(change.new):
                    router.link_changed(name, False, now)
                if self._link_up(self.linux_name[change.new.interface]):
                    router.startup(now)
            else:
                router = self.vrrp[key]
                old_addresses = router.virtual_addresses
                self._ensure_link(asyncio.get_running_loop(), key, router, change.new)
                router.reconfigure(change.new, now, self._links_down(change.new))
                virtual = self._virtual.get(key)
                if virtual is not None and router.state is State.MASTER:
                    virtual.remove(set(old_addresses) - set(router.virtual_addresses))
                    virtual.add(router.virtual_addresses, router.virtual_mac)

    def _rebuild_backup(self, now: float) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.connectors.clear()
        self.dhcp.silent_pools.clear()
        self.dhcp.lease_time_limit = None
        self.backup = HotBackup(self.config, self.dhcp, self.vrrp, started=now)
        loop = asyncio.get_running_loop()
        for name, channel in self.backup.channels.items():
            connector = ChannelConnector(loop, self.config.rbs_service(name), channel,
                                         self.on_channel_activity, self.clock)
            self.connectors[name] = connector
            loop.create_task(connector.start())


def with_defaults(explicit: dict) -> dict:
    """The configuration with every default filled in (report-all)."""
    from yangson.enumerations import ContentType

    from nefeature.datastore.schema import data_model

    return data_model().from_raw(explicit).add_defaults(ContentType.config).raw_value()
