"""Address allocation within one pool, in O(1) per lease and O(leases) memory.

A pool's allocatable addresses are its sections minus its excluded ranges,
minus the addresses the server must never hand out (RFC 2131 section 4.3.1
leaves the choice to the server; Huawei excludes the gateway, the server
identifier and the device's own interface and virtual addresses), minus the
static binds, which only their MAC may get.

New addresses come from a cursor that walks the sections once; an address
that becomes free again (released, expired, an offer not taken) goes to the
back of a recycle queue, so the address a client just gave up is the last
one handed to somebody else and the client can usually get it back.  The
queue is an ordered set: an address freed again moves to the back, so it
holds each address once however often its client leaves and comes back
(taking an address leaves it there: ``allocate`` skips one in use).  Only
addresses in use are stored (a sharded set, ``nefeature.dhcp.shards``: no
growth copies a million of them at once), so a /15 pool costs nothing until
clients come.

Shares (hot backup).  A pool backed up by a peer splits its dynamic
addresses into the primary's and the secondary's share by a hash of the
address into one of ``BUCKETS`` buckets: the buckets below the pool's
``split`` are the secondary's, the rest the primary's (ISC DHCP failover's
FREE and BACKUP pools, drawn by hash rather than lease by lease).  Each
share has its own cursor and recycle queue; ``allocate`` takes from the
device's own share, and from the other's too only when not ``restricted``
(the hot-backup engine restricts every pool it backs up, so the two devices
never hand out the same address; a pool whose remote-backup-service is shut
down is the device's alone).  The hot-backup engine moves
the split, with the peer's agreement, so that the free addresses stay
divided as configured (``balanced_split``); the allocator keeps the free
addresses of every bucket counted for it.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from enum import Enum
from itertools import chain

from nefeature.config.model import Pool
from nefeature.dhcp.shards import NO_SHARD, SET_SHARD_BITS, AddressSet


def _intervals(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and merge inclusive intervals."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(base: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive intervals of ``base`` not covered by ``holes`` (both merged)."""
    result = []
    for start, end in base:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end < cursor or hole_start > end:
                continue
            if hole_start > cursor:
                result.append((cursor, hole_start - 1))
            cursor = max(cursor, hole_end + 1)
        if cursor <= end:
            result.append((cursor, end))
    return result


class Side(str, Enum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


BUCKETS = 100  # a split moves addresses between the shares one bucket (1 %) at a time
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash spreads the buckets over any range
EXACT_BUCKET_SIZES = 1 << 17  # larger pools are counted per bucket by their size alone
MISBALANCE = 0.15  # how far the secondary's free addresses may drift from their due


def bucket_of(address: int) -> int:
    """The address's bucket (written out in line in the allocator's loops)."""
    return (address * _HASH_MULTIPLIER & 0xFFFFFFFF) % BUCKETS


def share_of(address: int, split: int) -> Side:
    """Whose share an address is in: the secondary's when its bucket is below ``split``."""
    return Side.SECONDARY if bucket_of(address) < split else Side.PRIMARY


def other_side(side: Side) -> Side:
    return Side.SECONDARY if side is Side.PRIMARY else Side.PRIMARY


class AddressPool:
    """The dynamic addresses of one pool and which of them are in use."""

    def __init__(self, pool: Pool, reserved: Iterable[int] = (), split: int | None = None,
                 own: Side = Side.PRIMARY) -> None:
        self.name = pool.name
        self.network = int(pool.network.network_address)
        self.netmask = int(pool.network.netmask)
        self.static_binds = {bytes.fromhex(bind.mac.replace(":", "")): int(bind.address)
                             for bind in pool.static_binds}  # MAC bytes -> address
        sections = _intervals((int(s.start), int(s.end)) for s in pool.sections)
        holes = _intervals(
            [(int(e.start), int(e.end)) for e in pool.excluded]
            + [(a, a) for a in reserved]
            + [(int(b.address), int(b.address)) for b in pool.static_binds]
            + [(self.network, self.network), (self.broadcast, self.broadcast)]
        )
        self.ranges = _subtract(sections, holes)
        self.size = sum(end - start + 1 for start, end in self.ranges)
        self.split = split  # None: not backed up, every address is ours
        self.own = own
        self.restricted = False
        self._in_use = AddressSet()  # sharded: see nefeature.dhcp.shards
        self._used = 0  # len(self._in_use), counted
        # per bucket (backed-up pools): dynamic addresses, those in use, the highest
        # address a cursor has passed (the ones above it were never handed out)
        self._bucket_size = self._count_bucket_sizes() if split is not None else None
        self._bucket_used = [0] * BUCKETS
        self._frontier = [-1] * BUCKETS
        sides = (own,) if split is None else (own, other_side(own))
        self._recycled: dict[Side, OrderedDict[int, None]] = {  # ordered sets
            side: OrderedDict() for side in sides}
        self._fresh: dict[Side, Iterator[int]] = {side: self._never_used(side) for side in sides}

    def _count_bucket_sizes(self) -> list[int]:
        if self.size > EXACT_BUCKET_SIZES:  # the hash spreads a large pool evenly
            sizes = [self.size // BUCKETS] * BUCKETS
            for bucket in range(self.size % BUCKETS):
                sizes[bucket] += 1
            return sizes
        counts = Counter(map(bucket_of, chain.from_iterable(
            range(start, end + 1) for start, end in self.ranges)))
        return [counts[bucket] for bucket in range(BUCKETS)]

    def _never_used(self, side: Side) -> Iterator[int]:
        """The addresses of ``side``'s share no cursor has passed, in order."""
        if self.split is None:
            for start, end in self.ranges:
                yield from range(start, end + 1)
            return
        secondary = side is Side.SECONDARY
        mine = [(bucket < self.split) is secondary for bucket in range(BUCKETS)]
        frontier = self._frontier
        resume = min((frontier[b] for b in range(BUCKETS) if mine[b]), default=-1)
        for start, end in self.ranges:
            for address in range(max(start, resume + 1), end + 1):
                bucket = (address * _HASH_MULTIPLIER & 0xFFFFFFFF) % BUCKETS
                if mine[bucket] and address > frontier[bucket]:
                    frontier[bucket] = address
                    yield address

    def side_of(self, address: int) -> Side:
        return self.own if self.split is None else share_of(address, self.split)

    @property
    def broadcast(self) -> int:
        return self.network | (~self.netmask & 0xFFFFFFFF)

    def in_subnet(self, address: int) -> bool:
        return address & self.netmask == self.network

    def is_dynamic(self, address: int) -> bool:
        """The address is one this pool hands out dynamically."""
        for start, end in self.ranges:
            if start <= address <= end:
                return True
        return False

    def is_free(self, address: int) -> bool:
        return address not in self._in_use.shards.get(address >> SET_SHARD_BITS, NO_SHARD) \
            and self.is_dynamic(address)

    @property
    def in_use(self) -> int:
        return self._used

    def _count_used(self, addresses: Iterable[int], delta: int) -> None:
        """Keep the per-bucket count of dynamic addresses in use (backed-up pools)."""
        used = self._bucket_used
        if len(self.ranges) == 1:
            low, high = self.ranges[0]
            dynamic = [a for a in addresses if low <= a <= high]
        else:
            dynamic = [a for a in addresses if self.is_dynamic(a)]
        for bucket in map(bucket_of, dynamic):  # a plain loop: a Counter costs more at any size
            used[bucket] += delta

    def _count_one(self, address: int, delta: int) -> None:
        """``_count_used`` of one address (on every lease): no list."""
        if self.is_dynamic(address):
            self._bucket_used[bucket_of(address)] += delta

    def take(self, address: int) -> None:
        """Mark an address used (a specific request, or a lease loaded from disk)."""
        shard = self._in_use.shards.get(address >> SET_SHARD_BITS)
        if shard is None or address not in shard:
            self._in_use.add(address)
            self._used += 1
            if self.split is not None:
                self._count_one(address, 1)

    def take_all(self, addresses: Iterable[int]) -> None:
        """``take`` of each address (the leases of a journal or of a batch backup)."""
        new = self._in_use.add_all(addresses)
        self._used += len(new)
        if self.split is not None:
            self._count_used(new, 1)

    def allocate(self) -> int | None:
        """A free address of our own share (of the other's too unless restricted):
        never-used ones first, then the longest-free one."""
        in_use = self._in_use.shards
        for side in (self.own,) if self.restricted else self._fresh:
            for address in self._fresh[side]:
                if address not in in_use.get(address >> SET_SHARD_BITS, NO_SHARD):
                    break
            else:
                recycled = self._recycled[side]
                while recycled:
                    address = recycled.popitem(last=False)[0]
                    if address not in in_use.get(address >> SET_SHARD_BITS, NO_SHARD) \
                            and self.is_dynamic(address):
                        break
                else:
                    continue
            self._in_use.add(address)
            self._used += 1
            if self.split is not None:
                self._bucket_used[(address * _HASH_MULTIPLIER & 0xFFFFFFFF) % BUCKETS] += 1
            return address
        return None

    def may_allocate(self, address: int) -> bool:
        """A new binding of this address is allowed now (its share, when restricted)."""
        return not self.restricted or self.side_of(address) is self.own

    def free(self, address: int) -> None:
        """Return an address; it is reused after every other free address of its share."""
        if address in self._in_use.shards.get(address >> SET_SHARD_BITS, NO_SHARD):
            self._in_use.discard(address)
            self._used -= 1
            if self.split is not None:
                self._count_one(address, -1)
            recycled = self._recycled[self.side_of(address)]
            recycled[address] = None
            recycled.move_to_end(address)

    # --- the split between the two shares (backed-up pools) ---

    def _free_per_bucket(self) -> list[int]:
        assert self._bucket_size is not None  # a split pool's
        return [max(0, size - used) for size, used in zip(self._bucket_size, self._bucket_used)]

    def free_by_side(self) -> dict[Side, int]:
        """Free dynamic addresses in each share."""
        if self.split is None:
            return {self.own: max(0, self.size - self.in_use), other_side(self.own): 0}
        free = self._free_per_bucket()
        return {Side.SECONDARY: sum(free[:self.split]), Side.PRIMARY: sum(free[self.split:])}

    def balanced_split(self, percent: int) -> int:
        """The split that gives the secondary's share ``percent`` % of the free addresses;
        the current one while the secondary's free addresses are within ``MISBALANCE`` of
        that (ISC failover's max-lease-misbalance), or when nothing is free."""
        assert self.split is not None
        free = self._free_per_bucket()
        total = sum(free)
        due = total * percent / 100
        if not total or abs(sum(free[:self.split]) - due) <= MISBALANCE * due:
            return self.split
        if percent >= 100:
            return BUCKETS
        below = 0
        for bucket, count in enumerate(free):
            if below + count > due:  # stop at the bucket boundary nearer to ``due``
                return bucket + 1 if below + count - due < due - below else bucket
            below += count
        return BUCKETS

    def set_split(self, split: int) -> None:
        """Move the split: buckets change share, with their free addresses and cursors."""
        if self.split is None or split == self.split:
            return
        self.split = split
        recycled: dict[Side, OrderedDict[int, None]] = {
            side: OrderedDict() for side in self._recycled}
        for address in chain(*self._recycled.values()):
            recycled[self.side_of(address)][address] = None
        self._recycled = recycled
        self._fresh = {side: self._never_used(side) for side in self._fresh}
