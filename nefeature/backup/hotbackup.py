"""DHCP server hot backup: VRRP decides who serves, the channel keeps both tables equal.

A pure engine (no VRRP, no DHCP engine, no I/O): the device core feeds it
VRRP roles (``role_changed``), lease events (``lease_events``), what its
channels received (``channel_input``) and timers, and carries out the
commands it leaves in ``commands``: serve or silence pools
(:class:`ServePools`), allocate new addresses only from the device's own
share (:class:`RestrictAllocation`), allow or hold VRRP preemption
(:class:`AllowPreempt`), store the leases the peer sent (:class:`ApplyPeerLeases`),
cap lease times in lazy mode (:class:`CapLeaseTimes`, :class:`PeerHasExpiry`).

Failover state (per profile), after ISC DHCP failover, mapped onto VRRP
roles.  The state is one function of four facts, and this is its table
(first matching row):

=============  ===========  ============  ===============  ==========================
channel        peer alive   both masters  table complete   state
=============  ===========  ============  ===============  ==========================
never up yet   -            -             -                STARTUP
down           -            -             -                COMMUNICATIONS_INTERRUPTED
up             no           -             -                COMMUNICATIONS_INTERRUPTED
up             yes          yes           -                POTENTIAL_CONFLICT
up             yes          no            no               RECOVER
up             yes          no            yes              NORMAL
=============  ===========  ============  ===============  ==========================

"Peer alive" is false from the moment VRRP makes this device master
because the peer's advertisements stopped (``no-response``) until anything
is heard from the peer on the channel again.  "Table complete": our table
holds the peer's (its batch backup reached us, or we are the master whose
table the peer receives) and, on a connection after an interruption, the
updates the peer queued meanwhile (they come before its first heartbeat):
until then our share of a pool does not grow, so what the peer granted
alone from its share is never handed out again.

What each state allows:

* Serving: the VRRP master serves its pools in every state but one case:
  its table is incomplete and the peer is alive (it would answer from a
  partial table while the peer, which has the table, is reachable).  A
  channel drop never pauses the master.
* Allocation: in every state new addresses come from the device's own
  share of the pool (below), so two devices that both serve never give one
  address to two clients, even in the dead interval before either has
  noticed a partition.  Renewals of known leases are always served.
* Preemption: held while the peer is master and our table is incomplete
  (a rejoining device takes the role back only with the whole table), and
  for ``CHANNEL_GRACE`` after start while the channel is not up.

Updates.  Every lease event of a bound pool (bind, renew, release,
decline, expiry, reset) becomes a record on the profile's channel.  The
ACK gate (``nefeature.core``) asks ``peer_confirmed`` and
``peer_unresponsive``: in strict mode a DHCPACK waits for the peer's
acknowledgement, unless the channel is down, the peer is presumed down, or
records have waited ``STRICT_WAIT`` with no acknowledgement at all (a
peer that is behind but acknowledging holds the ACKs back as long as it
takes).  In lazy mode a lease runs at most MCLT past what the peer has
acknowledged (the ISC rule).  Which of two versions of a lease is newer is
decided by its transaction time (``DhcpServer.apply_peer_lease``).

Updates a crash would lose.  The channel's queue of unacknowledged updates
lives in memory.  ``synced_until`` (per service, wall clock) is the time up
to which every lease change of ours is on the peer's disk: the moment the
queue was last empty while the channel was up.  The device core journals
it; a device that starts (or rebuilds this engine) queues every lease of
its table changed after it, so what it granted alone before a crash reaches
the peer, ahead of its first heartbeat, and the peer's table is complete
(``peer_backlog_received``) only with it.  With no ``synced_until`` (a new
service, a journal from before it was kept) the table counts as synced up
to the start: resending a whole table at once would stall the device.

Rebalancing the shares (ISC failover's pool balancing).  Each backed-up
pool's addresses are split by ``split`` (``nefeature.dhcp.pool``): hash
buckets below it are the secondary's share, the rest the primary's.  The two
shares never overlap if the secondary's split is at most the primary's, at
every moment, across crashes and partitions.  The primary of a profile
(lower source address) keeps the free addresses divided as
``partition-share`` says: every ``REBALANCE_INTERVAL`` in NORMAL, with the
previous move complete, it asks the DHCP engine for the balanced split
(:class:`BalanceSplits`) and makes it its proposal.  Each device reports in
its heartbeats the split it has on disk (a crash brings it back with that
one) and the primary its proposal; each moves its own split by one rule:

* a move that shrinks a device's own share is made at once;
* one that grows it is made only in NORMAL (our table complete), and only as
  far as the peer's reported split on disk allows: the secondary follows
  ``min(proposal, primary's saved)``, the primary lowers its split to the
  proposal once the secondary reports it has saved a split at or below it.

A split is reported only once journaled (:class:`SaveSplits`,
``splits_saved``).  A new proposal waits until both sides have saved the
last one, so a report is never overtaken by a move it did not allow.

Batch backup.  When a channel comes up, the master of each profile sends
all leases of its pools, page by page (``BackupChannel.send_batch_page``, paced by the
shell with the peer's pages it applies: ``DeviceCore.batch_step``);
``batch_backup_now`` does the same on request; both masters send after a
partition, so each gets what the other granted meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from itertools import chain

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
from nefeature.backup.frames import LeaseRecord, PoolSplit, ProfileInfo
from nefeature.config.model import DeviceConfig
from nefeature.dhcp.events import LeaseEvent, LeaseRemoved
from nefeature.dhcp.leases import LeaseState

_ROUTINE = (Acked, RecordsReceived)  # channel events that leave every failover state as it is
STRICT_WAIT = 0.5  # seconds of no acknowledgement before DHCPACKs leave without the peer
CHANNEL_GRACE = 10.0  # seconds after start before an unreachable peer counts as gone
#: PeerUnresponsive at most this often per service while DHCPACKs leave without the peer
#: (one per gate release logged 2,000 warnings a second at 2,000 DORA/s), and once more with
#: the rest when the peer acknowledges again.
UNCONFIRMED_REPORT_INTERVAL = 10.0
REBALANCE_INTERVAL = 5.0  # seconds between the primary's looks at the free addresses


class FailoverState(str, Enum):
    STARTUP = "startup"
    NORMAL = "normal"
    COMMUNICATIONS_INTERRUPTED = "communications-interrupted"
    POTENTIAL_CONFLICT = "potential-conflict"
    RECOVER = "recover"


def failover_state(ever_up: bool, channel_up: bool, peer_alive: bool, both_masters: bool,
                   table_complete: bool) -> FailoverState:
    """The table of the module docstring."""
    if not ever_up:
        return FailoverState.STARTUP
    if not channel_up or not peer_alive:
        return FailoverState.COMMUNICATIONS_INTERRUPTED
    if both_masters:
        return FailoverState.POTENTIAL_CONFLICT
    return FailoverState.NORMAL if table_complete else FailoverState.RECOVER


# --- commands ---

@dataclass(frozen=True, slots=True)
class ServePools:
    pools: frozenset[str]
    serving: bool


@dataclass(frozen=True, slots=True)
class RestrictAllocation:
    """New addresses only from this device's share of the pools (or from any)."""

    pools: frozenset[str]
    restricted: bool


@dataclass(frozen=True, slots=True)
class AllowPreempt:
    vrrp: tuple[str, int]
    allowed: bool


@dataclass(frozen=True, slots=True)
class ApplyPeerLeases:
    """Store what the peer sent, in order: one command for a whole frame of records."""

    records: list[LeaseRecord]


@dataclass(frozen=True, slots=True)
class CapLeaseTimes:
    """Lazy mode: leases of these pools run at most ``mclt`` past the peer's copy."""

    pools: frozenset[str]
    mclt: int


@dataclass(frozen=True, slots=True)
class PeerHasExpiry:
    """Lazy mode: the peer has acknowledged this expiry of the address."""

    address: int
    expiry: float


@dataclass(frozen=True, slots=True)
class SetSplit:
    """Allocate by this split of the pool from now on (``AddressPool.split``)."""

    pool: str
    split: int


@dataclass(frozen=True, slots=True)
class SaveSplits:
    """Journal these splits (pool -> split); call ``splits_saved`` once on disk."""

    splits: dict[str, int]


@dataclass(frozen=True, slots=True)
class BalanceSplits:
    """For each pool, the split that gives the secondary this percent of its free
    addresses (``DhcpServer.balanced_split``): answer with ``splits_balanced``."""

    shares: dict[str, int]


# --- events (for logs and NETCONF notifications) ---

@dataclass(frozen=True, slots=True)
class RbpStateChanged:
    """nefeature-rbs rbp-state-change (the VRRP role of the profile)."""

    profile: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class FailoverStateChanged:
    profile: str
    old: FailoverState
    new: FailoverState


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
    pools: frozenset[str]
    sync_mode: str
    mclt: int
    local_state: str = "init"  # the VRRP role: init | slave | master
    peer_state: str = "init"
    failover: FailoverState = FailoverState.STARTUP
    batch_done: bool = False  # our table holds the peer's (received, or we are its source)
    has_table: bool = False  # we have had a whole table since start (a rejoiner has not)
    peer_batch_done: bool = False  # what the peer says of its own table
    batch_sent: bool = False  # we started a batch on this connection
    batch_total: int = 0
    batch_received: int = 0
    batch_status: str = "idle"
    last_batch_time: float | None = None  # wall clock
    failover_role: str = "primary"  # whose share of the pools is ours (partition-share)
    partition_share: int = 50
    splits: dict[str, int] = field(default_factory=dict)  # pool -> the split we allocate by
    saved_splits: dict[str, int] = field(default_factory=dict)  # pool -> the one on our disk
    proposal: dict[str, int] = field(default_factory=dict)  # pool -> the primary's target
    peer_splits: dict[str, PoolSplit] = field(default_factory=dict)  # as the peer reported
    took_over_at: float | None = None  # VRRP made us master for the peer's silence, then
    serving: bool | None = None
    preempt: bool | None = None


@dataclass
class HotBackup:
    config: DeviceConfig
    started: float
    random_bytes: object = None
    table: object = None  # the DHCP engine's LeaseTable, read (never changed) for batch backups
    channels: dict[str, BackupChannel] = field(default_factory=dict)
    events: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    wall_offset: float = 0.0  # wall clock minus monotonic, for the times shown in the state
    synced_until: dict[str, float] = field(default_factory=dict)  # see the module docstring
    splits: dict[str, int] = field(default_factory=dict)  # pool -> split to start with
    saved_splits: dict[str, int] = field(default_factory=dict)  # pool -> split on our disk

    def __post_init__(self) -> None:
        self.profiles: dict[str, ProfileRuntime] = {}
        for profile in self.config.rbs_profiles:
            if "dhcp-server" not in profile.service_types or profile.service is None \
                    or profile.vrrp is None:
                continue
            service = self.config.rbs_service(profile.service)
            if service.peer is None or service.shut_down:
                continue
            pools = frozenset(p.name for p in self.config.pools
                              if p.backup_profile == profile.name)
            self.profiles[profile.name] = ProfileRuntime(
                profile.name, profile.backup_id, profile.service, profile.vrrp, pools,
                profile.sync_mode, profile.mclt,
                failover_role="primary" if service.source < service.peer else "secondary",
                partition_share=profile.partition_share)
            if service.name not in self.channels:
                key = service.shared_key.encode() if service.shared_key else None
                extra = {} if self.random_bytes is None else {"random_bytes": self.random_bytes}
                self.channels[service.name] = BackupChannel(service.name, key, **extra)
        self._by_pool = {pool: p for p in self.profiles.values() for pool in p.pools}
        self._profiles_of = {name: [p for p in self.profiles.values() if p.service == name]
                             for name in self.channels}
        self._ever_up = {name: False for name in self.channels}
        self._presumed_down_since: dict[str, float | None] = dict.fromkeys(self.channels)
        self._waiting_since: dict[str, float | None] = dict.fromkeys(self.channels)
        self._in_flight: dict[str, dict[int, tuple[int, float]]] = {n: {} for n in self.channels}
        self.records_applied = 0
        self.unconfirmed_replies: dict[str, int] = {name: 0 for name in self.channels}
        self._unreported: dict[str, int] = dict.fromkeys(self.channels, 0)
        self._reported_at: dict[str, float | None] = dict.fromkeys(self.channels)
        self.channel_times: dict[str, dict] = {}
        for profile in self.profiles.values():
            if profile.sync_mode == "lazy":
                self.commands.append(CapLeaseTimes(profile.pools, profile.mclt))
        self._next_balance = self.started + REBALANCE_INTERVAL
        self._balances = any(p.failover_role == "primary" for p in self.profiles.values())
        self._start_splits()
        self._queue_unsynced()
        self.update(self.started)

    def _start_splits(self) -> None:
        """Each pool's split as given (from disk, or the engine before this one), else
        partition-share; journaled at once unless it is the one on disk."""
        unsaved = {}
        for profile in self.profiles.values():
            # new addresses from our share alone, in every state
            self.commands.append(RestrictAllocation(profile.pools, True))
            for pool in sorted(profile.pools):
                split = self.splits.get(pool, profile.partition_share)
                profile.splits[pool] = profile.proposal[pool] = split
                self.commands.append(SetSplit(pool, split))
                if pool in self.saved_splits:
                    profile.saved_splits[pool] = self.saved_splits[pool]
                if self.saved_splits.get(pool) != split:
                    unsaved[pool] = split
        if unsaved:
            self.commands.append(SaveSplits(unsaved))

    def _queue_unsynced(self) -> None:
        """Queue for the peer every lease changed after ``synced_until``: the queue of
        the engine (or process) before this one is gone."""
        for service in self.channels:
            self.synced_until.setdefault(service, self.started + self.wall_offset)
        if self.table is None or not self.channels:
            return
        unsynced: dict[str, list[LeaseRecord]] = {name: [] for name in self.channels}
        oldest = min(self.synced_until[name] for name in self.channels)
        # one comparison for most leases: a million take tens of milliseconds at start
        for lease in [lease for lease in self.table.by_address.values() if lease.start > oldest]:
            profile = self._by_pool.get(lease.pool)
            if profile is None or lease.state is LeaseState.OFFERED or \
                    lease.start <= self.synced_until[profile.service]:
                continue
            unsynced[profile.service].append(
                LeaseRecord(profile.backup_id, lease.pool, lease.address, lease))
        for service, records in unsynced.items():
            if records:
                self.channels[service].send_records(records)

    # --- inputs ---

    def role_changed(self, vrrp_key: tuple[str, int], role: str, reason: str,
                     now: float) -> None:
        """The VRRP group of some profiles is now ``role`` (init | slave | master)."""
        for profile in self.profiles.values():
            if profile.vrrp_key != vrrp_key or profile.local_state == role:
                continue
            self.events.append(RbpStateChanged(profile.name, profile.local_state, role, "vrrp"))
            profile.local_state = role
            profile.took_over_at = now if role == "master" and reason == "no-response" \
                else None
            if role == "master" and reason == "no-response" and profile.peer_state == "master":
                self._presumed_down_since[profile.service] = now  # VRRP says the peer is gone
            if role == "master" and profile.peer_state != "master":
                profile.has_table = True  # the table we serve from is the reference
        self.update(now)

    def lease_events(self, events: list, now: float) -> dict[str, tuple[str, int]]:
        """Send lease events to the peer; for strict pools, the (service, sequence
        number) a DHCPACK of that pool must see acknowledged: the service's last record
        of these events, so one service's DHCPACKs wait for numbers that never decrease."""
        strict_pools: dict[str, str] = {}
        last_sent: dict[str, int] = {}
        for event in events:
            if not isinstance(event, LeaseEvent):
                continue
            lease = event.lease
            profile = self._by_pool.get(lease.pool)
            if profile is None:
                continue
            channel = self.channels[profile.service]
            if self._waiting_since[profile.service] is None or \
                    channel.peer_acked >= channel.next_seq - 1:
                self._waiting_since[profile.service] = now
            seq = channel.send_records([LeaseRecord(
                profile.backup_id, lease.pool, lease.address,
                None if isinstance(event, LeaseRemoved) else lease)])
            if profile.sync_mode == "lazy" and lease.expiry is not None:
                self._in_flight[profile.service][lease.address] = (seq, lease.expiry)
            elif profile.sync_mode == "strict":
                strict_pools[lease.pool] = profile.service
            last_sent[profile.service] = seq
        return {pool: (service, last_sent[service]) for pool, service in strict_pools.items()}

    def channel_input(self, service: str, now: float) -> bool:
        """Act on what a channel reported; True if peer records were applied (the core
        commits them, then calls the channel's ``acknowledge``)."""
        channel = self.channels[service]
        applied = False
        events, channel.events = channel.events, []
        # In NORMAL, acks and records from a peer known alive change no failover state:
        # no recomputing for them (they come with every DHCP exchange in strict mode).
        # NORMAL says the peer was heard since any takeover, and on one connection the
        # peer's last word only moves forward.
        routine = self._presumed_down_since[service] is None \
            and all(type(event) in _ROUTINE for event in events) \
            and all(p.failover is FailoverState.NORMAL for p in self._profiles_of[service])
        for event in events:
            if not isinstance(event, ChannelDown):
                self._presumed_down_since[service] = None  # the peer is alive after all
            if isinstance(event, Acked):
                self._waiting_since[service] = now
                if self._reported_at[service] is not None:
                    self._report_unconfirmed(service, now, final=True)
                self._note_acked(service, event.upto)
            elif isinstance(event, RecordsReceived):
                self.commands.append(ApplyPeerLeases(event.records))
                if event.batch:
                    self._count_batch_records(service, event.records)
                self.records_applied += len(event.records)
                applied = True
            elif isinstance(event, ChannelUp):
                self._ever_up[service] = True
                self._waiting_since[service] = now
                self.channel_times.setdefault(service, {})["last-up-time"] = \
                    now + self.wall_offset
                self._peer_states(service, event.peer.profiles)
                for profile in self._of_service(service):
                    # Until a batch arrives (or we send ours as master) our table may lack
                    # the peer's; with neither master yet, whichever VRRP picks sends.
                    profile.batch_done = profile.batch_sent = False
                self.events.append(ProtectDown(service, True, "peer connected"))
                for profile in self._of_service(service):
                    if profile.local_state == "master":
                        self.send_batch(profile, now)
            elif isinstance(event, ChannelDown):
                self.channel_times.setdefault(service, {}).update(
                    {"last-down-time": now + self.wall_offset, "last-down-reason": event.reason})
                self.events.append(ProtectDown(service, False, event.reason))
                for profile in self._of_service(service):
                    if profile.batch_status == "running":
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
                    profile.batch_done = profile.has_table = True
                    profile.batch_status = "done"
                    profile.last_batch_time = now + self.wall_offset
                    self.events.append(BatchBackupDone(profile.name, False, event.count))
            elif isinstance(event, BatchAcked):
                profile = self._profile_by_id(service, event.backup_id)
                if profile is not None:
                    profile.batch_total, profile.batch_received = event.total, event.acked
                    if event.complete:
                        profile.batch_status = "done"
                        profile.last_batch_time = now + self.wall_offset
                        self.events.append(BatchBackupDone(profile.name, True, event.acked))
        if channel.state is ChannelState.UP and not channel.unacked:
            self.synced_until[service] = now + self.wall_offset
        if routine:
            self._last_now = now
        else:
            self.update(now)
        return applied

    # --- the ACK gate's questions ---

    def peer_confirmed(self, service: str, seq: int) -> bool:
        return self.channels[service].peer_acked >= seq

    def peer_unresponsive(self, service: str, now: float) -> bool:
        """A strict DHCPACK may leave without the peer: the channel is down, VRRP says the
        peer is gone, or it has acknowledged nothing for STRICT_WAIT."""
        if self.channels[service].state is not ChannelState.UP:
            return True
        if self._presumed_down_since[service] is not None:
            return True
        waiting = self._waiting_since[service]
        return waiting is not None and now >= waiting + STRICT_WAIT

    def count_unconfirmed(self, service: str, replies: int, now: float) -> None:
        self.unconfirmed_replies[service] += replies
        self._unreported[service] += replies
        self._report_unconfirmed(service, now)

    def report_unconfirmed(self, now: float) -> None:
        """Report the DHCPACKs not yet reported as unconfirmed (the device is stopping)."""
        for service in self._unreported:
            self._report_unconfirmed(service, now, final=True)

    def _report_unconfirmed(self, service: str, now: float, final: bool = False) -> None:
        """PeerUnresponsive with the DHCPACKs counted since the last one: the first of an
        outage at once, then every UNCONFIRMED_REPORT_INTERVAL, and the rest (``final``)
        once the peer acknowledges again."""
        replies, last = self._unreported[service], self._reported_at[service]
        if replies and (final or last is None or now >= last + UNCONFIRMED_REPORT_INTERVAL):
            self.events.append(PeerUnresponsive(service, replies))
            self._unreported[service] = 0
            self._reported_at[service] = now
        if final:
            self._reported_at[service] = None

    # --- roles, allocation, preemption ---

    def update(self, now: float) -> None:
        """Recompute every profile's failover state and what it allows."""
        self._last_now = now
        self._balance_due(now)
        for service, replies in self._unreported.items():
            if replies:
                self._report_unconfirmed(service, now)
        for profile in self.profiles.values():
            channel = self.channels[profile.service]
            up = channel.state is ChannelState.UP
            # After a takeover for the peer's silence, the peer may be a master too on the
            # other side of a partition: alive only once heard from since.
            unheard = profile.took_over_at is not None and \
                channel.last_heard < profile.took_over_at
            peer_alive = up and self._presumed_down_since[profile.service] is None \
                and not unheard
            if up and profile.local_state == "master":
                self._offer_batch(profile, now)
            state = failover_state(self._ever_up[profile.service], up, peer_alive,
                                   profile.local_state == "master" == profile.peer_state,
                                   profile.batch_done and channel.peer_backlog_received)
            if state is not profile.failover:
                self.events.append(FailoverStateChanged(profile.name, profile.failover, state))
                profile.failover = state
            # A device that has never had the whole table holds while the master that
            # has it is alive; one that had it (a partition, a channel drop) serves on.
            awaiting = peer_alive and profile.peer_state == "master" and not profile.has_table
            serving = profile.local_state == "master" and not awaiting
            if up:
                preempt = not awaiting
            else:
                preempt = now >= self.started + CHANNEL_GRACE
            if serving != profile.serving:
                profile.serving = serving
                self.commands.append(ServePools(profile.pools, serving))
            if preempt != profile.preempt:
                profile.preempt = preempt
                self.commands.append(AllowPreempt(profile.vrrp_key, preempt))
        self._settle_splits()
        for name, channel in self.channels.items():
            channel.set_profiles(tuple(ProfileInfo(p.backup_id, p.name, p.local_state,
                                                   p.batch_done, self._reported_splits(p))
                                       for p in self._of_service(name)), now)

    def _offer_batch(self, profile: ProfileRuntime, now: float) -> None:
        """As master, send our table to a peer that says it lacks one (both devices
        started together and the channel came up before VRRP chose a master)."""
        if not profile.batch_sent and not profile.peer_batch_done \
                and profile.peer_state != "master":
            self.send_batch(profile, now)

    # --- rebalancing the shares (see the module docstring) ---

    def _settle_splits(self) -> None:
        """Move each pool's split as far as the peer's last report allows."""
        moved = {}
        for profile in self.profiles.values():
            if self.channels[profile.service].state is not ChannelState.UP:
                continue
            for pool, current in profile.splits.items():
                peer = profile.peer_splits.get(pool)
                if peer is None:
                    continue
                if profile.failover_role == "primary":
                    target = profile.proposal[pool]
                    grows = target < current and peer.saved <= target
                    allowed = target if grows else current
                else:
                    allowed = min(peer.proposal, peer.saved)
                    grows = allowed > current
                # our share grows only with our table complete: it may take in addresses
                # the peer granted from its share
                if grows and profile.failover is not FailoverState.NORMAL:
                    continue
                if allowed != current:
                    moved[pool] = self._use_split(profile, pool, allowed)
        if moved:
            self.commands.append(SaveSplits(moved))

    def _use_split(self, profile: ProfileRuntime, pool: str, split: int) -> int:
        profile.splits[pool] = split
        self.commands.append(SetSplit(pool, split))
        return split

    @staticmethod
    def _reported_splits(profile: ProfileRuntime) -> tuple[PoolSplit, ...]:
        """What the heartbeat says: the split on disk, and the primary's proposal."""
        primary = profile.failover_role == "primary"
        return tuple(PoolSplit(pool, saved, profile.proposal[pool] if primary else saved)
                     for pool, saved in sorted(profile.saved_splits.items()))

    def _settled(self, profile: ProfileRuntime, pool: str) -> bool:
        """Both devices have saved the current proposal."""
        split = profile.splits[pool]
        peer = profile.peer_splits.get(pool)
        return profile.proposal[pool] == split == profile.saved_splits.get(pool) \
            and peer is not None and peer.saved == split

    def _balance_due(self, now: float) -> None:
        if now < self._next_balance:
            return
        self._next_balance = now + REBALANCE_INTERVAL
        shares = {pool: profile.partition_share for profile in self.profiles.values()
                  if profile.failover_role == "primary"
                  and profile.failover is FailoverState.NORMAL
                  for pool in profile.splits if self._settled(profile, pool)}
        if shares:
            self.commands.append(BalanceSplits(shares))

    def splits_balanced(self, splits: dict[str, int | None], now: float) -> None:
        """The DHCP engine's answer to :class:`BalanceSplits`: new proposals.  A split
        that shrinks our (the primary's) share is used at once; one that grows it waits
        for the secondary (``_settle_splits``)."""
        moved = {}
        for pool, target in splits.items():
            profile = self._by_pool.get(pool)
            if target is None or profile is None or profile.failover_role != "primary" \
                    or target == profile.proposal.get(pool):
                continue
            profile.proposal[pool] = target
            if target > profile.splits[pool]:
                moved[pool] = self._use_split(profile, pool, target)
        if moved:
            self.commands.append(SaveSplits(moved))
        self.update(now)

    def splits_saved(self, splits: dict[str, int], now: float) -> None:
        """These splits are on our disk: the peer may hear of them."""
        for pool, split in splits.items():
            profile = self._by_pool.get(pool)
            if profile is not None:
                profile.saved_splits[pool] = split
        self.update(now)

    def splits_in_use(self) -> dict[str, int]:
        return {pool: split for p in self.profiles.values() for pool, split in p.splits.items()}

    # --- batch backup ---

    def send_batch(self, profile: ProfileRuntime, now: float) -> bool:
        """Start a batch backup of the profile's leases (False if the channel is down);
        ``table`` is read page by page as the channel sends, in address order (each pool's
        addresses a shard at a time as the page reaches it: listing a million at once
        held the loop for 30 ms), so it sends the leases of the table as it is then."""
        table = self.table
        total = sum(len(table.addresses_in(pool)) for pool in profile.pools)
        addresses = chain.from_iterable(table.addresses_in(pool) for pool in sorted(profile.pools))
        started = self.channels[profile.service].send_batch(
            profile.backup_id, self._batch_records(profile, table, addresses), total)
        if started:
            profile.batch_status, profile.batch_total, profile.batch_received = \
                "running", total, 0
            profile.batch_sent = True
            if profile.local_state == "master" and profile.peer_state != "master":
                profile.batch_done = True  # the peer is getting our table: ours is the reference
        return started

    @staticmethod
    def _batch_records(profile: ProfileRuntime, table, addresses: Iterable[int]):
        by_address = table.by_address
        for address in addresses:
            lease = by_address.get(address)
            if lease is not None and lease.pool in profile.pools \
                    and lease.state is not LeaseState.OFFERED:
                yield LeaseRecord(profile.backup_id, lease.pool, address, lease)

    def batch_backup_now(self, service: str, now: float) -> int:
        """RPC batch-backup-now: every profile on the service sends its leases.

        Returns how many batches started (none while the channel is down).
        """
        started = sum(self.send_batch(profile, now) for profile in self._of_service(service))
        self.update(now)
        return started

    # --- timers ---

    def next_deadline(self, frames: bool = True) -> float | None:
        """The next deadline of the engine and its channels (with ``frames``, held update
        frames' too, which need no ``handle_timer``: only the device's output).

        The engine's own deadlines stay in the past once ``update`` has seen them (the
        strict wait while it lasts, the start's grace), so only those after it count; a
        channel's move on when its ``handle_timer`` runs, so each counts even when past
        (an input after a heartbeat's time must not hide it, nor the dead interval)."""
        deadlines = []
        for name, channel in self.channels.items():
            waiting = self._waiting_since[name]
            if waiting is not None and channel.peer_acked < channel.next_seq - 1:
                deadlines.append(waiting + STRICT_WAIT)
        if not all(p.preempt for p in self.profiles.values()):
            deadlines.append(self.started + CHANNEL_GRACE)
        if self._balances:
            deadlines.append(self._next_balance)
        last_now, earliest = self._last_now, None
        for deadline in deadlines:  # asked after every input: a plain loop, not min()
            if deadline > last_now and (earliest is None or deadline < earliest):
                earliest = deadline
        for channel in self.channels.values():
            for deadline in (channel.next_deadline(), channel.frame_deadline() if frames else None):
                if deadline is not None and (earliest is None or deadline < earliest):
                    earliest = deadline
        return earliest

    _last_now = float("-inf")

    def handle_timer(self, now: float) -> None:
        for channel in self.channels.values():
            channel.handle_timer(now)
        self.update(now)

    # --- bookkeeping ---

    def _of_service(self, service: str) -> list[ProfileRuntime]:
        return self._profiles_of[service]

    def _note_acked(self, service: str, upto: int) -> None:
        in_flight = self._in_flight[service]
        for address in [a for a, (seq, _) in in_flight.items() if seq <= upto]:
            self.commands.append(PeerHasExpiry(address, in_flight.pop(address)[1]))

    def _count_batch_records(self, service: str, records: list[LeaseRecord]) -> None:
        for profile in self._of_service(service):
            if profile.batch_status == "running":
                profile.batch_received += sum(r.backup_id == profile.backup_id for r in records)

    def _profile_by_id(self, service: str, backup_id: int) -> ProfileRuntime | None:
        return next((p for p in self._of_service(service) if p.backup_id == backup_id), None)

    def _peer_states(self, service: str, profiles: tuple[ProfileInfo, ...]) -> None:
        by_id = {p.backup_id: p for p in profiles}
        for profile in self._of_service(service):
            if profile.backup_id in by_id:
                profile.peer_state = by_id[profile.backup_id].state
                profile.peer_batch_done = by_id[profile.backup_id].batch_done
                profile.peer_splits = {split.pool: split
                                       for split in by_id[profile.backup_id].splits}
