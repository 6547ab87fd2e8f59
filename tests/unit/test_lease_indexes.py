"""The lease table's secondary indexes, per-pool counts and expiry schedule stay equal to a
full recount."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from nefeature.dhcp.leases import HOLDING, Lease, LeaseState, LeaseTable, indexed_addresses

POOLS = ("p1", "p2")
MACS = tuple(bytes([2, 0, 0, 0, 0, n]) for n in range(4))
CLIENT_IDS = (None, b"\x01a", b"\x01b")
OPTION82 = (None, b"\x01\x03c-1\x02\x01r", b"\x01\x03c-2", b"\x02\x01r")

leases = st.builds(
    lambda address, pool, mac, client_id, state, option82, start, length: Lease(
        address=address, pool=pool, client=b"i" + client_id if client_id else b"h" + mac,
        hardware_address=mac, state=state, start=start, expiry=start + length,
        client_id=client_id, option82=option82),
    st.integers(1, 6), st.sampled_from(POOLS), st.sampled_from(MACS),
    st.sampled_from(CLIENT_IDS), st.sampled_from(list(LeaseState)), st.sampled_from(OPTION82),
    st.sampled_from([0.0, 10.0, 20.0]), st.sampled_from([5.0, 100.0]))
operations = st.lists(st.one_of(st.tuples(st.just("put"), leases),
                                 st.tuples(st.just("remove"), st.integers(1, 6))), max_size=40)


def recount(table: LeaseTable):
    by_mac, by_client_id, by_circuit_id = defaultdict(set), defaultdict(set), defaultdict(set)
    counts: defaultdict[str, Counter] = defaultdict(Counter)
    for address, lease in table.by_address.items():
        by_mac[lease.hardware_address].add(address)
        if lease.client_id:
            by_client_id[lease.client_id].add(address)
        if lease.circuit_id:
            by_circuit_id[lease.circuit_id].add(address)
        counts[lease.pool][lease.state] += 1
    return (_one_or_set(by_mac), _one_or_set(by_client_id), _one_or_set(by_circuit_id),
            dict(counts))


def _one_or_set(index: dict[bytes, set[int]]) -> dict:
    """The table's form of an index: a value held by one address maps to that address."""
    return {value: next(iter(held)) if len(held) == 1 else held for value, held in index.items()}


@settings(max_examples=300, deadline=None)
@given(operations)
def test_indexes_equal_a_recount_after_any_changes(steps):
    table = LeaseTable()
    for kind, argument in steps:
        if kind == "put":
            table.put(argument)
        else:
            table.remove(argument)
        by_mac, by_client_id, by_circuit_id, counts = recount(table)
        leases = dict(table.by_address.items())
        assert len(table) == len(leases)
        keys = {(lease.pool, lease.client) for lease in leases.values()}
        for key in keys:  # what put and for_client rely on: each client's lease is one of its
            current = leases[table.by_client[key]]
            assert (current.pool, current.client) == key
        assert len(table.by_client) == len(keys)
        assert {pool: set(addresses) for pool, addresses in table.by_pool.items()} == \
            {pool: {a for a, lease in leases.items() if lease.pool == pool}
             for pool in {lease.pool for lease in leases.values()}}
        assert table.by_mac == by_mac
        assert table.by_client_id == by_client_id
        assert table.by_circuit_id == by_circuit_id
        assert {pool: dict(c) for pool, c in table.state_counts.items()} == \
            {pool: dict(c) for pool, c in counts.items()}


def test_lookup_by_mac_client_id_and_circuit_id():
    table = LeaseTable()
    mac = bytes.fromhex("020000000001")
    table.put(Lease(10, "p1", b"h" + mac, mac, LeaseState.BOUND, 0.0, 100.0,
                    client_id=b"\x01x", option82=b"\x01\x04eth0"))
    table.put(Lease(11, "p2", b"h" + mac, mac, LeaseState.BOUND, 0.0, 100.0))
    assert indexed_addresses(table.by_mac, mac) == {10, 11}
    assert indexed_addresses(table.by_client_id, b"\x01x") == {10}
    assert indexed_addresses(table.by_circuit_id, b"eth0") == {10}
    table.remove(10)
    assert indexed_addresses(table.by_mac, mac) == {11} and b"\x01x" not in table.by_client_id
    assert b"eth0" not in table.by_circuit_id
    assert table.state_counts["p2"][LeaseState.BOUND] == 1 and "p1" not in table.state_counts


@settings(max_examples=200, deadline=None)
@given(st.lists(leases, max_size=20))
def test_a_table_loaded_in_bulk_has_the_indexes_of_one_built_lease_by_lease(loaded):
    """The journal's table at start-up goes through ``load``, not ``put``: the same indexes."""
    bulk, one_by_one = LeaseTable(), LeaseTable()
    bulk.load(loaded)
    for lease in loaded:
        one_by_one.put(lease, journal=False)
    assert bulk.by_address == one_by_one.by_address
    assert (bulk.by_mac, bulk.by_client_id, bulk.by_circuit_id) == \
        (one_by_one.by_mac, one_by_one.by_client_id, one_by_one.by_circuit_id)
    assert {pool: dict(c) for pool, c in bulk.state_counts.items()} == \
        {pool: dict(c) for pool, c in one_by_one.state_counts.items()}


timed_leases = st.builds(
    lambda address, state, start, hold: Lease(
        address=address, pool="p1", client=b"h" + MACS[address % 4],
        hardware_address=MACS[address % 4], state=state, start=float(start),
        expiry=None if hold is None else float(start + hold)),
    st.integers(1, 6), st.sampled_from(list(LeaseState)), st.integers(0, 20),
    st.sampled_from([None, 0, 5, 30]))  # equal and out-of-order deadlines
timed_steps = st.lists(st.one_of(st.tuples(st.just("put"), timed_leases),
                                 st.tuples(st.just("remove"), st.integers(1, 6)),
                                 st.tuples(st.just("pop_expired"), st.integers(0, 60))),
                       max_size=40)


@settings(max_examples=400, deadline=None)
@given(timed_steps)
def test_the_expiry_schedule_is_every_holding_lease_once(steps):
    """next_expiry and pop_expired see exactly the leases that hold an address until a
    time, each once (a lease put twice unchanged has two entries in the schedule)."""
    table = LeaseTable()
    scheduled: dict[int, Lease] = {}  # address -> lease still to come out of pop_expired
    for kind, argument in steps:
        if kind == "put":
            table.put(argument)
            if argument.state in HOLDING and argument.expiry is not None:
                scheduled[argument.address] = argument
        elif kind == "remove":
            table.remove(argument)
        else:
            due = {a: lease.expiry for a, lease in scheduled.items() if lease.expiry <= argument}
            popped = table.pop_expired(argument)
            assert sorted(lease.address for lease in popped) == sorted(due)  # each once
            assert [lease.expiry for lease in popped] == sorted(due.values())  # earliest first
            for address in due:
                del scheduled[address]
        # a put replaces the lease at its address and moves its client off any other one
        scheduled = {a: lease for a, lease in scheduled.items() if table.by_address.get(a) is lease}
        assert table.next_expiry() == min((lease.expiry for lease in scheduled.values()),
                                          default=None)
