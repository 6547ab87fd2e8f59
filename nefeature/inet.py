"""Small Internet helpers shared by the packet code."""

from __future__ import annotations

import ctypes
import socket
import struct
from pathlib import Path

SO_ATTACH_FILTER = 26  # linux/asm-generic/socket.h


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071), for IPv4, UDP and VRRP headers."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program (``tcpdump -dd`` tuples) to a packet socket."""
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def interface_mac(name: str) -> bytes:
    """An interface's MAC address, from sysfs."""
    text = Path(f"/sys/class/net/{name}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))
