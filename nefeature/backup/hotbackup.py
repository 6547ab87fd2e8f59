"""DHCP server hot backup: VRRP decides who serves, the channel keeps both tables equal.

Sans-IO glue between the DHCP engine, the VRRP routers and the backup
channels, driven by the device shell (``nefeature.node``):

Roles.  A pool bound to a remote-backup-profile with ``service-type
dhcp-server`` is served only by the device whose VRRP group of that profile
is master; the other device keeps silent and applies the updates it
receives (``update_roles``).  A device that rejoins may take the master role
back only after the batch backup from the current master is complete: its
VRRP preemption gate stays closed until then (docs/architecture.md).

Updates.  Every lease event of a bound pool (commit, renew, release,
decline, expiry) becomes a record on the profile's channel.  In ``strict``
mode a DHCPACK is parked until the peer acknowledges its record (the peer
acknowledges after its own journal commit).  A peer that is behind but
acknowledging holds the ACKs back as long as it takes (clients retransmit);
only a peer that acknowledged nothing for ``STRICT_WAIT`` seconds counts as
unresponsive, and then the parked ACKs leave without it (counted as
``unconfirmed_replies``).  With the peer unreachable the master serves
alone and the queue is sent when it returns.  When the channel drops,
parked ACKs are dropped (the clients retransmit) and bound pools pause for
two advertisement intervals: the peer may have dropped the channel because
it has just taken over from a master that stalled, and VRRP must get to
say so first.  In ``lazy`` mode the reply leaves at once and the lease time
is capped so that it never runs more than MCLT past what the peer has
acknowledged (the ISC failover rule).

Batch backup.  When a channel comes up, the master of each profile sends
all leases of the profile's pools; ``batch_backup_now`` does the same on
request.  The records are read from the lease table page by page as the
channel sends them (``BackupChannel.send_batch_page``), so the master keeps
serving, and advertising VRRP, while a large table goes out.  A device
whose peer is master with a batch still incomplete holds its bound pools
even if VRRP makes it master meanwhile (the peer stalled, or its
advertisements were lost): its table is partial, and the peer is alive
on the channel.  If the peer is really gone the channel says so within its
dead interval, and the device serves from what it has.  After a partition
both sides were masters and both send: ``DhcpServer.apply_peer_lease``
keeps the later expiry and counts conflicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nefeature.backup.channel import (
    Acked,
    BackupChannel,
    BatchAcked,
    BatchFinished,
    BatchStarted,
    ChannelDown,
    ChannelState,
    ChannelUp,
    PeerProfiles,
    RecordsReceived,
)
from nefeature.backup.frames import LeaseRecord, ProfileInfo
from nefeature.config.model import DeviceConfig
from nefeature.dhcp.events import LeaseEvent
from nefeature.dhcp.leases import LeaseState
from nefeature.dhcp.server import DhcpServer, Reply
from nefeature.vrrp.router import State, VrrpRouter

STRICT_WAIT = 0.5  # seconds of no acknowledgement before DHCPACKs leave without the peer
CHANNEL_GRACE = 10.0  # seconds after start before an unreachable peer counts as gone
SERVE_ALONE_MIN = 0.5  # seconds a master pauses bound pools after losing its peer


@dataclass(frozen=True, slots=True)
class RbpStateChanged:
    """nefeature-rbs rbp-state-change."""

    profile: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProtectDown:
    """rbs-protect-down (resumed=False) / rbs-protect-down-resume (resumed=True)."""

    service: str
    resumed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class PeerUnresponsive:
    """Strict-mode DHCPACKs left without the peer's acknowledgement."""

    service: str
    replies: int


@dataclass(frozen=True, slots=True)
class BatchBackupDone:
    """A batch backup of a profile completed: ``sent`` (to the peer) or received."""

    profile: str
    sent: bool
    leases: int


@dataclass
class ProfileRuntime:
    name: str
    backup_id: int
    service: str
    vrrp_key: tuple[str, int]
    pools: set[str]
    sync_mode: str
    mclt: int
    local_state: str = "init"
    peer_state: str = "init"
    batch_done: bool = False  # our table holds the peer's (received, or we are its source)
    peer_batch_done: bool = False  # what the peer says of its own table
    batch_sent: bool = False  # we started a batch on this connection
    batch_total: int = 0
    batch_received: int = 0
    batch_status: str = "idle"
    last_batch_time: float | None = None
    alone_from: float = 0.0  # after losing the peer, serve again from this time


@dataclass
class _Parked:
    seq: int
    deadline: float
    reply: Reply


@dataclass
class HotBackup:
    config: DeviceConfig
    dhcp: DhcpServer
    vrrp: dict[tuple[str, int], VrrpRouter]
    started: float
    channels: dict[str, BackupChannel] = field(default_factory=dict)
    events: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.profiles: dict[str, ProfileRuntime] = {}
        for profile in self.config.rbs_profiles:
            if "dhcp-server" not in profile.service_types or profile.service is None \
                    or profile.vrrp is None:
                continue
            service = self.config.rbs_service(profile.service)
            if service.peer is None or service.shut_down:
                continue
            pools = {p.name for p in self.config.pools if p.backup_profile == profile.name}
            self.profiles[profile.name] = ProfileRuntime(
                profile.name, profile.backup_id, profile.service, profile.vrrp, pools,
                profile.sync_mode, profile.mclt)
            if service.name not in self.channels:
                key = service.shared_key.encode() if service.shared_key else None
                self.channels[service.name] = BackupChannel(service.name, key)
        self.parked: dict[str, list[_Parked]] = {name: [] for name in self.channels}
        self.acked_expiry: dict[int, float] = {}  # address -> expiry the peer acknowledged
        # lazy mode: address -> (seq, expiry) of its newest update the peer has not acked
        self._in_flight: dict[str, dict[int, tuple[int, float]]] = {n: {} for n in self.channels}
        self.records_applied = 0
        self.unconfirmed_replies: dict[str, int] = {name: 0 for name in self.channels}
        self._last_progress: dict[str, float] = {name: self.started for name in self.channels}
        self.channel_times: dict[str, dict] = {}
        self._grace_over = not self.channels
        self._last_now = self.started
        if any(p.sync_mode == "lazy" for p in self.profiles.values()):
            self.dhcp.lease_time_limit = self._lazy_lease_time
        self.update_roles(self.started)

    # --- roles and the preemption gate ---

    def _profile_infos(self, service: str) -> tuple[ProfileInfo, ...]:
        return tuple(ProfileInfo(p.backup_id, p.name, p.local_state, p.batch_done)
                     for p in self.profiles.values() if p.service == service)

    def update_roles(self, now: float) -> None:
        """Follow VRRP: serve where master, keep silent elsewhere; gate preemption."""
        self._last_now = now
        for profile in self.profiles.values():
            router = self.vrrp.get(profile.vrrp_key)
            state = {State.MASTER: "master", State.BACKUP: "slave"}.get(
                router.state if router else State.INITIALIZE, "init")
            if state != profile.local_state:
                self.events.append(RbpStateChanged(profile.name, profile.local_state, state,
                                                   "vrrp"))
                profile.local_state = state
            if state == "master":
                self._offer_batch(profile, now)
            serving = state == "master" and now >= profile.alone_from \
                and not self._awaiting_batch(profile)
            for pool in profile.pools:
                self.dhcp.set_serving(pool, serving)
            if router is not None:
                router.set_preempt_allowed(self._may_preempt(profile, now), now)
        for name, channel in self.channels.items():
            channel.set_profiles(self._profile_infos(name), now)

    def _serve_alone_delay(self, profile: ProfileRuntime) -> float:
        """Two advertisement intervals: long enough to hear a new master's advertisement."""
        router = self.vrrp.get(profile.vrrp_key)
        interval = router.group.advertise_interval / 100 if router else 1.0
        return max(SERVE_ALONE_MIN, 2 * interval)

    def _offer_batch(self, profile: ProfileRuntime, now: float) -> None:
        """As master, send our table to a peer that says it lacks one (both devices
        started together and the channel came up before VRRP chose a master)."""
        if self.channels[profile.service].state is ChannelState.UP and not profile.batch_sent \
                and not profile.peer_batch_done and profile.peer_state != "master":
            self.send_batch(profile, now)

    def _awaiting_batch(self, profile: ProfileRuntime) -> bool:
        """The peer is master, reachable, and its batch backup to us is not complete."""
        return self.channels[profile.service].state is ChannelState.UP \
            and profile.peer_state == "master" and not profile.batch_done

    def _may_preempt(self, profile: ProfileRuntime, now: float) -> bool:
        if self.channels[profile.service].state is ChannelState.UP:
            return not self._awaiting_batch(profile)
        return now >= self.started + CHANNEL_GRACE  # peer unreachable: VRRP alone decides

    # --- DHCP output ---

    def route_replies(self, replies: list[Reply], events: list, now: float) -> list[Reply]:
        """Send lease events to the peer; return the replies that may leave now.

        Strict mode parks a durable reply until the peer acknowledges the
        record of its lease.
        """
        last_seq: dict[str, int] = {}
        for event in events:
            profile = self._profile_of_pool(event.lease.pool) if isinstance(event, LeaseEvent) \
                else None
            if profile is None:
                continue
            channel = self.channels[profile.service]
            lease = event.lease
            seq = channel.send_records([LeaseRecord(profile.backup_id, lease.pool, lease.address,
                                                    lease)])
            if lease.expiry is not None and profile.sync_mode == "lazy":
                self._in_flight[profile.service][lease.address] = (seq, lease.expiry)
            if profile.sync_mode == "strict":
                last_seq[profile.service] = seq
        leaving = []
        for reply in replies:
            service = self._strict_service(reply, last_seq)
            if service is None:
                leaving.append(reply)
            else:
                self.parked[service].append(_Parked(last_seq[service], now + STRICT_WAIT, reply))
        return leaving

    def _profile_of_pool(self, pool: str) -> ProfileRuntime | None:
        for profile in self.profiles.values():
            if pool in profile.pools:
                return profile
        return None

    def _strict_service(self, reply: Reply, last_seq: dict[str, int]) -> str | None:
        """The channel a durable reply must wait for, if any (up, strict, this batch)."""
        if not reply.durable or not last_seq:
            return None
        for service, seq in last_seq.items():
            if self.channels[service].state is ChannelState.UP and \
                    self.channels[service].peer_acked < seq:
                return service
        return None

    def _release(self, service: str, upto: int, now: float) -> list[Reply]:
        """Parked replies whose record is acknowledged, and all that waited long enough
        if the peer has acknowledged nothing for as long."""
        keep, leaving = [], []
        unresponsive = now >= self._last_progress[service] + STRICT_WAIT
        unconfirmed = 0
        for parked in self.parked[service]:
            if parked.seq <= upto:
                leaving.append(parked.reply)
            elif unresponsive and parked.deadline <= now:
                leaving.append(parked.reply)
                unconfirmed += 1
            else:
                keep.append(parked)
        self.parked[service] = keep
        if unconfirmed:
            self.unconfirmed_replies[service] += unconfirmed
            self.events.append(PeerUnresponsive(service, unconfirmed))
        return leaving

    def _strict_deadline(self, service: str) -> float | None:
        """When the oldest parked reply may leave without the peer."""
        parked = self.parked[service]
        if not parked:
            return None
        return max(parked[0].deadline, self._last_progress[service] + STRICT_WAIT)

    def _lazy_lease_time(self, pool: str, address: int, now: float, wanted: int) -> int:
        """MCLT rule: never more than MCLT past the expiry the peer acknowledged."""
        profile = self._profile_of_pool(pool)
        if profile is None or profile.sync_mode != "lazy":
            return wanted
        known = max(self.acked_expiry.get(address, now), now)
        return max(1, min(wanted, int(known + profile.mclt - now)))

    # --- channel input ---

    def on_channel_events(self, service: str, now: float) -> tuple[list[Reply], bool]:
        """Act on what a channel reported.

        Returns the parked replies that may leave now and whether peer
        records were applied (the caller commits the journal, then calls
        ``acknowledge``).
        """
        channel = self.channels[service]
        leaving: list[Reply] = []
        applied = False
        events, channel.events = channel.events, []
        for event in events:
            if isinstance(event, Acked):
                self._last_progress[service] = now
                self._note_acked(service, event.upto)
                leaving += self._release(service, event.upto, now)
            elif isinstance(event, RecordsReceived):
                for record in event.records:
                    self.dhcp.apply_peer_lease(record.pool, record.address, record.lease)
                if event.batch:
                    self._count_batch_records(service, event.records)
                self.records_applied += len(event.records)
                applied = True
            elif isinstance(event, ChannelUp):
                self._last_progress[service] = now
                self.channel_times.setdefault(service, {})["last-up-time"] = now
                self._peer_states(service, event.peer.profiles)
                for profile in self.profiles.values():
                    if profile.service == service:
                        # Until a batch arrives (or we send ours as master, below) our table
                        # may lack the peer's: a master peer sends one now; with neither
                        # master yet, whichever VRRP picks sends its table then.
                        profile.batch_done = profile.batch_sent = False
                self.events.append(ProtectDown(service, True, "peer connected"))
                self._send_batches(service, now)
            elif isinstance(event, ChannelDown):
                self.channel_times.setdefault(service, {}).update(
                    {"last-down-time": now, "last-down-reason": event.reason})
                self.events.append(ProtectDown(service, False, event.reason))
                # The peer may have gone down because it took over from us (we stalled):
                # acknowledge nothing it has not confirmed, and serve alone only after
                # VRRP had time to tell us who is master.
                self.parked[service] = []
                for profile in self.profiles.values():
                    if profile.service == service:
                        profile.alone_from = now + self._serve_alone_delay(profile)
                for profile in self.profiles.values():
                    if profile.service == service and profile.batch_status == "running":
                        profile.batch_status = "failed"
            elif isinstance(event, PeerProfiles):
                self._peer_states(service, event.profiles)
            elif isinstance(event, BatchStarted):
                profile = self._profile_by_id(service, event.backup_id)
                if profile is not None:
                    profile.batch_status, profile.batch_total = "running", event.total
                    profile.batch_received = 0
            elif isinstance(event, BatchFinished):
                profile = self._profile_by_id(service, event.backup_id)
                if profile is not None:
                    profile.batch_done = True
                    profile.batch_status = "done"
                    profile.last_batch_time = now
                    self.events.append(BatchBackupDone(profile.name, False, event.count))
            elif isinstance(event, BatchAcked):
                profile = self._profile_by_id(service, event.backup_id)
                if profile is not None:
                    profile.batch_total, profile.batch_received = event.total, event.acked
                    if event.complete:
                        profile.batch_status, profile.last_batch_time = "done", now
                        self.events.append(BatchBackupDone(profile.name, True, event.acked))
        self.update_roles(now)
        return leaving, applied

    def _note_acked(self, service: str, upto: int) -> None:
        in_flight = self._in_flight[service]
        for address in [a for a, (seq, _) in in_flight.items() if seq <= upto]:
            expiry = in_flight.pop(address)[1]
            self.acked_expiry[address] = max(expiry, self.acked_expiry.get(address, 0.0))

    def _count_batch_records(self, service: str, records: list[LeaseRecord]) -> None:
        for profile in self.profiles.values():
            if profile.service == service and profile.batch_status == "running":
                profile.batch_received += sum(r.backup_id == profile.backup_id for r in records)

    def _profile_by_id(self, service: str, backup_id: int) -> ProfileRuntime | None:
        return next((p for p in self.profiles.values()
                     if p.service == service and p.backup_id == backup_id), None)

    def _peer_states(self, service: str, profiles: tuple[ProfileInfo, ...]) -> None:
        by_id = {p.backup_id: p for p in profiles}
        for profile in self.profiles.values():
            if profile.service == service and profile.backup_id in by_id:
                profile.peer_state = by_id[profile.backup_id].state
                profile.peer_batch_done = by_id[profile.backup_id].batch_done

    def _send_batches(self, service: str, now: float) -> None:
        for profile in self.profiles.values():
            if profile.service == service and profile.local_state == "master":
                self.send_batch(profile, now)

    def send_batch(self, profile: ProfileRuntime, now: float) -> bool:
        """Start a batch backup of the profile's leases (False if the channel is down).

        The addresses of the profile's pools are listed now (copies of the
        table's per-pool index, fast even for millions); each lease is read
        as its page goes out, so a page carries the lease as it is then, and
        one that went away is skipped.
        """
        addresses = [a for pool in profile.pools for a in self.dhcp.table.addresses_in(pool)]
        started = self.channels[profile.service].send_batch(
            profile.backup_id, self._batch_records(profile, addresses), len(addresses))
        if started:
            profile.batch_status, profile.batch_total, profile.batch_received = \
                "running", len(addresses), 0
            profile.batch_sent = True
            if profile.local_state == "master" and profile.peer_state != "master":
                profile.batch_done = True  # the peer is getting our table: ours is the reference
        return started

    def _batch_records(self, profile: ProfileRuntime, addresses: list[int]):
        by_address = self.dhcp.table.by_address
        for address in addresses:
            lease = by_address.get(address)
            if lease is not None and lease.pool in profile.pools \
                    and lease.state is not LeaseState.OFFERED:
                yield LeaseRecord(profile.backup_id, lease.pool, address, lease)

    def batch_backup_now(self, service: str, now: float) -> int:
        """RPC batch-backup-now: every profile on the service sends its leases.

        Returns how many batches started (none while the channel is down).
        """
        return sum(self.send_batch(profile, now) for profile in self.profiles.values()
                   if profile.service == service)

    # --- timers ---

    def next_deadline(self) -> float | None:
        deadlines = [c.next_deadline() for c in self.channels.values()]
        deadlines += [self._strict_deadline(name) for name in self.channels]
        if not self._grace_over:
            deadlines.append(self.started + CHANNEL_GRACE)
        deadlines += [p.alone_from for p in self.profiles.values() if p.alone_from > self._last_now]
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> list[Reply]:
        self._grace_over = self._grace_over or now >= self.started + CHANNEL_GRACE
        leaving = []
        for name, channel in self.channels.items():
            channel.handle_timer(now)
            deadline = self._strict_deadline(name)
            if deadline is not None and deadline <= now:
                leaving += self._release(name, channel.peer_acked, now)
        self.update_roles(now)
        return leaving
