"""VRRPv3 advertisement codec: scapy and keepalived agree; section 7.1 checks in order."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRPv3

from nefeature.vrrp.packet import (
    VRRP_GROUP,
    Advertisement,
    VrrpPacketError,
    decode,
    encode,
    ipv4_datagram,
    parse_ipv4,
)


def ip(text: str) -> int:
    return int(IPv4Address(text))


def test_keepalived_checksum_from_tooling_notes():
    # keepalived 2.2.7: vrid 51, priority 200, 100 cs, VIP 198.51.100.254 from .2: 0xd06f
    body = encode(Advertisement(51, 200, 100, (ip("198.51.100.254"),)), ip("198.51.100.2"))
    assert struct.unpack_from("!H", body, 6)[0] == 0xD06F


def test_scapy_parses_our_datagram_and_agrees_on_the_checksum():
    advertisement = Advertisement(7, 150, 25, (ip("10.10.10.100"), ip("10.10.10.101")))
    datagram = ipv4_datagram(advertisement, ip("10.10.10.1"))
    packet = IP(datagram)
    vrrp = packet[VRRPv3]
    assert (packet.ttl, packet.proto, packet.dst) == (255, 112, "224.0.0.18")
    assert (vrrp.version, vrrp.type, vrrp.vrid, vrrp.priority, vrrp.adv, vrrp.ipcount) == (
        3, 1, 7, 150, 25, 2)
    assert vrrp.addrlist == ["10.10.10.100", "10.10.10.101"]
    original = vrrp.chksum
    del vrrp.chksum
    assert IP(bytes(packet))[VRRPv3].chksum == original


def test_we_parse_what_scapy_builds():
    packet = IP(src="10.10.10.2", dst="224.0.0.18", ttl=255) / VRRPv3(
        vrid=1, priority=100, adv=100, ipcount=1, addrlist=["10.10.10.100"])
    received = parse_ipv4(bytes(packet))
    assert received.source == ip("10.10.10.2") and received.ttl == 255
    assert received.advertisement == Advertisement(1, 100, 100, (ip("10.10.10.100"),))


def datagram(**changes) -> bytearray:
    data = bytearray(ipv4_datagram(Advertisement(1, 100, 100, (ip("10.10.10.100"),)),
                                   ip("10.10.10.2")))
    for offset, value in changes.get("bytes", {}).items():
        data[offset] = value
    return data


@pytest.mark.parametrize("mutate, counter", [
    (lambda d: d.__setitem__(8, 64), "ip-ttl-errors"),
    (lambda d: d.__setitem__(20, 0x21), "version-errors"),
    (lambda d: d.__setitem__(23, 99), "checksum-errors"),
    (lambda d: d.__setitem__(9, 17), "invalid-type-pkts-rcvd"),
])
def test_checks_run_in_rfc_order_and_name_their_counter(mutate, counter):
    data = datagram()
    mutate(data)
    with pytest.raises(VrrpPacketError) as caught:
        parse_ipv4(bytes(data))
    assert caught.value.counter == counter


def test_address_count_must_match_the_length():
    body = bytearray(encode(Advertisement(1, 100, 100, (ip("10.0.0.1"),)), ip("10.0.0.2")))
    body[3] = 2
    fixed = encode(Advertisement(1, 100, 100, (ip("10.0.0.1"),)), ip("10.0.0.2"))
    assert decode(fixed, ip("10.0.0.2")).addresses == (ip("10.0.0.1"),)
    with pytest.raises(VrrpPacketError) as caught:
        decode(bytes(body), ip("10.0.0.2"))
    assert caught.value.counter in ("checksum-errors", "packet-length-errors")


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=80))
def test_random_datagrams_are_refused_with_a_counter(data):
    try:
        parse_ipv4(data)
    except VrrpPacketError as error:
        assert error.counter.endswith(("errors", "rcvd"))


@settings(max_examples=300, deadline=None)
@given(vrid=st.integers(1, 255), priority=st.integers(0, 255), interval=st.integers(1, 4095),
       addresses=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=16),
       source=st.integers(1, 2**32 - 1))
def test_round_trip(vrid, priority, interval, addresses, source):
    advertisement = Advertisement(vrid, priority, interval, tuple(addresses))
    assert decode(encode(advertisement, source), source, VRRP_GROUP) == advertisement
