"""BOOTP/DHCP message codec: RFC 2131 section 2, RFC 2132 options, RFC 3396.

A message is the fixed 236-byte BOOTP header, the magic cookie and a stream
of options (code, length, value).  Decoding:

* addresses (ciaddr, yiaddr, siaddr, giaddr) stay 32-bit ints, the form the
  allocator works in;
* options become ``{code: value}`` in the order first seen; an option that
  appears several times is one option whose value is the concatenation
  (RFC 3396 section 5), and that includes the instances in ``file`` and
  ``sname`` when option 52 (overload, RFC 2132 section 9.3) says those
  fields carry options (read in the order options, file, sname);
* anything that does not parse raises :class:`MalformedMessage`, never
  another exception.

Encoding splits a value longer than 255 bytes into consecutive instances
(RFC 3396), ends the options with END, spills into ``file`` and then
``sname`` (setting option 52) only when the client's maximum message size
requires it, and pads the message to the 300 bytes BOOTP relays expect
(RFC 1542 section 2.1).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

try:  # the optional C fast path for the usual message (nefeature/dhcp/_codec.c)
    from nefeature.dhcp._codec import decode_common
except ImportError:
    decode_common = None

BOOTREQUEST = 1
BOOTREPLY = 2
MAGIC_COOKIE = b"\x63\x82\x53\x63"
HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")  # 236 bytes
FIXED = struct.Struct("!BBBBIHHIIII16s")  # HEADER up to chaddr: the 44 bytes before sname
SNAME_OFFSET, FILE_OFFSET = FIXED.size, FIXED.size + 64
OPTIONS_OFFSET = HEADER.size + len(MAGIC_COOKIE)  # 240
NO_SNAME_OR_FILE = b"\x00" * (HEADER.size - FIXED.size)
REPLY_HEAD = struct.Struct("!BBBBIHHIIII16s192x4s")  # FIXED, empty sname and file, cookie
MIN_MESSAGE_SIZE = 300  # RFC 1542 section 2.1
DEFAULT_MAX_MESSAGE_SIZE = 576  # RFC 2131 section 2: every client accepts this
IP_UDP_HEADERS = 28
BROADCAST_FLAG = 0x8000


# MessageType and Option are namespaces of plain ints, not IntEnums: an Enum class's
# attribute costs a metaclass __getattr__ call (~10x a plain attribute), and the server
# reads them on every message.


class MessageType:
    """Option 53 values (RFC 2132 section 9.6, RFC 3203)."""

    DISCOVER: Final = 1
    OFFER: Final = 2
    REQUEST: Final = 3
    DECLINE: Final = 4
    ACK: Final = 5
    NAK: Final = 6
    RELEASE: Final = 7
    INFORM: Final = 8
    FORCERENEW: Final = 9


class Option:
    """Option codes the server reads or writes itself (RFC 2132, RFC 3046)."""

    PAD: Final = 0
    SUBNET_MASK: Final = 1
    ROUTER: Final = 3
    DNS_SERVERS: Final = 6
    HOSTNAME: Final = 12
    DOMAIN_NAME: Final = 15
    REQUESTED_ADDRESS: Final = 50
    LEASE_TIME: Final = 51
    OVERLOAD: Final = 52
    MESSAGE_TYPE: Final = 53
    SERVER_ID: Final = 54
    PARAMETER_REQUEST_LIST: Final = 55
    MESSAGE: Final = 56
    MAX_MESSAGE_SIZE: Final = 57
    RENEWAL_TIME: Final = 58
    REBINDING_TIME: Final = 59
    VENDOR_CLASS: Final = 60
    CLIENT_ID: Final = 61
    RELAY_AGENT_INFORMATION: Final = 82
    END: Final = 255


class MalformedMessage(ValueError):
    """The bytes are not a well-formed BOOTP/DHCP message."""


@dataclass(slots=True)
class DhcpMessage:
    """One BOOTP/DHCP message; addresses are 32-bit ints, options raw bytes."""

    op: int = BOOTREQUEST
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    xid: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    chaddr: bytes = b"\x00" * 16
    sname: bytes = b""
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> int | None:
        value = self.options.get(53)  # Option.MESSAGE_TYPE
        return value[0] if value is not None and len(value) == 1 else None

    @property
    def hardware_address(self) -> bytes:
        """chaddr cut to hlen (the MAC for Ethernet)."""
        return self.chaddr[:self.hlen if self.hlen < 16 else 16]

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & BROADCAST_FLAG)

    def address_option(self, code: int) -> int | None:
        """A 4-byte option as an int, or None when absent or malformed."""
        value = self.options.get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None


def _parse_options(data: bytes, into: dict[int, bytes], position: int = 0,
                   end: int | None = None) -> None:
    """Append the options in ``data[position:end]`` to ``into``, concatenating repeats."""
    if end is None:
        end = len(data)
    while position < end:
        code = data[position]
        if code == 0:  # PAD
            position += 1
            continue
        if code == 255:  # END
            return
        if position + 1 >= end:
            raise MalformedMessage(f"option {code} has no length byte")
        value_end = position + 2 + data[position + 1]
        if value_end > end:
            raise MalformedMessage(f"option {code} runs past the end of the message")
        value = data[position + 2: value_end]
        into[code] = into[code] + value if code in into else value
        position = value_end


def decode(data: bytes) -> DhcpMessage:
    """Parse a BOOTP/DHCP message (RFC 2131 section 2, RFC 3396)."""
    if decode_common is not None:
        fields = decode_common(data)
        if fields is not None:
            return DhcpMessage(*fields)
    return decode_in_python(data)


def decode_in_python(data: bytes) -> DhcpMessage:
    """``decode`` without the C fast path: every message, and every error's reason."""
    if len(data) < OPTIONS_OFFSET:
        raise MalformedMessage(f"{len(data)} bytes is shorter than a BOOTP header and cookie")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
     chaddr) = FIXED.unpack_from(data)
    if op != BOOTREQUEST and op != BOOTREPLY:
        raise MalformedMessage(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
    if hlen > 16:
        raise MalformedMessage(f"hlen {hlen} exceeds the 16-byte chaddr")
    if not data.startswith(MAGIC_COOKIE, HEADER.size):
        raise MalformedMessage("no DHCP magic cookie")
    options: dict[int, bytes] = {}
    _parse_options(data, options, OPTIONS_OFFSET)
    overload = options.get(Option.OVERLOAD)
    if overload is None and data.startswith(NO_SNAME_OR_FILE, SNAME_OFFSET):
        # the usual request: sname and file empty
        return DhcpMessage(op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr,
                           giaddr, chaddr, b"", b"", options)
    sname, file = data[SNAME_OFFSET:FILE_OFFSET], data[FILE_OFFSET:HEADER.size]
    if overload is not None:
        if len(overload) != 1 or overload[0] not in (1, 2, 3):
            raise MalformedMessage("option 52 (overload) must be 1, 2 or 3")
        if overload[0] & 1:
            _parse_options(file, options)
            file = b""
        if overload[0] & 2:
            _parse_options(sname, options)
            sname = b""
    return DhcpMessage(op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
                       chaddr, sname.rstrip(b"\x00"), file.rstrip(b"\x00"), options)


def _option_chunks(options: dict[int, bytes]) -> list[bytes]:
    """Each option as TLVs, values over 255 bytes split in order (RFC 3396)."""
    chunks = []
    for code, value in options.items():
        length = len(value)
        if length <= 255:
            chunks.append(bytes((code, length)) + value)
            continue
        for start in range(0, length, 255):
            piece = value[start: start + 255]
            chunks.append(bytes((code, len(piece))) + piece)
    return chunks


def encode_options(options: dict[int, bytes]) -> bytes:
    """Options as wire TLVs, for a server to encode its fixed options once."""
    return b"".join(_option_chunks(options))


def _split_tlvs(data: bytes) -> list[bytes]:
    chunks, position = [], 0
    while position < len(data):
        end = position + 2 + data[position + 1]
        chunks.append(data[position:end])
        position = end
    return chunks


def encode(message: DhcpMessage, max_size: int = 0, trailer: bytes = b"") -> bytes:
    """Serialize a message.

    ``max_size`` is the client's maximum DHCP message size (option 57,
    including IP and UDP headers); 0 means no limit.  When the options do
    not fit, they continue in ``file`` and then ``sname`` (option 52).
    ``trailer`` holds further options already encoded (``encode_options``),
    placed after ``message.options``.
    """
    chunks = _option_chunks(message.options)
    main_room = max_size - IP_UDP_HEADERS - OPTIONS_OFFSET if max_size else 1 << 30
    total = sum(map(len, chunks)) + len(trailer)
    sname, file = message.sname, message.file
    if total + 1 <= main_room:
        body = b"".join(chunks) + trailer + b"\xff"
    else:
        chunks += _split_tlvs(trailer)
        areas: list[list[bytes]] = [[bytes((Option.OVERLOAD, 1, 0))], [], []]
        rooms = [main_room - 3 - 1, 128 - 1, 64 - 1]  # each area keeps a byte for END
        area = 0
        for chunk in chunks:
            while area < 3 and len(chunk) > rooms[area]:
                area += 1
            if area == 3:
                raise ValueError("options do not fit in the client's maximum message size")
            areas[area].append(chunk)
            rooms[area] -= len(chunk)
        overload = (1 if areas[1] else 0) | (2 if areas[2] else 0)
        areas[0][0] = bytes((Option.OVERLOAD, 1, overload or 1))
        body = b"".join(areas[0]) + b"\xff"
        if areas[1]:
            file = b"".join(areas[1]) + b"\xff"
        if areas[2]:
            sname = b"".join(areas[2]) + b"\xff"
    header = HEADER.pack(
        message.op, message.htype, message.hlen, message.hops, message.xid, message.secs,
        message.flags, message.ciaddr, message.yiaddr, message.siaddr, message.giaddr,
        message.chaddr.ljust(16, b"\x00")[:16], sname[:64].ljust(64, b"\x00"),
        file[:128].ljust(128, b"\x00"),
    )
    packet = header + MAGIC_COOKIE + body
    if len(packet) < MIN_MESSAGE_SIZE:
        packet += b"\x00" * (MIN_MESSAGE_SIZE - len(packet))
    return packet


def encode_reply(htype: int, hlen: int, xid: int, flags: int, ciaddr: int, yiaddr: int,
                 giaddr: int, chaddr: bytes, options: bytes, max_size: int = 0) -> bytes:
    """A server's reply, with its options already encoded (``encode_options``) and no
    hops, secs, siaddr, sname or file: the bytes ``encode`` makes of that message, in
    one pack.  Options over the client's ``max_size`` go through ``encode`` (overload)."""
    if max_size and len(options) + 1 > max_size - IP_UDP_HEADERS - OPTIONS_OFFSET:
        return encode(DhcpMessage(BOOTREPLY, htype, hlen, 0, xid, 0, flags, ciaddr, yiaddr, 0,
                                  giaddr, chaddr, b"", b"", {}), max_size, options)
    return (REPLY_HEAD.pack(BOOTREPLY, htype, hlen, 0, xid, 0, flags, ciaddr, yiaddr, 0, giaddr,
                            chaddr, MAGIC_COOKIE) + options + b"\xff").ljust(MIN_MESSAGE_SIZE,
                                                                           b"\x00")


def relay_agent_suboptions(value: bytes) -> dict[int, bytes]:
    """Sub-options of option 82 (RFC 3046 section 2): 1 circuit-id, 2 remote-id.

    Returns {} when the sub-option stream is malformed; the raw option is
    still kept and echoed by the server.
    """
    suboptions: dict[int, bytes] = {}
    try:
        _parse_options(value, suboptions)
    except MalformedMessage:
        return {}
    return suboptions
