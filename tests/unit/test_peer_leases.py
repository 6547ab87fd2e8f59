"""The peer's records: a frame applied in bulk ends as applying them one by one does, and a
record resent unchanged expires once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nefeature.backup.frames import LeaseRecord
from nefeature.datastore.validation import load_config_file
from nefeature.dhcp.leases import HOLDING, Lease, LeaseState
from nefeature.dhcp.server import DhcpServer
from tests.conftest import EXAMPLES

CONFIG = load_config_file(EXAMPLES / "pair" / "deviceB.xml")
FIRST = 0x0A0A0A01  # pool1: 10.10.10.1-100
MACS = tuple(bytes([2, 0, 0, 0, 0, n]) for n in range(6))

leases = st.builds(
    lambda offset, mac, state, start: Lease(
        FIRST + offset, "pool1", b"h" + mac, mac, state, start, start + 600.0,
        origin="peer-sync"),
    st.integers(0, 11), st.sampled_from(MACS),
    st.sampled_from([s for s in LeaseState if s is not LeaseState.OFFERED]),
    st.sampled_from([100.0, 200.0, 300.0]))
lease_records = leases.map(lambda lease: LeaseRecord(1, "pool1", lease.address, lease))
records = st.one_of(
    lease_records,
    st.integers(0, 11).map(lambda offset: LeaseRecord(1, "pool1", FIRST + offset, None)))
frames = st.one_of(st.lists(lease_records, min_size=8, max_size=30),  # the bulk path
                   st.lists(records, min_size=8, max_size=30))  # with deletions


def state_of(server: DhcpServer) -> tuple:
    table, pool = server.table, server.pools["pool1"].addresses
    return (table.by_address, table.by_client, dict(table.by_pool), table.by_mac,
            {p: dict(c) for p, c in table.state_counts.items()}, table.pending,
            sorted(a for a in range(FIRST, FIRST + 12) if not pool.is_free(a)),
            sorted(table.pop_expired(1e9)))


@settings(max_examples=200, deadline=None)
@given(st.lists(leases, max_size=6), frames)
def test_a_frame_applied_in_bulk_ends_as_record_by_record(existing, frame):
    bulk, one_by_one = DhcpServer(CONFIG, existing), DhcpServer(CONFIG, existing)
    bulk.apply_peer_leases(frame)
    for _backup_id, pool, address, lease in frame:
        one_by_one.apply_peer_lease(pool, address, lease)
    assert state_of(bulk) == state_of(one_by_one)


def test_a_batch_into_an_empty_table_takes_every_address():
    frame = [LeaseRecord(1, "pool1", FIRST + n, Lease(
        FIRST + n, "pool1", b"h" + bytes([2, 0, 0, 0, 1, n]), bytes([2, 0, 0, 0, 1, n]),
        LeaseState.BOUND, 100.0, 700.0, origin="peer-sync")) for n in range(10)]
    server = DhcpServer(CONFIG)
    server.apply_peer_leases(frame)
    assert set(server.table.pending) == {FIRST + n for n in range(10)}
    assert not any(server.pools["pool1"].addresses.is_free(FIRST + n) for n in range(10))
    assert server.table.next_expiry() == 700.0


def test_a_lease_the_peer_sends_again_expires_once():
    """A record resent unchanged (a batch backup after a reconnection resends the whole
    table) puts the same lease again: at its expiry the device still records, journals
    and syncs one expiry, not two."""
    lease = Lease(FIRST, "pool1", b"h" + MACS[0], MACS[0], LeaseState.BOUND, 100.0, 700.0,
                  origin="peer-sync")
    server = DhcpServer(CONFIG)
    for _ in range(2):
        server.apply_peer_leases([LeaseRecord(1, "pool1", FIRST, lease)])
    server.events.clear()
    server.handle_timer(701.0)
    assert [type(event).__name__ for event in server.events] == ["LeaseExpired"]
    assert server.table.by_address.get(FIRST).state is LeaseState.EXPIRED


@settings(max_examples=300, deadline=None)
@given(st.lists(leases, max_size=6), st.lists(records, max_size=25))
def test_the_allocator_holds_exactly_the_addresses_the_table_holds(existing, frame):
    """Whatever the peer sends, in whatever order (older and newer versions, the same
    client at several addresses, deletions), an address is free for allocation exactly
    when no lease in the table holds it."""
    server = DhcpServer(CONFIG, existing)
    pool = server.pools["pool1"].addresses
    dynamic = [a for a in range(FIRST, FIRST + 12) if pool.is_dynamic(a)]
    for _backup_id, pool_name, address, lease in frame:
        server.apply_peer_lease(pool_name, address, lease)
        held = {a for a, lease in server.table.by_address.items() if lease.state in HOLDING}
        assert {a for a in dynamic if not pool.is_free(a)} == held & set(dynamic)


def test_a_client_bound_by_both_devices_keeps_both_addresses_until_each_ends():
    """A frozen device answers a REQUEST the client sent before the other device bound it
    elsewhere: the client uses one of the two addresses, and nobody knows which.  Each
    device keeps both taken, the newer being the client's lease, and each address is free
    again only once its own binding ends."""
    mac = MACS[1]
    mine = Lease(FIRST + 3, "pool1", b"h" + mac, mac, LeaseState.BOUND, 100.0, 160.0)
    theirs = Lease(FIRST + 4, "pool1", b"h" + mac, mac, LeaseState.BOUND, 101.0, 161.0,
                   origin="peer-sync")
    for order in ((mine, theirs), (theirs, mine)):  # the newer arriving second, or first
        server = DhcpServer(CONFIG, [order[0]])
        server.apply_peer_lease("pool1", order[1].address, order[1]._replace(
            origin="peer-sync"))
        pool = server.pools["pool1"].addresses
        assert not pool.is_free(mine.address) and not pool.is_free(theirs.address)
        assert server.table.for_client("pool1", b"h" + mac).address == theirs.address
        server.handle_timer(160.5)
        assert pool.is_free(mine.address) and not pool.is_free(theirs.address)
        server.handle_timer(161.5)
        assert pool.is_free(theirs.address)
    # an older record of the client that had ended by the newer binding is not kept
    server = DhcpServer(CONFIG, [theirs])
    ended = mine._replace(state=LeaseState.RELEASED, expiry=100.0)
    assert not server.apply_peer_lease("pool1", ended.address, ended)
    assert ended.address not in server.table.by_address
