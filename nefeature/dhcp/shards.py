"""Maps and sets of a million entries that never copy a million entries at once.

A CPython dict or set grows by copying every entry into a table twice the
size, in one call, and cannot be sized ahead: at 700,000 entries that holds
the event loop for 25-60 ms, and everything queued behind it waits as long
(a batch backup's page on the backup, and the strict-mode DHCPACKs the
master holds for the backup's acknowledgement of the updates behind that
page).  The lease table and the allocators keep their million-entry
containers in these types instead, which split the entries into shards of
bounded size, so that a growth copies one shard:

* :class:`AddressMap` and :class:`AddressSet`: keyed by an IPv4 address (an
  int), in shards of ``1 << MAP_SHARD_BITS`` consecutive addresses.  A pool's
  leases fill its range from its first address, and a journal is read and a
  batch backup sent in address order, so the shards fill one after another
  and each growth copies at most a few hundred entries.  They iterate in
  address order, shard by shard.
* :class:`KeyMap`: any hashable key, in ``HASH_SHARDS`` shards chosen by the
  key's hash.  The shards grow at about the same total count, but each copies
  only its own entries, and their counts differ by about the square root of
  their size, so their growths spread over a range of tenths of the total.

The types offer the operations the table, the allocators and their readers
use, at the cost of a Python call each.  On the DHCP path the owners (the
lease table, the allocator) reach the shard of a key in line instead, through
``shards`` and the shard numbers below (``address >> MAP_SHARD_BITS``,
``address >> SET_SHARD_BITS``, ``hash(key) >> HASH_SHIFT & HASH_MASK``): one
more dict lookup and no call.  The types do not count their entries (``len``
adds up the shards); an owner that needs its size at once counts for itself.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, MutableMapping, MutableSet
from itertools import chain
from types import MappingProxyType
from typing import Any

# Shard sizes.  A dict's table grows 4-fold, at 2/3 full, and holds 24 bytes an entry
# for 2/3 of its slots; a set's grows 4-fold (under 50,000 entries), at 3/5 full, and holds
# 16 bytes a slot.  So a full shard of 2,048 addresses fills a dict's 4,096-slot table
# to a half (36 bytes an entry, one dict of a million: 42), and one of 1,024 a set's
# 2,048-slot table (32 bytes an entry, as one set of a million).
MAP_SHARD_BITS = 11  # AddressMap: shard number address >> MAP_SHARD_BITS
SET_SHARD_BITS = 10  # AddressSet: shard number address >> SET_SHARD_BITS
HASH_SHARDS = 2048  # KeyMap: at a million keys about 490 a shard, a 1,024-slot table each
HASH_MASK = HASH_SHARDS - 1  # shard number hash(key) >> HASH_SHIFT & HASH_MASK
# The shard comes from high bits of the hash: a dict places a key by its low bits, and keys
# that all shared those (the shard's) would all start at one slot (a batch took 2.5 times
# the CPU).  So a KeyMap is for keys whose hashes spread over 64 bits (bytes, str, tuples of
# them); small ints would all land in shard 0.
HASH_SHIFT = 40
NO_SHARD: Any = MappingProxyType({})  # what a missing shard reads as (``shards.get(n, NO_SHARD)``)
_MISSING: Any = object()


class AddressMap(MutableMapping):
    """address -> value, in shards of consecutive addresses (``MAP_SHARD_BITS``); a shard
    that becomes empty is dropped."""

    __slots__ = ("shards",)

    def __init__(self) -> None:
        self.shards: dict[int, dict[int, Any]] = {}

    def __len__(self) -> int:
        return sum(map(len, self.shards.values()))

    def get(self, address: int, default: Any = None) -> Any:
        return self.shards.get(address >> MAP_SHARD_BITS, NO_SHARD).get(address, default)

    def __getitem__(self, address: int) -> Any:
        return self.shards.get(address >> MAP_SHARD_BITS, NO_SHARD)[address]

    def __contains__(self, address: object) -> bool:
        return address in self.shards.get(address >> MAP_SHARD_BITS, NO_SHARD)  # type: ignore[operator]

    def __setitem__(self, address: int, value: Any) -> None:
        shard = self.shards.get(address >> MAP_SHARD_BITS)
        if shard is None:
            self.shards[address >> MAP_SHARD_BITS] = {address: value}
        else:
            shard[address] = value

    def pop(self, address: int, default: Any = _MISSING) -> Any:
        shard = self.shards.get(address >> MAP_SHARD_BITS)
        if shard is None or address not in shard:
            if default is _MISSING:
                raise KeyError(address)
            return default
        value = shard.pop(address)
        if not shard:
            del self.shards[address >> MAP_SHARD_BITS]
        return value

    def __delitem__(self, address: int) -> None:
        self.pop(address)

    def _in_order(self) -> list[dict[int, Any]]:
        shards = self.shards
        return [shards[number] for number in sorted(shards)]

    def __iter__(self) -> Iterator[int]:
        return chain.from_iterable(self._in_order())

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return chain.from_iterable([shard.values() for shard in self._in_order()])

    def items(self) -> Iterator[tuple[int, Any]]:  # type: ignore[override]
        return chain.from_iterable([shard.items() for shard in self._in_order()])

    def __repr__(self) -> str:
        return f"AddressMap({dict(self.items())!r})"


class AddressSet(MutableSet):
    """A set of addresses, in shards of consecutive addresses (``SET_SHARD_BITS``); a shard
    that becomes empty is dropped.

    Iteration goes in address order, shard by shard, each shard as it is when
    reached, so the set may change meanwhile (a batch backup reads a pool's
    addresses page by page while the device serves)."""

    __slots__ = ("shards",)

    def __init__(self, addresses: Iterable[int] = ()) -> None:
        self.shards: dict[int, set[int]] = {}
        if addresses:
            self.add_all(addresses)

    def __len__(self) -> int:
        return sum(map(len, self.shards.values()))

    def __contains__(self, address: object) -> bool:
        return address in self.shards.get(address >> SET_SHARD_BITS, NO_SHARD)  # type: ignore[operator]

    def add(self, address: int) -> None:
        shard = self.shards.get(address >> SET_SHARD_BITS)
        if shard is None:
            self.shards[address >> SET_SHARD_BITS] = {address}
        else:
            shard.add(address)

    def discard(self, address: int) -> None:
        shard = self.shards.get(address >> SET_SHARD_BITS)
        if shard is not None and address in shard:
            shard.remove(address)
            if not shard:
                del self.shards[address >> SET_SHARD_BITS]

    def add_all(self, addresses: Iterable[int]) -> list[int]:
        """``add`` of each address, a shard at a time; the addresses that were not in
        the set (sorted first: a journal's or a batch's addresses, already in order,
        sort in one pass)."""
        ordered = sorted(addresses)
        shards, added, start, end = self.shards, [], 0, len(ordered)
        while start < end:
            number = ordered[start] >> SET_SHARD_BITS
            stop = bisect_left(ordered, (number + 1) << SET_SHARD_BITS, start, end)
            shard = shards.setdefault(number, set())
            new = [address for address in ordered[start:stop] if address not in shard]
            before = len(shard)
            shard.update(new)  # from a list: a set merged in sizes the table for twice both
            if len(shard) - before != len(new):  # the same address twice
                new = sorted(set(new))
            added += new
            start = stop
        return added

    def __iter__(self) -> Iterator[int]:
        shards = self.shards
        for number in sorted(shards):
            shard = shards.get(number)
            if shard:
                yield from sorted(shard)  # a copy: the shard may change meanwhile

    def __repr__(self) -> str:
        return f"AddressSet({sorted(self)!r})"


class KeyMap(MutableMapping):
    """key -> value, in ``HASH_SHARDS`` shards by the key's hash."""

    __slots__ = ("shards",)

    def __init__(self) -> None:
        self.shards: list[dict[Any, Any]] = [{} for _ in range(HASH_SHARDS)]

    def __len__(self) -> int:
        return sum(map(len, self.shards))

    def get(self, key: Any, default: Any = None) -> Any:
        return self.shards[hash(key) >> HASH_SHIFT & HASH_MASK].get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self.shards[hash(key) >> HASH_SHIFT & HASH_MASK][key]

    def __contains__(self, key: object) -> bool:
        return key in self.shards[hash(key) >> HASH_SHIFT & HASH_MASK]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.shards[hash(key) >> HASH_SHIFT & HASH_MASK][key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self.shards[hash(key) >> HASH_SHIFT & HASH_MASK].setdefault(key, default)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        shard = self.shards[hash(key) >> HASH_SHIFT & HASH_MASK]
        return shard.pop(key) if default is _MISSING else shard.pop(key, default)

    def __delitem__(self, key: Any) -> None:
        del self.shards[hash(key) >> HASH_SHIFT & HASH_MASK][key]

    def __iter__(self) -> Iterator[Any]:
        return chain.from_iterable(self.shards)

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return chain.from_iterable([shard.values() for shard in self.shards])

    def items(self) -> Iterator[tuple[Any, Any]]:  # type: ignore[override]
        return chain.from_iterable([shard.items() for shard in self.shards])

    def __repr__(self) -> str:
        return f"KeyMap({dict(self.items())!r})"
