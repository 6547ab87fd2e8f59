"""Hot backup on DeviceCore pairs: the simulator's pair (LAN, channel, disks, clients) with
the behaviours a user relies on checked one by one.  The invariants of every run are
checked by the simulator itself (``tests/sim``)."""

from __future__ import annotations

import struct

from nefeature.backup.hotbackup import (
    STRICT_WAIT,
    UNCONFIRMED_REPORT_INTERVAL,
    FailoverState,
    PeerUnresponsive,
    ProtectDown,
    failover_state,
)
from nefeature.dhcp.codec import MessageType, encode
from nefeature.dhcp.leases import LeaseState
from nefeature.dhcp.pool import Side
from nefeature.dhcp.server import Received
from tests.sim.simulator import LAN, Fault, Sim, SimClient


def run(*faults, seed=7, clients=4, duration=30.0, mode="strict") -> Sim:
    return Sim(seed, list(faults), mode=mode, clients=clients, duration=duration).run()


def bound(device) -> set[tuple[int, bytes]]:
    return {(lease.address, lease.client) for lease in device.core.dhcp.table.by_address.values()
            if lease.state is LeaseState.BOUND}


def test_master_serves_the_backup_stays_silent_and_holds_every_lease():
    sim = run()
    a, b = sim.devices["A"], sim.devices["B"]
    assert a.serving and not b.serving
    assert all(line.endswith("by A") for line in sim.trace if " ACKed " in line)
    assert len(bound(a)) == 4 and bound(a) == bound(b)
    assert {(lease.address, lease.client) for lease in b.disk.values()} == bound(a)


def test_failover_state_table():
    S = FailoverState
    assert failover_state(False, False, False, False, False) is S.STARTUP
    assert failover_state(True, False, True, False, True) is S.COMMUNICATIONS_INTERRUPTED
    assert failover_state(True, True, False, False, True) is S.COMMUNICATIONS_INTERRUPTED
    assert failover_state(True, True, True, True, True) is S.POTENTIAL_CONFLICT
    assert failover_state(True, True, True, False, False) is S.RECOVER
    assert failover_state(True, True, True, False, True) is S.NORMAL


def test_strict_acks_wait_for_the_peer_and_leave_alone_once_it_is_unresponsive():
    """B frozen: A's ACKs wait STRICT_WAIT for an acknowledgement, then leave counted as
    unconfirmed; before the freeze none was unconfirmed."""
    sim = run(Fault(6.0, "freeze", "B", 20.0), clients=6, seed=11)
    a = sim.devices["A"]
    assert sim.unconfirmed > 0
    assert a.core.backup.unconfirmed_replies["service1"] == sim.unconfirmed
    assert STRICT_WAIT == 0.5


def test_acks_left_without_the_peer_are_reported_every_ten_seconds_not_one_by_one():
    """B frozen for 19 s: A reports the DHCPACKs sent without B's copy at the outage's
    start, then after UNCONFIRMED_REPORT_INTERVAL, and the rest when B is back; together
    the reports count every one (a report per gate release logged thousands a second under
    load)."""
    sim = run(Fault(6.0, "freeze", "B", 19.0), clients=60, seed=11, duration=40.0)
    a = sim.devices["A"]
    reports = [(event, at) for event, at in zip(a.notifications, a.notification_times)
               if isinstance(event, PeerUnresponsive)]
    assert sum(event.replies for event, _at in reports) == sim.unconfirmed \
        == a.core.backup.unconfirmed_replies["service1"]
    assert sim.unconfirmed > 3 * len(reports), "several DHCPACKs a report"
    times = [at for _event, at in reports]
    assert len(times) == 3 and 6.0 < times[0] < 6.0 + 2.0
    assert times[1] - times[0] >= UNCONFIRMED_REPORT_INTERVAL
    assert times[2] >= 6.0 + 19.0 and times[2] - times[1] < UNCONFIRMED_REPORT_INTERVAL, \
        "the rest reported once B is back, before the interval is up"


def test_a_backup_takes_over_at_once_and_the_rejoining_master_waits_for_the_batch():
    """A crashes; B serves from the moment VRRP makes it master; A restarts from its disk,
    receives B's batch, and takes the role back only after it and the preempt delay."""
    sim = run(Fault(10.0, "crash", "A", 4.0), duration=40.0, seed=3)
    lines = sim.trace
    b_serves = next(float(x.split()[0]) for x in lines if x.endswith("B starts serving"))
    assert 10.0 < b_serves < 10.0 + 3.7  # the master-down interval at 1 s adverts
    a_back = [float(x.split()[0]) for x in lines if x.endswith("A starts serving")]
    assert a_back[-1] >= 14.0 + 5.0  # after the reboot and the preemption delay
    a = sim.devices["A"]
    assert a.core.backup.profiles["service1"].has_table
    assert bound(a) == bound(sim.devices["B"])


def test_a_channel_drop_does_not_pause_the_master_and_notifies():
    sim = run(Fault(8.0, "channel-cut", "A", 6.0), seed=5)
    notified = [e for e in sim.devices["A"].notifications if isinstance(e, ProtectDown)]
    assert not [x for x in sim.trace if "stops serving" in x]
    assert [e.resumed for e in notified] == [True, False, True]  # up, cut, up again


def gives_up(sim: Sim, key: bytes) -> SimClient:
    """The client lets its lease go (as if it had released it) and starts again later."""
    client = next(c for c in sim.clients if c.key == key)
    client.holding, client.state, client.retry_at = None, "INIT", sim.now + 5.0
    return client


def test_release_expiry_and_reset_replicate():
    sim = run(seed=9, clients=3, duration=20.0)
    a, b = sim.devices["A"], sim.devices["B"]
    address, client = sorted(bound(a))[0]
    mac = gives_up(sim, client).mac
    release = SimClient(sim, 99).message(MessageType.RELEASE, broadcast=False, ciaddr=address,
                                         server_id=struct.pack("!I", sim.devices["A"].core
                                                               .dhcp.pools["pool1"].server_id))
    release.chaddr = mac.ljust(16, b"\0")
    sim.deliver(a, "dhcp_received", [Received(encode(release), LAN, True)])
    sim.duration += 1.0
    sim.run_until(sim.now + 1.0)
    assert b.core.dhcp.table.by_address[address].state is LeaseState.RELEASED
    other, holder = sorted(bound(a))[0]
    gives_up(sim, holder)  # the operator takes its address back
    count = a.core.reset_addresses("pool1", other, None, None, sim.now, sim.wall(a))
    sim.outputs(a)
    sim.run_until(sim.now + 1.0)
    assert count == 1 and other not in b.core.dhcp.table.by_address


def test_batch_backup_now_needs_the_channel_up():
    sim = run(Fault(8.0, "channel-cut", "A", 30.0), seed=2, duration=15.0)
    a = sim.devices["A"]
    assert a.core.batch_backup_now("service1", sim.now, sim.wall(a)) == 0


def test_rbs_state_fits_the_model():
    from yangson.enumerations import ContentType, ValidationScope

    from nefeature.datastore.schema import data_model
    from nefeature.datastore.validation import validate_config_text
    from nefeature.state import merge_trees, rbs_state
    from tests.conftest import EXAMPLES

    sim = run(Fault(8.0, "channel-cut", "A", 30.0), seed=4, duration=15.0)
    b = sim.devices["B"]
    state = rbs_state(b.core.backup, {"service1": "listening"}, b.core.dhcp)
    config = validate_config_text((EXAMPLES / "pair" / "deviceB.xml").read_bytes()).raw
    data_model().from_raw(merge_trees(config, state)).validate(ValidationScope.all,
                                                               ContentType.all)
    profile = state["nefeature-rbs:rbs"]["profiles"]["profile"][0]["state"]
    assert profile["failover-state"] == "communications-interrupted"
    assert profile["failover-role"] == "secondary"
    share = profile["pool-share"][0]
    assert share["pool"] == "pool1" and share["split"] == share["peer-split"] == 50
    assert share["own-free"] + share["peer-free"] + len(b.core.dhcp.table.by_address) >= 90
    service = state["nefeature-rbs:rbs"]["services"]["service"][0]["state"]
    assert service["last-down-reason"] == "connection reset"  # what the simulator reports
    a = sim.devices["A"].core
    sent = rbs_state(a.backup, {}, a.dhcp)["nefeature-rbs:rbs"]["services"]["service"][0][
        "state"]["statistics"]
    counted = a.channels["service1"].statistics
    assert 0 < int(sent["update-frames-sent"]) == counted.update_frames_sent \
        <= counted.updates_sent == int(sent["updates-sent"])


def test_lazy_mode_caps_the_first_lease_by_mclt():
    sim = run(mode="lazy", seed=1, clients=2, duration=12.0)
    a = sim.devices["A"].core
    assert a.dhcp.mclt == {"pool1": 60}
    assert a.dhcp.peer_expiry, "the peer acknowledged expiries"


def test_display_remote_backup_profile_shows_the_failover_state_and_share():
    """The VRP display of a profile in a partition: its failover state and whose share."""
    from nefeature_cli.render import display_rbp
    from nefeature.datastore.validation import validate_config_text
    from nefeature.state import merge_trees, rbs_state
    from tests.conftest import EXAMPLES

    sim = run(Fault(8.0, "channel-cut", "A", 30.0), seed=4, duration=15.0)
    config = validate_config_text((EXAMPLES / "pair" / "deviceA.xml").read_bytes()).raw
    a = sim.devices["A"].core
    tree = merge_trees(config, rbs_state(a.backup, {}, a.dhcp))
    shown = display_rbp(tree)
    assert " Failover state       : communications-interrupted" in shown
    assert " Address share        : primary, 50% of free addresses to the secondary" in shown
    free = a.dhcp.pools["pool1"].addresses.free_by_side()
    assert (f"   Pool pool1           : split 50 (peer 50), free {free[Side.PRIMARY]} own"
            f" / {free[Side.SECONDARY]} peer") in shown
