"""Leases and the in-memory lease table, with the changes the journal must write.

A :class:`Lease` is immutable; every change replaces it.  It is a named tuple
(made on every DHCPOFFER and DHCPACK, it costs a fifth of a frozen dataclass).  The table indexes
leases by address, by (pool, client key), where the client key is the
client identifier (option 61) when the client sends one, else the hardware
address (RFC 2131 section 4.2), and by pool, so that a commit changing one
pool's addresses looks at that pool's leases only.  For management reads it
also keeps secondary indexes (hardware address, client identifier, Option 82
circuit-id -> its address, or a set when several share the value) and
per-pool counts of leases by state, each kept up to date in O(1) per
change, so that a NETCONF <get> of one client's lease
or of a pool's usage never scans the table.  A lease whose client has
gone (released or expired) stays in the table until its address goes to
someone else, so the client gets the same address back (RFC 2131 section
4.3.1).

The indexes that hold an entry per lease (by address, by client, by pool,
by hardware address, client identifier and circuit-id) are sharded
(``nefeature.dhcp.shards``): a dict or set of a million entries grows by
copying all of them in one call, 25-60 ms, and during a batch backup the
five of them grew in the same page.  ``for_client`` and ``put``, on every
DHCP message, reach the shards in line; ``put`` leaves the indexes alone
when the same client's lease is replaced at its address (the REQUEST after
the OFFER, a renewal).

Every change is also recorded in ``pending``: address -> new lease, or None
when the row goes away.  The device commits ``take_pending()`` to the
journal before it sends the replies that depend on it.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from enum import Enum
from ipaddress import IPv4Address
from typing import NamedTuple

from nefeature.dhcp.codec import relay_agent_suboptions
from nefeature.dhcp.shards import (
    HASH_MASK,
    HASH_SHIFT,
    MAP_SHARD_BITS,
    NO_SHARD,
    AddressMap,
    AddressSet,
    KeyMap,
)


class LeaseState(str, Enum):
    OFFERED = "offered"  # held for a client between OFFER and REQUEST; never journaled
    BOUND = "bound"
    RELEASED = "released"  # DHCPRELEASE; remembered for the client's return
    EXPIRED = "expired"
    DECLINED = "declined"  # DHCPDECLINE: address in conflict until probation ends


#: The states as plain names too: an Enum class's attribute costs a metaclass
#: __getattr__ call, and the table asks on every message.
OFFERED, BOUND, RELEASED, EXPIRED, DECLINED = (
    LeaseState.OFFERED, LeaseState.BOUND, LeaseState.RELEASED, LeaseState.EXPIRED,
    LeaseState.DECLINED)

#: Leases that hold their address against other clients.
HOLDING = frozenset({OFFERED, BOUND, DECLINED})


def holds_binding(lease: Lease, at: float) -> bool:
    """The lease binds its address to its client at time ``at``: the client may be using
    it (bound, and not expired by then)."""
    return lease.state is BOUND and (lease.expiry is None or lease.expiry > at)


def client_key(client_id: bytes | None, hardware_address: bytes) -> bytes:
    """How a client is identified: option 61, else chaddr (RFC 2131 section 4.2)."""
    return b"i" + client_id if client_id else b"h" + hardware_address


class Lease(NamedTuple):
    address: int
    pool: str
    client: bytes  # client_key()
    hardware_address: bytes
    state: LeaseState
    start: float
    expiry: float | None  # None: unlimited
    client_id: bytes | None = None
    hostname: str | None = None
    option82: bytes | None = None  # the whole Relay Agent Information option, raw
    origin: str = "local"  # local | peer-sync
    static: bool = False

    @property
    def ip(self) -> IPv4Address:
        return IPv4Address(self.address)

    @property
    def circuit_id(self) -> bytes | None:
        return relay_agent_suboptions(self.option82).get(1) if self.option82 else None

    @property
    def remote_id(self) -> bytes | None:
        return relay_agent_suboptions(self.option82).get(2) if self.option82 else None

    def with_changes(self, **changes) -> Lease:
        return self._replace(**changes)


class LeaseTable:
    """Leases by address, by client and by pool, plus the expiry schedule.

    Invariants: ``by_pool[p]`` is exactly the set of addresses ``a`` with
    ``by_address[a].pool == p`` (a pool without leases has no entry); the
    same holds for ``by_mac`` (hardware address), ``by_client_id`` and
    ``by_circuit_id``; ``by_client[(p, c)]`` is the address of client ``c``'s
    newest lease in pool ``p`` (the client's lease, ``for_client``), for every
    client with a lease; ``state_counts[p][s]`` is the number of leases of
    pool ``p`` in state ``s``.

    A client has one lease a pool, but for a moment two servers may both
    bind it (a server that was frozen answers a REQUEST the client sent
    before the other answered it).  The client uses one of the two addresses,
    and nobody knows which: so a newer lease of a client never drops an older
    binding that is still in force (``holds_binding``), which keeps its
    address until it ends like any lease; an older record that has ended goes.

    The indexes that hold an entry a lease are sharded (``nefeature.dhcp.shards``):
    a batch backup of a million leases never copies a million-entry table in one
    go.  The DHCP path (``for_client``, ``put``) reaches their shards in line.
    """

    def __init__(self) -> None:
        self.by_address: AddressMap = AddressMap()  # address -> Lease
        self.by_client: KeyMap = KeyMap()  # (pool, client key) -> address
        self.by_pool: defaultdict[str, AddressSet] = defaultdict(AddressSet)
        self.by_mac: AddressIndex = KeyMap()  # see indexed_addresses
        self.by_client_id: AddressIndex = KeyMap()
        self.by_circuit_id: AddressIndex = KeyMap()
        self.state_counts: defaultdict[str, Counter[LeaseState]] = defaultdict(Counter)
        self.pending: dict[int, Lease | None] = {}
        self.offers_in_flight: Counter[str] = Counter()  # per pool: offers awaiting a REQUEST
        self._deadlines: list[tuple[float, int]] = []  # (expiry, address); stale entries skipped
        self._count = 0  # leases in by_address
        self._several = False  # a client has had two leases in a pool (see put) since made

    def __len__(self) -> int:
        return self._count

    def for_client(self, pool: str, client: bytes) -> Lease | None:
        key = (pool, client)
        address = self.by_client.shards[hash(key) >> HASH_SHIFT & HASH_MASK].get(key)
        if address is None:
            return None
        return self.by_address.shards.get(address >> MAP_SHARD_BITS, NO_SHARD).get(address)

    def addresses_in(self, pool: str) -> AddressSet | tuple[()]:
        """The addresses of the pool's leases (any state), in address order."""
        return self.by_pool.get(pool, ())

    def put(self, lease: Lease, journal: bool = True) -> None:
        """Insert or replace the lease at its address."""
        address, pool, client = lease.address, lease.pool, lease.client
        leases = self.by_address.shards
        previous = leases.get(address >> MAP_SHARD_BITS, NO_SHARD).get(address)
        # the same client of the same pool again (its REQUEST after the OFFER, a renewal,
        # a release): by_client and by_pool have it already
        kept = previous is not None and previous.client == client and previous.pool == pool
        same_ids = kept and previous.hardware_address == lease.hardware_address \
            and previous.client_id == lease.client_id and previous.option82 == lease.option82
        if previous is None:
            self._count += 1
        else:
            if not kept:  # another client's, or another pool's
                self._forget_client(previous)
            if previous.pool != pool:
                self._unindex(previous.pool, address)
            if not same_ids:
                self._drop_ids(previous)
            self._count_state(previous.pool, previous.state, -1)
            if previous.state is OFFERED:
                self.offers_in_flight[previous.pool] -= 1
        if not kept or self._several:  # else by_client points here already
            key = (pool, client)
            clients = self.by_client.shards[hash(key) >> HASH_SHIFT & HASH_MASK]
            current = clients.get(key)
            other = None if current is None or current == address else \
                self.by_address.get(current)
            if other is None:
                clients[key] = address
            elif lease.start >= other.start:  # the newer lease is the client's
                if holds_binding(other, lease.start):
                    self._several = True  # the other keeps its address until it ends
                else:
                    self.remove(other.address)  # the client moved on: its old record goes
                clients[key] = address
            else:  # an older lease of the client, kept at its address (a binding that
                self._several = True  # may be in use keeps its address until it ends)
            if not kept:
                self.by_pool[pool].add(address)
        if lease.state is OFFERED:
            self.offers_in_flight[pool] += 1
        shard = leases.get(address >> MAP_SHARD_BITS)  # after remove(), which may drop a shard
        if shard is None:
            shard = leases[address >> MAP_SHARD_BITS] = {}
        shard[address] = lease
        if not same_ids:
            self._add_ids(lease)
        self.state_counts[pool][lease.state] += 1
        if lease.expiry is not None and lease.state in HOLDING:
            heapq.heappush(self._deadlines, (lease.expiry, address))
        if journal and lease.state is not OFFERED:
            self.pending[address] = lease
        elif previous is not None and previous.state is not OFFERED:
            self.pending[address] = None  # an offer replaced a journaled row

    def load(self, leases: Iterable[Lease]) -> None:
        """``put(lease, journal=False)`` of each lease in turn (a journal's table at
        start-up), in bulk (``add_new``)."""
        leases = iter(leases)
        while (other := self.add_new(leases, journal=False)[1]) is not None:
            self.put(other, journal=False)

    def add_new(self, leases: Iterator[Lease], journal: bool = True) -> tuple[
            dict[str, list[int]], Lease | None]:
        """``put`` leases from ``leases`` in bulk while each is at an address the table
        does not hold, for a client it does not know, and not an offer (the usual case
        of a journal at start-up and of a batch backup into an empty table): indexed in
        line (a run of addresses in one shard of ``by_address`` at a time, ``by_pool``
        at the end), the expiry heap taking their times at once.  Stops at the first
        lease that is not such a one.  Returns, per pool, the addresses of the leases
        put that hold their address (for the allocators), and that lease (None at the
        end)."""
        address_shards, client_shards = self.by_address.shards, self.by_client.shards
        mac_shards, state_counts, pending = self.by_mac.shards, self.state_counts, self.pending
        deadlines = []
        added: defaultdict[str, list[int]] = defaultdict(list)
        holding: defaultdict[str, list[int]] = defaultdict(list)
        shard_number: int = -1
        shard: dict[int, Lease] | None = None
        other = None
        for lease in leases:
            address, pool, client, state = lease.address, lease.pool, lease.client, lease.state
            key = (pool, client)
            clients = client_shards[hash(key) >> HASH_SHIFT & HASH_MASK]
            if address >> MAP_SHARD_BITS != shard_number:
                shard_number = address >> MAP_SHARD_BITS
                shard = address_shards.get(shard_number)
            if shard is not None and address in shard or key in clients or state is OFFERED:
                other = lease
                break
            if shard is None:
                shard = address_shards[shard_number] = {}
            shard[address] = lease
            clients[key] = address
            added[pool].append(address)
            mac = lease.hardware_address
            macs = mac_shards[hash(mac) >> HASH_SHIFT & HASH_MASK]
            if macs.setdefault(mac, address) != address:  # another holds it too
                _index_add(macs, mac, address)
            if lease.client_id or lease.option82:
                self._add_ids(lease, mac=False)
            state_counts[pool][state] += 1
            if state in HOLDING:
                holding[pool].append(address)
                if lease.expiry is not None:
                    deadlines.append((lease.expiry, address))
            if journal:
                pending[address] = lease
        for pool, addresses in added.items():
            self._count += len(addresses)
            self.by_pool[pool].add_all(addresses)
        heap = self._deadlines
        if len(deadlines) * 8 > len(heap):
            heap += deadlines
            heapq.heapify(heap)
        else:
            for deadline in deadlines:
                heapq.heappush(heap, deadline)
        return holding, other

    def remove(self, address: int) -> Lease | None:
        lease = self.by_address.pop(address, None)
        if lease is not None:
            self._count -= 1
            self._forget_client(lease)
            self._unindex(lease.pool, address)
            self._drop_ids(lease)
            self._count_state(lease.pool, lease.state, -1)
            if lease.state is OFFERED:
                self.offers_in_flight[lease.pool] -= 1
            else:
                self.pending[address] = None
        return lease

    def _forget_client(self, lease: Lease) -> None:
        """The lease is no longer its client's lease; the newest other lease of the client,
        if any (``put`` keeps an older binding that may still be in use), becomes it."""
        key = (lease.pool, lease.client)
        clients = self.by_client.shards[hash(key) >> HASH_SHIFT & HASH_MASK]
        if clients.get(key) != lease.address:
            return
        del clients[key]
        if not self._several:
            return
        index, value = (self.by_client_id, lease.client_id) if lease.client_id else \
            (self.by_mac, lease.hardware_address)
        others = [other for other in map(self.by_address.get, indexed_addresses(index, value))
                  if other is not None and other.address != lease.address
                  and other.pool == lease.pool and other.client == lease.client]
        if others:
            clients[key] = max(others, key=lambda other: other.start).address

    def _unindex(self, pool: str, address: int) -> None:
        addresses = self.by_pool[pool]
        addresses.discard(address)
        if not addresses:
            del self.by_pool[pool]

    def _add_ids(self, lease: Lease, mac: bool = True) -> None:
        """The lease into the hardware-address (unless ``mac`` is false), client-identifier
        and circuit-id indexes."""
        if mac:
            _index_add(self.by_mac, lease.hardware_address, lease.address)
        if lease.client_id:
            _index_add(self.by_client_id, lease.client_id, lease.address)
        if lease.option82:
            circuit = lease.circuit_id
            if circuit:
                _index_add(self.by_circuit_id, circuit, lease.address)

    def _drop_ids(self, lease: Lease) -> None:
        address = lease.address
        _index_discard(self.by_mac, lease.hardware_address, address)
        if lease.client_id:
            _index_discard(self.by_client_id, lease.client_id, address)
        if lease.option82:
            circuit = lease.circuit_id
            if circuit:
                _index_discard(self.by_circuit_id, circuit, address)

    def _count_state(self, pool: str, state: LeaseState, delta: int) -> None:
        counts = self.state_counts[pool]
        counts[state] += delta
        if not counts[state]:
            del counts[state]
            if not counts:
                del self.state_counts[pool]

    def next_expiry(self) -> float | None:
        """Earliest expiry of an offered, bound or declined lease."""
        while self._deadlines:
            expiry, address = self._deadlines[0]
            lease = self.by_address.get(address)
            if lease is not None and lease.state in HOLDING and lease.expiry == expiry:
                return expiry
            heapq.heappop(self._deadlines)
        return None

    def pop_expired(self, now: float) -> list[Lease]:
        """Leases whose time is up, earliest first, each once (their state is unchanged;
        a lease put twice unchanged, as a peer's resent record is, has two entries)."""
        expired: dict[int, Lease] = {}
        while (expiry := self.next_expiry()) is not None and expiry <= now:
            _, address = heapq.heappop(self._deadlines)
            expired.setdefault(address, self.by_address[address])
        return list(expired.values())

    def take_pending(self) -> dict[int, Lease | None]:
        pending, self.pending = self.pending, {}
        return pending


# The secondary indexes map a value to the one address that has it (an int), or to the
# set of them when several do: a set per lease would cost 200 bytes a lease.
AddressIndex = KeyMap  # bytes -> int | set[int]


def indexed_addresses(index: AddressIndex, value: bytes) -> set[int]:
    """The addresses a secondary index (``by_mac``, ...) holds for ``value``."""
    held = index.get(value)
    if held is None:
        return set()
    return {held} if type(held) is int else set(held)


def _index_add(index: AddressIndex | dict, value: bytes, address: int) -> None:
    """``address`` into the index (a KeyMap, or the one shard of it that holds ``value``)."""
    if type(index) is KeyMap:
        index = index.shards[hash(value) >> HASH_SHIFT & HASH_MASK]
    held = index.setdefault(value, address)
    if held != address:  # another address, or a set of them
        if type(held) is int:
            index[value] = {held, address}
        else:
            held.add(address)


def _index_discard(index: AddressIndex, value: bytes, address: int) -> None:
    shard = index.shards[hash(value) >> HASH_SHIFT & HASH_MASK]
    held = shard.get(value)
    if held is None:
        return
    if type(held) is int:
        if held == address:
            del shard[value]
        return
    held.discard(address)
    if len(held) == 1:
        shard[value] = next(iter(held))
