"""One device as a sans-IO object: the engines, the hot-backup state machine, the ACK gate.

:class:`DeviceCore` owns the DHCP engine, one VRRP router per group, one
backup channel per remote-backup-service and the hot-backup engine, and
wires them together.  It never touches a socket, a clock or a disk: the
asyncio shell (``nefeature.node``) and the simulator (``nefeature.sim``)
feed it inputs and carry out its outputs, as aioquic's ``QuicConnection``
is driven.

Inputs (each takes ``now``, monotonic seconds, for protocol timers, and
``wall``, seconds since the epoch, for lease times): ``start``,
``dhcp_received``, ``vrrp_received``, ``link_changed``,
``channel_connected`` / ``channel_received`` / ``channel_lost``,
``journal_committed``, ``apply_config``, ``handle_timer`` at
``next_deadline()``, and the device RPCs.

Outputs, taken with ``next_event()`` until it returns None: datagrams
(:class:`SendDhcp`, :class:`SendVrrp`), channel bytes (:class:`SendChannel`,
:class:`CloseChannel`), virtual-address changes (:class:`VirtualAddressesChanged`),
journal writes (:class:`WriteJournal`), links to watch (:class:`WatchLinks`),
changed channel endpoints (:class:`ChannelsChanged`) and engine events for the
management plane (:class:`Notify`).

The path of one lease: a DHCPREQUEST goes through the DHCP engine, which
changes its table and emits a lease event; the hot-backup engine turns the
event into a record for the peer; the table's pending changes become one
journal write (leader/follower group commit: one write in flight, the next
collects everything that arrived meanwhile); the record waits in its channel
until that write is committed (``_hold_records``: a peer never holds a lease
its grantor could lose in a crash); the DHCPACK waits in the ACK gate
(``_gate_release``) until its write is committed and, in strict mode, the
peer has acknowledged the record.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from ipaddress import IPv4Interface

from nefeature.backup.channel import BackupChannel, ChannelState
from nefeature.backup.hotbackup import (
    AllowPreempt,
    ApplyPeerLeases,
    BalanceSplits,
    CapLeaseTimes,
    HotBackup,
    PeerHasExpiry,
    RestrictAllocation,
    SaveSplits,
    ServePools,
    SetSplit,
)
from nefeature.config.diff import diff_configs
from nefeature.config.model import DeviceConfig, RbsService
from nefeature.dhcp.events import LeaseEvent
from nefeature.dhcp.leases import Lease
from nefeature.dhcp.server import DhcpServer, Received, Reply
from nefeature.vrrp.packet import Advertisement, VrrpPacketError, parse_ipv4
from nefeature.vrrp.router import State, VrrpSecondMaster, VrrpRouter, VrrpStateChanged

#: Seconds ``synced_until`` must move before a journal write records it again.
SYNC_RECORD_STEP = 1.0

_ROLES = {State.MASTER: "master", State.BACKUP: "slave", State.INITIALIZE: "init"}

#: RFC 8347 global VRRP counters (errors not tied to one virtual router).
VRRP_GLOBAL_COUNTERS = ("checksum-errors", "version-errors", "vrid-errors", "ip-ttl-errors",
                        "packet-length-errors", "invalid-type-pkts-rcvd")


# --- outputs ---

@dataclass(frozen=True, slots=True)
class SendDhcp:
    reply: Reply
    unconfirmed: bool = False  # a strict-mode DHCPACK that left without the peer's copy


@dataclass(frozen=True, slots=True)
class SendVrrp:
    linux_name: str
    advertisement: Advertisement


@dataclass(frozen=True, slots=True)
class SendChannel:
    service: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseChannel:
    service: str
    reason: str


@dataclass(frozen=True, slots=True)
class VirtualAddressesChanged:
    """Add (``present``) or withdraw the group's virtual addresses on its interface."""

    key: tuple[str, int]
    linux_name: str
    interface_address: IPv4Interface | None
    addresses: tuple[int, ...]
    present: bool
    virtual_mac: bytes | None = None  # RFC 5798 7.3's, or None: the interface's own
    group_gone: bool = False  # the group was deleted: its transport can be closed


@dataclass(frozen=True, slots=True)
class WriteJournal:
    """Write these changes (address -> lease, None: delete) in one transaction, then
    call ``journal_committed(write_id)``."""

    write_id: int
    changes: dict[int, Lease | None]
    synced_until: dict[str, float] | None = None  # to record too (journal_info), when it moved
    splits: dict[str, int] | None = None  # pool -> split of its shares, to record too


@dataclass(frozen=True, slots=True)
class WatchLinks:
    """The Linux interfaces whose up/down state the core needs (``link_changed``)."""

    names: frozenset[str]


@dataclass(frozen=True, slots=True)
class ChannelsChanged:
    """The remote-backup-services to keep connections for (after a configuration change)."""

    services: tuple[RbsService, ...]


@dataclass(frozen=True, slots=True)
class Notify:
    """An engine event for logs and NETCONF notifications."""

    event: object


@dataclass(slots=True)
class _Gated:
    """A DHCPACK in the gate: it needs journal write ``write_id``, and in strict
    mode the peer's acknowledgement of ``seq`` on ``service``."""

    reply: Reply
    write_id: int
    service: str | None = None
    seq: int = 0


class DeviceCore:
    """One device, sans-IO (see the module docstring)."""

    def __init__(self, config: DeviceConfig, leases=(), *, now: float, wall: float,
                 random_bytes=None, synced_until: dict[str, float] | None = None,
                 splits: dict[str, int] | None = None) -> None:
        self.config = config
        self._wall_offset = wall - now
        self._random_bytes = random_bytes
        self._outputs: deque = deque()
        self.links: dict[str, bool] = {}
        self.vrrp_errors = dict.fromkeys(VRRP_GLOBAL_COUNTERS, 0)
        self.dhcp = DhcpServer(config, leases)
        self.linux_name = {i.name: i.linux_name for i in config.interfaces}
        self.vrrp: dict[tuple[str, int], VrrpRouter] = {}
        for group in config.vrrp_groups:
            self.vrrp[group.key] = VrrpRouter(group, int(config.interface(group.interface)
                                                         .address.ip))
        self._next_write_id = 1
        self._write_in_flight: int | None = None
        self.committed_write = 0  # every write up to this one is on disk
        # Records queued for the peer, released once a write is on disk: (write id,
        # [(channel, last record of that write's changes)]), in write order.
        self._records_held: deque[tuple[int, list[tuple[BackupChannel, int]]]] = deque()
        # DHCPACKs held, per service they wait for (None: the local journal alone), in the
        # order they came: write ids never decrease, nor do one service's sequence numbers.
        self._gate: dict[str | None, deque[_Gated]] = {}
        self._closing: set[str] = set()  # channels whose connection we asked to drop
        self._acknowledge_after: dict[str, int] = {}  # service -> write before acking the peer
        self._journaled_sync = dict(synced_until or {})  # HotBackup.synced_until on our disk
        self._journaled_splits = dict(splits or {})  # pool -> split on our disk
        self._splits_to_save: dict[str, int] = {}
        self._splits_in_write: dict[int, dict[str, int]] = {}
        self.backup = self._new_backup(now, dict(self._journaled_sync), self._journaled_splits)
        # what it queued is read from the journal: released at once
        self._hold_records(self._journal_pending())
        # Before any input the DHCP engine takes the hot-backup engine's word (silent, its
        # own share only, the split on disk), not what the configuration alone would say.
        self._backup_commands(now)
        self.dhcp.handle_timer(wall)  # leases that ran out while the device was down

    def _new_backup(self, now: float, synced_until: dict[str, float],
                    splits: dict[str, int]) -> HotBackup:
        backup = HotBackup(self.config, started=now, random_bytes=self._random_bytes,
                           table=self.dhcp.table, wall_offset=self._wall_offset,
                           synced_until=synced_until, splits=dict(splits),
                           saved_splits=dict(self._journaled_splits))
        for key, router in self.vrrp.items():
            backup.role_changed(key, _ROLES[router.state], "configuration", now)
        return backup

    @property
    def channels(self) -> dict[str, BackupChannel]:
        return self.backup.channels

    def wall(self, now: float) -> float:
        return now + self._wall_offset

    def _clocks(self, now: float, wall: float) -> None:
        self._wall_offset = wall - now
        self.backup.wall_offset = self._wall_offset

    # --- outputs ---

    def next_event(self):
        """The next output, or None."""
        return self._outputs.popleft() if self._outputs else None

    def next_deadline(self, frames: bool = True) -> float | None:
        """When ``handle_timer`` is due next (monotonic); without ``frames``, leaving out
        the held update frames."""
        earliest = self.backup.next_deadline(frames)
        lease_deadline = self.dhcp.next_deadline()
        if lease_deadline is not None:
            lease_deadline -= self._wall_offset
            if earliest is None or lease_deadline < earliest:
                earliest = lease_deadline
        for router in self.vrrp.values():  # asked after every input: no min() over lists
            deadline = router.next_deadline()
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    # --- life cycle ---

    def start(self, links: dict[str, bool], now: float, wall: float) -> None:
        """Join the VRRP groups whose interface is up (``links``: Linux name -> up)."""
        self._clocks(now, wall)
        self.links.update(links)
        self._emit_watch()
        self._outputs.append(ChannelsChanged(self._channel_services()))
        for key, router in self.vrrp.items():
            if not router.is_owner:
                # A previous run that died as master left its virtual addresses behind.
                self._virtual(key, router, present=False)
        for router in self.vrrp.values():
            self._start_router(router, now)
        self._after_input(now)

    def stop(self, now: float, wall: float) -> None:
        """Leave cleanly: a master says priority 0 and withdraws its addresses; the
        replies still in the gate leave once their journal write is done."""
        self._clocks(now, wall)
        for router in self.vrrp.values():
            router.shutdown(now)
        self._after_input(now)
        self.backup.report_unconfirmed(now)
        self._notify_backup_events()

    def _start_router(self, router: VrrpRouter, now: float) -> None:
        for track in router.group.tracks:
            if not self.links.get(self.linux_name[track.interface], True):
                router.link_changed(track.interface, False, now)
        if self.links.get(self.linux_name[router.group.interface], True):
            router.startup(now)

    def _channel_services(self) -> tuple[RbsService, ...]:
        return tuple(self.config.rbs_service(name) for name in self.channels)

    def _emit_watch(self) -> None:
        names = set()
        for router in self.vrrp.values():
            names.add(self.linux_name[router.group.interface])
            names.update(self.linux_name[t.interface] for t in router.group.tracks)
        self._outputs.append(WatchLinks(frozenset(names)))

    # --- DHCP ---

    def dhcp_received(self, packets: list[Received], now: float, wall: float) -> None:
        self._clocks(now, wall)
        replies = []
        for packet in packets:
            replies.extend(self.dhcp.receive(packet, wall))
        self._dhcp_output(replies, now)
        backup = self.backup
        if backup.commands or backup.events or any(c.events for c in self.channels.values()):
            self._after_input(now)
            return
        # A DHCP input moves no VRRP router and no failover state: what it can change is
        # the gate (an ACK whose lease needed no new write) and the records for the peer.
        self._gate_release(now)
        self._channel_output(now)

    def _dhcp_output(self, replies: list[Reply], now: float) -> None:
        """Lease events to the peer; replies to the wire or to the gate."""
        waits = self.backup.lease_events(self.dhcp.events, now)
        self._notify_all(self.dhcp.events)
        self.dhcp.events.clear()
        write_id = self._journal_pending()
        self._hold_records(write_id)
        for reply in replies:
            if reply.durable:
                service, seq = waits.get(reply.pool, (None, 0))
                queue = self._gate.get(service)
                if queue is None:
                    queue = self._gate[service] = deque()
                queue.append(_Gated(reply, write_id, service, seq))
            else:
                self._outputs.append(SendDhcp(reply))

    # --- the journal (leader/follower group commit) ---

    def _journal_pending(self) -> int:
        """The write that holds the table's changes so far.

        With no write in flight the pending changes go out at once; otherwise
        they wait for it, gathering what else arrives, and go in the next.
        """
        if not self.dhcp.table.pending and not self._splits_to_save:
            return self._next_write_id - 1
        needed = self._next_write_id
        if self._write_in_flight is None:
            self._write_in_flight = needed
            self._next_write_id += 1
            splits = None
            if self._splits_to_save:
                splits, self._splits_to_save = self._splits_to_save, {}
                self._splits_in_write[needed] = splits
            self._outputs.append(WriteJournal(needed, self.dhcp.table.take_pending(),
                                              self._sync_to_journal(), splits))
        return needed

    def _hold_records(self, needed: int) -> None:
        """The records queued so far may go to the peer once write ``needed``, the one
        that holds every table change so far (``_journal_pending``), is on disk (at once
        if it is)."""
        if not self.channels:
            return
        marks = [(channel, channel.next_seq - 1) for channel in self.channels.values()]
        if needed <= self.committed_write:
            for channel, seq in marks:
                channel.release(seq)
        elif self._records_held and self._records_held[-1][0] == needed:
            self._records_held[-1] = (needed, marks)
        else:
            self._records_held.append((needed, marks))

    def _sync_to_journal(self) -> dict[str, float] | None:
        """``synced_until`` for this write when it moved by a second or more since the last
        one recorded (a stale value only means a few more leases sent after a restart)."""
        synced, journaled = self.backup.synced_until, self._journaled_sync
        moved = {service: until for service, until in synced.items()
                 if until >= journaled.get(service, float("-inf")) + SYNC_RECORD_STEP}
        if not moved:
            return None
        journaled.update(moved)
        return moved

    def journal_committed(self, write_id: int, now: float, wall: float) -> None:
        self._clocks(now, wall)
        self.committed_write = max(self.committed_write, write_id)
        if self._write_in_flight == write_id:
            self._write_in_flight = None
        held = self._records_held
        while held and held[0][0] <= self.committed_write:
            for channel, seq in held.popleft()[1]:
                channel.release(seq)
        for service, needed in list(self._acknowledge_after.items()):
            if needed <= self.committed_write:
                del self._acknowledge_after[service]
                self.channels[service].acknowledge(now)
        splits = self._splits_in_write.pop(write_id, None)
        if splits:  # the peer may hear of them now, and may move its own
            self._journaled_splits.update(splits)
            self.backup.splits_saved(splits, now)
            self._after_input(now)
            return
        # Otherwise a commit moves nothing the engines decide on (the backup's hot path,
        # once per peer update): only the next group commit, the gate and the acks follow.
        self._journal_pending()
        self._gate_release(now)
        self._channel_output(now)

    def _gate_release(self, now: float) -> None:
        """The ACK gate, the one place a reply carrying a binding is let out: its lease
        is in the local journal and, in strict mode, the peer has acknowledged its
        record, or the peer is unresponsive (then it leaves counted as unconfirmed)."""
        committed, outputs, backup = self.committed_write, self._outputs, self.backup
        for service, queue in self._gate.items():
            # each queue in order: the first that must wait holds those behind it
            while queue and queue[0].write_id <= committed and (
                    service is None or backup.peer_confirmed(service, queue[0].seq)):
                outputs.append(SendDhcp(queue.popleft().reply))
            if queue and service is not None and queue[0].write_id <= committed \
                    and backup.peer_unresponsive(service, now):
                count = 0
                while queue and queue[0].write_id <= committed:
                    outputs.append(SendDhcp(queue.popleft().reply, unconfirmed=True))
                    count += 1
                backup.count_unconfirmed(service, count, now)

    # --- VRRP ---

    def vrrp_received(self, linux_name: str, datagram: bytes, now: float, wall: float) -> None:
        self._clocks(now, wall)
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
        router.receive(received, now)
        self._after_input(now)

    def link_changed(self, linux_name: str, up: bool, now: float, wall: float) -> None:
        self._clocks(now, wall)
        if self.links.get(linux_name) == up:
            return
        self.links[linux_name] = up
        for router in self.vrrp.values():
            if self.linux_name[router.group.interface] == linux_name:
                if up:
                    router.interface_up(now)
                else:
                    router.shutdown(now)
            for track in router.group.tracks:
                if self.linux_name[track.interface] == linux_name:
                    router.link_changed(track.interface, up, now)
        self._after_input(now)

    def _virtual(self, key: tuple[str, int], router: VrrpRouter, present: bool,
                 addresses: tuple[int, ...] | None = None, group_gone: bool = False) -> None:
        interface = self.config.interface(key[0]) if key[0] in self.linux_name else None
        self._outputs.append(VirtualAddressesChanged(
            key, self.linux_name.get(key[0], key[0]),
            interface.address if interface is not None else None,
            router.virtual_addresses if addresses is None else addresses, present,
            router.virtual_mac, group_gone))

    def _vrrp_output(self, now: float) -> bool:
        """Advertisements out, state changes acted on; True if any router had output."""
        moved = False
        for key, router in self.vrrp.items():
            linux = self.linux_name.get(key[0], key[0])
            for advertisement in router.outgoing:
                self._outputs.append(SendVrrp(linux, advertisement))
                moved = True
            router.outgoing.clear()
            for event in router.events:
                moved = True
                if isinstance(event, VrrpStateChanged):
                    if event.new is State.MASTER:
                        self._virtual(key, router, present=True)
                    elif event.old is State.MASTER:
                        self._virtual(key, router, present=False)
                    self.backup.role_changed(key, _ROLES[event.new], event.reason, now)
                elif isinstance(event, VrrpSecondMaster):
                    self._virtual(key, router, present=True)  # announced again (ARP)
                self._outputs.append(Notify(event))
            router.events.clear()
        return moved

    # --- remote backup channels ---

    def channel_connected(self, service: str, now: float, wall: float) -> None:
        self._clocks(now, wall)
        self._closing.discard(service)
        self.channels[service].connection_made(now)
        self._after_input(now)

    def channel_received(self, service: str, data: bytes, now: float, wall: float) -> None:
        self._clocks(now, wall)
        self.channels[service].data_received(data, now)
        self._after_input(now)

    def channel_lost(self, service: str, reason: str, now: float, wall: float) -> None:
        self._clocks(now, wall)
        self._closing.discard(service)
        self.channels[service].connection_lost(now, reason)
        self._after_input(now)

    def channel_is_up(self, service: str) -> bool:
        channel = self.channels.get(service)
        return channel is not None and channel.state is ChannelState.UP

    def batch_pending(self, service: str) -> bool:
        """A batch page may be sent, or one of the peer's waits to be applied."""
        channel = self.channels.get(service)
        return channel is not None and (channel.batch_pending or channel.batch_received_pending)

    def receiving_batch(self) -> bool:
        """A batch backup from a peer is arriving (the shell holds the journal's folding)."""
        return any(channel.receiving_batch for channel in self.channels.values())

    def batch_step(self, service: str, now: float, wall: float) -> None:
        """The shell's pace for batch backups: per call, one page sent and a step of the
        peer's applied (the peer's real-time updates read meanwhile were applied at once)."""
        self._clocks(now, wall)
        channel = self.channels.get(service)
        if channel is not None:
            channel.send_batch_page()
            channel.deliver_batch_records()
        self._after_input(now)

    def _channel_input(self, now: float) -> None:
        for service, channel in self.channels.items():
            if not channel.events:
                continue  # nothing came in: no failover state to recompute (DHCP's hot path)
            applied = self.backup.channel_input(service, now)
            self._backup_commands(now)  # the peer's leases into the table, then the journal
            if applied:
                # the peer's leases reach our disk before we acknowledge them
                self._acknowledge_after[service] = self._journal_pending()

    def _channel_output(self, now: float) -> None:
        for name, channel in self.channels.items():
            data = channel.data_to_send(now)
            if data:
                self._outputs.append(SendChannel(name, data))
            if channel.close_reason and name not in self._closing:
                self._closing.add(name)  # until the shell reports the connection gone
                self._outputs.append(CloseChannel(name, channel.close_reason))

    # --- timers ---

    def handle_timer(self, now: float, wall: float) -> None:
        self._clocks(now, wall)
        due = self.next_deadline(frames=False)
        if due is None or due > now:
            self._channel_output(now)  # a held update frame (once a frame under load)
            return
        lease_deadline = self.dhcp.next_deadline()
        if lease_deadline is not None and lease_deadline <= wall:
            self.dhcp.handle_timer(wall)
            self._dhcp_output([], now)  # expiries reach the peer
        for router in self.vrrp.values():
            deadline = router.next_deadline()
            if deadline is not None and deadline <= now:
                router.handle_timer(now)
        self.backup.handle_timer(now)
        self._after_input(now)

    # --- after every input ---

    def _after_input(self, now: float) -> None:
        """Settle the engines: VRRP output and roles until quiet, channel events, the
        journal, the gate, the bytes for the peer."""
        for _ in range(8):  # a role change may open a preemption gate, which changes a role
            self._channel_input(now)
            moved = self._vrrp_output(now)
            moved |= self._backup_commands(now)
            if not moved and not any(r.outgoing or r.events for r in self.vrrp.values()) \
                    and not any(c.events for c in self.channels.values()):
                break
        self._notify_backup_events()
        self._journal_pending()
        self._gate_release(now)
        self._channel_output(now)

    def _backup_commands(self, now: float) -> bool:
        """Carry out what the hot-backup engine asked for; True if it asked anything."""
        commands, self.backup.commands = self.backup.commands, []
        dhcp = self.dhcp
        for command in commands:
            kind = type(command)
            if kind is ApplyPeerLeases:
                dhcp.apply_peer_leases(command.records)
            elif kind is ServePools:
                for pool in command.pools:
                    dhcp.set_serving(pool, command.serving)
            elif kind is RestrictAllocation:
                for pool in command.pools:
                    dhcp.restrict_allocation(pool, command.restricted)
            elif kind is AllowPreempt:
                router = self.vrrp.get(command.vrrp)
                if router is not None:
                    router.set_preempt_allowed(command.allowed, now)
            elif kind is CapLeaseTimes:
                for pool in command.pools:
                    dhcp.mclt[pool] = command.mclt
            elif kind is PeerHasExpiry:
                dhcp.peer_expiry[command.address] = max(
                    command.expiry, dhcp.peer_expiry.get(command.address, 0.0))
            elif kind is SetSplit:
                dhcp.set_split(command.pool, command.split)
            elif kind is SaveSplits:
                self._splits_to_save.update(command.splits)
            elif kind is BalanceSplits:
                self.backup.splits_balanced(
                    {pool: dhcp.balanced_split(pool, percent)
                     for pool, percent in command.shares.items()}, now)
        return bool(commands)

    def _notify_backup_events(self) -> None:
        self._notify_all(self.backup.events)
        self.backup.events.clear()

    def _notify_all(self, events: list) -> None:
        for event in events:
            if not isinstance(event, LeaseEvent):
                self._outputs.append(Notify(event))

    # --- configuration: the device's half of the two-phase commit ---

    def apply_config(self, old: DeviceConfig, new: DeviceConfig, now: float, wall: float,
                     links: dict[str, bool] | None = None) -> int:
        """Apply a validated change to the running engines; how many changes there were.

        The shell has prepared it (the Linux interfaces exist) and says in
        ``links`` how the links the new configuration uses are now, so a
        track added on a link that is already down counts at once.  The DHCP
        engine takes the new pools (leases kept); VRRP groups are created,
        reconfigured in place (tracked links given their current state) or
        stopped; hot backup is rebuilt when its configuration changed.
        """
        self._clocks(now, wall)
        diff = diff_configs(old, new)
        if not diff:
            return 0
        self.links.update(links or {})
        self.config = new
        self.linux_name = {i.name: i.linux_name for i in new.interfaces}
        self.dhcp.apply_config(new)
        self._apply_vrrp(diff, now)
        self._emit_watch()
        if diff.of("rbs_services") or diff.of("rbs_profiles") or any(
                c.old is None or c.new is None or c.old.backup_profile != c.new.backup_profile
                for c in diff.of("pools")):
            self._rebuild_backup(now)
        else:
            self.backup.config = new
        self._after_input(now)
        return len(diff.changes)

    def _apply_vrrp(self, diff, now: float) -> None:
        for change in diff.of("vrrp_groups"):
            key = change.key
            if change.kind == "deleted":
                router = self.vrrp.pop(key)
                was_master = router.state is State.MASTER
                router.shutdown(now)
                linux = self.linux_name.get(key[0], key[0])
                for advertisement in router.outgoing:
                    self._outputs.append(SendVrrp(linux, advertisement))
                self._virtual(key, router, present=False, group_gone=True,
                              addresses=None if was_master else ())
            elif change.kind == "created":
                interface = self.config.interface(change.new.interface)
                router = VrrpRouter(change.new, int(interface.address.ip))
                self.vrrp[key] = router
                self._start_router(router, now)
            else:
                router = self.vrrp[key]
                old_addresses = router.virtual_addresses
                # tracked links are watched at once (WatchLinks), and counted from their
                # state now: a track added on a link already down lowers the priority
                router.reconfigure(change.new, now, {
                    t.interface for t in change.new.tracks
                    if not self.links.get(self.linux_name[t.interface], True)})
                if router.state is State.MASTER:  # addresses, and the virtual MAC, may change
                    self._virtual(key, router, False,
                                  tuple(set(old_addresses) - set(router.virtual_addresses)))
                    self._virtual(key, router, True)

    def _rebuild_backup(self, now: float) -> None:
        dhcp = self.dhcp
        dhcp.silent_pools.clear()
        for pool in list(dhcp.restricted_pools):
            dhcp.restrict_allocation(pool, False)
        dhcp.mclt.clear()
        self.backup = self._new_backup(now, self.backup.synced_until,
                                       {**self._journaled_splits, **self.backup.splits_in_use()})
        # the table's changes after synced_until, some not yet on disk
        self._hold_records(self._journal_pending())
        self._acknowledge_after.clear()
        # the old channels are gone: these wait for the disk only
        waiting = sorted((gated for queue in self._gate.values() for gated in queue),
                         key=lambda gated: gated.write_id)
        for gated in waiting:
            gated.service = None
        self._gate = {None: deque(waiting)} if waiting else {}
        self._outputs.append(ChannelsChanged(self._channel_services()))

    # --- device RPCs ---

    def reset_addresses(self, pool: str, start: int | None, end: int | None,
                        state: str | None, now: float, wall: float) -> int:
        """reset-address-state: addresses back to idle (raises ValueError on bad input)."""
        self._clocks(now, wall)
        count = self.dhcp.reset_addresses(pool, start, end, state)
        self._dhcp_output([], now)  # the peer hears of every address reset
        self._after_input(now)
        return count

    def reset_statistics(self) -> None:
        self.dhcp.statistics.reset()

    def batch_backup_now(self, service: str, now: float, wall: float) -> int:
        """batch-backup-now: how many batches started (0 while the channel is down)."""
        self._clocks(now, wall)
        started = self.backup.batch_backup_now(service, now)
        self._after_input(now)
        return started
