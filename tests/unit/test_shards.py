"""The sharded maps and sets behave as a dict and a set under any sequence of operations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nefeature.dhcp.shards import (
    HASH_SHARDS,
    MAP_SHARD_BITS,
    SET_SHARD_BITS,
    AddressMap,
    AddressSet,
    KeyMap,
)

# addresses in a few shards, on and around their edges, so that shards fill, empty and
# come back; and a wide range, one shard each
SPAN = 1 << MAP_SHARD_BITS  # a map's shard: two of a set's
addresses = st.one_of(
    st.integers(0, 3 * SPAN).map(lambda offset: 0x0A000000 - SPAN + offset),
    st.integers(0, 0xFFFFFFFF))
keys = st.one_of(st.binary(max_size=3), st.tuples(st.sampled_from(["p1", "p2"]),
                                                  st.binary(max_size=2)))


def map_operations(keys_strategy):
    return st.lists(st.one_of(
        st.tuples(st.just("set"), keys_strategy, st.integers()),
        st.tuples(st.just("pop"), keys_strategy, st.none()),
        st.tuples(st.just("pop-default"), keys_strategy, st.none()),
        st.tuples(st.just("del"), keys_strategy, st.none()),
        st.tuples(st.just("setdefault"), keys_strategy, st.integers())), max_size=80)


def apply(mapping, plain: dict, kind: str, key, value) -> None:
    """One operation on the sharded mapping and on a dict: the same result or exception."""
    if kind == "set":
        mapping[key] = value
        plain[key] = value
    elif kind == "pop":
        expected = plain.pop(key, KeyError)
        try:
            got = mapping.pop(key)
        except KeyError:
            got = KeyError
        assert got == expected
    elif kind == "pop-default":
        assert mapping.pop(key, "none") == plain.pop(key, "none")
    elif kind == "del":
        present = key in plain
        plain.pop(key, None)
        try:
            del mapping[key]
            assert present
        except KeyError:
            assert not present
    elif kind == "setdefault":
        assert mapping.setdefault(key, value) == plain.setdefault(key, value)


def check_equal(mapping, plain: dict, probes) -> None:
    assert len(mapping) == len(plain)
    assert mapping == plain and dict(mapping.items()) == plain
    assert len(list(mapping)) == len(plain) and set(mapping) == set(plain)
    assert sorted(mapping.values()) == sorted(plain.values())
    for key in probes:
        assert (key in mapping) == (key in plain)
        assert mapping.get(key, "none") == plain.get(key, "none")
        if key in plain:
            assert mapping[key] == plain[key]


@pytest.mark.parametrize("kind, keys_of_kind", [(AddressMap, addresses), (KeyMap, keys)],
                         ids=["AddressMap", "KeyMap"])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_sharded_map_is_a_dict(kind, keys_of_kind, data):
    steps = data.draw(map_operations(keys_of_kind))
    probes = data.draw(st.lists(keys_of_kind, max_size=10))
    mapping, plain = kind(), {}
    for operation, key, value in steps:
        apply(mapping, plain, operation, key, value)
    check_equal(mapping, plain, probes + [key for _, key, _ in steps])
    if kind is AddressMap:
        shards = [address >> MAP_SHARD_BITS for address in mapping]  # shard by shard, in order
        assert shards == sorted(shards)


set_operations = st.lists(st.one_of(
    st.tuples(st.just("add"), addresses),
    st.tuples(st.just("discard"), addresses),
    st.tuples(st.just("remove"), addresses),
    st.tuples(st.just("update"), st.lists(addresses, max_size=20))), max_size=60)


@settings(max_examples=300, deadline=None)
@given(set_operations, st.lists(addresses, max_size=10))
def test_an_address_set_is_a_set(steps, probes):
    shards, plain = AddressSet(), set()
    for kind, argument in steps:
        if kind == "add":
            shards.add(argument)
            plain.add(argument)
        elif kind == "discard":
            shards.discard(argument)
            plain.discard(argument)
        elif kind == "remove":
            present = argument in plain
            plain.discard(argument)
            try:
                shards.remove(argument)
                assert present
            except KeyError:
                assert not present
        else:
            assert sorted(shards.add_all(argument)) == sorted(set(argument) - plain)
            plain.update(argument)
        assert len(shards) == len(plain)
    assert shards == plain and set(shards) == plain
    assert list(shards) == sorted(plain)  # address order
    assert bool(shards) == bool(plain)
    for address in probes + [a for _, a in steps if isinstance(a, int)]:
        assert (address in shards) == (address in plain)
    assert AddressSet(plain) == shards


def test_iterating_an_address_set_while_it_changes_sees_each_shard_as_reached():
    """A batch backup lists a pool's addresses while the device keeps serving."""
    addresses = AddressSet(range(0, 4 * (1 << SET_SHARD_BITS), 7))
    seen = []
    for address in addresses:
        seen.append(address)
        if len(seen) == 1:
            addresses.add(3 * (1 << SET_SHARD_BITS) + 1)  # a shard not reached yet
            addresses.discard(7)  # the shard being read: as it was when reached
            addresses.discard(2 * (1 << SET_SHARD_BITS) + 2)  # a shard not reached yet
    assert 7 in seen and 3 * (1 << SET_SHARD_BITS) + 1 in seen
    assert 2 * (1 << SET_SHARD_BITS) + 2 not in seen
    assert seen == sorted(seen)


def test_no_shard_of_a_million_entries():
    """The point of the types: a growth copies one shard, not the whole container."""
    count = 200_000
    address_map, address_set, key_map = AddressMap(), AddressSet(), KeyMap()
    for address in range(0x0A000000, 0x0A000000 + count):
        address_map[address] = None
        address_set.add(address)
        key_map[address.to_bytes(6, "big")] = address
    assert max(map(len, address_map.shards.values())) <= 1 << MAP_SHARD_BITS
    assert max(map(len, address_set.shards.values())) <= 1 << SET_SHARD_BITS
    assert max(map(len, key_map.shards)) < 2 * count / HASH_SHARDS
    assert len(address_map) == len(address_set) == len(key_map) == count
