"""Link state from the kernel: rtnetlink RTM_NEWLINK / RTM_DELLINK events.

VRRP tracking reacts to a link going down when the kernel says so, not at
the next poll (issue 4).  The monitor subscribes to RTMGRP_LINK and calls
``on_change(linux_name, up)`` whenever a watched interface's state flips;
"up" means administratively up with carrier (IFF_UP and IFF_LOWER_UP).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

RTMGRP_LINK = 1
RTM_NEWLINK = 16
RTM_DELLINK = 17
IFLA_IFNAME = 3
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
NLMSG_HEADER = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
RTATTR = struct.Struct("=HH")


def link_is_up(name: str) -> bool:
    """Current state from sysfs (at start, before any event arrives)."""
    try:
        flags = int(Path(f"/sys/class/net/{name}/flags").read_text(), 16)
        carrier = Path(f"/sys/class/net/{name}/carrier").read_text().strip() == "1"
    except (OSError, ValueError):
        return False
    return bool(flags & IFF_UP) and carrier


def parse_link_messages(data: bytes) -> list[tuple[str, bool]]:
    """(interface name, up) for each RTM_NEWLINK / RTM_DELLINK in a netlink read."""
    changes = []
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            body = offset + NLMSG_HEADER.size
            _family, _type, _index, flags, _change = IFINFOMSG.unpack_from(data, body)
            position, name = body + IFINFOMSG.size, None
            while position + RTATTR.size <= offset + length:
                attr_length, attr_type = RTATTR.unpack_from(data, position)
                if attr_length < RTATTR.size:
                    break
                if attr_type == IFLA_IFNAME:
                    name = data[position + 4: position + attr_length].split(b"\0", 1)[0].decode()
                position += (attr_length + 3) & ~3
            if name is not None:
                up = kind == RTM_NEWLINK and bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
                changes.append((name, up))
        offset += (length + 3) & ~3
    return changes


class LinkMonitor:
    """Watches some interfaces and reports each change of their up/down state."""

    def __init__(self, loop: asyncio.AbstractEventLoop, names: Iterable[str],
                 on_change: Callable[[str, bool], None]) -> None:
        self._loop = loop
        self.state = {name: link_is_up(name) for name in names}
        self._on_change = on_change
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, RTMGRP_LINK))
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self._read)

    def watch(self, names: Iterable[str]) -> None:
        for name in names:
            self.state.setdefault(name, link_is_up(name))

    def _read(self) -> None:
        for _ in range(64):
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("netlink receive failed: %s", error)
                return
            for name, up in parse_link_messages(data):
                if name in self.state and self.state[name] != up:
                    self.state[name] = up
                    self._on_change(name, up)

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
