"""Sans-IO DHCPv4 server engine: RFC 2131 section 4.3, RFC 2132, RFC 3046.

The engine is fed received datagrams and the current time and returns the
replies to send; it never touches a socket or a clock.  Its inputs:

* ``receive(Received, now)`` -> list of :class:`Reply`;
* ``handle_timer(now)`` at ``next_deadline()``: offers not taken are
  withdrawn, bound leases expire, declined addresses leave probation.

Durability is the caller's half of the contract: a reply marked ``durable``
carries a binding that must be in the journal before the reply leaves, so
the caller commits ``table.take_pending()`` first and then sends (docs/architecture.md,
"a lease is written before its ACK leaves").  Lease events
(``nefeature.dhcp.events``) accumulate in ``events`` for whoever consumes
them (the sync engine).

Client states are told apart as RFC 2131 section 4.3.2 does: a REQUEST
with a server identifier comes from SELECTING; without one and without
ciaddr from INIT-REBOOT; with ciaddr from RENEWING (unicast) or REBINDING
(broadcast).  Replies are addressed by section 4.1: to the relay when giaddr
is set, else to ciaddr, else broadcast when the client asks for it (and
always for DHCPNAK), else to yiaddr at chaddr.

A pool is chosen by giaddr for relayed requests and by the receiving
interface's address otherwise; only interfaces with the DHCP server enabled
answer directly attached clients.  Option 82 is stored with the lease,
echoed in every reply, and kept when a renewal arrives without it (unicast
renewals bypass the relay).

Flood protection (``nefeature.dhcp.ratelimit``): messages over the
per-client or per-circuit-id rate, and DISCOVERs from clients new to a pool
that already has ``max-offers-in-flight`` offers waiting, are dropped and
counted in ``flood_dropped``.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from ipaddress import IPv4Address, IPv4Network
from typing import Any, NamedTuple

from nefeature.config.model import DeviceConfig, FloodProtection, Interface, Pool
from nefeature.dhcp.codec import (
    BOOTREQUEST,
    BROADCAST_FLAG,
    DEFAULT_MAX_MESSAGE_SIZE,
    DhcpMessage,
    MalformedMessage,
    MessageType,
    Option,
    decode,
    encode_options,
    encode_reply,
    relay_agent_suboptions,
)
from nefeature.dhcp.events import (
    LeaseCommitted,
    LeaseDeclined,
    LeaseExpired,
    LeaseReleased,
    LeaseRemoved,
    PoolThresholdExceeded,
)
from nefeature.dhcp.leases import (
    BOUND,
    DECLINED,
    EXPIRED,
    HOLDING,
    OFFERED,
    RELEASED,
    Lease,
    LeaseState,
    LeaseTable,
    client_key,
    holds_binding,
)
from nefeature.dhcp.pool import AddressPool, Side
from nefeature.dhcp.ratelimit import KeyedRateLimiter

SERVER_PORT = 67
CLIENT_PORT = 68
BROADCAST = 0xFFFFFFFF
BROADCAST_MAC = b"\xff" * 6
CIRCUIT_ID = 1  # Option 82 sub-option (RFC 3046 section 2.0)
OFFER_HOLD_TIME = 60.0  # seconds an offered address waits for its REQUEST
DECLINE_PROBATION = 86400.0  # seconds a declined address stays out of use (as Kea)
INFINITE_LEASE = 0xFFFFFFFF
LINKS_REMEMBERED = 4096  # relay and interface addresses whose pool is remembered
_NOT_LOOKED_UP: Any = object()  # a link _select_pool has not looked up yet


# Received and Reply are named tuples: one of each per datagram, and a frozen
# dataclass costs several times as much to make.


class Received(NamedTuple):
    """A datagram for the server and where it came in."""

    data: bytes
    interface: str | None = None  # the Linux interface it arrived on, when known
    unicast: bool = False  # addressed to one of our addresses, not broadcast


class Reply(NamedTuple):
    """A datagram to send."""

    data: bytes
    address: int  # destination IPv4 address
    port: int
    source: int  # our address to send from (the server identifier)
    interface: str | None  # the interface the request came in on
    mac: bytes | None  # deliver on that link to this MAC; None: route by address
    durable: bool  # carries a binding: send only after the journal commit
    pool: str | None = None


@dataclass
class Statistics:
    """The counters of VRP 'display dhcp server statistics'."""

    discover: int = 0
    request: int = 0
    decline: int = 0
    release: int = 0
    inform: int = 0
    offer: int = 0
    ack: int = 0
    nak: int = 0
    force_renew: int = 0
    bad_messages: int = 0
    flood_dropped: int = 0

    @property
    def client_request(self) -> int:
        return self.discover + self.request + self.decline + self.release + self.inform

    @property
    def server_reply(self) -> int:
        return self.offer + self.ack + self.nak + self.force_renew

    def reset(self) -> None:
        for counter in fields(self):
            setattr(self, counter.name, 0)


_RECEIVED_COUNTER: dict[int | None, str] = {
    MessageType.DISCOVER: "discover",
    MessageType.REQUEST: "request",
    MessageType.DECLINE: "decline",
    MessageType.RELEASE: "release",
    MessageType.INFORM: "inform",
}
_HANDLER: dict[int | None, str] = {
    message_type: "_on_" + counter for message_type, counter in _RECEIVED_COUNTER.items()}
_SENT_COUNTER = {MessageType.OFFER: "offer", MessageType.ACK: "ack", MessageType.NAK: "nak"}


class _AddressPlan(NamedTuple):
    """Everything a pool's allocator is built from: equal plans, equal allocators."""

    network: IPv4Network
    sections: tuple
    excluded: tuple
    static_binds: tuple
    reserved: frozenset[int]  # never leased, within the span of the sections
    own: Side | None  # which share is this device's (hot backup), None: not backed up


def _address_plan(pool: Pool, reserved: set[int], own: Side | None = None) -> _AddressPlan:
    """The pool's plan; ``reserved`` is every address the device never leases.

    Reserved addresses outside the span of the pool's sections cannot change
    which addresses it hands out, so they are left out: a new interface or
    virtual address in another subnet does not rebuild this pool's allocator.
    """
    if pool.sections:
        low = min(int(s.start) for s in pool.sections)
        high = max(int(s.end) for s in pool.sections)
        reserved = {a for a in reserved if low <= a <= high}
    else:
        reserved = set()
    return _AddressPlan(pool.network, pool.sections, pool.excluded, pool.static_binds,
                        frozenset(reserved), own)


class _PoolState:
    """A configured pool with its allocator and the options every reply carries.

    ``addresses`` is given when the allocator of the previous configuration
    is kept (its address plan did not change); otherwise a new, empty one is
    built and the server fills it from the pool's leases.
    """

    def __init__(self, pool: Pool, plan: _AddressPlan, addresses: AddressPool | None = None,
                 split: int = 0) -> None:
        self.config = pool
        self.plan = plan
        self.addresses = addresses if addresses is not None else AddressPool(
            pool, plan.reserved, None if plan.own is None else split, plan.own or Side.PRIMARY)
        options: dict[int, bytes] = {Option.SUBNET_MASK: pool.network.netmask.packed}
        if pool.routers:
            options[Option.ROUTER] = b"".join(a.packed for a in pool.routers)
        if pool.dns_servers:
            options[Option.DNS_SERVERS] = b"".join(a.packed for a in pool.dns_servers)
        if pool.domain_name:
            options[Option.DOMAIN_NAME] = pool.domain_name.encode("ascii", "replace")
        for option in pool.options:
            options[option.code] = option.value
        self.options = options
        self.encoded_options = encode_options(options)  # the same in every OFFER and ACK
        self.encoded_lease_options = encode_options(_lease_time_options(pool.lease_time))
        self.lease_trailers: dict[tuple[int, int], bytes] = {}  # (type, server id) -> options
        self.server_id: int | None = None  # without a receiving interface; set by the server
        self.over_threshold = False


class DhcpServer:
    """The DHCPv4 server of one device (see the module docstring)."""

    def __init__(self, config: DeviceConfig, leases: tuple[Lease, ...] | list[Lease] = ()) -> None:
        self.statistics = Statistics()
        self.table = LeaseTable()
        self.events: list = []
        self.silent_pools: set[str] = set()  # the peer device serves these (VRRP backup)
        self.restricted_pools: set[str] = set()  # new addresses from our own share only
        self.splits: dict[str, int] = {}  # backed-up pool -> split (``AddressPool.split``)
        self.relay_port = SERVER_PORT  # where relays listen (another port only on loopback)
        self._reply_heads: dict[tuple[int, int], bytes] = {}
        self.sync_conflicts = 0
        # Lazy hot backup (the ISC MCLT rule): pool -> MCLT, and address -> the expiry the
        # peer has acknowledged; a lease never runs more than MCLT past the peer's copy.
        self.mclt: dict[str, int] = {}
        self.peer_expiry: dict[int, float] = {}
        self.apply_config(config)
        self._load_all(leases)

    # --- configuration ---

    def apply_config(self, config: DeviceConfig) -> None:
        """Take a (new) configuration; leases in the table keep their addresses.

        Never leased: the device's interface and virtual addresses, the
        remote backup peer's address, a pool's routers and identifier.

        A commit costs what it changes, not what the lease table holds.  A
        pool's allocator depends only on its address plan (``_address_plan``:
        network, sections, excluded ranges, static binds, and the never-leased
        addresses within its sections), so:

        * a pool whose plan is unchanged keeps its allocator object as it is:
          the addresses in use, the cursor over never-used addresses and the
          queue of freed ones.  When only its options changed (domain name,
          DNS servers, lease time, ...) just the encoded options are rebuilt,
          and its threshold alarm stays raised unless the threshold changed;
        * a new pool, or one whose plan changed, gets a new allocator that
          takes the addresses held by that pool's own leases (offered, bound
          or declined), found through the table's per-pool index; no other
          pool's leases are looked at.

        The table itself is never changed here: a lease outside a shrunk
        range stays its client's until it ends, and nothing goes to the
        journal.  A removed pool's leases stay in the table, and are taken
        again if a pool of that name comes back.
        """
        self.enabled = config.dhcp_enabled
        self._set_flood_protection(config.flood_protection)
        self.interfaces: dict[str, Interface] = {i.linux_name: i for i in config.interfaces}
        self._server_ids: dict[tuple[str, str], int] = {}  # (pool, interface) -> identifier
        self._pool_of_link: dict[int, _PoolState | None] = {}  # _select_pool's answers
        own = {int(i.address.ip) for i in config.interfaces if i.address is not None}
        own |= {int(a) for g in config.vrrp_groups for a in g.virtual_addresses}
        own |= {int(a) for s in config.rbs_services for a in (s.peer, s.source) if a is not None}
        previous = getattr(self, "pools", {})
        self.pools: dict[str, _PoolState] = {}
        shares = _shares(config)
        for pool in config.pools:
            reserved = own | {int(a) for a in pool.routers}
            if pool.identifier is not None:
                reserved.add(int(pool.identifier))
            share, side = shares.get(pool.name, (0, None))
            plan = _address_plan(pool, reserved, side)
            kept = previous.get(pool.name)
            if kept is not None and kept.plan == plan:
                if kept.config == pool:
                    self.pools[pool.name] = kept  # unchanged
                    continue
                state = _PoolState(pool, plan, kept.addresses)  # options only
                state.over_threshold = kept.over_threshold and \
                    kept.config.warning_threshold == pool.warning_threshold
            else:
                state = _PoolState(pool, plan, split=self.splits.get(pool.name, share))
                by_address = self.table.by_address
                for address in self.table.addresses_in(pool.name):
                    if by_address[address].state in HOLDING:
                        state.addresses.take(address)
            self.pools[pool.name] = state
        for state in self.pools.values():
            state.server_id = None
            state.server_id = self._server_id(state, None)
            state.addresses.restricted = state.config.name in self.restricted_pools

    def _set_flood_protection(self, limits: FloodProtection) -> None:
        """New limiters only where a rate changed, so a commit does not refill every bucket."""
        if getattr(self, "flood_protection", None) == limits:
            return
        old = getattr(self, "flood_protection", FloodProtection(-1, -1))
        self.flood_protection = limits
        if limits.client_rate != old.client_rate:
            self._client_limiter = KeyedRateLimiter(limits.client_rate)
        if limits.circuit_rate != old.circuit_rate:
            self._circuit_limiter = KeyedRateLimiter(limits.circuit_rate)

    def _over_flood_limits(self, message: DhcpMessage, client: bytes, now: float) -> bool:
        if not self._client_limiter.allow(client, now):
            return True
        if message.message_type == MessageType.DISCOVER and self.flood_protection.circuit_rate:
            option82 = message.options.get(Option.RELAY_AGENT_INFORMATION)
            circuit = relay_agent_suboptions(option82).get(CIRCUIT_ID) if option82 else None
            if circuit is not None and not self._circuit_limiter.allow(circuit, now):
                return True
        return False

    def _load_all(self, leases) -> None:
        """Restore the journal's leases (those of a pool no longer configured stay out),
        the table filled in bulk, then each holding lease's address taken."""
        pools, table = self.pools, self.table
        known = (lease for lease in leases if lease.pool in pools)
        holding, other = table.add_new(known, journal=False)
        if other is not None:  # two rows of one client, or an offer: each in turn
            table.put(other, journal=False)
            table.load(known)
            holding = defaultdict(list)
            for lease in table.by_address.values():
                if lease.state in HOLDING:
                    holding[lease.pool].append(lease.address)
        self._take_holding(holding)

    def _take_holding(self, holding: dict[str, list[int]]) -> None:
        """The allocators take these addresses (pool -> addresses)."""
        for pool, addresses in holding.items():
            self.pools[pool].addresses.take_all(addresses)

    # --- remote backup ---

    def set_serving(self, pool: str, serving: bool) -> None:
        """Answer for a pool (VRRP master) or stay silent (backup)."""
        (self.silent_pools.discard if serving else self.silent_pools.add)(pool)

    def restrict_allocation(self, pool: str, restricted: bool) -> None:
        """New addresses from this device's share of the pool only (or from any)."""
        (self.restricted_pools.add if restricted else self.restricted_pools.discard)(pool)
        if pool in self.pools:
            self.pools[pool].addresses.restricted = restricted

    def set_split(self, pool: str, split: int) -> None:
        """Move the split between the primary's and the secondary's share of a pool."""
        self.splits[pool] = split
        if pool in self.pools:
            self.pools[pool].addresses.set_split(split)

    def balanced_split(self, pool: str, percent: int) -> int | None:
        """The split that gives the secondary ``percent`` % of the pool's free addresses
        (``AddressPool.balanced_split``); None for a pool not backed up."""
        state = self.pools.get(pool)
        if state is None or state.addresses.split is None:
            return None
        return state.addresses.balanced_split(percent)

    def apply_peer_lease(self, pool: str, address: int, lease: Lease | None) -> bool:
        """Take a lease change from the peer; False if the local copy is newer.

        Which version is newer is decided by the lease's transaction time
        (``lease_version``: ISC failover's client-last-transaction-time), so a
        release or an expiry replaces the binding it ends, and a renewal is
        never undone by the expiry of the binding it renewed.
        """
        state = self.pools.get(pool)
        if state is None:
            return False
        local = self.table.by_address.get(address)
        if lease is None:
            if local is not None and local.state is not OFFERED:
                self.table.remove(address)
                if local.state in HOLDING:
                    state.addresses.free(address)
            return True
        if local is not None and local.state is not OFFERED:
            if lease_version(local) > lease_version(lease):
                if local.client != lease.client and local.state in HOLDING:
                    self.sync_conflicts += 1
                return False
            if local.client != lease.client and local.state in HOLDING:
                self.sync_conflicts += 1
        same_client = self.table.for_client(pool, lease.client)
        if local is None and same_client is None \
                and (lease.pool, lease.address) == (pool, address):
            # new address, new client (a batch backup into an empty table): _store's case
            # with nothing to displace, without its lookups again
            self.table.put(lease)
            if lease.state in HOLDING:
                state.addresses.take(address)
            return True
        if same_client is not None and same_client.address != address \
                and lease_version(same_client) > lease_version(lease) \
                and same_client.state is not OFFERED \
                and not holds_binding(lease, same_client.start):
            return False  # the client has a newer binding here, and this one had ended
        self._store(state, lease, self.table.for_client(lease.pool, lease.client))
        return True

    def apply_peer_leases(self, records) -> None:
        """``apply_peer_lease`` of each (backup id, pool, address, lease) in turn, as the
        channel decodes them (a lease's pool and address are its record's).  A lease at
        a new address for a new client (a batch backup into an empty table) goes into
        the table in bulk (``LeaseTable.add_new``): nothing to compare or displace."""
        pools = self.pools
        if len(records) < 8 or not all(lease is not None and pool in pools
                                       for _, pool, _, lease in records):
            for _backup_id, pool, address, lease in records:
                self.apply_peer_lease(pool, address, lease)
            return
        leases = iter([record[3] for record in records])
        while True:
            holding, other = self.table.add_new(leases)
            self._take_holding(holding)
            if other is None:
                return
            self.apply_peer_lease(other.pool, other.address, other)

    def reset_addresses(self, pool: str, start: int | None = None, end: int | None = None,
                        state: str | None = None) -> int:
        """RPC reset-address-state: return addresses to idle; how many were reset.

        ``state`` is all | conflict | expired | used; without it, the range
        start..end (one address when end is absent).  Offers are left alone.
        """
        if pool not in self.pools:
            return 0
        wanted = {"conflict": {DECLINED}, "expired": {EXPIRED, RELEASED},
                  "used": {BOUND}}.get(state or "", set(LeaseState) - {OFFERED})
        indexed = self.table.addresses_in(pool)  # the pool's index, not the whole table
        candidates: Iterable[int] = indexed
        first, last = 0, 0xFFFFFFFF  # no range given: every address
        if start is not None:
            first, last = start, start if end is None else end
            if last - first + 1 < len(indexed):
                candidates = range(first, last + 1)
        count = 0
        for address in list(candidates):
            lease = self.table.by_address.get(address)
            if lease is None or lease.pool != pool or lease.state not in wanted:
                continue
            if first <= address <= last:
                self.table.remove(address)
                self.pools[pool].addresses.free(address)
                self.events.append(LeaseRemoved(lease))
                count += 1
        return count

    # --- input ---

    def receive(self, packet: Received, now: float) -> list[Reply]:
        """Handle one datagram; return the replies (durable ones after commit)."""
        try:
            message = decode(packet.data)
        except MalformedMessage:
            self.statistics.bad_messages += 1
            return []
        message_type = message.message_type
        counter = _RECEIVED_COUNTER.get(message_type)
        if message.op != BOOTREQUEST or counter is None:
            self.statistics.bad_messages += 1
            return []
        setattr(self.statistics, counter, getattr(self.statistics, counter) + 1)
        if not self.enabled:
            return []
        interface = self.interfaces.get(packet.interface) if packet.interface else None
        if not message.giaddr and not _is_direct(message, interface) and not (
                message.ciaddr and packet.unicast):
            return []  # directly attached clients only where 'dhcp server enable' is set
        state = self._select_pool(message, interface)
        if state is None or state.config.name in self.silent_pools:
            return []
        server_id = self._server_ids.get((state.config.name, packet.interface or ""))
        if server_id is None:
            server_id = self._server_ids[(state.config.name, packet.interface or "")] = \
                self._server_id(state, interface)
        handler = getattr(self, _HANDLER[message_type])
        client = client_key(message.options.get(Option.CLIENT_ID), message.hardware_address)
        if (self.flood_protection.client_rate or self.flood_protection.circuit_rate) \
                and self._over_flood_limits(message, client, now):
            self.statistics.flood_dropped += 1
            return []
        return handler(message, state, server_id, interface, packet.unicast, now, client)

    def next_deadline(self) -> float | None:
        return self.table.next_expiry()

    def handle_timer(self, now: float) -> None:
        """Withdraw stale offers, expire leases, end decline probation."""
        for lease in self.table.pop_expired(now):
            addresses = self.pools[lease.pool].addresses if lease.pool in self.pools else None
            if lease.state is BOUND:
                expired = lease.with_changes(state=EXPIRED)
                self.table.put(expired)
                self.events.append(LeaseExpired(expired))
            else:  # an offer not taken, or a declined address out of probation
                self.table.remove(lease.address)
            if addresses is not None:
                addresses.free(lease.address)

    # --- pool and identity ---

    def _select_pool(self, message: DhcpMessage, interface: Interface | None) -> _PoolState | None:
        if message.giaddr:
            link = message.giaddr
        elif message.ciaddr and not _is_direct(message, interface):
            link = message.ciaddr  # a unicast renewal from a client behind a relay
        elif interface is not None and interface.address is not None:
            link = int(interface.address.ip)
        else:
            return None
        state = self._pool_of_link.get(link, _NOT_LOOKED_UP)
        if state is _NOT_LOOKED_UP:
            state = next((s for s in self.pools.values() if s.addresses.in_subnet(link)), None)
            if len(self._pool_of_link) >= LINKS_REMEMBERED:  # giaddr is the sender's choice
                self._pool_of_link.clear()
            self._pool_of_link[link] = state
        return state

    def _server_id(self, state: _PoolState, interface: Interface | None) -> int:
        if interface is None and state.server_id is not None:
            return state.server_id
        if state.config.identifier is not None:
            return int(state.config.identifier)
        if interface is not None and interface.address is not None:
            return int(interface.address.ip)
        for candidate in self.interfaces.values():
            if candidate.address is not None and candidate.address.ip in state.config.network:
                return int(candidate.address.ip)
        return next((int(i.address.ip) for i in self.interfaces.values() if i.address), 0)

    def _static_address(self, state: _PoolState, message: DhcpMessage) -> int | None:
        binds = state.addresses.static_binds
        if not binds or message.htype != 1 or message.hlen != 6:
            return None
        return binds.get(message.hardware_address)

    # --- lease bookkeeping (keeps the allocator in step with the table) ---

    def _store(self, state: _PoolState, lease: Lease, previous: Lease | None) -> None:
        """Put the lease (replacing a gone client's record at its address), ``previous``
        being the client's lease before (``for_client``), and keep the allocator in step."""
        self.table.put(lease)
        if previous is not None and previous.address != lease.address \
                and previous.state in HOLDING and previous.address not in self.table.by_address:
            state.addresses.free(previous.address)  # not while its binding may be in use
        if lease.state in HOLDING:
            state.addresses.take(lease.address)
        else:
            state.addresses.free(lease.address)

    def _available_to(self, state: _PoolState, address: int, client: bytes,
                      static: bool = False) -> bool:
        """Nobody else holds the address, and it is dynamic (or this client's static bind)."""
        holder = self.table.by_address.get(address)
        if holder is not None and holder.state in HOLDING:
            return holder.client == client
        return static or state.addresses.is_free(address)

    def _new_lease(self, message: DhcpMessage, state: _PoolState, address: int,
                   lease_state: LeaseState, start: float, expiry: float | None,
                   previous: Lease | None, client: bytes) -> Lease:
        hostname = message.options.get(Option.HOSTNAME)
        option82 = message.options.get(Option.RELAY_AGENT_INFORMATION)
        return Lease(  # positional: a fifth of the cost of keywords
            address,
            state.config.name,
            client,
            message.hardware_address,
            lease_state,
            start,
            expiry,
            message.options.get(Option.CLIENT_ID),
            hostname.decode("utf-8", "replace") if hostname else
            (previous.hostname if previous else None),
            option82 if option82 is not None else (previous.option82 if previous else None),
            "local",
            bool(state.addresses.static_binds) and address == self._static_address(state,
                                                                                   message),
        )

    # --- message handlers (RFC 2131 section 4.3) ---

    def _on_discover(self, message, state, server_id, interface, unicast, now, client):
        existing = self.table.for_client(state.config.name, client)
        cap = self.flood_protection.max_offers_in_flight
        if existing is None and cap and self.table.offers_in_flight[state.config.name] >= cap:
            self.statistics.flood_dropped += 1
            return []
        address = self._offer_address(state, message, client, existing)
        if address is None:
            return []  # pool exhausted
        if existing is not None and existing.state is BOUND and existing.address == address:
            lease = existing  # offer what the client already holds
        else:
            lease = self._new_lease(message, state, address, OFFERED, now,
                                    now + OFFER_HOLD_TIME, existing, client)
            self._store(state, lease, existing)
        return [self._reply(message, MessageType.OFFER, state, server_id, interface, lease)]

    def _offer_address(self, state, message, client, existing) -> int | None:
        """RFC 2131 section 4.3.1: static bind, current or last address, requested, new."""
        static = self._static_address(state, message)
        if static is not None:
            return static if self._available_to(state, static, client, static=True) else None
        if existing is not None and existing.state is not DECLINED:
            if self._available_to(state, existing.address, client) and (
                    existing.state is BOUND
                    or state.addresses.may_allocate(existing.address)):
                return existing.address
        requested = message.address_option(Option.REQUESTED_ADDRESS)
        if requested is not None and self._available_to(state, requested, client) \
                and state.addresses.may_allocate(requested):
            return requested
        return state.addresses.allocate()

    def _on_request(self, message, state, server_id, interface, unicast, now, client):
        existing = self.table.for_client(state.config.name, client)
        chosen_server = message.address_option(Option.SERVER_ID)
        requested = message.address_option(Option.REQUESTED_ADDRESS)
        if chosen_server is not None:  # SELECTING
            if chosen_server != server_id:
                if existing is not None and existing.state is OFFERED:
                    self.table.remove(existing.address)  # the client took another server's offer
                    state.addresses.free(existing.address)
                return []
            if existing is not None and existing.address == requested and (
                    existing.state is BOUND or existing.state is OFFERED
                    and state.addresses.may_allocate(requested)):
                return self._bind(message, state, server_id, interface, existing, now, client)
            return self._nak(message, state, server_id, interface, "offer not found")
        if not message.ciaddr:  # INIT-REBOOT
            if requested is None:
                self.statistics.bad_messages += 1
                return []
            if not state.addresses.in_subnet(requested):
                return self._nak(message, state, server_id, interface, "wrong network")
            if existing is None:
                return []  # no record of this client: stay silent (RFC 2131 4.3.2)
            if existing.address == requested and existing.state is not DECLINED \
                    and self._available_to(state, requested, client):
                return self._bind(message, state, server_id, interface, existing, now, client)
            return self._nak(message, state, server_id, interface, "address not leased to client")
        # RENEWING (unicast) or REBINDING (broadcast)
        address = message.ciaddr
        if (existing is not None and existing.address == address
                and existing.state is not DECLINED
                and self._available_to(state, address, client)):
            return self._bind(message, state, server_id, interface, existing, now, client)
        static = address == self._static_address(state, message)
        if state.addresses.in_subnet(address) and self._available_to(state, address, client,
                                                                     static=static):
            if not static and not state.addresses.may_allocate(address):
                # The peer's share while the pair is apart: the peer may have granted it
                # meanwhile.  Silence keeps the client on its lease; it asks again.
                return []
            return self._bind(message, state, server_id, interface, existing, now, client,
                              address)
        if unicast or state.addresses.in_subnet(address):
            return self._nak(message, state, server_id, interface, "address not available")
        return []

    def _bind(self, message, state, server_id, interface, existing, now, client, address=None):
        address = existing.address if address is None else address
        lease_time = state.config.lease_time
        mclt = self.mclt.get(state.config.name)
        if mclt is not None and lease_time is not None:
            known = max(self.peer_expiry.get(address, now), now)
            lease_time = max(1, min(lease_time, int(known + mclt - now)))
        lease = self._new_lease(message, state, address, BOUND, now,
                                None if lease_time is None else now + lease_time, existing,
                                client)
        self._store(state, lease, existing)
        self.events.append(LeaseCommitted(lease))
        self._check_threshold(state)
        return [self._reply(message, MessageType.ACK, state, server_id, interface, lease)]

    def _check_threshold(self, state: _PoolState) -> None:
        """address-pool-utilization-threshold-exceeded, once each time use crosses it."""
        threshold = state.config.warning_threshold
        if threshold is None or not state.addresses.size:
            return
        limit = -(-state.addresses.size * threshold // 100)
        allocated = state.addresses.in_use
        if allocated >= limit and not state.over_threshold:
            state.over_threshold = True
            self.events.append(PoolThresholdExceeded(state.config.name, state.addresses.size,
                                                     limit, allocated))
        elif allocated < limit:
            state.over_threshold = False

    def _nak(self, message, state, server_id, interface, reason: str):
        return [self._reply(message, MessageType.NAK, state, server_id, interface, None,
                            reason=reason)]

    def _on_release(self, message, state, server_id, interface, unicast, now, client):
        chosen_server = message.address_option(Option.SERVER_ID)
        if chosen_server is not None and chosen_server != server_id:
            return []
        existing = self.table.for_client(state.config.name, client)
        if existing is not None and existing.address == message.ciaddr \
                and existing.state is BOUND:
            released = existing.with_changes(state=RELEASED, start=now, expiry=now)
            self._store(state, released, existing)
            self.events.append(LeaseReleased(released))
        return []

    def _on_decline(self, message, state, server_id, interface, unicast, now, client):
        chosen_server = message.address_option(Option.SERVER_ID)
        if chosen_server is not None and chosen_server != server_id:
            return []
        address = message.address_option(Option.REQUESTED_ADDRESS)
        existing = self.table.for_client(state.config.name, client)
        if address is None or existing is None or existing.address != address \
                or existing.state not in (OFFERED, BOUND):
            return []
        # The conflict belongs to the address, not the client, who must get another one.
        declined = existing.with_changes(
            state=DECLINED, client=b"declined:" + struct.pack("!I", address),
            start=now, expiry=now + DECLINE_PROBATION)
        self.table.remove(address)
        self.table.put(declined)
        state.addresses.take(address)
        self.events.append(LeaseDeclined(declined))
        return []

    def _on_inform(self, message, state, server_id, interface, unicast, now, client):
        return [self._reply(message, MessageType.ACK, state, server_id, interface, None)]

    # --- replies (RFC 2131 section 4.1 and table 3) ---

    def _reply(self, request: DhcpMessage, reply_type: int, state: _PoolState,
               server_id: int, interface: Interface | None, lease: Lease | None,
               reason: str | None = None) -> Reply:
        head = self._reply_heads.get((reply_type, server_id))
        if head is None:  # options 53 and 54, the same for every reply of a kind
            head = self._reply_heads[(reply_type, server_id)] = encode_options({
                Option.MESSAGE_TYPE: bytes((reply_type,)),
                Option.SERVER_ID: struct.pack("!I", server_id)})
        if reply_type == MessageType.NAK:
            trailer = head + encode_options({Option.MESSAGE: (reason or "").encode()})
        elif lease is not None:
            if reply_type == MessageType.ACK and (granted := None if lease.expiry is None else
                                                  round(lease.expiry - lease.start)) \
                    != state.config.lease_time:
                trailer = head + encode_options(_lease_time_options(granted)) \
                    + state.encoded_options  # capped (lazy)
            else:  # the usual OFFER and ACK: the same options every time
                cached = state.lease_trailers.get((reply_type, server_id))
                if cached is not None:
                    trailer = cached
                else:
                    trailer = state.lease_trailers[(reply_type, server_id)] = \
                        head + state.encoded_lease_options + state.encoded_options
        else:
            trailer = head + state.encoded_options
        relay_info = request.options.get(Option.RELAY_AGENT_INFORMATION)
        if relay_info is not None:  # RFC 3046 2.2: echoed, as the last option
            trailer += encode_options({Option.RELAY_AGENT_INFORMATION: relay_info})
        yiaddr = lease.address if lease is not None and reply_type != MessageType.NAK else 0
        flags = request.flags
        if reply_type == MessageType.NAK and request.giaddr:
            flags |= BROADCAST_FLAG  # so the relay broadcasts it (RFC 2131 4.3.2)
        counter = _SENT_COUNTER[reply_type]
        setattr(self.statistics, counter, getattr(self.statistics, counter) + 1)
        if request.giaddr:  # to the relay (RFC 2131 4.1), on the port relays listen on
            address, port, mac, direct = request.giaddr, self.relay_port, None, False
        else:
            address, port, mac = _destination(request, reply_type, yiaddr)
            direct = _is_direct(request, interface)
        data = encode_reply(request.htype, request.hlen, request.xid, flags,
                            request.ciaddr if reply_type == MessageType.ACK else 0, yiaddr,
                            request.giaddr, request.chaddr, trailer, _client_max_size(request))
        return Reply(data, address, port, server_id,
                     interface.linux_name if direct and interface is not None else None,
                     mac if direct else None,
                     reply_type == MessageType.ACK and lease is not None, state.config.name)


def lease_version(lease: Lease) -> tuple[float, bool]:
    """Which of two versions of a lease is newer: the later transaction (bind, renew,
    release and decline each set ``start`` to their time); an expiry is newer than
    the binding it ends, which has the same start."""
    return (lease.start, lease.state is EXPIRED)


def _shares(config: DeviceConfig) -> dict[str, tuple[int, Side]]:
    """Pool -> (partition-share, our side) for pools backed up by a peer;
    the primary is the device with the lower remote-backup-service source address."""
    shares = {}
    for pool in config.pools:
        profile = next((p for p in config.rbs_profiles if p.name == pool.backup_profile), None)
        if profile is None or profile.service is None:
            continue
        service = next((s for s in config.rbs_services if s.name == profile.service), None)
        if service is None or service.source is None or service.peer is None:
            continue
        own = Side.PRIMARY if service.source < service.peer else Side.SECONDARY
        shares[pool.name] = (profile.partition_share, own)
    return shares


def _is_direct(message: DhcpMessage, interface: Interface | None) -> bool:
    """The client is on a link we serve directly (not relayed, not routed to us)."""
    return not message.giaddr and interface is not None and interface.dhcp_server


def _lease_time_options(lease_time: int | None) -> dict[int, bytes]:
    """Options 51, 58 and 59: T1 at 50 % and T2 at 87.5 % (RFC 2131 4.4.5)."""
    if lease_time is None:
        return {Option.LEASE_TIME: struct.pack("!I", INFINITE_LEASE)}
    return {
        Option.LEASE_TIME: struct.pack("!I", lease_time),
        Option.RENEWAL_TIME: struct.pack("!I", lease_time // 2),
        Option.REBINDING_TIME: struct.pack("!I", lease_time * 7 // 8),
    }


def _client_max_size(request: DhcpMessage) -> int:
    value = request.options.get(Option.MAX_MESSAGE_SIZE)
    if value is not None and len(value) == 2:
        return max(DEFAULT_MAX_MESSAGE_SIZE, struct.unpack("!H", value)[0])
    return DEFAULT_MAX_MESSAGE_SIZE


def _destination(request: DhcpMessage, reply_type: int,
                 yiaddr: int) -> tuple[int, int, bytes | None]:
    """(address, port, link-layer destination) of a reply, RFC 2131 section 4.1."""
    if request.giaddr:
        return request.giaddr, SERVER_PORT, None
    if reply_type == MessageType.NAK:
        return BROADCAST, CLIENT_PORT, BROADCAST_MAC
    if request.ciaddr:
        return request.ciaddr, CLIENT_PORT, request.hardware_address
    if request.broadcast or not yiaddr:
        return BROADCAST, CLIENT_PORT, BROADCAST_MAC
    return yiaddr, CLIENT_PORT, request.hardware_address


def format_address(address: int) -> str:
    return str(IPv4Address(address))
