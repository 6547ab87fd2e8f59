"""Address allocation within one pool, in O(1) per lease and O(leases) memory.

A pool's allocatable addresses are its sections minus its excluded ranges,
minus the addresses the server must never hand out (RFC 2131 section 4.3.1
leaves the choice to the server; Huawei excludes the gateway, the server
identifier and the device's own interface and virtual addresses), minus the
static binds, which only their MAC may get.

New addresses come from a cursor that walks the sections once; an address
that becomes free again (released, expired, an offer not taken) goes to the
back of a recycle queue, so the address a client just gave up is the last
one handed to somebody else and the client can usually get it back.  Only
addresses in use are stored, so a /15 pool costs nothing until clients come.

Shares (hot backup).  A pool backed up by a peer splits its dynamic
addresses into the primary's and the secondary's share by a fixed hash of
the address (``share`` percent are the secondary's), the same on both
devices.  Each share has its own cursor and recycle queue; ``allocate``
takes from the device's own share first, and from the other only when not
``restricted`` (while the pair cannot agree, each side allocates from its
own share alone, so the two never hand out the same address).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from enum import Enum

from nefeature.config.model import Pool


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


def share_of(address: int, share: int) -> Side:
    """Whose share an address is in: ``share`` percent of addresses are the secondary's
    (Knuth's multiplicative hash spreads them evenly over any range)."""
    if share and (address * 2654435761 & 0xFFFFFFFF) % 100 < share:
        return Side.SECONDARY
    return Side.PRIMARY


class AddressPool:
    """The dynamic addresses of one pool and which of them are in use."""

    def __init__(self, pool: Pool, reserved: Iterable[int] = (), share: int = 0,
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
        self.share = share
        self.own = own
        self.restricted = False
        other = Side.SECONDARY if own is Side.PRIMARY else Side.PRIMARY
        self._sides = (own, other) if share else (own,)
        self._fresh: dict[Side, Iterator[int]] = {side: self._addresses(side)
                                                  for side in self._sides}
        self._recycled: dict[Side, deque[int]] = {side: deque() for side in self._sides}
        self._in_use: set[int] = set()

    def _addresses(self, side: Side) -> Iterator[int]:
        share = self.share
        for start, end in self.ranges:
            for address in range(start, end + 1):
                if not share or share_of(address, share) is side:
                    yield address

    def side_of(self, address: int) -> Side:
        return share_of(address, self.share) if self.share else self.own

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
        return address not in self._in_use and self.is_dynamic(address)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def take(self, address: int) -> None:
        """Mark an address used (a specific request, or a lease loaded from disk)."""
        self._in_use.add(address)

    def take_all(self, addresses: Iterable[int]) -> None:
        """``take`` of each address (the leases of a journal or of a batch backup)."""
        self._in_use.update(addresses)

    def allocate(self) -> int | None:
        """A free address of our own share (of the other's too unless restricted):
        never-used ones first, then the longest-free one."""
        for side in self._sides[:1] if self.restricted else self._sides:
            for address in self._fresh[side]:
                if address not in self._in_use:
                    self._in_use.add(address)
                    return address
            recycled = self._recycled[side]
            while recycled:
                address = recycled.popleft()
                if address not in self._in_use and self.is_dynamic(address):
                    self._in_use.add(address)
                    return address
        return None

    def may_allocate(self, address: int) -> bool:
        """A new binding of this address is allowed now (its share, when restricted)."""
        return not self.restricted or self.side_of(address) is self.own

    def free(self, address: int) -> None:
        """Return an address; it is reused after every other free address of its share."""
        if address in self._in_use:
            self._in_use.discard(address)
            self._recycled[self.side_of(address)].append(address)
