"""VRRPv3 advertisements for IPv4: RFC 5798 section 5 (format), 7.1 (checks).

An advertisement is carried in IPv4 protocol 112 to 224.0.0.18 with TTL 255:

    0                   1                   2                   3
    +-------+-------+---------------+---------------+---------------+
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    +-------+-------+---------------+---------------+---------------+
    |(rsvd) |     Max Adver Int     |          Checksum             |
    +-------+-------+---------------+---------------+---------------+
    |                       IPvX Address(es)                        |

The checksum covers an IPv4 pseudo-header (source, destination, zero,
protocol 112, VRRP length) and the VRRP message (section 5.2.8).

:func:`parse_ipv4` checks a received IP datagram in the order of section
7.1 and raises :class:`VrrpPacketError` naming the ietf-vrrp statistic the
failure counts against; nothing else escapes it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from nefeature.inet import checksum

VRRP_PROTOCOL = 112
VRRP_GROUP = 0xE0000012  # 224.0.0.18
VRRP_TTL = 255
VERSION = 3
TYPE_ADVERTISEMENT = 1
HEADER = struct.Struct("!BBBBHH")


class VrrpPacketError(ValueError):
    """A received packet failed a section 7.1 check.

    ``counter`` names the RFC 8347 statistic: ip-ttl-errors, version-errors,
    checksum-errors, packet-length-errors, invalid-type-pkts-rcvd,
    vrid-errors (counted by the caller, who knows its VRIDs).
    """

    def __init__(self, counter: str, message: str) -> None:
        super().__init__(message)
        self.counter = counter


@dataclass(frozen=True, slots=True)
class Advertisement:
    vrid: int
    priority: int
    max_advertise_interval: int  # centiseconds
    addresses: tuple[int, ...]  # IPv4 addresses as ints


@dataclass(frozen=True, slots=True)
class ReceivedAdvertisement:
    advertisement: Advertisement
    source: int  # the sender's primary address
    ttl: int


def _pseudo_header(source: int, destination: int, length: int) -> bytes:
    return struct.pack("!IIBBH", source, destination, 0, VRRP_PROTOCOL, length)


def encode(advertisement: Advertisement, source: int, destination: int = VRRP_GROUP) -> bytes:
    """The VRRP message (without IP header), checksum filled in."""
    addresses = b"".join(struct.pack("!I", a) for a in advertisement.addresses)
    body = HEADER.pack((VERSION << 4) | TYPE_ADVERTISEMENT, advertisement.vrid,
                       advertisement.priority, len(advertisement.addresses),
                       advertisement.max_advertise_interval & 0x0FFF, 0) + addresses
    value = checksum(_pseudo_header(source, destination, len(body)) + body)
    return body[:6] + struct.pack("!H", value) + body[8:]


def ipv4_datagram(advertisement: Advertisement, source: int) -> bytes:
    """A whole IPv4 datagram carrying the advertisement (for emulated links and tests)."""
    body = encode(advertisement, source)
    header = struct.pack("!BBHHHBBHII", 0x45, 0xC0, 20 + len(body), 0, 0, VRRP_TTL,
                         VRRP_PROTOCOL, 0, source, VRRP_GROUP)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + body


def decode(body: bytes, source: int, destination: int = VRRP_GROUP) -> Advertisement:
    """Check and parse a VRRP message (section 7.1 steps after the TTL)."""
    if len(body) < HEADER.size:
        raise VrrpPacketError("packet-length-errors", f"{len(body)} bytes is too short")
    version_type, vrid, priority, count, interval, _checksum = HEADER.unpack_from(body)
    if version_type >> 4 != VERSION:
        raise VrrpPacketError("version-errors", f"version {version_type >> 4}, expected 3")
    if checksum(_pseudo_header(source, destination, len(body)) + body) != 0:
        raise VrrpPacketError("checksum-errors", "bad checksum")
    if version_type & 0x0F != TYPE_ADVERTISEMENT:
        raise VrrpPacketError("invalid-type-pkts-rcvd", f"type {version_type & 0x0F}")
    if len(body) != HEADER.size + 4 * count:
        raise VrrpPacketError("packet-length-errors",
                              f"{len(body)} bytes for {count} IPv4 addresses")
    if vrid == 0:
        raise VrrpPacketError("vrid-errors", "VRID 0")
    addresses = struct.unpack_from(f"!{count}I", body, HEADER.size)
    return Advertisement(vrid, priority, interval & 0x0FFF, addresses)


def parse_ipv4(datagram: bytes) -> ReceivedAdvertisement:
    """Check and parse an IPv4 datagram as a raw IP socket delivers it."""
    if len(datagram) < 20 or datagram[0] >> 4 != 4:
        raise VrrpPacketError("packet-length-errors", "not an IPv4 datagram")
    header_length = (datagram[0] & 0x0F) * 4
    if len(datagram) < header_length:
        raise VrrpPacketError("packet-length-errors", "truncated IPv4 header")
    ttl, protocol = datagram[8], datagram[9]
    source, destination = struct.unpack_from("!II", datagram, 12)
    if protocol != VRRP_PROTOCOL:
        raise VrrpPacketError("invalid-type-pkts-rcvd", f"IP protocol {protocol}")
    if ttl != VRRP_TTL:
        raise VrrpPacketError("ip-ttl-errors", f"TTL {ttl}, must be 255")
    total_length = struct.unpack_from("!H", datagram, 2)[0]
    body = datagram[header_length:min(total_length, len(datagram))]
    return ReceivedAdvertisement(decode(body, source, destination), source, ttl)
