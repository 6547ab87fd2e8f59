"""The pair under faults, in the deterministic simulator: over a thousand schedules, the
invariants checked after every step (see ``tests/sim/simulator.py``).

A failure prints the violated invariant, a ``Sim(...)`` call that replays it, and
the end of the run's trace.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nefeature.backup.channel import FRAME_HOLD
from nefeature.backup.hotbackup import FailoverState
from nefeature.core import SYNC_RECORD_STEP, DeviceCore
from nefeature.dhcp.pool import Side
from tests.sim.simulator import (ADDRESSES, LAN, POOL, STALLING_DISK, Fault, Sim,
                                 device_config)

KINDS = ("crash", "freeze", "uplink", "partition", "channel-cut", "garbage", "lan-loss")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("device", ("A", "B"))
def test_one_fault_many_seeds(kind, device):
    """Each fault alone, on either device, at 40 seeds: every invariant holds.  Every
    other seed has a small pool that eight clients nearly fill, so the pair moves the
    split of its shares before and after the fault."""
    for seed in range(40):
        duration = 3.0 + seed % 11
        small = seed % 2 == 1
        sim = Sim(seed, [Fault(8.0 + seed % 7, kind, device, duration,
                               clients_with_a=seed % 4)], clients=8 if small else 5,
                  duration=45.0, pool_end=16 if small else 100).run()
        assert sim.acks > 0


def test_lazy_mode_many_seeds():
    for seed in range(60):
        kind = KINDS[seed % len(KINDS)]
        Sim(seed, [Fault(9.0, kind, "AB"[seed % 2], 6.0, clients_with_a=2)], mode="lazy",
            clients=5, duration=45.0).run()


fault = st.builds(
    Fault,
    at=st.floats(2.0, 40.0).map(lambda t: round(t, 3)),
    kind=st.sampled_from(KINDS),
    device=st.sampled_from(("A", "B")),
    duration=st.floats(0.2, 15.0).map(lambda t: round(t, 3)),
    clients_with_a=st.integers(0, 5),
)


@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), faults=st.lists(fault, min_size=1, max_size=4),
       small_pool=st.booleans())
def test_combined_faults(seed, faults, small_pool):
    """Random combinations: crashes during partitions, freezes during channel cuts...,
    with a pool of 100 addresses, or of 14 that eight clients nearly fill."""
    Sim(seed, faults, clients=8 if small_pool else 5, duration=50.0,
        pool_end=16 if small_pool else 100).run()


def test_the_split_follows_the_free_addresses_while_the_channel_is_up():
    """The master fills its share; the pair moves the split until the secondary's share
    holds partition-share (half) of the free addresses, each device saving its split
    before the other relies on it; a partition afterwards hands no address twice."""
    sim = Sim(0, [Fault(30.0, "partition", "A", 10.0, clients_with_a=4)], clients=8,
              duration=29.0, pool_end=16).run()
    pools = {name: device.core.dhcp.pools[POOL].addresses
             for name, device in sim.devices.items()}
    assert pools["A"].split == pools["B"].split < 50, "the split never moved"
    assert sim.devices["A"].disk_splits[POOL] == sim.devices["B"].disk_splits[POOL] \
        == pools["A"].split
    free = pools["A"].free_by_side()
    assert abs(free[Side.SECONDARY] - free[Side.PRIMARY]) <= 1, free
    sim.duration = 60.0
    sim.run_until(60.0)
    assert sim.acks > 0


def test_the_partition_of_the_field_report_hands_no_address_twice():
    """Both devices serve new clients during a 15 s partition (the channel runs over
    the LAN, so it is cut too): each allocates from its own share; after the heal
    both tables hold every lease and every client renews its own address.  On the
    logic before the failover state machine this seed gave 10.10.10.5 to client0
    by A while client4 held it from B."""
    sim = Sim(1, [Fault(10.0, "partition", "A", 15.0, clients_with_a=2)], clients=6).run()
    by_device = {"A": set(), "B": set()}
    for line in sim.trace:
        if " ACKed " in line and line.split()[1] != "client":
            by_device[line.split()[-1]].add(line.split()[1])
    assert by_device["A"] and by_device["B"], "both sides granted leases"
    tables = [{(lease.address, lease.client) for lease in d.core.dhcp.table.by_address.values()
               if lease.state.value == "bound"} for d in sim.devices.values()]
    assert tables[0] == tables[1]
    assert len(tables[0]) == 6


@pytest.mark.parametrize("kind", ["partition", "freeze"])
def test_the_master_that_stays_announces_the_vip_again(kind):
    """A healed partition, or A waking from a freeze while B is master: B steps down
    and A, which never stopped being master, announces the virtual IP again, so the
    hosts that followed B's gratuitous ARP come back to A."""
    for seed in range(20):
        sim = Sim(seed, [Fault(10.0, kind, "A", 6.0, clients_with_a=2)], clients=4,
                  duration=25.0).run()
        a, b = sim.devices["A"], sim.devices["B"]
        assert b.announced and b.announced[0] > 10.0, "B took over during the fault"
        assert a.serving and not b.serving
        assert [t for t in a.announced if t >= 16.0], \
            f"seed {seed}: A did not announce the VIP after the {kind} ended"


def knows_every_held_lease(sim: Sim, core: DeviceCore) -> bool:
    table = core.dhcp.table.by_address
    return all(client.holding.address in table
               and table[client.holding.address].client == client.key
               for client in sim.clients
               if client.holding is not None and client.holding.expiry > sim.now)


def test_after_a_partition_the_master_reaches_normal_only_with_the_peers_grants():
    """The seed where A, its channel back after the heal, reached NORMAL before B's
    partition grants (resent ahead of B's first heartbeat) had reached it: a share that
    grew then could have handed client4's 10.10.10.3 to a new client (the invariant
    checked after every event, ``check_own_share_known``)."""
    sim = Sim(3, [Fault(11.0, "partition", "B", 6.0, clients_with_a=3)], clients=6,
              duration=45.0).run()
    assert any(line.endswith("ACKed 10.10.10.3 by B") for line in sim.trace)
    a = sim.devices["A"].core
    assert a.backup.profiles["service1"].failover is FailoverState.NORMAL
    assert knows_every_held_lease(sim, a)


def test_a_master_made_by_silence_keeps_to_its_share_until_it_hears_the_peer():
    """A partition at the pair's first election: each device becomes master for the
    other's silence while the channel still looks up (neither was master before, so
    neither presumed the other down), and both allocated from the whole pool until the
    channel's dead interval; here B's 10.10.10.3 was unknown to A meanwhile."""
    sim = Sim(1, [Fault(3.0, "partition", "A", 2.0)], clients=5, duration=50.0).run()
    assert any(line.endswith("ACKed 10.10.10.3 by B") for line in sim.trace)
    assert all(d.core.backup.profiles["service1"].failover is FailoverState.NORMAL
               for d in sim.devices.values())


def test_an_ack_never_precedes_its_journal_write():
    """The seed where, before the ACK gate, the peer's acknowledgement released a
    DHCPACK before the master's own journal write (the simulator checks the disk
    of the sender, and of the peer in strict mode, at every ACK)."""
    sim = Sim(0).run()
    assert sim.acks >= 4 and sim.unconfirmed == 0


def test_a_channel_drop_never_pauses_the_master():
    sim = Sim(3, [Fault(10.0, "garbage", "A", 0.0)], clients=4, duration=30.0)
    sim.run()
    stops = [line for line in sim.trace if "stops serving" in line]
    assert not stops, stops
    assert sim.devices["A"].core.backup.profiles["service1"].failover is FailoverState.NORMAL


@pytest.mark.parametrize("kind", ["garbage", "channel-cut"])
def test_a_refused_connection_is_closed_once(kind):
    """Junk on the channel, or a silent peer: the device asks the shell to close the
    connection once (before, the reason outlived the connection and the close, with
    its warning, was asked for again as soon as the connection was gone)."""
    sim = Sim(3, [Fault(10.0, kind, "A", 5.0)], clients=2, duration=20.0).run()
    drops = [line for line in sim.trace if "drops the channel" in line]
    assert len(drops) == 1, drops


def test_a_wall_clock_step_moves_no_protocol_deadline():
    """VRRP and channel timers run on the monotonic clock; a ±1 h step of the wall
    clock changes none of them (lease times stay on the wall clock)."""
    sim = Sim(5, clients=2, duration=8.0).run()
    core = sim.devices["A"].core
    now = sim.now
    router = next(iter(core.vrrp.values()))
    channel = core.channels["service1"]
    before = (router.next_deadline(), channel.next_deadline())
    for step in (3600.0, -3600.0):
        core.link_changed(LAN, True, now, now + 1_800_000_000.0 + step)
        assert (router.next_deadline(), channel.next_deadline()) == before
    assert ADDRESSES["A"] == router.primary_address


def test_a_device_that_served_alone_and_crashed_sends_its_grants_when_it_returns():
    """The double fault: the channel is cut, A (master) grants new leases alone, then
    A crashes before the channel is back, losing the queue of those updates; B takes
    over.  Back up, A sends its peer every lease its journal holds that B had not
    acknowledged, before B leaves its own share of the pool (the simulator checks
    after every event that a device allocating from the whole pool knows every lease
    a client holds)."""
    sim = Sim(2, [Fault(10.0, "channel-cut", "A", 20.0), Fault(20.0, "crash", "A", 2.0)],
              clients=8, duration=60.0).run()
    alone = [line for line in sim.trace if " ACKed " in line and line.endswith("by A")
             and 10.0 < float(line.split()[0]) < 20.0]
    assert alone, "A granted leases while the channel was cut"
    b = sim.devices["B"].core
    assert b.backup.profiles["service1"].failover is FailoverState.NORMAL
    assert knows_every_held_lease(sim, b)


def test_a_device_frozen_as_it_restarts_allocates_by_its_saved_split():
    """Found by a wider search of fault combinations: B crashes and freezes at the same
    instant, so it boots with its inputs held, the first one (start) included.  From the
    instant it is built its engine allocates as the journal says (the saved split, its
    own share, silent until VRRP makes it master), not as the configuration does."""
    Sim(0, [Fault(2.0, "crash", "A", 1.0), Fault(14.0, "crash", "B", 1.0),
            Fault(14.0, "freeze", "B", 1.0)], clients=3, duration=50.0, pool_end=16).run()


def test_a_request_held_through_a_freeze_never_frees_the_address_the_client_took():
    """Found by a wider search: client3 asks A (frozen) for 10.10.10.4, gets 10.10.10.3
    from B, which took over; A resumes, reads the old REQUEST and binds .4 too.  The
    client holds .3.  The two bindings meet on both devices (each learns the other's),
    and neither may forget .3 while the client may use it: a device that dropped it
    would hand it to another client."""
    Sim(34503295, [Fault(2.0, "uplink", "A", 1.0), Fault(5.0, "freeze", "A", 5.0),
                   Fault(11.0, "crash", "A", 1.0)], clients=4, duration=50.0).run()


def test_two_cuts_of_the_channel_at_once_leave_it_cut():
    """The simulator's own bug, found by the wider search: two partitions starting at the
    same instant each negated the connection's number, so the second brought a cut
    connection back to life and B's grants never reached A."""
    Sim(40, [Fault(2.0, "uplink", "A", 1.0), Fault(3.0, "partition", "A", 1.0),
             Fault(3.0, "partition", "A", 1.0)], clients=10, duration=50.0,
        pool_end=16).run()


def test_no_lease_reaches_the_peer_before_it_is_on_its_grantors_disk():
    """Found by the wider search with slow disks: A granted 10.10.10.5 from its share and
    its record reached B while A's own write (0.3 s) was still running; A crashed and lost
    it, B renewed the lease to client4 as master and crashed too, and A came back able to
    hand .5 out again.  A record now leaves only once its lease is on the grantor's disk
    (the simulator checks every lease on the channel against the two disks)."""
    Sim(659, [Fault(2.0, "crash", "A", 0.5), Fault(13.0, "crash", "A", 5.0),
              Fault(18.0, "crash", "B", 4.0)], clients=5, pool_end=16, duration=50.0,
        journal_delays=(0.0001, 0.3)).run()


def test_a_batch_page_read_before_a_stalled_write_never_outruns_what_replaced_it():
    """Found by the wider search with a disk that stalls 2 s: A, back from a freeze, read
    a batch page holding client3's lease of 10.10.10.8 while its write was stalled, and
    renewed that lease in the next write.  The page and the renewal's record are released
    by the same commit; the renewal goes on the wire first, so the peer never holds only
    the version A's disk never had."""
    Sim(1, [Fault(2.0, "crash", "A", 5.0), Fault(2.0, "crash", "A", 5.0),
            Fault(2.0, "crash", "A", 0.5), Fault(11.0, "garbage", "A", 1.0),
            Fault(30.0, "freeze", "A", 12.0)], clients=7, pool_end=16, duration=50.0,
        journal_delays=STALLING_DISK).run()


def test_a_version_the_peers_replaced_before_the_write_is_sent_harmlessly():
    """Found by the wider search: B granted client0 10.10.10.5 while A was frozen and its
    write stalled; A, resumed, bound client0 to .5 again and B took A's newer version into
    the same write.  B's record of its own version leaves once that write is done: the
    version is on no disk, but a newer one of the address is on B's (the simulator's
    channel check allows that, and only that)."""
    Sim(8646874, [Fault(2.0, "crash", "A", 1.0), Fault(2.0, "crash", "A", 1.0),
                  Fault(2.0, "crash", "A", 3.0), Fault(2.0, "crash", "B", 4.0),
                  Fault(34.0, "freeze", "A", 8.0)], clients=7, pool_end=16, duration=50.0,
        journal_delays=STALLING_DISK).run()


def test_a_core_built_from_its_journal_allocates_as_after_start():
    """Before any input the DHCP engine holds the hot-backup engine's word: silent,
    restricted to its share, at the split on disk."""
    for name in ("A", "B"):
        core = DeviceCore(device_config(name, "strict", pool_end=16), [], now=0.0,
                          wall=1e9, splits={POOL: 48})
        addresses = core.dhcp.pools[POOL].addresses
        built = (addresses.split, addresses.restricted, POOL in core.dhcp.silent_pools)
        core.start({LAN: True}, 0.0, 1e9)
        assert built == (addresses.split, addresses.restricted,
                         POOL in core.dhcp.silent_pools) == (48, True, True), name


def test_a_restart_after_quiet_sync_queues_no_lease_the_peer_has():
    """The other side of the double-fault fix: each device journals how far its peer
    holds its changes, so restarting either device of a pair in sync sends again only
    the leases changed in the last moments before its last journal write (the backup,
    which only receives, none)."""
    sim = Sim(4, clients=6, duration=40.0).run()
    leases = 0
    for device in sim.devices.values():
        assert device.disk_synced_until, f"{device.name} never journaled its sync point"
        restarted = DeviceCore(device.config, list(device.disk.values()), now=0.0,
                               wall=sim.wall(device),
                               synced_until=dict(device.disk_synced_until))
        leases += len(device.disk)
        queued = [record.lease for _, record in restarted.channels["service1"].unacked]
        newest = max(lease.start for lease in device.disk.values())
        assert len(queued) < len(device.disk) / 2, device.name
        assert all(newest - lease.start < 2 * SYNC_RECORD_STEP for lease in queued)
        # a journal without the record (from before it was kept) counts as in sync: a
        # whole table resent at once would stall the device
        upgraded = DeviceCore(device.config, list(device.disk.values()), now=0.0,
                              wall=sim.wall(device))
        assert not upgraded.channels["service1"].unacked
    assert leases >= 6


def test_a_configuration_change_keeps_the_agreed_split():
    """A new partition-share rebuilds the hot-backup engine: it starts from the split in
    use, not from the configured share, and the primary then balances toward the new
    share with the secondary's agreement (the invariants checked at every event)."""
    sim = Sim(0, clients=8, duration=29.0, pool_end=16).run()
    a = sim.devices["A"]
    agreed = a.core.dhcp.pools[POOL].addresses.split
    assert agreed < 50
    new = device_config("A", "strict", 80, 16)
    a.core.apply_config(a.config, new, sim.now, sim.wall(a))
    a.config = new
    assert a.core.dhcp.pools[POOL].addresses.split == agreed
    assert a.core.backup.profiles["service1"].partition_share == 80
    sim.run_until(60.0)
    splits = {name: d.core.dhcp.pools[POOL].addresses.split for name, d in sim.devices.items()}
    assert splits["A"] == splits["B"] > agreed, splits


BURST_CLIENTS = 120


@pytest.mark.parametrize("seed", range(6))
def test_a_burst_of_clients_shares_frames_and_no_ack_waits_long_for_it(seed):
    """120 clients within 10 ms (a power cut's end), a fast channel and disk: records
    arrive faster than HOLD_FROM_RATE, so once a RATE_WINDOW's worth has come the
    master's frames wait for company (FRAME_HOLD) and carry four or more each on average
    (two and a half without the hold); the device's timer sends a held frame, so no
    DHCPACK leaves more than a few milliseconds after its REQUEST (the LAN's way there and
    back, the journals, the channel's round trip and FRAME_HOLD at most); every invariant
    holds (no DHCPACK before the peer's disk has its lease)."""
    sim = Sim(seed, clients=BURST_CLIENTS, duration=12.0, burst_at=8.0, pool_end=250,
              channel_delay=(0.00005, 0.0001), journal_delays=(0.00002,)).run()
    master = next(d for d in sim.devices.values()
                  if d.core.backup.profiles["service1"].local_state == "master")
    statistics = master.core.channels["service1"].statistics
    assert sum(c.holding is not None for c in sim.clients) == BURST_CLIENTS
    assert sim.unconfirmed == 0
    assert statistics.updates_sent >= 4 * statistics.update_frames_sent, (
        statistics.updates_sent, statistics.update_frames_sent)
    assert len(sim.ack_waits) >= BURST_CLIENTS and max(sim.ack_waits) < 2.0e-3 + FRAME_HOLD, \
        max(sim.ack_waits)


def test_a_timer_that_is_not_for_a_held_frame_runs_every_channel_timer():
    """A heartbeat whose time an input passed before the timer fired: the engine's next
    deadline still holds it (the engine leaves out only its own past deadlines), so the
    timer runs the channels' timers and sends it, and the dead interval behind it stays
    watched. Seen: a backup never noticed a peer gone silent after a reset it did not
    receive, while the engine left out every past deadline."""
    sim = Sim(2, clients=2, duration=10.0).run()
    device = sim.devices["B"]
    core, channel = device.core, device.core.channels["service1"]
    now = sim.now
    channel._next_heartbeat = now - 0.002  # due, and passed by an input meanwhile
    core.backup._last_now = now - 0.001
    sent = channel.statistics.heartbeats_sent
    core.handle_timer(now, sim.wall(device))
    assert channel.statistics.heartbeats_sent == sent + 1
    assert channel.next_deadline() > now


def test_the_wider_search_holds_on_a_fixed_few_schedules():
    """``tests/sim/explore.py``, run by hand with new schedules each time, here on a fixed
    few (slow disks and channels, bursts and lazy mode among them), so that it keeps
    working."""
    from tests.sim.explore import explore

    explore(30, derandomize=True)
