"""Malformed and mutated DHCP input against the engine (fixed seeds; bench/fuzz_dhcp runs 100,000+).

Every datagram either is a message the engine handles by the RFC, or is
counted as a bad message and changes nothing; nothing raises.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import fuzz
from scapy.layers.dhcp import BOOTP, DHCP

from nefeature.datastore.validation import load_config_file
from nefeature.dhcp.codec import MalformedMessage, decode
from nefeature.dhcp.server import DhcpServer, Received
from tests.conftest import EXAMPLES


def fresh_server() -> DhcpServer:
    return DhcpServer(load_config_file(EXAMPLES / "single" / "server.xml"))


def feed(server: DhcpServer, data: bytes) -> None:
    """One datagram; a malformed one must change nothing but the bad-message counter."""
    bad_before = server.statistics.bad_messages
    leases_before = dict(server.table.by_address)
    try:
        decode(data)
        malformed = False
    except MalformedMessage:
        malformed = True
    server.receive(Received(data, "Vlanif100", False), 100.0)
    if malformed:
        assert server.statistics.bad_messages == bad_before + 1
        assert server.table.by_address == leases_before
        assert server.table.take_pending() == {}


def test_scapy_fuzzed_messages():
    server = fresh_server()
    random.seed(5)
    from scapy.config import conf

    conf.dot15d4_protocol = None
    for _ in range(800):
        packet = fuzz(BOOTP(op=1) / DHCP(options=[("message-type", random.randint(1, 9)), "end"]))
        feed(server, bytes(packet))


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 12), cut=st.integers(0, 400))
def test_mutated_valid_messages(seed, flips, cut):
    rng = random.Random(seed)
    base = bytearray(bytes(BOOTP(op=1, chaddr=bytes(rng.randbytes(6))) / DHCP(options=[
        ("message-type", rng.choice([1, 3, 4, 7, 8])), ("requested_addr", "10.10.10.50"),
        ("server_id", "10.10.10.1"), ("client_id", b"\x01" + rng.randbytes(6)),
        ("relay_agent_information", b"\x01\x03abc"), "end"])))
    for _ in range(flips):
        base[rng.randrange(len(base))] = rng.randrange(256)
    feed(fresh_server(), bytes(base[:cut] if cut < len(base) else base))


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.binary(max_size=600))
def test_random_bytes(data):
    feed(fresh_server(), data)
