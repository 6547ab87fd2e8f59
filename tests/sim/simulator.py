"""A deterministic simulator of the hot-backup pair: two DeviceCores, a LAN, a channel,
disks, DHCP clients and one fake clock, all driven from one seed.

Every input of a device is an event in one queue ordered by (time, sequence),
so a seed and a fault schedule give the same run every time.  What the
cores output is carried out here as the shell would, with the network and
the disk in between:

* the LAN carries VRRP advertisements between the devices and DHCP between
  the devices and the clients; it can lose datagrams and be partitioned
  into any two sides (devices and clients on each);
* the channel is one TCP connection (in order, with delay) that can be cut,
  delayed or hit by garbage from an on-path host; a crashed device's kernel
  resets it at once, a cut one is only noticed by silence;
* each device's disk holds what its journal writes committed; a write is
  done after a random delay, and a crash loses what was not done;
* a crashed device loses its core and restarts from its disk; a frozen one
  (SIGSTOP) gets nothing processed, not even timers, until it resumes, and
  then everything that waited;
* each client runs RFC 2131's states (INIT, SELECTING, REQUESTING, BOUND,
  RENEWING, REBINDING) and keeps a ledger of every DHCPACK it got.

The invariants are checked after every event (``Violation`` with the
trace of the run):

* no address is held by two clients with overlapping lease times;
* a client holding a valid lease is never NAKed for it and never moved to
  another address (it renews its own address after any switchover);
* no DHCPACK leaves before its lease is on the sending device's disk, and
  in strict mode on the peer's disk unless the core marked it unconfirmed;
* no lease goes to the peer on the channel before it is on a disk (the
  sender's, or the peer's that granted it), or a newer version of its
  address is on the sender's (else a crash of the sender leaves the peer
  with a lease its grantor never had);
* a device that starts serving holds every valid lease its peer granted
  with confirmation (strict mode);
* a serving device holds every valid lease a client holds in its own share
  of the pool, however it was granted (a device that served alone and then
  crashed before the channel came back sends those leases from its journal
  when it returns, and a share grows only with a complete table);
* the two shares never overlap: the secondary's split, in use or on disk,
  is at most the primary's;
* once the LAN has been whole for long enough, at most one device serves.
"""

from __future__ import annotations

import heapq
import random
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address

from nefeature.backup.frames import FrameReader, FrameType, decode_records
from nefeature.datastore.validation import load_config
from nefeature.core import (
    CloseChannel,
    DeviceCore,
    Notify,
    SendChannel,
    SendDhcp,
    SendVrrp,
    VirtualAddressesChanged,
    WriteJournal,
)
from nefeature.dhcp.codec import (
    BROADCAST_FLAG,
    DhcpMessage,
    MessageType,
    Option,
    decode,
    encode,
)
from nefeature.dhcp.leases import LeaseState, client_key
from nefeature.dhcp.server import Received, lease_version
from nefeature.vrrp.packet import ipv4_datagram
from nefeature.vrrp.router import State
from tests.conftest import EXAMPLES

WALL_EPOCH = 1_800_000_000.0
LAN = "Vlanif100"
UPLINK = "uplink0"
VIP = int(IPv4Address("10.10.10.100"))
ADDRESSES = {"A": int(IPv4Address("10.10.10.1")), "B": int(IPv4Address("10.10.10.2"))}
POOL = "pool1"
LEASE_SECONDS = 60
RECONNECT = 1.0
SETTLE = 5.0  # seconds after the LAN is whole before "one master" must hold
OVERLAP = 0.1  # seconds two masters may both serve while one hears the other's advertisement


class Violation(AssertionError):
    pass


@lru_cache(maxsize=None)
def device_config(name: str, mode: str, share: int | None = None, pool_end: int = 100):
    """The example pair, with a one-minute lease, a 5 s preemption delay and no
    recover delay, so a short run sees renewals, rebinding and preemption; a pool of
    10.10.10.1 to 10.10.10.``pool_end`` (a small one runs short of free addresses, and
    the pair moves the split of its shares)."""
    text = (EXAMPLES / "pair" / f"device{name}.xml").read_text()
    text = text.replace("<end-ip>10.10.10.100</end-ip>", f"<end-ip>10.10.10.{pool_end}</end-ip>")
    text = text.replace("<hold-time>600</hold-time>", "<hold-time>5</hold-time>")
    text = text.replace("<recover-delay>20</recover-delay>", "")
    text = text.replace("<identifier-ip>", "<lease-time><day>0</day><hour>0</hour><minute>1"
                        "</minute></lease-time><identifier-ip>")
    extra = "" if mode == "strict" else f"<sync-mode>{mode}</sync-mode><mclt>60</mclt>"
    if share is not None:
        extra += f"<partition-share>{share}</partition-share>"
    text = text.replace("<service-type>dhcp-server</service-type>",
                        "<service-type>dhcp-server</service-type>" + extra)
    return load_config(text)


@dataclass(frozen=True)
class Fault:
    """``kind`` at ``at`` seconds, undone ``duration`` later (where it has an end)."""

    at: float
    kind: str  # crash | freeze | uplink | partition | channel-cut | garbage | lan-loss
    device: str = "A"
    duration: float = 5.0
    clients_with_a: int = 0  # partition: how many clients stay on A's side

    def __str__(self) -> str:
        text = f"{self.at:.3f}s {self.kind} {self.device} for {self.duration:.3f}s"
        return text + (f" ({self.clients_with_a} clients with A)"
                       if self.kind == "partition" else "")


#: Journal write times of a disk that now and then stalls for 2 s (a full disk given room
#: again, a slow device): the device holds ACKs and records that long, and gathers what
#: comes meanwhile.
STALLING_DISK = (0.0001,) * 19 + (2.0,)


def lease_identity(lease) -> tuple:
    """What identifies one version of a lease across the channel's encoding."""
    return lease.address, lease.client, lease.state, lease.start, lease.expiry


@dataclass
class SimDevice:
    name: str
    config: object
    address: int
    disk: dict = field(default_factory=dict)
    disk_synced_until: dict = field(default_factory=dict)  # the journal's record of it
    disk_splits: dict = field(default_factory=dict)  # pool -> split, as journaled
    ever_on_disk: set = field(default_factory=set)  # lease_identity() of every lease written
    core: DeviceCore | None = None
    incarnation: int = 0
    frozen: bool = False
    held: list = field(default_factory=list)  # inputs that waited while frozen
    timer_at: float | None = None
    timer_due: bool = False
    holds_vip: bool = False
    announced: list = field(default_factory=list)  # when it added the VIP (gratuitous ARP)
    serving: bool = False
    uplink_up: bool = True
    skew: float = 0.0  # wall clock minus the simulator's wall clock
    page_scheduled: bool = False
    notifications: list = field(default_factory=list)
    notification_times: list = field(default_factory=list)  # the simulator's time of each

    @property
    def alive(self) -> bool:
        return self.core is not None


@dataclass
class Holding:
    address: int
    start: float
    expiry: float
    device: str
    confirmed: bool


class SimClient:
    """An RFC 2131 client (section 4.4) with a ledger of its DHCPACKs."""

    def __init__(self, sim: Sim, index: int) -> None:
        self.sim = sim
        self.index = index
        self.mac = bytes.fromhex("02aa0000") + index.to_bytes(2, "big")
        self.key = client_key(None, self.mac)
        self.state = "INIT"
        self.xid = index << 16
        self.holding: Holding | None = None
        self.offer: DhcpMessage | None = None
        self.server_id = 0
        self.retry_at: float | None = None
        self.t1 = self.t2 = 0.0
        self.acks = 0
        self.tick_token = 0
        self.releases = self.sim.rng.random() < 0.3  # this client releases once, and returns

    def label(self) -> str:
        return f"client{self.index}"

    def message(self, kind: MessageType, broadcast=True, ciaddr=0, **options: bytes):
        opts = {Option.MESSAGE_TYPE: bytes([kind])}
        for name, value in options.items():
            opts[getattr(Option, name.upper())] = value
        return DhcpMessage(xid=self.xid, flags=BROADCAST_FLAG if broadcast else 0,
                           ciaddr=ciaddr, chaddr=self.mac.ljust(16, b"\0"), options=opts)

    def start(self, now: float) -> None:
        self.xid += 1
        self.state = "SELECTING"
        self.offer = None
        self.sim.client_sends(self, self.message(MessageType.DISCOVER), unicast=False)
        self.retry_at = now + 2.0 + self.sim.rng.random()

    def tick(self, now: float) -> None:
        """Timers: retransmission, T1, T2, expiry."""
        holding = self.holding
        if holding is not None and now >= holding.expiry:
            self.sim.trace.append(f"{now:.3f} {self.label()} lease of "
                                  f"{IPv4Address(holding.address)} expired")
            self.holding = None
            self.start(now)
            return
        if self.state == "BOUND" and now >= self.t1:
            self.state = "RENEWING"
            self.retry_at = now
        if self.state == "RENEWING" and now >= self.t2:
            self.state = "REBINDING"
            self.retry_at = now
        if self.retry_at is None or now < self.retry_at:
            return
        if self.state in ("SELECTING", "INIT"):
            self.start(now)
        elif self.state == "REQUESTING":
            self.start(now)
        elif self.state in ("RENEWING", "REBINDING"):
            self.xid += 1
            unicast = self.state == "RENEWING"
            self.sim.client_sends(self, self.message(MessageType.REQUEST, broadcast=False,
                                                     ciaddr=self.holding.address),
                                  unicast=unicast)
            self.retry_at = now + 1.0 + self.sim.rng.random()
        elif self.state == "BOUND" and self.releases and now >= self.t1 - 5:
            self.releases = False
            self.sim.client_sends(self, self.message(
                MessageType.RELEASE, broadcast=False, ciaddr=self.holding.address,
                server_id=struct.pack("!I", self.server_id)), unicast=True)
            self.sim.trace.append(f"{now:.3f} {self.label()} released "
                                  f"{IPv4Address(self.holding.address)}")
            self.holding = None
            self.state = "INIT"
            self.retry_at = now + 3.0

    def next_time(self) -> float | None:
        times = [self.retry_at]
        if self.holding is not None:
            times.append(self.holding.expiry)
            if self.state == "BOUND":
                times.append(self.t1 - 5 if self.releases else self.t1)
            if self.state == "RENEWING":
                times.append(self.t2)
        return min((t for t in times if t is not None), default=None)

    def receive(self, reply: DhcpMessage, device: str, unconfirmed: bool, now: float) -> None:
        if reply.xid != self.xid:
            return
        kind = reply.message_type
        if kind == MessageType.OFFER and self.state == "SELECTING":
            self.offer = reply
            self.server_id = int.from_bytes(reply.options[Option.SERVER_ID], "big")
            self.state = "REQUESTING"
            self.sim.client_sends(self, self.message(
                MessageType.REQUEST, requested_address=struct.pack("!I", reply.yiaddr),
                server_id=reply.options[Option.SERVER_ID]), unicast=False)
            self.retry_at = now + 2.0 + self.sim.rng.random()
        elif kind == MessageType.ACK and self.state in ("REQUESTING", "RENEWING", "REBINDING"):
            self.sim.check_ack(self, reply, device, now)
            lease_time = int.from_bytes(reply.options[Option.LEASE_TIME], "big")
            self.holding = Holding(reply.yiaddr, now, now + lease_time, device,
                                   confirmed=self.sim.mode == "strict" and not unconfirmed)
            self.server_id = int.from_bytes(reply.options[Option.SERVER_ID], "big")
            self.t1, self.t2 = now + lease_time / 2, now + lease_time * 7 / 8
            self.state = "BOUND"
            self.retry_at = None
            self.acks += 1
        elif kind == MessageType.NAK and self.state in ("REQUESTING", "RENEWING", "REBINDING"):
            if self.holding is not None and now < self.holding.expiry:
                self.sim.violation(f"{self.label()} NAKed by {device} for "
                                   f"{IPv4Address(self.holding.address)}, acknowledged until "
                                   f"{self.holding.expiry:.3f}")
            self.holding = None
            self.state = "INIT"
            self.retry_at = now + 0.5


class Sim:
    """The pair, the LAN, the channel, the clients, and the invariants."""

    def __init__(self, seed: int, faults=(), mode: str = "strict", clients: int = 4,
                 duration: float = 60.0, share: int | None = None, pool_end: int = 100,
                 check_gate: bool = True, check_peer_disk: bool = True,
                 burst_at: float | None = None,
                 channel_delay: tuple[float, float] = (0.0002, 0.002),
                 journal_delays: tuple[float, ...] = (0.0001, 0.0005, 0.002, 0.004)) -> None:
        self.seed = seed
        self.burst_at = burst_at  # every client starts within 10 ms of it (a power cut's end)
        self.channel_delay = channel_delay  # a channel frame's transit: least, plus up to
        self.journal_delays = journal_delays  # a journal write takes one of these
        self.rng = random.Random(seed)
        self.mode = mode
        self.faults = sorted(faults, key=lambda f: f.at)
        self.duration = duration
        self.check_gate = check_gate
        self.check_peer_disk = check_peer_disk
        self.now = 0.0
        self.queue: list = []
        self._sequence = 0
        self.trace: list[str] = [f"seed {seed}, mode {mode}, faults: "
                                 + "; ".join(map(str, self.faults))]
        self.devices = {name: SimDevice(name, device_config(name, mode, share, pool_end), address)
                        for name, address in ADDRESSES.items()}
        self.primary, self.secondary = sorted(
            self.devices.values(), key=lambda device: device.config.rbs_services[0].source)
        self.clients = [SimClient(self, i) for i in range(clients)]
        self.side_of: dict[str, int] = {}  # LAN partition: device/client label -> side
        self.lan_loss = 0.0
        self.lan_whole_since = 0.0
        self.channel_path_up = True
        self.connection = 0  # the channel's connection number; 0: none
        self.channel_last_delivery = {"A": 0.0, "B": 0.0}
        self.reconnect_scheduled = False
        self.acks = 0
        self.unconfirmed = 0
        self.requested_at: dict[tuple[bytes, int], float] = {}  # (MAC, xid) -> REQUEST sent
        self.ack_waits: list[float] = []  # a DHCPACK's leaving - its REQUEST's sending
        self.both_serving_since: float | None = None

    # --- the event queue ---

    def at(self, when: float, action, *args) -> None:
        self._sequence += 1
        heapq.heappush(self.queue, (when, self._sequence, action, args))

    def run(self) -> Sim:
        for device in self.devices.values():
            self.at(0.0 if device.name == "A" else self.rng.random() * 0.5, self.boot, device)
        for client in self.clients:
            client.retry_at = 1.0 + self.rng.random() * self.duration * 0.5 \
                if self.burst_at is None else self.burst_at + self.rng.random() * 0.01
            self.schedule_client(client)
        for fault in self.faults:
            self.at(fault.at, self.inject, fault)
        self.at(1.0, self.try_connect)
        return self.run_until(self.duration)

    def run_until(self, end: float) -> Sim:
        while self.queue and self.queue[0][0] <= end:
            when, _, action, args = heapq.heappop(self.queue)
            self.now = when
            action(*args)
            self.check_invariants()
        self.now = max(self.now, end)
        return self

    # --- devices ---

    def wall(self, device: SimDevice) -> float:
        return self.now + WALL_EPOCH + device.skew

    def boot(self, device: SimDevice) -> None:
        device.incarnation += 1
        device.core = DeviceCore(device.config, list(device.disk.values()), now=self.now,
                                 wall=self.wall(device), random_bytes=self.rng.randbytes,
                                 synced_until=dict(device.disk_synced_until),
                                 splits=dict(device.disk_splits))
        device.timer_at = None
        self.trace.append(f"{self.now:.3f} {device.name} boots with {len(device.disk)} leases")
        self.deliver(device, "start", {LAN: True, UPLINK: device.uplink_up})

    def deliver(self, device: SimDevice, method: str, *args, incarnation: int = 0) -> None:
        """An input for a device: lost if it is down (or restarted since it was sent),
        held while it is frozen."""
        if not device.alive or (incarnation and incarnation != device.incarnation):
            return
        if device.frozen:
            device.held.append((method, args))
            return
        getattr(device.core, method)(*args, self.now, self.wall(device))
        self.outputs(device)

    def deliver_to(self, device: SimDevice, incarnation: int, method: str, *args) -> None:
        self.deliver(device, method, *args, incarnation=incarnation)

    def outputs(self, device: SimDevice) -> None:
        core = device.core
        while (output := core.next_event()) is not None:
            kind = type(output)
            if kind is SendDhcp:
                self.device_sends_dhcp(device, output)
            elif kind is SendVrrp:
                datagram = ipv4_datagram(output.advertisement, device.address)
                for other in self.devices.values():
                    if other is not device and self.lan_connects(device.name, other.name):
                        self.at(self.now + 0.0002 + self.rng.random() * 0.001, self.deliver,
                                other, "vrrp_received", LAN, datagram)
            elif kind is SendChannel:
                self.channel_send(device, output.data)
            elif kind is CloseChannel:
                self.trace.append(f"{self.now:.3f} {device.name} drops the channel: "
                                  f"{output.reason}")
                self.channel_drop(reset_peer=True)
            elif kind is WriteJournal:
                self.at(self.now + self.rng.choice(self.journal_delays),
                        self.journal_done, device, device.incarnation, output)
            elif kind is VirtualAddressesChanged:
                device.holds_vip = output.present
                if output.present:
                    device.announced.append(self.now)
            elif kind is Notify:
                device.notifications.append(output.event)
                device.notification_times.append(self.now)
        if core.batch_pending("service1") and not device.page_scheduled:
            device.page_scheduled = True  # the shell sends one page per loop turn
            self.at(self.now + 0.0005, self.batch_page, device, device.incarnation)
        serving = POOL not in core.dhcp.silent_pools and any(
            r.state is State.MASTER for r in core.vrrp.values())
        if serving and not device.serving:
            self.trace.append(f"{self.now:.3f} {device.name} starts serving")
            self.check_serving_device(device)
        elif device.serving and not serving:
            self.trace.append(f"{self.now:.3f} {device.name} stops serving")
        device.serving = serving
        deadline = core.next_deadline()
        if deadline is not None and deadline != device.timer_at:
            device.timer_at = deadline
            self.at(max(deadline, self.now), self.timer, device, device.incarnation, deadline)

    def batch_page(self, device: SimDevice, incarnation: int) -> None:
        device.page_scheduled = False
        if self.connection > 0:
            self.deliver(device, "batch_step", "service1", incarnation=incarnation)

    def timer(self, device: SimDevice, incarnation: int, deadline: float) -> None:
        if incarnation != device.incarnation or device.timer_at != deadline:
            return
        if device.frozen:
            device.timer_due = True
            return
        device.timer_at = None
        self.deliver(device, "handle_timer")

    def journal_done(self, device: SimDevice, incarnation: int, write: WriteJournal) -> None:
        if incarnation != device.incarnation or not device.alive:
            return  # the process died before its write reached the disk
        for address, lease in write.changes.items():
            if lease is None:
                device.disk.pop(address, None)
            else:
                device.disk[address] = lease
                device.ever_on_disk.add(lease_identity(lease))
        device.disk_synced_until.update(write.synced_until or {})
        device.disk_splits.update(write.splits or {})
        self.deliver(device, "journal_committed", write.write_id)

    # --- faults ---

    def inject(self, fault: Fault) -> None:
        self.trace.append(f"{self.now:.3f} FAULT {fault}")
        device = self.devices[fault.device]
        end = self.now + fault.duration
        if fault.kind == "crash":
            self.crash(device)
            self.at(end, self.boot, device)
        elif fault.kind == "freeze":
            device.frozen = True
            self.at(end, self.resume, device)
        elif fault.kind == "uplink":
            device.uplink_up = False
            self.deliver(device, "link_changed", UPLINK, False)
            self.at(end, self.uplink_restored, device)
        elif fault.kind == "partition":
            self.side_of = {"A": 0, "B": 1}
            for client in self.clients:
                self.side_of[client.label()] = 0 if client.index < fault.clients_with_a else 1
            self.channel_path_up = False  # the channel runs over the LAN, as in the example
            self.connection_generation_bump()
            self.at(end, self.heal)
        elif fault.kind == "channel-cut":
            self.channel_path_up = False
            self.connection_generation_bump()
            self.at(end, self.channel_path_restored)
        elif fault.kind == "garbage":
            if self.connection:
                self.deliver(device, "channel_received", "service1",
                             self.rng.randbytes(40), incarnation=device.incarnation)
        elif fault.kind == "lan-loss":
            self.lan_loss = 0.3
            self.at(end, self.lan_loss_over)

    def crash(self, device: SimDevice) -> None:
        device.core = None
        device.frozen = False
        device.held.clear()
        device.holds_vip = False  # a crashed device's kernel answers no ARP for long
        device.serving = False
        if self.connection:
            self.channel_drop(reset_peer=True)

    def resume(self, device: SimDevice) -> None:
        self.trace.append(f"{self.now:.3f} {device.name} resumes")
        device.frozen = False
        held, device.held = device.held, []
        for method, args in held:
            self.deliver(device, method, *args)
        if device.timer_due and device.alive:
            device.timer_due = False
            device.timer_at = None
            self.deliver(device, "handle_timer")

    def uplink_restored(self, device: SimDevice) -> None:
        device.uplink_up = True
        self.deliver(device, "link_changed", UPLINK, True)

    def heal(self) -> None:
        self.trace.append(f"{self.now:.3f} LAN healed")
        self.side_of = {}
        self.lan_whole_since = self.now
        self.channel_path_up = True

    def lan_loss_over(self) -> None:
        self.lan_loss = 0.0
        self.lan_whole_since = self.now

    def channel_path_restored(self) -> None:
        self.channel_path_up = True

    def lan_connects(self, one: str, other: str) -> bool:
        if self.lan_loss and self.rng.random() < self.lan_loss:
            return False
        return self.side_of.get(one, 0) == self.side_of.get(other, 0)

    # --- the channel ---

    def try_connect(self) -> None:
        self.reconnect_scheduled = False
        a, b = self.devices["A"], self.devices["B"]
        if not self.connection and self.channel_path_up and a.alive and b.alive \
                and not a.frozen and not b.frozen:
            self.connection = self._sequence + 1
            self.channel_last_delivery = {"A": self.now, "B": self.now}
            for device in (a, b):
                self.deliver(device, "channel_connected", "service1")
        if not self.connection:
            self.schedule_reconnect()

    def schedule_reconnect(self) -> None:
        if not self.reconnect_scheduled:
            self.reconnect_scheduled = True
            self.at(self.now + RECONNECT, self.try_connect)

    def channel_send(self, device: SimDevice, data: bytes) -> None:
        self.check_sent_leases_on_disk(device, data)
        if self.connection <= 0 or not self.channel_path_up:
            return  # none, or cut: nothing more is delivered on it (TCP has no holes)
        peer = self.devices["B" if device.name == "A" else "A"]
        least, spread = self.channel_delay
        when = max(self.now + least + self.rng.random() * spread,
                   self.channel_last_delivery[peer.name])
        self.channel_last_delivery[peer.name] = when
        self.at(when, self.channel_arrives, peer, self.connection, data)

    def channel_arrives(self, device: SimDevice, connection: int, data: bytes) -> None:
        if connection == self.connection > 0 and self.channel_path_up:
            self.deliver(device, "channel_received", "service1", data)

    def channel_drop(self, reset_peer: bool) -> None:
        """The connection ends: both ends hear of it (a reset reaches a live kernel)."""
        if not self.connection:
            return
        self.connection = 0
        for device in self.devices.values():
            self.at(self.now + 0.0005, self.deliver_to, device, device.incarnation,
                    "channel_lost", "service1", "connection reset")
        self.schedule_reconnect()

    def connection_generation_bump(self) -> None:
        """A cut path: what is in flight is lost; the ends notice by silence, and drop
        the connection themselves (CloseChannel)."""
        if self.connection:
            self.connection = -abs(self.connection)  # no more deliveries on it (once cut)

    # --- DHCP on the LAN ---

    def client_tick(self, client: SimClient, token: int = 0) -> None:
        if token != client.tick_token:
            return
        client.tick(self.now)
        self.schedule_client(client)

    def schedule_client(self, client: SimClient) -> None:
        """One pending tick per client, at its next timer."""
        when = client.next_time()
        if when is not None:
            client.tick_token += 1
            self.at(max(when, self.now + 0.001), self.client_tick, client, client.tick_token)

    def client_sends(self, client: SimClient, message: DhcpMessage, unicast: bool) -> None:
        data = encode(message)
        if message.message_type == MessageType.REQUEST:
            self.requested_at.setdefault((message.hardware_address, message.xid), self.now)
        targets = [d for d in self.devices.values()
                   if self.lan_connects(client.label(), d.name)]
        if unicast:  # to the VIP: whoever answered ARP for it on this side
            holders = [d for d in targets if d.holds_vip]
            targets = [self.rng.choice(holders)] if holders else []
        for device in targets:
            self.at(self.now + 0.0001 + self.rng.random() * 0.001, self.deliver, device,
                    "dhcp_received", [Received(data, LAN, unicast)])

    def device_sends_dhcp(self, device: SimDevice, output: SendDhcp) -> None:
        message = decode(output.reply.data)
        if message.message_type == MessageType.ACK and message.yiaddr and self.check_gate:
            self.check_ack_gate(device, message, output.unconfirmed)
        requested = self.requested_at.get((message.hardware_address, message.xid))
        if message.message_type == MessageType.ACK and requested is not None:
            self.ack_waits.append(self.now - requested)
        for client in self.clients:
            if client.mac == message.hardware_address and \
                    self.lan_connects(device.name, client.label()):
                self.at(self.now + 0.0001 + self.rng.random() * 0.001, self.client_receives,
                        client, message, device.name, output.unconfirmed)

    def client_receives(self, client: SimClient, message: DhcpMessage, device: str,
                        unconfirmed: bool) -> None:
        client.receive(message, device, unconfirmed, self.now)
        self.schedule_client(client)

    # --- invariants ---

    def violation(self, text: str) -> None:
        self.trace.append(f"{self.now:.3f} VIOLATION {text}")
        raise Violation(f"{text}\n--- replay: Sim(seed={self.seed}, faults={self.faults!r}, "
                        f"mode={self.mode!r}) ---\n" + "\n".join(self.trace[-60:]))

    def check_sent_leases_on_disk(self, device: SimDevice, data: bytes) -> None:
        """The newest version of each lease in the bytes sent (real-time updates and batch
        pages) is on a disk: the sender's, or the peer's, which granted it; or the sender's
        disk holds a newer one at that address.  A lease the peer holds and the sender may
        lose in a crash is one the sender can hand out again from its share.  (A version
        that one journal write replaced before writing it, by one of the sender's or one
        of the peer's, is harmless: the newer one is on the sender's disk.)"""
        peer = self.devices["B" if device.name == "A" else "A"]
        newest: dict[int, object] = {}
        for frame in FrameReader().feed(data):  # the simulated pair has no shared key
            if frame.type is not FrameType.UPDATE:
                continue
            for record in decode_records(frame.payload):
                lease, known = record.lease, newest.get(record.address)
                if lease is not None and (known is None
                                          or lease_version(lease) > lease_version(known)):
                    newest[record.address] = lease
        for address, lease in newest.items():
            on_disk = device.disk.get(address)
            if lease_identity(lease) not in device.ever_on_disk \
                    and lease_identity(lease) not in peer.ever_on_disk \
                    and (on_disk is None or lease_version(on_disk) < lease_version(lease)):
                self.violation(f"{device.name} sends {IPv4Address(address)} "
                               f"({lease.state.name}, from {lease.start:.3f}) to "
                               f"{peer.name} before it is on a disk")

    def check_ack_gate(self, device: SimDevice, message: DhcpMessage, unconfirmed: bool) -> None:
        """No DHCPACK before its lease is on the device's disk (and the peer's, strict)."""
        self.acks += 1
        self.unconfirmed += unconfirmed
        lease = device.disk.get(message.yiaddr)
        client = client_key(message.options.get(Option.CLIENT_ID), message.hardware_address)
        if lease is None or lease.client != client or lease.state is not LeaseState.BOUND:
            self.violation(f"{device.name} sent a DHCPACK for {IPv4Address(message.yiaddr)} "
                           "before its lease was on its disk")
        if self.mode == "strict" and not unconfirmed and self.check_peer_disk:
            peer = self.devices["B" if device.name == "A" else "A"]
            theirs = peer.disk.get(message.yiaddr)
            if theirs is None or theirs.client != client:
                self.violation(f"{device.name} sent a strict DHCPACK for "
                               f"{IPv4Address(message.yiaddr)} not on the peer's disk")

    def check_ack(self, client: SimClient, message: DhcpMessage, device: str,
                  now: float) -> None:
        """The address is nobody else's, and a client with a valid lease keeps it."""
        address = message.yiaddr
        self.trace.append(f"{now:.3f} {client.label()} ACKed {IPv4Address(address)} by "
                          f"{device}")
        holding = client.holding
        if holding is not None and now < holding.expiry and holding.address != address:
            self.violation(f"{client.label()} moved from {IPv4Address(holding.address)} "
                           f"(valid until {holding.expiry:.3f}) to {IPv4Address(address)}")
        for other in self.clients:
            held = other.holding
            if other is not client and held is not None and held.address == address \
                    and now < held.expiry:
                self.violation(f"{IPv4Address(address)} ACKed by {device} to "
                               f"{client.label()} while {other.label()} holds it (ACKed by "
                               f"{held.device} until {held.expiry:.3f})")

    def check_serving_device(self, device: SimDevice) -> None:
        """A device that starts serving has every lease its peer granted with the
        peer's confirmation (strict mode)."""
        if self.mode != "strict":
            return
        table = device.core.dhcp.table.by_address
        for client in self.clients:
            held = client.holding
            if held is None or not held.confirmed or self.now >= held.expiry \
                    or held.device == device.name:
                continue
            lease = table.get(held.address)
            if lease is None or lease.client != client.key:
                self.violation(f"{device.name} serves without {client.label()}'s lease of "
                               f"{IPv4Address(held.address)} (ACKed by {held.device})")

    def check_own_share_known(self, device: SimDevice) -> None:
        """A serving device knows every lease a client holds in its own share (the
        addresses it may hand to new clients)."""
        core = device.core
        addresses = core.dhcp.pools[POOL].addresses
        restricted = POOL in core.dhcp.restricted_pools
        table = core.dhcp.table.by_address
        for client in self.clients:
            held = client.holding
            if held is None or self.now >= held.expiry:
                continue
            if restricted and addresses.side_of(held.address) is not addresses.own:
                continue
            lease = table.get(held.address)
            if lease is None or lease.client != client.key:
                self.violation(f"{device.name} may allocate {IPv4Address(held.address)} "
                               f"without {client.label()}'s lease of it "
                               f"(ACKed by {held.device})")

    def splits(self, device: SimDevice) -> list[int]:
        """The pool's split a device allocates by now (alive) and would after a restart."""
        splits = [device.disk_splits[POOL]] if POOL in device.disk_splits else []
        if device.alive and device.core is not None:
            splits.append(device.core.dhcp.pools[POOL].addresses.split)
        return splits

    def check_shares_apart(self) -> None:
        """The secondary's share never reaches into the primary's: its split, in use or
        on disk, is at most the primary's."""
        secondary, primary = self.splits(self.secondary), self.splits(self.primary)
        if secondary and primary and max(secondary) > min(primary):
            self.violation(f"the shares overlap: {self.secondary.name}'s split "
                           f"{secondary} (in use, on disk) above {self.primary.name}'s "
                           f"{primary}")

    def check_invariants(self) -> None:
        """Serving devices allocating from the whole pool know every client's lease; at
        most one serving device on a whole LAN, but for the instant a preempting master
        needs to be heard (one advertisement, ``OVERLAP``)."""
        serving = [d.name for d in self.devices.values()
                   if d.alive and not d.frozen and d.serving]
        for name in serving:
            self.check_own_share_known(self.devices[name])
        self.check_shares_apart()
        if len(serving) < 2 or self.side_of or self.lan_loss:
            self.both_serving_since = None
            return
        if self.both_serving_since is None:
            self.both_serving_since = self.now
        elif self.now > max(self.both_serving_since, self.lan_whole_since + SETTLE) + OVERLAP:
            self.violation(f"both devices serve on a whole LAN since "
                           f"{self.both_serving_since:.3f}: {serving}")
