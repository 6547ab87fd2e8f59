"""The sans-IO DHCP engine, driven with a fake clock: RFC 2131 section 4.3 rule by rule."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from nefeature.datastore.validation import load_config, load_config_file
from nefeature.dhcp.codec import (
    BOOTREPLY,
    BROADCAST_FLAG,
    DhcpMessage,
    MessageType,
    Option,
    decode,
    encode,
)
from nefeature.dhcp.events import LeaseCommitted, LeaseDeclined, LeaseExpired, LeaseReleased
from nefeature.dhcp.journal import LeaseJournal, checkpoint_wal
from nefeature.dhcp.leases import LeaseState
from nefeature.dhcp.server import (
    BROADCAST,
    DECLINE_PROBATION,
    OFFER_HOLD_TIME,
    DhcpServer,
    Received,
)
from tests.conftest import EXAMPLES

SINGLE = EXAMPLES / "single" / "server.xml"
LAN = "Vlanif100"
SERVER = int(IPv4Address("10.10.10.1"))
RELAY = int(IPv4Address("10.20.0.1"))


def ip(text: str) -> int:
    return int(IPv4Address(text))


def single_config(extra_pool_xml: str = "", extra_xml: str = ""):
    text = SINGLE.read_text().replace("<dns-list>10.10.10.53</dns-list>",
                                      "<dns-list>10.10.10.53</dns-list>" + extra_pool_xml)
    text = text.replace("</ip-pools>", extra_xml + "</ip-pools>")
    return load_config(text)


RELAY_POOL = ("<ip-pool><ip-pool-name>relayed</ip-pool-name><network><ip-address>10.20.0.0"
              "</ip-address><mask>255.255.255.0</mask></network><gateway-list>10.20.0.1"
              "</gateway-list><lease-time><day>0</day><hour>1</hour><minute>0</minute>"
              "</lease-time></ip-pool>")


class Client:
    """A DHCP client that builds requests for the engine (like a real one would)."""

    def __init__(self, server: DhcpServer, mac: int = 1, client_id: bytes | None = None,
                 giaddr: int = 0, option82: bytes | None = None):
        self.server = server
        self.mac = bytes.fromhex("02000000") + mac.to_bytes(2, "big")
        self.client_id = client_id
        self.giaddr = giaddr
        self.option82 = option82
        self.xid = mac

    def message(self, kind: MessageType, broadcast: bool = True, ciaddr: int = 0,
                **options: bytes) -> DhcpMessage:
        opts = {Option.MESSAGE_TYPE: bytes([kind])}
        if self.client_id:
            opts[Option.CLIENT_ID] = self.client_id
        for name, value in options.items():
            opts[getattr(Option, name.upper())] = value
        if self.option82 is not None:
            opts[Option.RELAY_AGENT_INFORMATION] = self.option82
        return DhcpMessage(xid=self.xid, flags=BROADCAST_FLAG if broadcast else 0,
                           ciaddr=ciaddr, giaddr=self.giaddr, chaddr=self.mac.ljust(16, b"\0"),
                           options=opts)

    def send(self, message: DhcpMessage, now: float = 0.0, unicast: bool = False):
        replies = self.server.receive(Received(encode(message), LAN, unicast), now)
        return [(reply, decode(reply.data)) for reply in replies]

    def discover(self, now=0.0, **options):
        return self.send(self.message(MessageType.DISCOVER, **options), now)

    def select(self, offered: int, server_id: int = SERVER, now=0.0):
        return self.send(self.message(MessageType.REQUEST,
                                      requested_address=struct.pack("!I", offered),
                                      server_id=struct.pack("!I", server_id)), now)

    def dora(self, now=0.0) -> int:
        [(_, offer)] = self.discover(now)
        server_id = int.from_bytes(offer.options[Option.SERVER_ID], "big")
        [(_, ack)] = self.select(offer.yiaddr, server_id, now=now)
        assert ack.message_type == MessageType.ACK
        return ack.yiaddr

    def renew(self, address: int, now: float, unicast: bool = True):
        return self.send(self.message(MessageType.REQUEST, broadcast=False, ciaddr=address),
                         now, unicast=unicast)

    def init_reboot(self, address: int, now: float = 0.0):
        return self.send(self.message(MessageType.REQUEST,
                                      requested_address=struct.pack("!I", address)), now)


@pytest.fixture
def server():
    return DhcpServer(load_config_file(SINGLE))


def only(replies):
    assert len(replies) == 1, replies
    return replies[0]


def test_dora_gives_first_free_address_with_configured_options(server):
    client = Client(server)
    reply, offer = only(client.discover())
    assert offer.op == BOOTREPLY and offer.message_type == MessageType.OFFER
    assert offer.yiaddr == ip("10.10.10.10")  # .1-.9 excluded
    assert offer.options[Option.SERVER_ID] == IPv4Address("10.10.10.1").packed
    assert offer.options[Option.LEASE_TIME] == struct.pack("!I", 86400)
    assert offer.options[Option.RENEWAL_TIME] == struct.pack("!I", 43200)
    assert offer.options[Option.REBINDING_TIME] == struct.pack("!I", 75600)
    assert offer.options[Option.SUBNET_MASK] == IPv4Address("255.255.255.0").packed
    assert offer.options[Option.ROUTER] == IPv4Address("10.10.10.1").packed
    assert offer.options[Option.DNS_SERVERS] == IPv4Address("10.10.10.53").packed
    assert (reply.address, reply.port, reply.mac, reply.durable) == (
        BROADCAST, 68, b"\xff" * 6, False)
    assert server.table.take_pending() == {}  # offers are not journaled
    reply, ack = only(client.select(offer.yiaddr))
    assert ack.message_type == MessageType.ACK and ack.yiaddr == offer.yiaddr
    assert reply.durable
    pending = server.table.take_pending()
    assert list(pending) == [offer.yiaddr] and pending[offer.yiaddr].state is LeaseState.BOUND
    assert [type(e) for e in server.events] == [LeaseCommitted]
    stats = server.statistics
    assert (stats.discover, stats.request, stats.offer, stats.ack, stats.client_request,
            stats.server_reply) == (1, 1, 1, 1, 2, 2)


def test_reply_without_broadcast_flag_goes_to_yiaddr_at_chaddr(server):
    client = Client(server)
    reply, offer = only(client.send(client.message(MessageType.DISCOVER, broadcast=False)))
    assert (reply.address, reply.mac, reply.interface) == (offer.yiaddr, client.mac, LAN)


def test_clients_get_distinct_addresses_and_own_addresses_are_never_leased():
    config = load_config_file(EXAMPLES / "pair" / "deviceA.xml")  # section .1-.100
    server = DhcpServer(config)
    leased = {Client(server, mac=n).dora() for n in range(1, 98)}
    assert len(leased) == 97
    # .1 (own), .2 (the backup peer), .100 (virtual IP, identifier, gateway) never handed out
    assert leased == {ip("10.10.10.%d" % n) for n in range(3, 100)}
    assert Client(server, mac=200).discover() == []  # exhausted: no offer


def test_requested_address_is_honoured_when_free(server):
    offer = only(Client(server, 1).discover(requested_address=IPv4Address("10.10.10.77").packed))[1]
    assert offer.yiaddr == ip("10.10.10.77")
    Client(server, 1).select(offer.yiaddr)
    other = only(Client(server, 2).discover(requested_address=IPv4Address("10.10.10.77").packed))[1]
    assert other.yiaddr != ip("10.10.10.77")


def test_excluded_address_is_never_offered_even_when_requested(server):
    offer = only(Client(server).discover(requested_address=IPv4Address("10.10.10.5").packed))[1]
    assert offer.yiaddr == ip("10.10.10.10")


def test_client_identifier_takes_precedence_over_chaddr(server):
    first = Client(server, mac=1, client_id=b"\x00host-a").dora()
    # same client-id, another MAC (a moved NIC): same lease
    assert Client(server, mac=2, client_id=b"\x00host-a").dora() == first
    # same MAC, no client-id: a different client
    assert Client(server, mac=1).dora() != first


def test_selecting_another_server_withdraws_our_offer(server):
    offer = only(Client(server, 1).discover())[1]
    assert Client(server, 1).select(offer.yiaddr, server_id=ip("10.10.10.2")) == []
    assert server.table.by_address.get(offer.yiaddr) is None
    assert Client(server, 1).select(offer.yiaddr) != []  # NAK now: no offer any more
    assert only(Client(server, 1).select(offer.yiaddr))[1].message_type == MessageType.NAK


def test_selecting_an_address_not_offered_is_nakked_by_broadcast(server):
    client = Client(server)
    client.discover()
    reply, nak = only(client.select(ip("10.10.10.99")))
    assert nak.message_type == MessageType.NAK and nak.yiaddr == 0
    assert (reply.address, reply.port, reply.mac) == (BROADCAST, 68, b"\xff" * 6)
    assert Option.LEASE_TIME not in nak.options
    assert server.statistics.nak == 1


def test_init_reboot_rules(server):
    client = Client(server)
    address = client.dora()
    assert only(client.init_reboot(address, now=10))[1].message_type == MessageType.ACK
    assert only(client.init_reboot(ip("10.10.10.50")))[1].message_type == MessageType.NAK
    assert only(client.init_reboot(ip("192.168.1.5")))[1].message_type == MessageType.NAK
    stranger = Client(server, mac=9)
    assert stranger.init_reboot(ip("10.10.10.60")) == []  # no record: silent


def test_renewing_extends_the_lease_and_replies_to_ciaddr(server):
    client = Client(server)
    address = client.dora(now=0)
    reply, ack = only(client.renew(address, now=43200))
    assert ack.message_type == MessageType.ACK and ack.ciaddr == address
    assert (reply.address, reply.port) == (address, 68)
    lease = server.table.by_address[address]
    assert (lease.start, lease.expiry) == (43200, 43200 + 86400)
    assert server.table.take_pending()[address].expiry == 43200 + 86400


def test_renewal_of_an_address_held_by_another_client_is_nakked(server):
    address = Client(server, 1).dora()
    assert only(Client(server, 2).renew(address, now=5))[1].message_type == MessageType.NAK


def test_renewal_of_a_free_address_without_a_record_is_granted(server):
    """After a lost journal the server re-creates the binding the client holds."""
    reply, ack = only(Client(server, 3).renew(ip("10.10.10.123"), now=5))
    assert ack.message_type == MessageType.ACK
    assert server.table.by_address[ip("10.10.10.123")].state is LeaseState.BOUND


def test_while_restricted_a_renewal_without_a_record_is_granted_from_the_own_share_only():
    """A hot-backup pool while the pair is apart: an address with no record here may be
    one the peer granted meanwhile if it is in the peer's share, so the server stays
    silent (the client keeps its lease and asks again, or rebinds); in its own share it
    re-creates the binding as usual, and once the pair agrees, in either share."""
    pair = DhcpServer(load_config_file(EXAMPLES / "pair" / "deviceA.xml"))
    pool = pair.pools["pool1"].addresses
    candidates = [a for start, end in pool.ranges for a in range(start + 10, end + 1)]
    own = next(a for a in candidates if pool.side_of(a) is pool.own)
    peers = next(a for a in candidates if pool.side_of(a) is not pool.own)
    pair.restrict_allocation("pool1", True)
    for rebinding in (False, True):
        assert Client(pair, 4).renew(peers, now=5, unicast=not rebinding) == []
    assert peers not in pair.table.by_address
    assert only(Client(pair, 5).renew(own, now=5))[1].message_type == MessageType.ACK
    pair.restrict_allocation("pool1", False)
    assert only(Client(pair, 4).renew(peers, now=6))[1].message_type == MessageType.ACK


def test_rebinding_for_another_network_is_ignored(server):
    assert Client(server).renew(ip("172.16.0.9"), now=5, unicast=False) == []


def test_release_keeps_the_address_for_the_client(server):
    client = Client(server, 1)
    address = client.dora()
    release = client.message(MessageType.RELEASE, broadcast=False, ciaddr=address,
                             server_id=IPv4Address("10.10.10.1").packed)
    assert client.send(release, now=100, unicast=True) == []
    assert server.table.by_address[address].state is LeaseState.RELEASED
    assert isinstance(server.events[-1], LeaseReleased)
    assert server.statistics.release == 1
    # somebody else gets a new address, the old client gets its own back
    assert Client(server, 2).dora(now=101) != address
    assert client.dora(now=102) == address


def test_decline_puts_the_address_in_conflict_until_probation_ends(server):
    client = Client(server, 1)
    address = client.dora()
    decline = client.message(MessageType.DECLINE, requested_address=struct.pack("!I", address),
                             server_id=IPv4Address("10.10.10.1").packed)
    assert client.send(decline, now=1) == []
    assert server.statistics.decline == 1
    assert isinstance(server.events[-1], LeaseDeclined)
    assert server.table.by_address[address].state is LeaseState.DECLINED
    assert client.dora(now=2) != address  # the client gets another address
    server.handle_timer(1 + DECLINE_PROBATION)
    assert address not in server.table.by_address
    assert server.pools["pool1"].addresses.is_free(address)


def test_inform_gets_options_but_no_lease(server):
    client = Client(server)
    reply, ack = only(client.send(client.message(MessageType.INFORM, broadcast=False,
                                                 ciaddr=ip("10.10.10.200")), unicast=True))
    assert ack.message_type == MessageType.ACK and ack.yiaddr == 0
    assert Option.LEASE_TIME not in ack.options and Option.DNS_SERVERS in ack.options
    assert (reply.address, reply.port, reply.durable) == (ip("10.10.10.200"), 68, False)
    assert server.statistics.inform == 1


def test_lease_expiry_frees_the_address(server):
    client = Client(server)
    address = client.dora(now=0)
    server.table.take_pending()
    assert server.next_deadline() == 86400
    server.handle_timer(86399.9)
    assert server.table.by_address[address].state is LeaseState.BOUND
    server.handle_timer(86400)
    assert server.table.by_address[address].state is LeaseState.EXPIRED
    assert isinstance(server.events[-1], LeaseExpired)
    assert server.table.take_pending()[address].state is LeaseState.EXPIRED
    assert server.pools["pool1"].addresses.is_free(address)
    assert server.next_deadline() is None


def test_an_offer_not_taken_is_withdrawn(server):
    offer = only(Client(server).discover(now=0))[1]
    assert server.next_deadline() == OFFER_HOLD_TIME
    server.handle_timer(OFFER_HOLD_TIME)
    assert offer.yiaddr not in server.table.by_address
    assert server.pools["pool1"].addresses.is_free(offer.yiaddr)


def test_static_bind_goes_to_its_mac_only():
    config = single_config("<static-binds><static-bind><ip-address>10.10.10.10</ip-address>"
                           "<mac-address>02:00:00:00:00:07</mac-address></static-bind>"
                           "</static-binds>")
    server = DhcpServer(config)
    assert Client(server, mac=1).dora() == ip("10.10.10.11")
    assert Client(server, mac=7).dora() == ip("10.10.10.10")
    assert server.table.by_address[ip("10.10.10.10")].static


def test_unlimited_lease():
    server = DhcpServer(load_config(SINGLE.read_text().replace(
        "<day>1</day>\n          <hour>0</hour>\n          <minute>0</minute>", "<unlimited/>")))
    client = Client(server)
    [(_, offer)] = client.discover()
    assert offer.options[Option.LEASE_TIME] == b"\xff\xff\xff\xff"
    assert Option.RENEWAL_TIME not in offer.options
    client.select(offer.yiaddr)
    assert server.next_deadline() is None


# --- relayed clients, Option 82 ---

OPTION82 = b"\x01\x0ceth0/1/2:100" + b"\x02\x07relay-a"


def test_relayed_client_is_served_from_the_giaddr_pool_with_option82_echoed():
    server = DhcpServer(single_config(extra_xml=RELAY_POOL))
    client = Client(server, giaddr=RELAY, option82=OPTION82)
    reply, offer = only(client.discover())
    assert ip("10.20.0.2") <= offer.yiaddr <= ip("10.20.0.254")
    assert (reply.address, reply.port, reply.mac, reply.interface) == (RELAY, 67, None, None)
    assert offer.giaddr == RELAY
    assert offer.options[Option.RELAY_AGENT_INFORMATION] == OPTION82
    assert list(offer.options)[-1] == Option.RELAY_AGENT_INFORMATION
    assert offer.options[Option.LEASE_TIME] == struct.pack("!I", 3600)
    reply, ack = only(client.select(offer.yiaddr))
    assert ack.options[Option.RELAY_AGENT_INFORMATION] == OPTION82
    lease = server.table.by_address[ack.yiaddr]
    assert (lease.option82, lease.circuit_id, lease.remote_id) == (
        OPTION82, b"eth0/1/2:100", b"relay-a")
    # a unicast renewal straight from the client (no relay, no Option 82) keeps it
    direct = Client(server)
    direct.mac = client.mac
    reply, renewed = only(server_receive(server, direct.message(
        MessageType.REQUEST, broadcast=False, ciaddr=ack.yiaddr), interface="uplink0"))
    assert renewed.message_type == MessageType.ACK
    assert server.table.by_address[ack.yiaddr].option82 == OPTION82
    assert (reply.address, reply.port, reply.mac) == (ack.yiaddr, 68, None)


def server_receive(server, message, interface=LAN, unicast=True, now=1.0):
    replies = server.receive(Received(encode(message), interface, unicast), now)
    return [(reply, decode(reply.data)) for reply in replies]


def test_nak_through_a_relay_sets_the_broadcast_flag():
    server = DhcpServer(single_config(extra_xml=RELAY_POOL))
    client = Client(server, giaddr=RELAY)
    client.discover()
    reply, nak = only(client.select(ip("10.20.0.200")))
    assert nak.message_type == MessageType.NAK and nak.flags & BROADCAST_FLAG
    assert (reply.address, reply.port) == (RELAY, 67)


def test_relay_for_an_unknown_network_gets_nothing(server):
    assert Client(server, giaddr=ip("192.168.7.1")).discover() == []


# --- what is ignored ---


def test_direct_clients_on_an_interface_without_dhcp_server_are_ignored(server):
    message = Client(server).message(MessageType.DISCOVER)
    assert server_receive(server, message, interface="eth9", unicast=False) == []
    assert server.statistics.discover == 1 and server.statistics.offer == 0


def test_dhcp_disabled_answers_nothing():
    config = load_config(SINGLE.read_text().replace(
        "<dhcp xmlns=\"urn:nefeature:yang:nefeature-dhcp-server\">\n      <select>global</select>\n"
        "    </dhcp>", "").replace("<enable>true</enable>", "<enable>false</enable>"))
    server = DhcpServer(config)
    assert Client(server).discover() == []


@pytest.mark.parametrize("data", [
    b"",
    b"\x00" * 300,
    encode(DhcpMessage(options={Option.MESSAGE_TYPE: bytes([MessageType.OFFER])})),
    encode(DhcpMessage(op=2, options={Option.MESSAGE_TYPE: bytes([MessageType.DISCOVER])})),
    encode(DhcpMessage(options={})),  # BOOTP, no message type
    encode(DhcpMessage())[:240] + b"\x35\x05\x01",
])
def test_bad_messages_are_counted_and_change_nothing(server, data):
    assert server.receive(Received(data, LAN), 0.0) == []
    assert server.statistics.bad_messages == 1
    assert len(server.table) == 0 and server.table.take_pending() == {} and server.events == []


def test_reset_statistics(server):
    Client(server).dora()
    server.statistics.reset()
    assert server.statistics.client_request == 0 and server.statistics.ack == 0


def test_reply_fits_the_clients_maximum_message_size():
    options = "".join(f"<user-option><option-code>{code}</option-code><hex>{'ab' * 120}</hex>"
                      "</user-option>" for code in range(200, 203))
    server = DhcpServer(single_config(f"<user-options>{options}</user-options>"))
    [(reply, offer)] = Client(server).discover(max_message_size=struct.pack("!H", 576))
    assert len(reply.data) <= 576 - 28
    assert offer.options[201] == b"\xab" * 120


# --- the journal ---


def test_journal_round_trip_and_restart_keeps_addresses(tmp_path):
    config = single_config(extra_xml=RELAY_POOL)
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    server = DhcpServer(config, journal.load())
    relayed = Client(server, mac=5, giaddr=RELAY, option82=OPTION82)
    first = Client(server, mac=1).dora(now=0)
    second = relayed.dora(now=0)
    journal.commit(server.table.take_pending())
    journal.close()

    journal = LeaseJournal(tmp_path / "leases.sqlite")
    assert journal.integrity_check() == "ok"
    restarted = DhcpServer(config, journal.load())
    assert restarted.table.by_address[second].option82 == OPTION82
    assert Client(restarted, mac=1).dora(now=10) == first
    assert Client(restarted, mac=5, giaddr=RELAY).dora(now=10) == second
    assert Client(restarted, mac=2).dora(now=10) not in (first, second)
    journal.close()


def test_pool_threshold_event_once_per_crossing():
    from nefeature.dhcp.events import PoolThresholdExceeded

    server = DhcpServer(single_config("<warning-threshold>2</warning-threshold>"))  # of 245
    for n in range(1, 8):
        Client(server, mac=n).dora()
    crossings = [e for e in server.events if isinstance(e, PoolThresholdExceeded)]
    assert [(e.pool, e.total, e.threshold_addresses, e.allocated) for e in crossings] == [
        ("pool1", 245, 5, 5)]


def test_journal_wal_is_started_over_under_steady_commits(tmp_path):
    """Issue 9: under steady load a write lands while every checkpoint runs (or a reader
    holds an older snapshot); SQLite then never started the WAL over, and the WAL (with its
    index, mapped into the process) grew for as long as the load lasted."""
    import sqlite3

    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal._db.execute("PRAGMA wal_autocheckpoint=0")  # as the device's journal: see below
    server = DhcpServer(single_config())
    clients = [Client(server, mac=n) for n in range(1, 41)]
    renewals = iter(range(10**6))

    def commit_one() -> None:  # one client renews: one lease change, one commit, folded
        n = next(renewals)
        clients[n % 40].dora(now=n)
        journal.commit(server.table.take_pending())
        journal.fold()

    class CommitWhileCheckpointing:
        """The checkpointer's connection, with a commit landing during each passive checkpoint.

        A reader holding the snapshot from before that commit makes the checkpoint
        stop short of it, as a checkpoint does that started before it (a TRUNCATE
        checkpoint holds writers up: nothing lands during it).
        """

        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def execute(self, sql: str) -> sqlite3.Cursor:
            if "PASSIVE" not in sql:
                return self.connection.execute(sql)
            started = sqlite3.connect(journal.path, isolation_level=None)
            started.execute("BEGIN")
            started.execute("SELECT count(*) FROM leases").fetchone()
            commit_one()
            cursor = self.connection.execute(sql)
            started.close()
            return cursor

        def close(self) -> None:
            self.connection.close()

    checkpointer = CommitWhileCheckpointing(sqlite3.connect(journal.path, isolation_level=None))
    for _ in range(500):
        for _ in range(3):
            commit_one()
        checkpoint_wal(checkpointer, restart_frames=64)
    checkpointer.close()
    wal = tmp_path / "leases.sqlite-wal"
    frames = max(0, wal.stat().st_size - 32) // (4096 + 24)  # header, then (header + page)s
    assert frames < 200  # a frame per commit: 2,000 if the WAL is never started over
    assert journal.integrity_check() == "ok"
    assert len(journal.load()) == 40
    journal.close()


def test_a_client_that_keeps_coming_back_leaves_one_address_in_the_recycle_queue(server):
    """Each expiry frees the address and each return takes it back (the client's own,
    not a new allocation): the queue of free addresses holds it once, however many
    times (it grew by one entry a cycle, never read while never-used addresses last)."""
    client, addresses = Client(server), server.pools["pool1"].addresses
    first = client.dora(now=0)
    for cycle in range(1, 201):
        server.handle_timer(server.next_deadline())
        assert addresses.is_free(first)
        now = server.next_deadline() or cycle * 100000.0
        assert client.dora(now=now) == first
    assert sum(map(len, addresses._recycled.values())) <= 1
