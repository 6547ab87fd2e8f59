"""The DHCP codec: round trips, RFC 3396 and overload, scapy agrees, junk is typed."""

from __future__ import annotations

import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP

from nefeature.dhcp.codec import (
    HEADER,
    MAGIC_COOKIE,
    MIN_MESSAGE_SIZE,
    DhcpMessage,
    MalformedMessage,
    MessageType,
    Option,
    decode,
    decode_in_python,
    encode,
    relay_agent_suboptions,
)
from tests.conftest import c_helper

MAC = bytes.fromhex("02aabbccddee")


def discover(**options: bytes) -> DhcpMessage:
    opts = {Option.MESSAGE_TYPE: bytes([MessageType.DISCOVER])}
    opts.update({int(k.removeprefix("o")): v for k, v in options.items()})
    return DhcpMessage(xid=0x1234, flags=0x8000, chaddr=MAC.ljust(16, b"\x00"), options=opts)


def test_round_trip_and_minimum_size():
    message = discover(o12=b"host", o55=bytes([1, 3, 6]))
    data = encode(message)
    assert len(data) == MIN_MESSAGE_SIZE
    again = decode(data)
    assert again == message
    assert again.message_type == MessageType.DISCOVER
    assert again.hardware_address == MAC and again.broadcast


def test_long_option_is_split_and_concatenated_rfc3396():
    value = bytes(range(256)) * 2  # 512 bytes
    data = encode(discover(o43=value))
    # three instances of option 43 on the wire: 255 + 255 + 2
    tail = data[240:]
    assert tail[0] == 53
    position, lengths = 3, []
    while tail[position] == 43:
        lengths.append(tail[position + 1])
        position += 2 + tail[position + 1]
    assert lengths == [255, 255, 2]
    assert decode(data).options[43] == value


def test_repeated_options_in_a_received_message_are_concatenated():
    body = (b"\x35\x01\x01" + b"\x0c\x02ab" + b"\x0c\x02cd" + b"\xff")
    header = encode(DhcpMessage(chaddr=MAC))[:240]
    assert decode(header + body).options[12] == b"abcd"


def test_overload_on_decode_reads_file_then_sname():
    base = bytearray(encode(DhcpMessage(chaddr=MAC, options={})))
    options = b"\x35\x01\x03" + b"\x34\x01\x03" + b"\x0c\x01a" + b"\xff"
    file_area = b"\x0c\x01b" + b"\x0f\x03lan\xff"
    sname_area = b"\x0c\x01c\xff"
    base[108:108 + 128] = file_area.ljust(128, b"\x00")
    base[44:44 + 64] = sname_area.ljust(64, b"\x00")
    message = decode(bytes(base[:240]) + options)
    assert message.options[12] == b"abc"
    assert message.options[15] == b"lan"
    assert message.file == b"" and message.sname == b""


def test_overload_on_encode_when_the_client_limit_is_small():
    options = {Option.MESSAGE_TYPE: bytes([MessageType.ACK])}
    options.update({code: bytes([code]) * 60 for code in range(100, 107)})  # 7 x 62 bytes
    message = DhcpMessage(op=2, chaddr=MAC, options=options)
    data = encode(message, max_size=576)
    assert len(data) <= 576 - 28
    assert data[240:243] == b"\x34\x01" + bytes([data[242]]) and data[242] in (1, 3)
    decoded = decode(data)
    for code in range(100, 107):
        assert decoded.options[code] == bytes([code]) * 60


def test_relay_agent_suboptions():
    value = b"\x01\x04eth1" + b"\x02\x03abc"
    assert relay_agent_suboptions(value) == {1: b"eth1", 2: b"abc"}
    assert relay_agent_suboptions(b"\x01\x09short") == {}


# --- scapy agrees both ways ---


def test_scapy_reads_what_we_write():
    message = DhcpMessage(op=2, xid=77, yiaddr=0x0A0A0A0A, giaddr=0x0A140001, chaddr=MAC,
                          options={Option.MESSAGE_TYPE: bytes([MessageType.OFFER]),
                                   Option.SERVER_ID: bytes([10, 10, 10, 1]),
                                   Option.LEASE_TIME: struct.pack("!I", 3600),
                                   Option.RELAY_AGENT_INFORMATION: b"\x01\x02ab"})
    packet = BOOTP(encode(message))
    assert (packet.op, packet.xid, packet.yiaddr, packet.giaddr) == (2, 77, "10.10.10.10",
                                                                     "10.20.0.1")
    options = dict(o for o in packet[DHCP].options if isinstance(o, tuple))
    assert options["message-type"] == 2
    assert options["server_id"] == "10.10.10.1"
    assert options["lease_time"] == 3600
    assert bytes(options["relay_agent_information"]) == b"\x01\x02ab"


def test_we_read_what_scapy_writes():
    packet = BOOTP(op=1, xid=0xDEADBEEF, chaddr=MAC + b"\x00" * 10, flags=0x8000) / DHCP(
        options=[("message-type", "request"), ("requested_addr", "10.10.10.20"),
                 ("server_id", "10.10.10.1"), ("hostname", b"pc1"),
                 ("client_id", b"\x01" + MAC), ("param_req_list", [1, 3, 6]), "end"])
    message = decode(bytes(packet))
    assert message.message_type == MessageType.REQUEST and message.xid == 0xDEADBEEF
    assert message.address_option(Option.REQUESTED_ADDRESS) == 0x0A0A0A14
    assert message.options[Option.HOSTNAME] == b"pc1"
    assert message.options[Option.CLIENT_ID] == b"\x01" + MAC
    assert message.options[Option.PARAMETER_REQUEST_LIST] == bytes([1, 3, 6])


# --- properties ---

option_values = st.dictionaries(
    st.integers(1, 254).filter(lambda c: c != Option.OVERLOAD),
    st.binary(min_size=0, max_size=600), max_size=12)


@settings(max_examples=300, deadline=None)
@given(options=option_values, xid=st.integers(0, 2**32 - 1), ciaddr=st.integers(0, 2**32 - 1),
       flags=st.integers(0, 0xFFFF), chaddr=st.binary(min_size=16, max_size=16))
def test_any_message_round_trips(options, xid, ciaddr, flags, chaddr):
    message = DhcpMessage(xid=xid, ciaddr=ciaddr, flags=flags, chaddr=chaddr, options=options)
    assert decode(encode(message)) == message


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=700))
def test_random_bytes_decode_or_raise_malformed(data):
    try:
        decode(data)
    except MalformedMessage:
        pass


@settings(max_examples=1000, deadline=None)
@given(position=st.integers(0, 299), byte=st.integers(0, 255), cut=st.integers(200, 300))
def test_mutated_messages_decode_or_raise_malformed(position, byte, cut):
    data = bytearray(encode(discover(o12=b"client", o55=bytes([1, 3, 6, 15]))))
    data[position] = byte
    try:
        decode(bytes(data[:cut]))
    except MalformedMessage:
        pass


@pytest.mark.parametrize("data, reason", [
    (b"\x01" * 100, "shorter"),
    (encode(DhcpMessage())[:236] + b"\x00\x00\x00\x00", "cookie"),
    (b"\x03" + encode(DhcpMessage())[1:], "op"),
    (encode(DhcpMessage())[:240] + b"\x0c\x05ab", "past the end"),
    (encode(DhcpMessage())[:240] + b"\x34\x01\x07\xff", "overload"),
])
def test_malformed_messages_say_why(data, reason):
    with pytest.raises(MalformedMessage, match=reason):
        decode(data)


# --- the fast paths give the bytes and messages of the general ones ---

option_streams = st.dictionaries(st.integers(1, 254), st.binary(max_size=300), max_size=8)


@settings(max_examples=400, deadline=None)
@given(htype=st.integers(0, 255), hlen=st.integers(0, 16), xid=st.integers(0, 2**32 - 1),
       flags=st.integers(0, 0xFFFF), addresses=st.tuples(*[st.integers(0, 2**32 - 1)] * 3),
       chaddr=st.binary(max_size=20), options=option_streams,
       max_size=st.sampled_from([0, 300, 576, 600, 1500]))
def test_encode_reply_is_encode_of_the_same_reply(htype, hlen, xid, flags, addresses, chaddr,
                                                 options, max_size):
    from nefeature.dhcp.codec import BOOTREPLY, encode_options, encode_reply

    ciaddr, yiaddr, giaddr = addresses
    encoded = encode_options(options)
    message = DhcpMessage(BOOTREPLY, htype, hlen, 0, xid, 0, flags, ciaddr, yiaddr, 0, giaddr,
                          chaddr, b"", b"", {})
    try:
        expected = encode(message, max_size, encoded)
    except ValueError:
        with pytest.raises(ValueError):
            encode_reply(htype, hlen, xid, flags, ciaddr, yiaddr, giaddr, chaddr, encoded, max_size)
        return
    assert encode_reply(htype, hlen, xid, flags, ciaddr, yiaddr, giaddr, chaddr, encoded,
                        max_size) == expected


def test_decode_checks_option_overload_even_when_sname_and_file_are_empty():
    bad = discover()
    bad.options[Option.OVERLOAD] = b"\x07"
    with pytest.raises(MalformedMessage):
        decode(encode(bad))
    good = discover()
    good.options[Option.OVERLOAD] = b"\x03"  # file and sname hold options, here none
    assert decode(encode(good)).options[Option.OVERLOAD] == b"\x03"


def test_decode_keeps_sname_and_file():
    message = discover()
    message.sname, message.file = b"server", b"boot/pxelinux.0"
    again = decode(encode(message))
    assert (again.sname, again.file) == (b"server", b"boot/pxelinux.0")


# --- the C fast path of decode (nefeature/dhcp/_codec.c) agrees with Python's ---

@pytest.fixture(scope="module")
def decode_common():
    return c_helper("_codec", "every message is decoded in Python").decode_common


def _fields(message: DhcpMessage) -> tuple:
    """Every field, the options in their order (two dicts are equal in any order)."""
    return (message.op, message.htype, message.hlen, message.hops, message.xid, message.secs,
            message.flags, message.ciaddr, message.yiaddr, message.siaddr, message.giaddr,
            message.chaddr, message.sname, message.file, list(message.options.items()))


def _c_agrees(decode_common, data: bytes) -> bool:
    """The fast path gives Python's message or leaves the bytes to it (None), and leaves
    every malformed message to it; True if it took the message."""
    fields = decode_common(data)
    try:
        expected = decode_in_python(data)
    except MalformedMessage:
        assert fields is None
        return False
    if fields is not None:
        assert _fields(DhcpMessage(*fields)) == _fields(expected)
    return fields is not None


def _raw_message(header: bytes, options: list[tuple[int, bytes]], pads: int, end: bool,
                 tail: bytes) -> bytes:
    body = b"".join(bytes((code, len(value))) + value for code, value in options)
    return header + MAGIC_COOKIE + b"\x00" * pads + body + (b"\xff" if end else b"") + tail


raw_options = st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=255)), max_size=10)


@settings(max_examples=1500, deadline=None)
@given(op=st.sampled_from([1, 2, 1, 2, 0, 3]), hlen=st.sampled_from([6, 6, 0, 16, 17]),
       numbers=st.tuples(*[st.integers(0, 2**32 - 1)] * 5), chaddr=st.binary(min_size=16,
                                                                           max_size=16),
       sname_or_file=st.sampled_from([b"", b"", b"", b"server", b"\x00" * 63 + b"x"]),
       options=raw_options, pads=st.integers(0, 3), end=st.sampled_from([True, True, False]),
       tail=st.binary(max_size=8), cut=st.sampled_from([0, 0, 0, 1, 2, 37]))
def test_the_c_decoder_gives_pythons_message_or_leaves_it_to_python(
        decode_common, op, hlen, numbers, chaddr, sname_or_file, options, pads, end, tail, cut):
    xid, ciaddr, yiaddr, siaddr, giaddr = numbers
    header = HEADER.pack(op, 1, hlen, 0, xid, xid & 0xFFFF, xid >> 16, ciaddr, yiaddr, siaddr,
                         giaddr, chaddr, sname_or_file, b"")
    data = _raw_message(header, options, pads, end, tail)
    event(f"taken: {_c_agrees(decode_common, data[:len(data) - cut])}")


@settings(max_examples=1500, deadline=None)
@given(position=st.integers(0, 330), byte=st.integers(0, 255),
       cut=st.one_of(st.none(), st.integers(200, 340)))
def test_the_c_decoder_agrees_on_mutated_messages(decode_common, position, byte, cut):
    data = bytearray(encode(discover(o12=b"client", o55=bytes([1, 3, 6, 15]),
                                     o61=b"\x01" + MAC, o82=b"\x01\x04port\x02\x03abc")))
    data[position % len(data)] = byte
    event(f"taken: {_c_agrees(decode_common, bytes(data[:cut]))}")


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_the_c_decoder_agrees_on_random_bytes(decode_common, data):
    _c_agrees(decode_common, MAGIC_COOKIE.join([data[:236].ljust(236, b"\x00"), data[236:]]))


def test_the_c_decoder_takes_the_usual_messages_and_leaves_the_rest(decode_common):
    usual = [
        discover(o55=bytes([1, 28, 2, 3, 15, 6, 12])),  # perfdhcp's DISCOVER
        discover(o53=b"\x03", o54=b"\x0a\x00\x00\x01", o50=b"\x0a\x00\x00\x05"),
        discover(o12=b"pc1", o61=b"\x01" + MAC, o57=b"\x05\xdc", o60=b"dhcpcd-9",
                 o82=b"\x01\x02p1"),
        discover(o43=bytes(600)),  # split on the wire, joined in the message (RFC 3396)
    ]
    for message in usual:
        assert _c_agrees(decode_common, encode(message)), message
    repeated = encode(DhcpMessage(chaddr=MAC))[:240] + b"\x35\x01\x01\x0c\x02ab\x00\x0c\x02cd"
    assert _c_agrees(decode_common, repeated)  # no END: the options end with the message
    assert decode_common(repeated)[14] == {53: b"\x01", 12: b"abcd"}
    with_sname = discover()
    with_sname.sname = b"server"
    overloaded = encode(discover(o52=b"\x03"))
    for left in (encode(with_sname), overloaded, bytearray(encode(discover())),
                 encode(discover())[:239]):
        assert decode_common(left) is None
    assert decode(bytearray(encode(discover()))) == discover()  # Python reads it


def test_decode_without_the_c_decoder(monkeypatch):
    from nefeature.dhcp import codec

    monkeypatch.setattr(codec, "decode_common", None)
    message = discover(o12=b"host", o55=bytes([1, 3, 6]))
    assert decode(encode(message)) == message
    with pytest.raises(MalformedMessage, match="past the end"):
        decode(encode(DhcpMessage())[:240] + b"\x0c\x05ab")
