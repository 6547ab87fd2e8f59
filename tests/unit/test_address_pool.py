"""The allocator of one pool (``nefeature.dhcp.pool.AddressPool``) against a model: a set
of the addresses in use.  Whatever the order of allocations, specific takes, frees, bulk
takes, split moves and restrictions, it never hands out an address in use, excluded,
reserved or of the peer's share while restricted; it finds a free one whenever there is
one; its counts agree with the model; and its recycle queues hold each address once."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from nefeature.config.model import AddressRange, Pool
from nefeature.dhcp.pool import BUCKETS, AddressPool, Side, share_of

BASE = int(IPv4Address("10.0.0.0"))
UNIVERSE = range(BASE, BASE + 32)  # the /27, network and broadcast included
EXCLUDED = (BASE + 5, BASE + 6)
RESERVED = BASE + 10


def make_pool(split: int | None, own: Side) -> AddressPool:
    config = Pool("p", IPv4Network("10.0.0.0/27"),
                  sections=(AddressRange(IPv4Address(BASE + 1), IPv4Address(BASE + 30)),),
                  excluded=(AddressRange(IPv4Address(EXCLUDED[0]), IPv4Address(EXCLUDED[1])),))
    return AddressPool(config, reserved=(RESERVED,), split=split, own=own)


def dynamic(address: int) -> bool:
    return BASE + 1 <= address <= BASE + 30 and address != RESERVED \
        and not EXCLUDED[0] <= address <= EXCLUDED[1]


# a few addresses often (a client leaving and coming back), any of them sometimes
addresses = st.one_of(st.sampled_from(UNIVERSE[1:4]), st.sampled_from(UNIVERSE))
steps = st.lists(st.one_of(
    st.tuples(st.just("allocate")),
    st.tuples(st.just("take"), addresses),
    st.tuples(st.just("free"), addresses),
    st.tuples(st.just("take_all"), st.lists(addresses, max_size=5)),
    st.tuples(st.just("split"), st.integers(0, BUCKETS)),
    st.tuples(st.just("restrict"), st.booleans()),
), max_size=60)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([None, 0, 30, 50, 100]), st.sampled_from(list(Side)), steps)
def test_the_allocator_agrees_with_a_set_of_addresses_in_use(split, own, steps):
    pool, in_use = make_pool(split, own), set()

    def allowed(address: int) -> bool:
        return not pool.restricted or pool.split is None \
            or share_of(address, pool.split) is own

    for step in steps:
        kind = step[0]
        if kind == "allocate":
            candidates = {a for a in UNIVERSE if dynamic(a) and a not in in_use and allowed(a)}
            if split is not None and not pool.restricted:
                candidates |= {a for a in UNIVERSE if dynamic(a) and a not in in_use}
            got = pool.allocate()
            if not candidates:
                assert got is None
            else:
                assert got in candidates, (got, sorted(candidates))
                in_use.add(got)
        elif kind == "take":
            pool.take(step[1])
            in_use.add(step[1])
        elif kind == "free":
            pool.free(step[1])
            in_use.discard(step[1])
        elif kind == "take_all":
            pool.take_all(step[1])
            in_use.update(step[1])
        elif kind == "split":
            pool.set_split(step[1])
        else:
            pool.restricted = step[1]
        assert pool.in_use == len(in_use)
        for address in UNIVERSE:
            assert pool.is_free(address) == (dynamic(address) and address not in in_use)
        queued = [a for queue in pool._recycled.values() for a in queue]
        assert len(queued) == len(set(queued))  # each address once, across the shares
        if pool.split is not None:
            free = pool.free_by_side()
            for side in Side:
                assert free[side] == sum(1 for a in UNIVERSE if dynamic(a) and a not in in_use
                                         and share_of(a, pool.split) is side)


def test_an_address_freed_again_goes_to_the_back_of_the_queue():
    pool = make_pool(None, Side.PRIMARY)
    everything = [pool.allocate() for _ in range(pool.size)]
    assert pool.allocate() is None
    first, second, third = everything[:3]
    for address in (first, second, third):
        pool.free(address)
    pool.take(first)  # its client came back for it
    pool.free(first)  # and left again: the last to be handed to somebody else
    assert [pool.allocate() for _ in range(3)] == [second, third, first]
    assert pool.allocate() is None
