"""The sans-IO VRRP router: every (state, event) pair, then pairs of routers on a fake LAN."""

from __future__ import annotations

import heapq
from ipaddress import IPv4Address

import pytest

from nefeature.config.model import TrackedInterface, VrrpGroup
from nefeature.vrrp.packet import Advertisement, ReceivedAdvertisement
from nefeature.vrrp.router import (
    State,
    VrrpSecondMaster,
    VrrpNewMaster,
    VrrpRouter,
    VrrpStateChanged,
)

VIP = IPv4Address("10.10.10.100")
A = int(IPv4Address("10.10.10.1"))
B = int(IPv4Address("10.10.10.2"))


def group(priority=100, preempt=True, hold=0, interval=100, tracks=(), vip=VIP) -> VrrpGroup:
    return VrrpGroup("Vlanif100", 1, priority=priority, preempt=preempt, preempt_hold_time=hold,
                     advertise_interval=interval, virtual_addresses=(vip,), tracks=tuple(tracks))


def advert(priority: int, source: int = B, interval: int = 100) -> ReceivedAdvertisement:
    return ReceivedAdvertisement(Advertisement(1, priority, interval, (int(VIP),)), source, 255)


def router_in(state: State, priority=100, **kwargs) -> VrrpRouter:
    router = VrrpRouter(group(priority=priority, tracks=[TrackedInterface("uplink", -50)],
                              **kwargs), A)
    if state is not State.INITIALIZE:
        router.startup(0.0)
    if state is State.MASTER:
        router.handle_timer(router.master_down_timer)
    assert router.state is state
    router.outgoing.clear()
    router.events.clear()
    return router


def test_rfc_timers_in_centiseconds():
    router = VrrpRouter(group(priority=100, interval=100), A)
    assert router.skew_time == (256 - 100) * 100 // 256 == 60
    assert router.master_down_interval == 3 * 100 + 60
    router.startup(0.0)
    assert router.master_down_timer == pytest.approx(3.6)


# (state, event) -> (next state, advertisements sent with their priorities)
EVENTS = {
    "startup": lambda r, now: r.startup(now),
    "shutdown": lambda r, now: r.shutdown(now),
    # a timer event happens only when that timer is armed, at its time
    "master-down-timer": lambda r, now: r.master_down_timer and r.handle_timer(r.master_down_timer),
    "adver-timer": lambda r, now: r.adver_timer and r.handle_timer(r.adver_timer),
    "advert-higher": lambda r, now: r.receive(advert(150), now),
    "advert-equal-higher-address": lambda r, now: r.receive(advert(100, source=B), now),
    "advert-equal-lower-address": lambda r, now: r.receive(
        advert(100, source=int(IPv4Address("10.10.10.0"))), now),
    "advert-lower": lambda r, now: r.receive(advert(50), now),
    "advert-zero": lambda r, now: r.receive(advert(0), now),
    "track-down": lambda r, now: r.link_changed("uplink", False, now),
}
MATRIX = {
    (State.INITIALIZE, "startup"): (State.BACKUP, []),
    (State.INITIALIZE, "shutdown"): (State.INITIALIZE, []),
    (State.INITIALIZE, "master-down-timer"): (State.INITIALIZE, []),
    (State.INITIALIZE, "adver-timer"): (State.INITIALIZE, []),
    (State.INITIALIZE, "advert-higher"): (State.INITIALIZE, []),
    (State.INITIALIZE, "advert-equal-higher-address"): (State.INITIALIZE, []),
    (State.INITIALIZE, "advert-equal-lower-address"): (State.INITIALIZE, []),
    (State.INITIALIZE, "advert-lower"): (State.INITIALIZE, []),
    (State.INITIALIZE, "advert-zero"): (State.INITIALIZE, []),
    (State.INITIALIZE, "track-down"): (State.INITIALIZE, []),
    (State.BACKUP, "startup"): (State.BACKUP, []),
    (State.BACKUP, "shutdown"): (State.INITIALIZE, []),
    (State.BACKUP, "master-down-timer"): (State.MASTER, [100]),
    (State.BACKUP, "adver-timer"): (State.BACKUP, []),
    (State.BACKUP, "advert-higher"): (State.BACKUP, []),
    (State.BACKUP, "advert-equal-higher-address"): (State.BACKUP, []),
    (State.BACKUP, "advert-equal-lower-address"): (State.BACKUP, []),
    (State.BACKUP, "advert-lower"): (State.MASTER, [100]),  # preempt, hold-time 0
    (State.BACKUP, "advert-zero"): (State.BACKUP, []),  # Master_Down_Timer = Skew_Time
    (State.BACKUP, "track-down"): (State.BACKUP, []),
    (State.MASTER, "startup"): (State.MASTER, []),
    (State.MASTER, "shutdown"): (State.INITIALIZE, [0]),
    (State.MASTER, "master-down-timer"): (State.MASTER, []),
    (State.MASTER, "adver-timer"): (State.MASTER, [100]),
    # a master that steps down says so (priority 0): the other re-announces (below)
    (State.MASTER, "advert-higher"): (State.BACKUP, [0]),
    (State.MASTER, "advert-equal-higher-address"): (State.BACKUP, [0]),
    # another master of lower priority: advertise at once (and re-announce, below)
    (State.MASTER, "advert-equal-lower-address"): (State.MASTER, [100]),
    (State.MASTER, "advert-lower"): (State.MASTER, [100]),
    (State.MASTER, "advert-zero"): (State.MASTER, [100]),
    (State.MASTER, "track-down"): (State.MASTER, [50]),  # the drop is advertised at once
}


def test_matrix_covers_every_state_and_event():
    assert set(MATRIX) == {(s, e) for s in State for e in EVENTS}


@pytest.mark.parametrize("state, event", sorted(MATRIX, key=str), ids=lambda x: str(
    x.value if isinstance(x, State) else x))
def test_transition(state, event):
    router = router_in(state)
    EVENTS[event](router, 1.0)
    expected_state, expected_priorities = MATRIX[(state, event)]
    assert router.state is expected_state
    assert [a.priority for a in router.outgoing] == expected_priorities
    changes = [e for e in router.events if isinstance(e, VrrpStateChanged)]
    if expected_state is state:
        assert changes == []
    else:
        assert [(c.old, c.new) for c in changes] == [(state, expected_state)]


def test_priority_zero_makes_the_backup_take_over_after_skew_time():
    router = router_in(State.BACKUP)
    router.receive(advert(0), 10.0)
    assert router.next_deadline() == pytest.approx(10.0 + router.skew_time / 100)
    router.handle_timer(router.next_deadline())
    assert router.state is State.MASTER and router.new_master_reason == "no-response"


def test_backup_learns_the_masters_interval():
    router = router_in(State.BACKUP)
    router.receive(advert(150, interval=10), 5.0)
    assert router.master_adver_interval == 10
    assert router.master_down_timer == pytest.approx(5.0 + (30 + (156 * 10) // 256) / 100)


def test_preempt_hold_time_delays_preemption():
    router = router_in(State.BACKUP, hold=600)
    router.receive(advert(50), 10.0)
    assert router.state is State.BACKUP and router.preempt_timer == 610.0
    for t in range(11, 610, 1):  # the lower master keeps advertising: it is not declared dead
        router.receive(advert(50), float(t))
        router.handle_timer(float(t))
    assert router.state is State.BACKUP
    router.handle_timer(610.0)
    assert router.state is State.MASTER and router.new_master_reason == "preempted"


def test_preempt_disabled_never_preempts():
    router = router_in(State.BACKUP, preempt=False)
    for t in range(10, 30):
        router.receive(advert(50), float(t))
        router.handle_timer(float(t))
    assert router.state is State.BACKUP


def test_preemption_gate_holds_until_opened():
    router = router_in(State.BACKUP)
    router.preempt_allowed = False
    router.receive(advert(50), 10.0)
    assert router.state is State.BACKUP and router.next_deadline() == router.master_down_timer
    router.set_preempt_allowed(True, 11.0)
    assert router.state is State.MASTER


def test_owner_starts_as_master_at_255():
    router = VrrpRouter(group(vip=IPv4Address("10.10.10.1")), A)
    router.startup(0.0)
    assert router.state is State.MASTER and router.priority == 255
    assert router.outgoing[0].priority == 255


def test_tracking_reduced_and_increased_with_limits():
    router = VrrpRouter(group(priority=200, tracks=[TrackedInterface("up1", -110),
                                                      TrackedInterface("up2", -110),
                                                      TrackedInterface("up3", 100)]), A)
    router.link_changed("up1", False, 0.0)
    assert router.priority == 90
    router.link_changed("up2", False, 0.0)
    assert router.priority == 1  # never below 1
    router.link_changed("up1", True, 0.0)
    router.link_changed("up2", True, 0.0)
    router.link_changed("up3", False, 0.0)
    assert router.priority == 254  # never above 254
    router.link_changed("other", False, 0.0)
    assert router.priority == 254


# --- two routers on a fake LAN ---


class Lan:
    """A fake LAN: advertisements arrive ``delay`` after they are sent; a fake clock."""

    def __init__(self, *routers: VrrpRouter, delay: float = 0.001):
        self.routers = list(routers)
        self.up = set(range(len(routers)))
        self.now = 0.0
        self.delay = delay
        self.in_flight: list[tuple[float, int, int, object]] = []  # (time, seq, to, advert)
        self.sequence = 0

    def start(self):
        for router in self.routers:
            router.startup(self.now)
        self.collect()

    def collect(self):
        """Put what the routers sent on the wire."""
        for i, router in enumerate(self.routers):
            for advertisement in router.outgoing:
                if i not in self.up:
                    continue
                for j in range(len(self.routers)):
                    if j != i:
                        self.sequence += 1
                        heapq.heappush(self.in_flight, (self.now + self.delay, self.sequence, j,
                                                        ReceivedAdvertisement(
                                                            advertisement,
                                                            router.primary_address, 255)))
            router.outgoing.clear()

    def run_until(self, until: float):
        for _ in range(1_000_000):
            candidates = [(r.next_deadline(), 1, i) for i, r in enumerate(self.routers)
                          if i in self.up and r.next_deadline() is not None]
            if self.in_flight:
                candidates.append((self.in_flight[0][0], 0, -1))
            if not candidates or min(candidates)[0] > until:
                self.now = until
                return
            when, kind, index = min(candidates)
            self.now = when
            if kind == 0:
                _, _, to, received = heapq.heappop(self.in_flight)
                if to in self.up:
                    self.routers[to].receive(received, self.now)
            else:
                self.routers[index].handle_timer(self.now)
            self.collect()
        raise AssertionError("the LAN never went quiet")

    def masters(self):
        return [i for i, r in enumerate(self.routers) if r.state is State.MASTER and i in self.up]


def pair(priority_a=200, priority_b=100, interval=100, hold_a=0):
    a = VrrpRouter(group(priority=priority_a, interval=interval, hold=hold_a,
                         tracks=[TrackedInterface("uplink0", -110)]), A)
    b = VrrpRouter(group(priority=priority_b, interval=interval), B)
    return a, b


def test_higher_priority_is_elected():
    a, b = pair()
    lan = Lan(a, b)
    lan.start()
    lan.run_until(10.0)
    assert lan.masters() == [0]
    assert b.master_ip == A and b.master_priority == 200


def test_equal_priority_higher_address_wins():
    a, b = pair(priority_a=100, priority_b=100)
    lan = Lan(a, b)
    lan.start()
    lan.run_until(10.0)
    assert lan.masters() == [1]  # 10.10.10.2 > 10.10.10.1


@pytest.mark.parametrize("interval", [100, 10])
def test_master_death_is_detected_within_master_down_interval(interval):
    a, b = pair(interval=interval)
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    lan.up.discard(0)  # SIGKILL: A goes silent
    died = lan.now
    lan.run_until(died + b.master_down_interval / 100 + lan.delay)
    takeover = [e for e in b.events if isinstance(e, VrrpNewMaster) and e.master_ip == B]
    assert b.state is State.MASTER and takeover[-1].reason == "no-response"
    assert b.up_since is not None
    # within Master_Down_Interval of the last advertisement A sent
    assert b.statistics.master_transitions == 1


@pytest.mark.parametrize("interval", [100, 10])
def test_tracked_uplink_failure_hands_over_within_one_advertisement(interval):
    a, b = pair(interval=interval)
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    failed_at = lan.now
    a.link_changed("uplink0", False, failed_at)  # 200 - 110 = 90 < 100
    lan.collect()
    lan.run_until(failed_at + interval / 100)
    assert lan.masters() == [1]
    assert b.new_master_reason == "preempted"
    assert a.state is State.BACKUP


def test_rejoining_master_with_hold_time_waits_then_takes_the_role_back():
    a, b = pair(hold_a=600)
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    a.link_changed("uplink0", False, lan.now)
    lan.collect()
    lan.run_until(6.0)
    assert lan.masters() == [1]
    a.link_changed("uplink0", True, lan.now)
    lan.collect()
    lan.run_until(6.0 + 599)
    assert lan.masters() == [1]
    lan.run_until(6.0 + 601)
    assert lan.masters() == [0]


def test_clean_shutdown_hands_over_after_skew_time():
    a, b = pair()
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    stopped = lan.now
    a.shutdown(stopped)
    lan.collect()
    lan.up.discard(0)
    lan.run_until(stopped + 1.0)
    assert lan.masters() == [1]
    assert b.up_since is not None and b.statistics.priority_zero_pkts_rcvd == 1


@pytest.mark.parametrize("first", ["A", "B"])
def test_two_masters_after_a_partition_resolve_and_the_one_that_stays_announces(first):
    """Two masters meet when a partition heals.  Whichever advertisement crosses first,
    B steps down and A reports the second master (the device then announces the virtual
    IP again, for the hosts that followed B): from B's lower-priority advertisement, or
    from the priority 0 B says when it steps down after hearing A's."""
    a, b = pair()
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    lan.up.discard(0)
    lan.run_until(10.0)
    assert a.state is State.MASTER and b.state is State.MASTER  # split brain
    a.events.clear()
    if first == "B":  # A advertised into the void just now: B's advertisement comes first
        a.adver_timer = lan.now + 0.9
    lan.up.add(0)
    lan.run_until(lan.now + 1.0 + 0.01)  # within one advertisement
    assert lan.masters() == [0] and b.state is State.BACKUP
    heard = [(e.other_master, e.other_priority) for e in a.events
             if isinstance(e, VrrpSecondMaster)]
    assert heard == ([(B, 0)] if first == "A" else [(B, 100), (B, 0)])


def test_a_master_that_steps_down_says_priority_zero():
    router = router_in(State.MASTER)
    router.receive(advert(150), 1.0)
    assert [a.priority for a in router.outgoing] == [0]
    assert router.statistics.priority_zero_pkts_sent == 1


# --- live reconfiguration: each kind of change, then the fault it must react to ---


def with_changes(router: VrrpRouter, **changes) -> VrrpGroup:
    from dataclasses import replace
    return replace(router.group, **changes)


def test_track_added_on_a_down_link_lowers_the_priority_at_once_and_hands_over():
    a, b = pair()
    a.reconfigure(with_changes(a, tracks=()), 0.0, links_down=())  # A starts untracked
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    assert lan.masters() == [0]
    # the uplink is already down when the track is committed: counted at once
    a.reconfigure(with_changes(a, tracks=(TrackedInterface("uplink0", -110),)), lan.now,
                  links_down={"uplink0"})
    assert a.priority == 90 and a.tracked_links() == {"uplink0": False}
    assert a.outgoing[-1].priority == 90  # the backup hears it now, not at the next interval
    lan.collect()
    lan.run_until(lan.now + 0.01)
    assert lan.masters() == [1]


def test_track_added_by_a_later_commit_is_watched_for_the_next_link_down():
    a, b = pair()
    a.reconfigure(with_changes(a, tracks=()), 0.0, links_down=())
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    a.reconfigure(with_changes(a, tracks=(TrackedInterface("uplink0", -110),)), lan.now,
                  links_down=())
    lan.collect()
    lan.run_until(6.0)
    assert lan.masters() == [0] and a.priority == 200
    a.link_changed("uplink0", False, lan.now)
    lan.collect()
    lan.run_until(lan.now + 0.01)
    assert lan.masters() == [1]


def test_track_removed_while_its_link_is_down_restores_the_priority():
    router = router_in(State.MASTER, priority=200)
    router.link_changed("uplink", False, 1.0)
    assert router.priority == 150
    router.outgoing.clear()
    router.reconfigure(with_changes(router, tracks=()), 2.0, links_down={"uplink"})
    assert router.priority == 200 and router.tracked_links() == {}
    assert [a.priority for a in router.outgoing] == [200]


def test_links_down_outside_the_tracks_are_ignored():
    router = router_in(State.BACKUP)
    router.reconfigure(router.group, 1.0, links_down={"eth9"})
    assert router.links_down == set() and router.priority == 100


def test_priority_raised_on_a_backup_preempts_the_master():
    a, b = pair()
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    b.reconfigure(with_changes(b, priority=250), lan.now, links_down=())
    lan.collect()
    lan.run_until(lan.now + 0.01)
    assert lan.masters() == [1] and b.new_master_reason == "preempted"


def test_priority_lowered_on_the_master_is_advertised_and_it_yields():
    a, b = pair()
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    a.reconfigure(with_changes(a, priority=50), lan.now, links_down=())
    assert a.outgoing[-1].priority == 50
    lan.collect()
    lan.run_until(lan.now + 0.01)
    assert lan.masters() == [1]


def low_master_then_high(high: VrrpRouter) -> Lan:
    """A priority-100 router is master alone, then ``high`` (priority 200) joins it."""
    low = VrrpRouter(group(priority=100), B)
    lan = Lan(low, high)
    low.startup(0.0)
    lan.collect()
    lan.run_until(5.0)
    high.startup(lan.now)
    lan.collect()
    lan.run_until(10.0)
    return lan


def change_and_settle(lan: Lan, router: VrrpRouter, **changes) -> None:
    router.reconfigure(with_changes(router, **changes), lan.now, links_down=())
    lan.collect()
    lan.run_until(lan.now + 0.01)


def test_preemption_disabled_then_enabled():
    high = VrrpRouter(group(priority=200, preempt=False), A)
    lan = low_master_then_high(high)
    assert lan.masters() == [0]  # no preemption: the lower router stays master
    change_and_settle(lan, high, preempt=True)
    assert lan.masters() == [1] and high.new_master_reason == "preempted"


def test_a_shorter_hold_time_restarts_a_pending_preemption():
    high = VrrpRouter(group(priority=200, hold=600), A)
    lan = low_master_then_high(high)
    assert lan.masters() == [0] and high.preempt_timer is not None
    change_and_settle(lan, high, preempt_hold_time=0)
    assert lan.masters() == [1]


def test_interval_change_on_the_master_is_advertised_and_followed_by_the_backup():
    a, b = pair(interval=100)
    lan = Lan(a, b)
    lan.start()
    lan.run_until(5.0)
    a.reconfigure(with_changes(a, advertise_interval=10), lan.now, links_down=())
    assert a.outgoing[-1].max_advertise_interval == 10 and a.master_adver_interval == 10
    lan.collect()
    lan.run_until(lan.now + 0.05)
    assert b.master_adver_interval == 10
    assert b.master_down_interval == 3 * 10 + ((256 - 100) * 10) // 256
    lan.up.discard(0)  # now A dies: B notices within the new, shorter interval
    died = lan.now
    lan.run_until(died + b.master_down_interval / 100 + 0.01)
    assert lan.masters() == [1]


def test_virtual_address_change_is_advertised_by_the_master():
    router = router_in(State.MASTER)
    other = IPv4Address("10.10.10.101")
    router.reconfigure(with_changes(router, virtual_addresses=(other,)), 1.0, links_down=())
    assert router.outgoing[-1].addresses == (int(other),)


def test_becoming_the_address_owner_preempts_even_without_preempt_mode():
    router = router_in(State.BACKUP, preempt=False)
    router.receive(advert(200), 1.0)
    assert router.state is State.BACKUP
    router.reconfigure(with_changes(router, virtual_addresses=(IPv4Address("10.10.10.1"),)),
                       2.0, links_down=())
    assert router.state is State.MASTER and router.priority == 255


def test_virtual_mac_follows_the_group_and_ownership():
    router = VrrpRouter(group(), A)
    assert router.virtual_mac == bytes.fromhex("00005e000101")
    assert VrrpRouter(with_changes(router, vrid=255), A).virtual_mac == \
        bytes.fromhex("00005e0001ff")
    assert VrrpRouter(with_changes(router, virtual_mac=False), A).virtual_mac is None
    assert VrrpRouter(group(vip=IPv4Address("10.10.10.1")), A).virtual_mac is None  # owner


def test_last_change_is_the_time_of_the_last_state_change():
    router = VrrpRouter(group(), A)
    assert router.last_change is None
    router.startup(3.0)
    assert router.last_change == 3.0
    router.receive(advert(150), 4.0)  # no state change
    assert router.last_change == 3.0
    router.handle_timer(router.master_down_timer)
    assert router.state is State.MASTER and router.last_change == pytest.approx(4.0 + 3.6)
