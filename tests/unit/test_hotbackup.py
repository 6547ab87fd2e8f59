"""Hot backup without sockets: two devices' engines, VRRP on a fake LAN, the channel on a fake link."""

from __future__ import annotations

from ipaddress import IPv4Address

from nefeature.backup.channel import ChannelState
from nefeature.backup.hotbackup import (
    CHANNEL_GRACE,
    STRICT_WAIT,
    BatchBackupDone,
    HotBackup,
    PeerUnresponsive,
    ProtectDown,
)
from nefeature.config import load_config
from nefeature.dhcp.codec import MessageType
from nefeature.dhcp.leases import LeaseState
from nefeature.dhcp.server import DhcpServer
from nefeature.vrrp.packet import ReceivedAdvertisement
from nefeature.vrrp.router import State, VrrpRouter
from tests.conftest import EXAMPLES
from tests.unit.test_dhcp_server import Client, ip

A_ADDRESS, B_ADDRESS = ip("10.10.10.1"), ip("10.10.10.2")


def config_text(device: str, mode: str = "strict") -> str:
    text = (EXAMPLES / "pair" / f"device{device}.xml").read_text()
    if mode != "strict":
        text = text.replace("<service-type>dhcp-server</service-type>",
                            f"<service-type>dhcp-server</service-type><sync-mode>{mode}</sync-mode>"
                            "<mclt>600</mclt>")
    return text


class Device:
    def __init__(self, name: str, mode: str, now: float):
        self.config = load_config(config_text(name, mode))
        self.dhcp = DhcpServer(self.config)
        group = self.config.vrrp_groups[0]
        address = A_ADDRESS if name == "A" else B_ADDRESS
        self.router = VrrpRouter(group, address)
        self.backup = HotBackup(self.config, self.dhcp, {group.key: self.router}, started=now)
        self.channel = self.backup.channels["service1"]
        self.sent: list = []
        self.journal: dict = {}

    def commit(self):
        self.journal.update(self.dhcp.table.take_pending())


class Pair:
    """DeviceA and DeviceB with VRRP, DHCP and the backup channel, on a fake clock."""

    def __init__(self, mode="strict"):
        self.now = 0.0
        self.a = Device("A", mode, self.now)
        self.b = Device("B", mode, self.now)
        self.link_up = False
        self.lan = True
        self.batch_pages = True  # False: the senders' batch pages wait (a slow master)

    def devices(self):
        return (self.a, self.b)

    def connect(self):
        self.link_up = True
        for device in self.devices():
            device.channel.connection_made(self.now)
        self.settle()

    def cut(self):
        self.link_up = False
        for device in self.devices():
            device.channel.connection_lost(self.now, "cut")
            device.sent += device.backup.on_channel_events("service1", self.now)[0]

    def settle(self):
        for _ in range(50):
            moved = False
            for sender, receiver in ((self.a, self.b), (self.b, self.a)):
                for advertisement in sender.router.outgoing:
                    if self.lan:
                        receiver.router.receive(ReceivedAdvertisement(
                            advertisement, sender.router.primary_address, 255), self.now)
                    moved = True
                sender.router.outgoing.clear()
                if sender.channel.batch_pending and self.link_up and self.batch_pages:
                    sender.channel.send_batch_page()  # a page per loop turn, as over TCP
                    moved = True
                data = sender.channel.data_to_send()
                if data and self.link_up:
                    receiver.channel.data_received(data, self.now)
                    moved = True
            for device in self.devices():
                device.router.events.clear()
                leaving, applied = device.backup.on_channel_events("service1", self.now)
                device.sent += leaving
                if applied:
                    device.commit()
                    device.channel.acknowledge(self.now)
                device.backup.update_roles(self.now)
            if not moved:
                return

    def advance(self, until: float):
        while True:
            self.settle()
            deadlines = []
            for device in self.devices():
                for deadline in (device.router.next_deadline(), device.backup.next_deadline(),
                                 device.dhcp.next_deadline()):
                    if deadline is not None:
                        deadlines.append((deadline, device))
            due = [d for d in deadlines if d[0] <= until]
            if not due:
                self.now = until
                self.settle()
                return
            self.now, device = min(due, key=lambda d: d[0])
            device.router.handle_timer(self.now)
            device.dhcp.handle_timer(self.now)
            device.backup.route_replies([], device.dhcp.events, self.now)
            device.dhcp.events.clear()
            device.sent += device.backup.handle_timer(self.now)

    def start(self):
        self.a.router.startup(self.now)
        self.b.router.startup(self.now)
        self.connect()
        self.advance(CHANNEL_GRACE + 5)

    def serve(self, device: Device, client: Client):
        """One DORA through a device: the replies it sends (after acks, in strict mode)."""
        client.server = device.dhcp
        replies = []
        for message in ("discover", "request"):
            if message == "discover":
                out = device.dhcp.receive(_received(client.message(MessageType.DISCOVER)), self.now)
            else:
                offer = _decode(replies[-1])
                out = device.dhcp.receive(_received(client.message(
                    MessageType.REQUEST, requested_address=offer.yiaddr.to_bytes(4, "big"),
                    server_id=offer.options[54])), self.now)
            leaving = device.backup.route_replies(out, device.dhcp.events, self.now)
            device.dhcp.events.clear()
            device.commit()
            device.sent += leaving
            self.settle()
            if not device.sent:
                return None
            replies.append(device.sent.pop(0).data)
        return _decode(replies[-1])


def _received(message):
    from nefeature.dhcp.codec import encode
    from nefeature.dhcp.server import Received

    return Received(encode(message), "Vlanif100", False)


def _decode(data):
    from nefeature.dhcp.codec import decode

    return decode(data)


def test_master_serves_the_backup_stays_silent_and_holds_every_lease():
    pair = Pair()
    pair.start()
    assert pair.a.router.state is State.MASTER and pair.b.router.state is State.BACKUP
    assert pair.a.backup.profiles["service1"].local_state == "master"
    assert pair.b.backup.profiles["service1"].peer_state == "master"
    option82 = b"\x01\x03c42\x02\x02r9"
    for n in range(1, 21):
        ack = pair.serve(pair.a, Client(pair.a.dhcp, mac=n, option82=option82 if n == 7 else None))
        assert ack.message_type == MessageType.ACK
    assert pair.b.dhcp.receive(_received(Client(None, mac=99).message(MessageType.DISCOVER)),
                               pair.now) == []
    a_leases = {a: l for a, l in pair.a.dhcp.table.by_address.items()}
    b_leases = {a: l for a, l in pair.b.dhcp.table.by_address.items()}
    assert set(a_leases) == set(b_leases) and len(b_leases) == 20
    assert all(lease.origin == "peer-sync" for lease in b_leases.values())
    synced = [l for l in b_leases.values() if l.option82]
    assert [l.circuit_id for l in synced] == [b"c42"]
    assert set(pair.b.journal) == set(b_leases)  # on the backup's disk too


def test_strict_ack_waits_for_the_peer_and_leaves_alone_when_it_is_gone():
    pair = Pair()
    pair.start()
    released = _deliver_to_b(pair, _parked_request(pair, 1), pair.now)  # parked until B acks
    assert [_decode(r.data).message_type for r in released] == [MessageType.ACK]
    # the link is cut silently: the next ACK waits STRICT_WAIT, then leaves anyway
    pair.link_up = False
    _parked_request(pair, 2)  # its bytes are lost
    pair.advance(pair.now + STRICT_WAIT + 0.01)
    assert [_decode(r.data).message_type for r in pair.a.sent] == [MessageType.ACK]
    assert pair.a.channel.pending >= 1  # still queued for the peer
    assert pair.a.backup.unconfirmed_replies["service1"] == 1
    assert [e.replies for e in pair.a.backup.events if isinstance(e, PeerUnresponsive)] == [1]


def _parked_request(pair: Pair, mac: int) -> bytes:
    """A DORA on A whose ACK is parked; the bytes A wrote to the channel for it."""
    client = Client(pair.a.dhcp, mac=mac)
    out = pair.a.dhcp.receive(_received(client.message(MessageType.DISCOVER)), pair.now)
    offer = _decode(out[0].data)
    out = pair.a.dhcp.receive(_received(client.message(
        MessageType.REQUEST, requested_address=offer.yiaddr.to_bytes(4, "big"),
        server_id=offer.options[54])), pair.now)
    assert pair.a.backup.route_replies(out, pair.a.dhcp.events, pair.now) == []
    pair.a.dhcp.events.clear()
    pair.a.commit()
    return pair.a.channel.data_to_send()


def _deliver_to_b(pair: Pair, data: bytes, at: float) -> list:
    """B applies ``data`` at ``at`` and acknowledges; the ACKs that A releases."""
    pair.now = at
    pair.b.channel.data_received(data, at)
    pair.b.backup.on_channel_events("service1", at)
    pair.b.commit()
    pair.b.channel.acknowledge(at)
    pair.a.channel.data_received(pair.b.channel.data_to_send(), at)
    return pair.a.backup.on_channel_events("service1", at)[0]


def test_a_peer_behind_but_acknowledging_holds_strict_acks_back_as_long_as_it_takes():
    """Overload on the backup must not let ACKs out without it (Kea HA's silent gap)."""
    pair = Pair()
    pair.start()
    start = pair.now
    first, second = _parked_request(pair, 1), _parked_request(pair, 2)
    assert len(_deliver_to_b(pair, first, start + 0.4)) == 1
    pair.now = start + 0.8  # the second waited 0.8 s, but the peer acknowledged 0.4 s ago
    assert pair.a.backup.handle_timer(pair.now) == []
    assert len(_deliver_to_b(pair, second, start + 0.85)) == 1
    assert pair.a.backup.unconfirmed_replies["service1"] == 0


def test_switchover_then_rejoin_with_batch_backup_and_gated_preemption():
    pair = Pair()
    pair.start()
    for n in range(1, 6):
        pair.serve(pair.a, Client(pair.a.dhcp, mac=n))
    address_of_3 = pair.a.dhcp.table.for_client("pool1", Client(None, mac=3).mac and
                                                 b"h" + Client(None, mac=3).mac).address
    # DeviceA's uplink fails: B takes over and renews client 3 from the synced table
    pair.a.router.link_changed("GigabitEthernet0/1/2", False, pair.now)
    pair.advance(pair.now + 0.5)
    assert pair.b.router.state is State.MASTER and pair.a.router.state is State.BACKUP
    assert "pool1" in pair.a.dhcp.silent_pools and "pool1" not in pair.b.dhcp.silent_pools
    renewal = pair.b.dhcp.receive(_received(Client(None, mac=3).message(
        MessageType.REQUEST, broadcast=False, ciaddr=address_of_3)), pair.now)
    assert _decode(renewal[0].data).message_type == MessageType.ACK
    assert _decode(renewal[0].data).yiaddr == address_of_3
    assert _decode(renewal[0].data).options[54] == IPv4Address("10.10.10.100").packed
    # a new client on B gets an address nobody holds
    new = pair.serve(pair.b, Client(pair.b.dhcp, mac=50))
    assert new.yiaddr not in {l.address for l in pair.a.dhcp.table.by_address.values()
                              if l.client != b"h" + Client(None, mac=50).mac}
    # DeviceA restarts from scratch (lost its state): gets a batch backup, then the role back
    pair.cut()
    pair.a = Device("A", "strict", pair.now)
    pair.a.router.startup(pair.now)
    pair.connect()
    assert pair.a.backup.profiles["service1"].batch_done
    assert set(pair.a.dhcp.table.by_address) == set(pair.b.dhcp.table.by_address)
    pair.advance(pair.now + 601)  # DeviceA's preempt hold-time is 600 s
    assert pair.a.router.state is State.MASTER and pair.b.router.state is State.BACKUP


def test_preemption_waits_for_the_batch_backup():
    pair = Pair()
    pair.start()
    for n in range(1, 4):
        pair.serve(pair.a, Client(pair.a.dhcp, mac=n))
    applied = pair.a.backup.records_applied
    pair.a.router.link_changed("GigabitEthernet0/1/2", False, pair.now)
    pair.advance(pair.now + 0.5)
    assert pair.b.router.state is State.MASTER
    assert pair.a.backup.records_applied == applied  # a failover sends no batch
    pair.a.router.link_changed("GigabitEthernet0/1/2", True, pair.now)
    profile = pair.a.backup.profiles["service1"]
    pair.batch_pages = False  # B's batch pages are slow to come
    profile.batch_done = False  # as if A had just come back: it says so, and B sends its table
    pair.a.backup.update_roles(pair.now)
    pair.settle()
    assert profile.batch_status == "running" and pair.a.router.preempt_allowed is False
    pair.advance(pair.now + 700)
    assert pair.a.router.state is State.BACKUP  # hold-time over, batch incomplete: waits
    pair.batch_pages = True
    pair.settle()
    assert profile.batch_done and pair.a.router.preempt_allowed
    pair.advance(pair.now + 1)
    assert pair.a.router.state is State.MASTER


def test_devices_starting_together_the_elected_master_sends_its_table():
    """The channel comes up before VRRP has chosen: nobody is master, nobody sends a batch;
    the device VRRP then makes master sends its table to the peer, which says it lacks one."""
    pair = Pair()
    source = Pair()
    source.start()
    for n in range(1, 6):
        source.serve(source.a, Client(source.a.dhcp, mac=n))
    for lease in source.a.dhcp.table.by_address.values():  # A's journal at start
        pair.a.dhcp.apply_peer_lease(lease.pool, lease.address, lease)
    pair.connect()  # both VRRP routers still initializing
    assert pair.b.backup.profiles["service1"].batch_status == "idle"
    pair.a.router.startup(pair.now)
    pair.b.router.startup(pair.now)
    pair.advance(pair.now + 5)
    assert pair.a.router.state is State.MASTER
    assert set(pair.b.dhcp.table.by_address) == set(pair.a.dhcp.table.by_address)
    assert len(pair.b.dhcp.table.by_address) == 5
    assert pair.b.backup.profiles["service1"].batch_done


def test_partition_reconciliation_leaves_no_address_with_two_clients():
    pair = Pair()
    pair.start()
    pair.serve(pair.a, Client(pair.a.dhcp, mac=1))
    # the sync link and the VRRP LAN split: both devices serve on their own
    pair.cut()
    pair.lan = False
    pair.advance(pair.now + 5)
    assert pair.a.router.state is State.MASTER and pair.b.router.state is State.MASTER
    assert any(isinstance(e, ProtectDown) and not e.resumed for e in pair.a.backup.events)
    pair.now += 1
    on_a = pair.serve(pair.a, Client(pair.a.dhcp, mac=10))
    pair.now += 1
    on_b = pair.serve(pair.b, Client(pair.b.dhcp, mac=20))
    assert on_a.yiaddr == on_b.yiaddr  # the same free address went to two clients
    pair.lan = True
    pair.connect()
    pair.advance(pair.now + 5)
    for device in pair.devices():
        holders = {}
        for lease in device.dhcp.table.by_address.values():
            if lease.state is LeaseState.BOUND:
                assert holders.setdefault(lease.address, lease.client) == lease.client
    winner = pair.a.dhcp.table.by_address[on_a.yiaddr]
    assert winner.client == b"h" + Client(None, mac=20).mac  # the later expiry (granted on B)
    assert pair.a.dhcp.sync_conflicts + pair.b.dhcp.sync_conflicts >= 1
    assert {a: l.client for a, l in pair.a.dhcp.table.by_address.items()} == \
        {a: l.client for a, l in pair.b.dhcp.table.by_address.items()}


def test_lazy_mode_replies_at_once_with_lease_capped_by_mclt():
    pair = Pair("lazy")
    pair.start()
    ack = pair.serve(pair.a, Client(pair.a.dhcp, mac=1))
    assert int.from_bytes(ack.options[51], "big") == 600  # MCLT: the peer knew nothing yet
    pair.now += 100
    renewed = pair.serve(pair.a, Client(pair.a.dhcp, mac=1))
    # the peer acknowledged expiry 600 -> at most 600 + MCLT from the first grant
    assert int.from_bytes(renewed.options[51], "big") == 600 + 600 - 100


def test_channel_states_and_notifications():
    pair = Pair()
    pair.start()
    assert pair.a.channel.state is ChannelState.UP
    pair.cut()
    kinds = [(type(e).__name__, getattr(e, "resumed", None)) for e in pair.b.backup.events]
    assert ("ProtectDown", True) in kinds and ("ProtectDown", False) in kinds


def test_rbs_state_fits_the_model():
    from yangson.enumerations import ContentType, ValidationScope

    from nefeature.datastore.schema import data_model
    from nefeature.datastore.validation import validate_config_text
    from nefeature.state import merge_trees, rbs_state

    pair = Pair()
    pair.start()
    pair.serve(pair.a, Client(pair.a.dhcp, mac=1))
    pair.cut()
    state = rbs_state(pair.b.backup, {"service1": "listening"})
    merged = merge_trees(validate_config_text(config_text("B")).raw, state)
    data_model().from_raw(merged).validate(ValidationScope.all, ContentType.all)
    profile = state["nefeature-rbs:rbs"]["profiles"]["profile"][0]["state"]
    assert (profile["local-state"], profile["peer-state"]) == ("slave", "master")
    service = state["nefeature-rbs:rbs"]["services"]["service"][0]["state"]
    assert service["last-down-reason"] == "cut" and service["statistics"]["updates-received"] == "1"


def test_losing_the_peer_drops_parked_acks_and_pauses_before_serving_alone():
    """The peer may have dropped the channel because it took over from us: wait for VRRP."""
    pair = Pair()
    pair.start()
    client = Client(pair.a.dhcp, mac=4)
    out = pair.a.dhcp.receive(_received(client.message(MessageType.DISCOVER)), pair.now)
    offer = _decode(out[0].data)
    out = pair.a.dhcp.receive(_received(client.message(
        MessageType.REQUEST, requested_address=offer.yiaddr.to_bytes(4, "big"),
        server_id=offer.options[54])), pair.now)
    assert pair.a.backup.route_replies(out, pair.a.dhcp.events, pair.now) == []  # parked
    pair.a.dhcp.events.clear()
    pair.cut()
    assert pair.a.sent == []  # the unconfirmed ACK was not sent
    assert "pool1" in pair.a.dhcp.silent_pools  # paused, though still VRRP master
    pair.advance(pair.now + 2.1)
    assert pair.a.router.state is State.MASTER and "pool1" not in pair.a.dhcp.silent_pools


def test_a_backup_made_master_before_its_batch_completes_holds_while_the_peer_is_reachable():
    """A master slow with a big batch (or its adverts lost) must not let a backup with a
    partial table hand out addresses the master already leased."""
    pair = Pair()
    pair.start()
    for n in range(1, 6):
        pair.serve(pair.a, Client(pair.a.dhcp, mac=n))
    pair.cut()
    pair.b = Device("B", "strict", pair.now)  # B restarts with an empty table
    pair.b.router.startup(pair.now)
    pair.batch_pages = False
    pair.connect()
    profile = pair.b.backup.profiles["service1"]
    assert profile.batch_status == "running" and not profile.batch_done
    pair.lan = False  # A's advertisements stop reaching B
    pair.advance(pair.now + 5)
    assert pair.b.router.state is State.MASTER
    assert "pool1" in pair.b.dhcp.silent_pools  # holds: A is alive and its batch is coming
    assert pair.serve(pair.b, Client(pair.b.dhcp, mac=40)) is None
    pair.batch_pages = True
    pair.settle()
    assert profile.batch_done and set(pair.b.dhcp.table.by_address) == \
        set(pair.a.dhcp.table.by_address)
    assert pair.a.backup.profiles["service1"].batch_status == "done"
    done = [(e.sent, e.leases) for e in pair.a.backup.events + pair.b.backup.events
            if isinstance(e, BatchBackupDone)]
    assert (True, 5) in done and (False, 5) in done
    assert "pool1" not in pair.b.dhcp.silent_pools  # complete table: serves (split LAN)


def test_a_backup_awaiting_a_batch_serves_once_the_master_is_gone_from_the_channel():
    pair = Pair()
    pair.start()
    pair.cut()
    pair.b = Device("B", "strict", pair.now)
    pair.b.router.startup(pair.now)
    pair.batch_pages = False
    pair.connect()
    pair.lan = False
    pair.advance(pair.now + 5)
    assert pair.b.router.state is State.MASTER and "pool1" in pair.b.dhcp.silent_pools
    pair.cut()  # A dies: its TCP connection goes (or its heartbeats stop)
    pair.advance(pair.now + 2.1)  # two advertisement intervals for VRRP to speak first
    assert "pool1" not in pair.b.dhcp.silent_pools
    assert pair.serve(pair.b, Client(pair.b.dhcp, mac=40)).message_type == MessageType.ACK


def test_batch_backup_now_needs_the_channel_up():
    pair = Pair()
    pair.start()
    assert pair.a.backup.batch_backup_now("service1", pair.now) == 1
    pair.cut()
    assert pair.a.backup.batch_backup_now("service1", pair.now) == 0
