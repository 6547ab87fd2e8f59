"""The DHCP starvation defence, driven with a fake clock (RFC 2131 section 7, RFC 3046).

A flood of forged clients must not empty a pool faster than the configured
limits allow, must be counted, and must leave real and renewing clients served.
"""

from __future__ import annotations

import pytest

from nefeature.datastore.validation import load_config
from nefeature.datastore.errors import NetconfError
from nefeature.dhcp.codec import MessageType, Option
from nefeature.dhcp.ratelimit import KeyedRateLimiter
from nefeature.dhcp.server import OFFER_HOLD_TIME, DhcpServer
from tests.unit.test_dhcp_server import OPTION82, RELAY, RELAY_POOL, SINGLE, Client, ip

ATTACKER_CIRCUIT = b"\x01\x0beth0/1/9:66"


def config(client_rate=0, circuit_rate=0, max_offers=0):
    limits = (f"<flood-protection><client-rate>{client_rate}</client-rate>"
              f"<circuit-rate>{circuit_rate}</circuit-rate><max-offers-in-flight>{max_offers}"
              "</max-offers-in-flight></flood-protection>")
    text = SINGLE.read_text().replace("<ip-pools>", limits + "<ip-pools>", 1)
    return load_config(text.replace("</ip-pools>", RELAY_POOL + "</ip-pools>"))


def flood_with_full_doras(server, seconds: float, per_second: int) -> int:
    """Forged clients behind one relay port complete DORAs; returns addresses they got."""
    taken = 0
    for n in range(int(seconds * per_second)):
        attacker = Client(server, mac=1000 + n, giaddr=RELAY, option82=ATTACKER_CIRCUIT)
        now = n / per_second
        replies = attacker.discover(now)
        if replies:
            offer = replies[0][1]
            server_id = int.from_bytes(offer.options[Option.SERVER_ID], "big")
            [(_, ack)] = attacker.select(offer.yiaddr, server_id=server_id, now=now)
            taken += ack.message_type == MessageType.ACK
    return taken


def test_without_limits_a_forged_flood_empties_the_relayed_pool():
    server = DhcpServer(config())
    assert flood_with_full_doras(server, seconds=2, per_second=500) == 253
    assert Client(server, mac=1, giaddr=RELAY, option82=OPTION82).discover(now=2.0) == []


def test_circuit_rate_bounds_what_a_flood_takes_and_a_real_client_still_gets_an_address():
    server = DhcpServer(config(circuit_rate=5))
    taken = flood_with_full_doras(server, seconds=10, per_second=500)
    # one second of burst plus 5 per second: emptying 253 addresses would take ~50 s
    assert 50 <= taken <= 56
    assert server.statistics.flood_dropped == 5000 - taken
    real = Client(server, mac=1, giaddr=RELAY, option82=OPTION82)
    [(_, offer)] = real.discover(now=10.0)
    assert ip("10.20.0.2") <= offer.yiaddr <= ip("10.20.0.254")


def test_offers_in_flight_cap_stops_a_discover_flood_but_not_renewals():
    server = DhcpServer(config(max_offers=20))
    customer = Client(server, mac=1)
    address = customer.dora(now=0.0)
    offered = sum(bool(Client(server, mac=1000 + n).discover(now=1.0)) for n in range(1000))
    assert offered == 20
    assert server.table.offers_in_flight["pool1"] == 20
    assert server.statistics.flood_dropped == 980
    [(_, renewed)] = customer.renew(address, now=2.0)
    assert renewed.message_type == MessageType.ACK
    [(_, again)] = customer.discover(now=2.0)  # a client the pool knows is still offered
    assert again.yiaddr == address
    server.handle_timer(1.0 + OFFER_HOLD_TIME)  # unanswered offers are withdrawn
    assert server.table.offers_in_flight["pool1"] == 0
    assert Client(server, mac=5000).discover(now=1.0 + OFFER_HOLD_TIME)


def test_client_rate_limits_one_chatty_client():
    server = DhcpServer(config(client_rate=10))
    chatty = Client(server, mac=9)
    answered = sum(bool(chatty.discover(now=n / 100)) for n in range(100))  # 100 in one second
    assert 18 <= answered <= 21  # 10 of burst + 10 refilled over the second
    assert server.statistics.flood_dropped == 100 - answered
    assert Client(server, mac=10).discover(now=1.0)  # other clients are not affected


def test_a_commit_that_keeps_the_rates_keeps_the_buckets():
    server = DhcpServer(config(client_rate=1))
    chatty = Client(server, mac=9)
    assert chatty.discover(now=0.0) and not chatty.discover(now=0.1)
    server.apply_config(config(client_rate=1, max_offers=100))
    assert not chatty.discover(now=0.2)
    server.apply_config(config(client_rate=0))
    assert chatty.discover(now=0.3)


def test_the_limiter_forgets_the_oldest_keys_when_full():
    limiter = KeyedRateLimiter(rate=1, max_keys=100)
    for n in range(1000):
        assert limiter.allow(n.to_bytes(4, "big"), now=0.0)
    assert len(limiter._buckets) == 100
    assert not limiter.allow((999).to_bytes(4, "big"), now=0.0)


def test_the_yang_model_bounds_the_limits():
    with pytest.raises(NetconfError) as caught:
        config(max_offers=2_000_000)
    assert caught.value.tag == "invalid-value"
    with pytest.raises(NetconfError):
        config(client_rate=70_000)
