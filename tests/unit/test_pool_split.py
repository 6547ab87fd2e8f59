"""The split of a backed-up pool between the primary's and the secondary's share
(``nefeature.dhcp.pool``): moving it keeps every address in exactly one share, never
hands out an address in use, keeps never-used addresses first, and counts the free
addresses per share that the balancing works from."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from nefeature.config.model import AddressRange, Pool
from nefeature.dhcp.pool import BUCKETS, AddressPool, Side, bucket_of


def pool(start: str = "10.0.0.1", end: str = "10.0.0.254", split: int | None = 50,
         own: Side = Side.PRIMARY) -> AddressPool:
    config = Pool("p", IPv4Network("10.0.0.0/24"),
                  sections=(AddressRange(IPv4Address(start), IPv4Address(end)),))
    addresses = AddressPool(config, split=split, own=own)
    addresses.restricted = split is not None
    return addresses


def drain(addresses: AddressPool) -> list[int]:
    taken = []
    while (address := addresses.allocate()) is not None:
        taken.append(address)
    return taken


def test_each_side_allocates_only_its_own_share_and_together_they_cover_the_pool():
    primary, secondary = pool(split=30), pool(split=30, own=Side.SECONDARY)
    mine, theirs = drain(primary), drain(secondary)
    assert all(bucket_of(a) >= 30 for a in mine) and all(bucket_of(a) < 30 for a in theirs)
    assert sorted(mine + theirs) == list(range(int(IPv4Address("10.0.0.1")),
                                               int(IPv4Address("10.0.0.254")) + 1))


def test_free_addresses_are_counted_per_share():
    addresses = pool(split=50)
    before = addresses.free_by_side()
    assert sum(before.values()) == addresses.size
    taken = [addresses.allocate() for _ in range(20)]
    after = addresses.free_by_side()
    assert after[Side.PRIMARY] == before[Side.PRIMARY] - 20
    assert after[Side.SECONDARY] == before[Side.SECONDARY]
    for address in taken[:5]:
        addresses.free(address)
    addresses.take(int(IPv4Address("10.0.0.250")))  # a specific request, counted once
    addresses.take(int(IPv4Address("10.0.0.250")))
    side = addresses.side_of(int(IPv4Address("10.0.0.250")))
    expected = dict(after)
    expected[Side.PRIMARY] += 5
    expected[side] -= 1
    assert addresses.free_by_side() == expected


def test_the_balanced_split_gives_the_secondary_its_percentage_of_the_free_addresses():
    addresses = pool(split=50)
    assert addresses.balanced_split(50) == 50  # untouched: balanced already
    drain(addresses)  # the primary used its whole share
    split = addresses.balanced_split(50)
    assert split < 50
    addresses.set_split(split)
    free = addresses.free_by_side()
    assert abs(free[Side.SECONDARY] - free[Side.PRIMARY]) <= 3, free
    assert addresses.balanced_split(50) == split  # within the misbalance allowed
    assert addresses.balanced_split(0) == 0 and addresses.balanced_split(100) == BUCKETS


def test_a_moved_split_hands_out_never_used_addresses_first_and_nothing_in_use():
    addresses = pool(split=50)
    first = [addresses.allocate() for _ in range(60)]
    for address in first[:10]:
        addresses.free(address)  # these go to the back of the queue
    addresses.set_split(20)  # buckets 20..49 become the primary's
    rest = drain(addresses)
    assert not set(rest) & set(first[10:]), "an address in use was handed out again"
    assert len(rest) == len(set(rest))
    assert set(rest[-10:]) == set(first[:10]), "freed addresses came before never-used ones"
    assert all(bucket_of(a) >= 20 for a in rest)
    assert addresses.free_by_side()[Side.PRIMARY] == 0


def test_a_split_moved_back_and_forth_loses_no_address():
    addresses = pool(split=50)
    taken = {addresses.allocate() for _ in range(30)}
    for split in (10, 70, 35, 90, 0, 50):
        addresses.set_split(split)
        taken |= {addresses.allocate() for _ in range(5)} - {None}
    taken |= set(drain(addresses))
    addresses.set_split(0)  # the whole pool the primary's
    taken |= set(drain(addresses))
    assert len(taken) == addresses.size == addresses.in_use


def test_a_pool_that_is_not_backed_up_is_all_ours():
    addresses = pool(split=None, own=Side.SECONDARY)
    assert len(drain(addresses)) == addresses.size
    assert addresses.free_by_side() == {Side.PRIMARY: 0, Side.SECONDARY: 0}
