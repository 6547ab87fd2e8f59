"""Small Internet helpers shared by the packet code."""

from __future__ import annotations

import struct


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071), for IPv4, UDP and VRRP headers."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
