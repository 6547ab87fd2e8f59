"""The DHCP UDP socket's two ways of reading and of sending, on real loopback sockets:
recvmmsg and sendmmsg through the optional C helper (``nefeature/dhcp/_batchio.c``, built
by ``make test``), and ``socket.recvmsg`` and ``socket.sendmsg``.  Both must hand the
device the same datagrams, interfaces and unicast flags, and put the same replies on the
wire from the same source addresses."""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from nefeature.dhcp.server import Reply
from nefeature.dhcp.transport import IP_PKTINFO, DhcpSockets
from tests.conftest import c_helper


@pytest.fixture(scope="module")
def batchio():
    return c_helper("_batchio", "the transport uses socket.recvmsg and sendmsg")


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


LOOPBACK, OTHER_LOOPBACK = 0x7F000001, 0x7F000002  # 127.0.0.1, 127.0.0.2: both on lo


def _receiver() -> socket.socket:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    return receiver


def _reply(data: bytes, port: int, source: int = OTHER_LOOPBACK,
           address: int = LOOPBACK) -> Reply:
    return Reply(data, address, port, source, None, None, False)


def _drain(receiver: socket.socket, count: int) -> list[tuple[bytes, str]]:
    return [(data, source[0]) for data, source in
            (receiver.recvfrom(4096) for _ in range(count))]


def test_send_batch_sends_each_reply_from_its_source(batchio):
    with _receiver() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        port = receiver.getsockname()[1]
        payloads = [bytes([n]) * (300 + n) for n in range(70)]  # more than one call's 64
        assert batchio.send_batch(sender.fileno(), [_reply(p, port) for p in payloads]) == []
        assert _drain(receiver, 70) == [(p, "127.0.0.2") for p in payloads]


def test_send_batch_sends_from_the_route_when_the_source_is_not_ours(batchio):
    with _receiver() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        reply = _reply(b"offer", receiver.getsockname()[1], source=0xC0000201)  # 192.0.2.1
        assert batchio.send_batch(sender.fileno(), [reply]) == []
        assert _drain(receiver, 1) == [(b"offer", "127.0.0.1")]


def test_send_batch_reports_the_replies_it_could_not_send_and_sends_the_rest(batchio):
    with _receiver() as receiver, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        port = receiver.getsockname()[1]
        replies = [_reply(b"first", port), _reply(b"to port 0", 0), _reply(b"last", port)]
        assert batchio.send_batch(sender.fileno(), replies) == [(1, errno.EINVAL)]
        assert _drain(receiver, 2) == [(b"first", "127.0.0.2"), (b"last", "127.0.0.2")]
        with pytest.raises(TypeError):
            batchio.send_batch(sender.fileno(), [("not", "a", "reply")])


@pytest.mark.parametrize("helper", [True, False], ids=["sendmmsg", "sendmsg"])
def test_both_ways_of_sending_put_the_same_replies_on_the_wire(batchio, helper, caplog):
    loop = asyncio.new_event_loop()
    sockets = DhcpSockets(loop, lambda batch: None, [], "127.0.0.1", port=0)
    try:
        if not helper:
            sockets.send_many = None
        with _receiver() as receiver:
            port = receiver.getsockname()[1]
            sockets.send([_reply(b"from the identifier", port),
                          _reply(b"not sent", 0),
                          _reply(b"from the route", port, source=0xC0000201)])
            assert _drain(receiver, 2) == [(b"from the identifier", "127.0.0.2"),
                                           (b"from the route", "127.0.0.1")]
        assert "could not send a reply to 127.0.0.1" in caplog.text
    finally:
        sockets.close()
        loop.close()


def test_a_helper_built_before_send_batch_reads_with_it_and_sends_with_sendmsg(
        batchio, monkeypatch):
    from types import SimpleNamespace

    from nefeature.dhcp import transport
    monkeypatch.setattr(transport, "_batchio", SimpleNamespace(receive_batch=batchio.receive_batch))
    loop = asyncio.new_event_loop()
    sockets = DhcpSockets(loop, lambda batch: None, [], "127.0.0.1", port=0)
    try:
        assert (sockets.receive_many, sockets.send_many) == (batchio.receive_batch, None)
        with _receiver() as receiver:
            sockets.send([_reply(b"ack", receiver.getsockname()[1])])
            assert _drain(receiver, 1) == [(b"ack", "127.0.0.2")]
    finally:
        sockets.close()
        loop.close()
