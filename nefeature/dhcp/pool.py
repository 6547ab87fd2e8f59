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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

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


class AddressPool:
    """The dynamic addresses of one pool and which of them are in use."""

    def __init__(self, pool: Pool, reserved: Iterable[int] = ()) -> None:
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
        self._fresh: Iterator[int] = (a for start, end in self.ranges for a in range(start, end + 1))
        self._recycled: deque[int] = deque()
        self._in_use: set[int] = set()

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

    def allocate(self) -> int | None:
        """A free address: never-used ones first, then the longest-free one."""
        for address in self._fresh:
            if address not in self._in_use:
                self._in_use.add(address)
                return address
        while self._recycled:
            address = self._recycled.popleft()
            if address not in self._in_use and self.is_dynamic(address):
                self._in_use.add(address)
                return address
        return None

    def free(self, address: int) -> None:
        """Return an address; it is reused after every other free address."""
        if address in self._in_use:
            self._in_use.discard(address)
            self._recycled.append(address)
