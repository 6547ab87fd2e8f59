"""Sans-IO VRRPv3 virtual router: RFC 5798 section 6, with Huawei's tracking.

One :class:`VrrpRouter` per configured group.  It is driven by

* ``startup(now)`` / ``shutdown(now)`` (the interface came up, or VRRP is
  stopped: a master then sends priority 0 so a backup takes over after
  Skew_Time instead of Master_Down_Interval);
* ``receive(advertisement, now)`` for an advertisement already checked by
  ``nefeature.vrrp.packet``;
* ``link_changed(interface, up, now)`` for a tracked interface;
* ``reconfigure(group, now, links_down)`` for a committed change, with the
  tracked interfaces whose links are down at that moment;
* ``handle_timer(now)`` at ``next_deadline()``;

and leaves its output in ``outgoing`` (advertisements to send) and
``events`` (:class:`VrrpStateChanged`, :class:`VrrpNewMaster`).  Times are
seconds; protocol intervals are centiseconds, named as in the RFC.

Preemption.  The RFC lets a backup with preemption preempt only by
ignoring a lower-priority master until Master_Down_Timer fires (three
intervals).  Here, as on Huawei routers and in keepalived, a backup that
hears a lower-priority master keeps treating it as alive and preempts
after ``preempt hold-time`` (at once when zero), so a master whose tracked
uplink fails loses the role in one advertisement.  ``preempt_allowed`` lets
the device hold preemption back further (until a rejoining DHCP backup has
its batch backup, docs/architecture.md).

The virtual router MAC (section 7.3), ``00:00:5E:00:01:{VRID}``, is what a
master answers ARP with and sends its advertisements from, unless the
group turns it off or the router owns the address (``virtual_mac``); the
transport makes it so.

Two masters.  After a healed LAN partition or a frozen master waking up,
two masters hear each other, and what followed the one that steps down
(switches that learned the virtual MAC on its port; hosts whose ARP entry
has its MAC, without a virtual MAC) keeps sending there until the entry
ages out.  So, beyond section 6.4.3: a master that steps down for a
higher-priority one says priority 0 (it stops being master), and a master
that hears another master, of lower priority (advertised at once, as
keepalived does, instead of discarded) or saying priority 0, reports
:class:`VrrpSecondMaster`: the device announces its virtual addresses again
(gratuitous ARP).  Whichever advertisement crosses the healed LAN first, the
master that stays announces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from nefeature.config.model import VrrpGroup
from nefeature.vrrp.packet import Advertisement, ReceivedAdvertisement

OWNER_PRIORITY = 255
VIRTUAL_MAC_PREFIX = bytes.fromhex("00005e0001")  # RFC 5798 section 7.3, IPv4


def virtual_router_mac(vrid: int) -> bytes:
    """The IPv4 virtual router MAC address of a VRID: 00-00-5E-00-01-{VRID}."""
    return VIRTUAL_MAC_PREFIX + bytes([vrid])


class State(str, Enum):
    INITIALIZE = "initialize"
    BACKUP = "backup"
    MASTER = "master"


@dataclass(frozen=True, slots=True)
class VrrpStateChanged:
    interface: str
    vrid: int
    old: State
    new: State
    reason: str  # ietf-vrrp new-master-reason when new is MASTER, else what happened


@dataclass(frozen=True, slots=True)
class VrrpNewMaster:
    """RFC 8347 vrrp-new-master-event: the group has a (different) master."""

    interface: str
    vrid: int
    master_ip: int
    reason: str  # not-master | priority | preempted | no-response


@dataclass(frozen=True, slots=True)
class VrrpSecondMaster:
    """This master heard another master (of lower priority, or stepping down with
    priority 0): its virtual addresses are to be announced again."""

    interface: str
    vrid: int
    other_master: int
    other_priority: int


@dataclass
class RouterStatistics:
    """Per-router counters with their RFC 8347 names."""

    master_transitions: int = 0
    advertisement_rcvd: int = 0
    advertisement_sent: int = 0
    priority_zero_pkts_rcvd: int = 0
    priority_zero_pkts_sent: int = 0
    address_list_errors: int = 0


@dataclass
class VrrpRouter:
    """One virtual router (see the module docstring)."""

    group: VrrpGroup
    primary_address: int
    state: State = State.INITIALIZE
    preempt_allowed: bool = True
    statistics: RouterStatistics = field(default_factory=RouterStatistics)
    outgoing: list[Advertisement] = field(default_factory=list)
    events: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.virtual_addresses = tuple(int(a) for a in self.group.virtual_addresses)
        self.is_owner = self.primary_address in self.virtual_addresses
        self.tracks = {t.interface: t.priority_change for t in self.group.tracks}
        self.links_down: set[str] = set()
        self.master_adver_interval = self.group.advertise_interval
        self.master_down_timer: float | None = None
        self.adver_timer: float | None = None
        self.preempt_timer: float | None = None
        self.master_ip: int | None = None
        self.master_priority: int | None = None
        self.last_adv_source: int | None = None
        self.new_master_reason = "not-master"
        self.last_event = "none"
        self.up_since: float | None = None
        self.recover_timer: float | None = None  # interface up, waiting out recover-delay
        self.last_change: float | None = None  # when the state last changed

    # --- RFC 5798 section 6.1 variables ---

    @property
    def priority(self) -> int:
        """Running priority: configured, plus tracked links that are down."""
        if self.is_owner:
            return OWNER_PRIORITY
        change = sum(self.tracks[name] for name in self.links_down if name in self.tracks)
        return max(1, min(254, self.group.priority + change))

    @property
    def virtual_mac(self) -> bytes | None:
        """The MAC that answers for the virtual addresses, None for the interface's own.

        An address owner keeps its interface's MAC: its virtual address is
        the interface's own address, which the interface itself answers for.
        """
        if self.group.virtual_mac and not self.is_owner:
            return virtual_router_mac(self.group.vrid)
        return None

    def tracked_links(self) -> dict[str, bool]:
        """Each tracked interface and whether its link is up, as last reported."""
        return {name: name not in self.links_down for name in self.tracks}

    @property
    def advertisement_interval(self) -> int:
        return self.group.advertise_interval

    @property
    def skew_time(self) -> int:
        """Skew_Time in centiseconds: ((256 - Priority) * Master_Adver_Interval) / 256."""
        return ((256 - self.priority) * self.master_adver_interval) // 256

    @property
    def master_down_interval(self) -> int:
        """Master_Down_Interval in centiseconds: 3 * Master_Adver_Interval + Skew_Time."""
        return 3 * self.master_adver_interval + self.skew_time

    def next_deadline(self) -> float | None:
        timers = [self.master_down_timer, self.adver_timer, self.recover_timer,
                  self.preempt_timer if self.preempt_allowed else None]
        return min((t for t in timers if t is not None), default=None)

    # --- inputs ---

    def startup(self, now: float) -> None:
        """Section 6.4.1: leave Initialize."""
        if self.state is not State.INITIALIZE:
            return
        self.last_event = "startup"
        self.up_since = now
        self.master_adver_interval = self.advertisement_interval
        if self.priority == OWNER_PRIORITY:
            self._change_state(State.MASTER, now, "priority")
        else:
            self._change_state(State.BACKUP, now, "startup")

    def interface_up(self, now: float) -> None:
        """The group's interface came up: start now, or once ``vrrp recover-delay`` has
        passed with the interface still up (a flapping link does not flap the role)."""
        if self.group.recover_delay:
            self.recover_timer = now + self.group.recover_delay
        else:
            self.startup(now)

    def shutdown(self, now: float) -> None:
        """Sections 6.4.2 and 6.4.3: back to Initialize; a master says priority 0."""
        self.last_event = "shutdown"
        self.recover_timer = None
        if self.state is State.MASTER:
            self._send(0)
        if self.state is not State.INITIALIZE:
            self._change_state(State.INITIALIZE, now, "shutdown")

    def receive(self, received: ReceivedAdvertisement, now: float) -> None:
        advertisement = received.advertisement
        self.statistics.advertisement_rcvd += 1
        self.last_adv_source = received.source
        if advertisement.priority == 0:
            self.statistics.priority_zero_pkts_rcvd += 1
        elif (advertisement.priority != OWNER_PRIORITY
              and set(advertisement.addresses) != set(self.virtual_addresses)):
            self.statistics.address_list_errors += 1  # logged, still processed (7.1)
        if self.state is State.BACKUP:
            self._backup_receives(received, now)
        elif self.state is State.MASTER:
            self._master_receives(received, now)

    def link_changed(self, interface: str, up: bool, now: float) -> None:
        """A tracked interface went down or came back: the priority changes at once."""
        if interface not in self.tracks or up == (interface not in self.links_down):
            return
        before = self.priority
        (self.links_down.discard if up else self.links_down.add)(interface)
        self.last_event = f"track {interface} {'up' if up else 'down'}"
        if self.priority == before:
            return
        if self.state is State.MASTER:
            self.master_priority = self.priority
            self._send(self.priority)  # tell the backups now, not at the next interval
            self.adver_timer = now + self.advertisement_interval / 100
        elif self.state is State.BACKUP:
            self._consider_preempting(now)

    def reconfigure(self, group: VrrpGroup, now: float, links_down: Iterable[str]) -> None:
        """Take a changed configuration without leaving the current state.

        ``links_down`` names the interfaces of ``group``'s tracks whose links
        are down now (the caller knows the links, the router only what it is
        told): a track added by this change counts at once, one removed
        stops counting.  A master advertises its new priority, addresses and
        interval at once and keeps that interval; a backup reconsiders
        preempting under the new priority and preempt settings, and a
        changed preempt hold-time restarts a pending countdown.  Adding the
        virtual addresses to the interface, and the virtual MAC, are the
        transport's.
        """
        hold_time_changed = group.preempt_hold_time != self.group.preempt_hold_time
        self.group = group
        self.virtual_addresses = tuple(int(a) for a in group.virtual_addresses)
        self.is_owner = self.primary_address in self.virtual_addresses
        self.tracks = {t.interface: t.priority_change for t in group.tracks}
        self.links_down = set(links_down) & set(self.tracks)
        self.last_event = "reconfigured"
        if self.state is State.MASTER:
            self.master_adver_interval = self.advertisement_interval
            self.master_priority = self.priority
            self._send(self.priority)
            self.adver_timer = now + self.advertisement_interval / 100
        elif self.state is State.BACKUP:
            if hold_time_changed:
                self.preempt_timer = None
            self._consider_preempting(now)

    def set_preempt_allowed(self, allowed: bool, now: float) -> None:
        """Open or close the device's preemption gate."""
        self.preempt_allowed = allowed
        if allowed and self.preempt_timer is not None and self.preempt_timer <= now:
            self.handle_timer(now)

    def handle_timer(self, now: float) -> None:
        if self.recover_timer is not None and self.recover_timer <= now:
            self.recover_timer = None
            self.startup(now)
        if self.state is State.BACKUP:
            if self.master_down_timer is not None and self.master_down_timer <= now:
                self.last_event = "master-down-timer"
                self._change_state(State.MASTER, now, "no-response")
            elif (self.preempt_allowed and self.preempt_timer is not None
                  and self.preempt_timer <= now):
                self.last_event = "preempt-timer"
                self._change_state(State.MASTER, now, "preempted")
        elif self.state is State.MASTER and self.adver_timer is not None and self.adver_timer <= now:
            self._send(self.priority)
            self.adver_timer = now + self.advertisement_interval / 100

    # --- section 6.4.2 and 6.4.3 receive rules ---

    def _backup_receives(self, received: ReceivedAdvertisement, now: float) -> None:
        advertisement = received.advertisement
        if advertisement.priority == 0:
            self.last_event = "priority-zero"
            self.master_down_timer = now + self.skew_time / 100
            return
        self._learn_master(received, now)
        self._consider_preempting(now)

    def _consider_preempting(self, now: float) -> None:
        """Arm (or cancel) preemption of a master with lower priority than ours.

        The address owner always preempts (section 6.1, Preempt_Mode).
        """
        lower = self.master_priority is not None and self.master_priority < self.priority
        if not ((self.group.preempt or self.is_owner) and lower):
            self.preempt_timer = None
        elif self.preempt_timer is None:
            self.preempt_timer = now + self.group.preempt_hold_time
            if self.group.preempt_hold_time == 0:
                self.handle_timer(now)

    def _master_receives(self, received: ReceivedAdvertisement, now: float) -> None:
        priority = received.advertisement.priority
        if priority and (priority > self.priority or (
                priority == self.priority and received.source > self.primary_address)):
            self.last_event = "higher-priority-advertisement"
            self._send(0)  # we stop being master: the other announces itself again
            self._change_state(State.BACKUP, now, "higher-priority-advertisement")
            self._learn_master(received, now)
            return
        self.last_event = "priority-zero" if priority == 0 else "lower-priority-master"
        self._send(self.priority)
        self.adver_timer = now + self.advertisement_interval / 100
        self.events.append(VrrpSecondMaster(self.group.interface, self.group.vrid,
                                            received.source, priority))

    def _learn_master(self, received: ReceivedAdvertisement, now: float) -> None:
        """Accept the sender as master: learn its interval, restart Master_Down_Timer."""
        advertisement = received.advertisement
        is_new = received.source != self.master_ip
        self.master_adver_interval = advertisement.max_advertise_interval or 1
        self.master_down_timer = now + self.master_down_interval / 100
        self.master_ip = received.source
        self.master_priority = advertisement.priority
        if is_new:
            self.events.append(VrrpNewMaster(self.group.interface, self.group.vrid,
                                             received.source, "priority"))

    # --- state entry actions (table-driven, as FRR's vrrp_change_state_handlers) ---

    def _change_state(self, new: State, now: float, reason: str) -> None:
        old, self.state = self.state, new
        self.last_change = now
        _ENTRY_ACTIONS[new](self, now, reason)
        self.events.append(VrrpStateChanged(self.group.interface, self.group.vrid, old, new,
                                            reason))

    def _enter_initialize(self, now: float, reason: str) -> None:
        self.master_down_timer = self.adver_timer = self.preempt_timer = None
        self.master_ip = self.master_priority = None

    def _enter_backup(self, now: float, reason: str) -> None:
        self.adver_timer = self.preempt_timer = None
        self.master_down_timer = now + self.master_down_interval / 100

    def _enter_master(self, now: float, reason: str) -> None:
        self._send(self.priority)
        self.master_down_timer = self.preempt_timer = None
        self.adver_timer = now + self.advertisement_interval / 100
        self.master_adver_interval = self.advertisement_interval
        self.master_ip = self.primary_address
        self.master_priority = self.priority
        self.new_master_reason = reason
        self.statistics.master_transitions += 1
        self.events.append(VrrpNewMaster(self.group.interface, self.group.vrid,
                                         self.primary_address, reason))

    def _send(self, priority: int) -> None:
        self.outgoing.append(Advertisement(self.group.vrid, priority, self.advertisement_interval,
                                           self.virtual_addresses))
        self.statistics.advertisement_sent += 1
        if priority == 0:
            self.statistics.priority_zero_pkts_sent += 1


_ENTRY_ACTIONS = {
    State.INITIALIZE: VrrpRouter._enter_initialize,
    State.BACKUP: VrrpRouter._enter_backup,
    State.MASTER: VrrpRouter._enter_master,
}
