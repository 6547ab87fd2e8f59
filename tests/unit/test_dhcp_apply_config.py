"""A commit changes only what it changes (DhcpServer.apply_config), driven with a fake clock.

The theory under test: a pool's allocator depends only on its address plan
(network, sections, excluded ranges, static binds, never-leased addresses in
its range).  A commit that leaves the plan alone keeps the allocator object
with all its state; one that changes it rebuilds that pool's allocator alone,
from that pool's own leases.  No commit adds, changes or removes a lease.
"""

from __future__ import annotations

import random
import struct
from ipaddress import IPv4Address

from nefeature.datastore.validation import load_config
from nefeature.dhcp.codec import MessageType, Option
from nefeature.dhcp.events import PoolThresholdExceeded
from nefeature.dhcp.leases import Lease, LeaseState, LeaseTable
from nefeature.dhcp.server import DhcpServer
from tests.unit.test_dhcp_server import RELAY, SINGLE, Client, ip

POOL1 = """<ip-pool><ip-pool-name>pool1</ip-pool-name>
  <network><ip-address>10.10.10.0</ip-address><mask>255.255.255.0</mask></network>
  <gateway-list>{gateways}</gateway-list>
  <sections><section><section-index>0</section-index><start-ip>{start}</start-ip>
    <end-ip>{end}</end-ip></section></sections>
  <lease-time><day>{days}</day></lease-time>
  <dns-list>{dns}</dns-list>{extra}
</ip-pool>"""
RELAYED = """<ip-pool><ip-pool-name>relayed</ip-pool-name>
  <network><ip-address>10.20.0.0</ip-address><mask>255.255.255.0</mask></network>
  <gateway-list>10.20.0.1</gateway-list>
</ip-pool>"""
VLANIF200 = ("<interface><name>Vlanif200</name><ipv4><address>10.30.0.1</address>"
             "<mask>255.255.255.0</mask></ipv4></interface>")


def config(start="10.10.10.10", end="10.10.10.14", gateways="10.10.10.1", days=1,
           dns="10.10.10.53", extra="", pool1=True, interfaces=""):
    """The single-server example with pool1 (one section) and a relayed pool."""
    pools = (POOL1.format(start=start, end=end, gateways=gateways, days=days, dns=dns,
                          extra=extra) if pool1 else "") + RELAYED
    text = SINGLE.read_text()
    text = text[:text.index("<ip-pools>")] + f"<ip-pools>{pools}</ip-pools></server></dhcp>"
    return load_config(text.replace("</interfaces>", interfaces + "</interfaces>"))


def offer(client: Client, now: float = 0.0):
    """The OFFER the client gets, or None."""
    replies = client.discover(now)
    assert len(replies) <= 1
    return replies[0][1] if replies else None


def newcomers_get(server: DhcpServer, first_mac: int, giaddr: int = 0) -> list[int]:
    """Addresses new clients are offered until the pool runs out, in order."""
    got = []
    for mac in range(first_mac, first_mac + 300):
        reply = offer(Client(server, mac=mac, giaddr=giaddr))
        if reply is None:
            return got
        got.append(reply.yiaddr)
    raise AssertionError("the pool never ran out")


def busy_server():
    """pool1 .10-.14 with .10, .12 bound, .11 released; two relayed clients bound."""
    server = DhcpServer(config())
    pool1 = [Client(server, mac=n) for n in (1, 2, 3)]
    assert [c.dora() for c in pool1] == [ip("10.10.10.10"), ip("10.10.10.11"), ip("10.10.10.12")]
    pool1[1].send(pool1[1].message(MessageType.RELEASE, ciaddr=ip("10.10.10.11"),
                                   server_id=IPv4Address("10.10.10.1").packed), now=1)
    for n in (101, 102):
        Client(server, mac=n, giaddr=RELAY).dora()
    server.table.take_pending()
    return server, pool1


def test_an_options_only_change_keeps_every_lease_and_both_allocators_and_is_offered():
    server, _ = busy_server()
    leases = dict(server.table.by_address)
    allocators = {name: state.addresses for name, state in server.pools.items()}
    server.apply_config(config(extra="<domain-name>new.example</domain-name>"))
    assert server.table.by_address == leases
    assert all(server.table.by_address[a] is lease for a, lease in leases.items())
    assert server.table.take_pending() == {}  # nothing for the journal
    assert {name: state.addresses for name, state in server.pools.items()} == allocators
    assert all(server.pools[name].addresses is allocators[name] for name in allocators)
    reply = offer(Client(server, mac=4), now=2)
    assert reply.options[Option.DOMAIN_NAME] == b"new.example"
    assert reply.yiaddr == ip("10.10.10.13")


def test_after_an_options_only_change_the_released_address_still_goes_last():
    """The allocator's queue survives: client 2 can still get .11 back (RFC 2131 4.3.1)."""
    server, _ = busy_server()
    server.apply_config(config(dns="10.10.10.54", days=2))
    assert newcomers_get(server, 10) == [ip("10.10.10.13"), ip("10.10.10.14"),
                                         ip("10.10.10.11")]


def test_dns_and_lease_time_changes_reach_the_next_offer():
    server, _ = busy_server()
    server.apply_config(config(dns="10.10.10.54", days=2))
    reply = offer(Client(server, mac=4), now=2)
    assert reply.options[Option.DNS_SERVERS] == IPv4Address("10.10.10.54").packed
    assert reply.options[Option.LEASE_TIME] == struct.pack("!I", 2 * 86400)


def test_a_range_change_rebuilds_that_pool_only_from_its_own_holding_leases():
    server, pool1 = busy_server()
    offered = Client(server, mac=4)
    assert offer(offered).yiaddr == ip("10.10.10.13")  # held by an offer
    declining = Client(server, mac=5)
    address = declining.dora()
    assert address == ip("10.10.10.14")
    declining.send(declining.message(MessageType.DECLINE, requested_address=struct.pack(
        "!I", address), server_id=IPv4Address("10.10.10.1").packed), now=1)
    server.table.take_pending()
    leases = dict(server.table.by_address)
    relayed = server.pools["relayed"].addresses
    server.apply_config(config(start="10.10.10.12", end="10.10.10.17"))
    assert server.table.by_address == leases  # no lease dropped, even outside the range
    assert server.table.take_pending() == {}
    assert server.pools["relayed"].addresses is relayed
    # .12 bound, .13 offered, .14 declined stay taken; .10 (bound) and .11 (released) are
    # outside the new range; only the new addresses are handed out.
    assert newcomers_get(server, 10) == [ip("10.10.10.15"), ip("10.10.10.16"),
                                         ip("10.10.10.17")]
    [(_, ack)] = pool1[0].renew(ip("10.10.10.10"), now=10)  # outside the range, still its own
    assert ack.message_type == MessageType.ACK
    assert newcomers_get(server, 200, giaddr=RELAY)[:1] == [ip("10.20.0.4")]  # as before


def test_a_range_change_frees_what_its_leases_no_longer_hold():
    server, _ = busy_server()
    server.apply_config(config(start="10.10.10.11", end="10.10.10.13"))
    # .11 was released, so it is free in the rebuilt allocator; .12 is still bound.
    assert newcomers_get(server, 10) == [ip("10.10.10.11"), ip("10.10.10.13")]


def test_a_removed_pool_that_comes_back_does_not_hand_out_its_leased_addresses():
    server, pool1 = busy_server()
    leases = dict(server.table.by_address)
    server.apply_config(config(pool1=False))
    assert offer(Client(server, mac=10)) is None
    assert server.table.by_address == leases
    server.apply_config(config())
    assert newcomers_get(server, 11) == [ip("10.10.10.11"), ip("10.10.10.13"),
                                         ip("10.10.10.14")]
    [(_, ack)] = pool1[2].renew(ip("10.10.10.12"), now=10)
    assert ack.message_type == MessageType.ACK


def test_a_new_router_in_the_range_rebuilds_that_pool_and_is_never_offered():
    server, _ = busy_server()
    relayed = server.pools["relayed"].addresses
    server.apply_config(config(gateways="10.10.10.1</gateway-list><gateway-list>10.10.10.13"))
    assert server.pools["relayed"].addresses is relayed
    assert newcomers_get(server, 10) == [ip("10.10.10.11"), ip("10.10.10.14")]


def test_an_address_outside_every_range_keeps_every_allocator():
    server, _ = busy_server()
    allocators = {name: state.addresses for name, state in server.pools.items()}
    server.apply_config(config(interfaces=VLANIF200))
    assert all(server.pools[name].addresses is allocators[name] for name in allocators)


def test_a_raised_threshold_alarm_stays_raised_across_an_options_only_change():
    server = DhcpServer(config(extra="<warning-threshold>40</warning-threshold>"))  # 2 of 5
    for n in (1, 2):
        Client(server, mac=n).dora()
    server.apply_config(config(extra="<warning-threshold>40</warning-threshold>"
                                     "<domain-name>new.example</domain-name>"))
    Client(server, mac=3).dora()
    assert len([e for e in server.events if isinstance(e, PoolThresholdExceeded)]) == 1
    server.apply_config(config(extra="<warning-threshold>60</warning-threshold>"))  # 3 of 5
    Client(server, mac=4).dora()
    assert [e.threshold_addresses for e in server.events
            if isinstance(e, PoolThresholdExceeded)] == [2, 3]


def test_the_per_pool_index_matches_the_table_after_any_changes():
    table = LeaseTable()
    rng = random.Random(7)
    for step in range(3000):
        address = rng.randrange(20)
        if rng.random() < 0.3:
            table.remove(address)
        else:
            client = bytes([rng.randrange(6)])
            table.put(Lease(address, rng.choice("abc"), client, client,
                            rng.choice(list(LeaseState)), step, step + 10.0))
        expected: dict[str, set[int]] = {}
        for lease in table.by_address.values():
            expected.setdefault(lease.pool, set()).add(lease.address)
        assert dict(table.by_pool) == expected, step
