"""The DHCP UDP socket's two ways of reading, on real loopback sockets: recvmmsg through
the optional C helper (``nefeature/dhcp/_batchio.c``, built by ``make test``) and
``socket.recvmsg``.  Both must hand the device the same datagrams, interfaces and
unicast flags."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sysconfig
from pathlib import Path

import pytest

from nefeature.dhcp.transport import IP_PKTINFO, DhcpSockets
from nefeature.tools import build_batchio

CAN_BUILD = shutil.which("gcc") is not None and (
    Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


@pytest.fixture(scope="module")
def batchio():
    if not build_batchio.build():
        if CAN_BUILD:
            pytest.fail("gcc and the Python headers are here, yet the C helper did not build")
        pytest.skip("no gcc or no Python headers: the transport reads with socket.recvmsg")
    from nefeature.dhcp import _batchio
    return _batchio


def _send(port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for payload in payloads:
            sender.sendto(payload, ("127.0.0.1", port))


def test_receive_batch_gives_each_datagram_with_its_interface_and_destination(batchio):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        receiver.bind(("127.0.0.1", 0))
        payloads = [bytes([n]) * (300 + n) for n in range(70)]  # more than one call's 64
        _send(receiver.getsockname()[1], payloads)
        first = batchio.receive_batch(receiver.fileno(), 64)
        rest = batchio.receive_batch(receiver.fileno(), 64)
        assert [data for data, _, _ in first + rest] == payloads
        assert len(first) == 64
        assert {(ifindex, destination) for _, ifindex, destination in first + rest} == {
            (socket.if_nametoindex("lo"), socket.inet_aton("127.0.0.1"))}
        assert batchio.receive_batch(receiver.fileno(), 64) == []  # empty: no exception


def test_receive_batch_reports_a_bad_descriptor(batchio):
    with pytest.raises(OSError):
        batchio.receive_batch(-1, 64)


@pytest.mark.parametrize("helper", [True, False], ids=["recvmmsg", "recvmsg"])
def test_both_ways_of_reading_hand_over_the_same_batch(batchio, helper):
    loop = asyncio.new_event_loop()
    batches: list = []
    sockets = DhcpSockets(loop, batches.append, [], "127.0.0.1", port=0)
    try:
        if not helper:
            sockets.receive_many = None
        payloads = [b"\x01\x01\x06\x00" + n.to_bytes(2, "big") * 148 for n in range(300)]
        _send(sockets.udp.getsockname()[1], payloads)
        sockets._read_udp()  # up to BATCH (256) datagrams a call, as the loop would
        sockets._read_udp()
        received = [packet for batch in batches for packet in batch]
        assert [packet.data for packet in received] == payloads
        assert {(packet.interface, packet.unicast) for packet in received} == {("lo", True)}
        assert [len(batch) for batch in batches] == [256, 44]
    finally:
        sockets.close()
        loop.close()
