"""Link state from the kernel: rtnetlink RTM_NEWLINK / RTM_DELLINK events.

VRRP tracking reacts to a link going down when the kernel says so, not at
the next poll.  The monitor subscribes to RTMGRP_LINK and calls
``on_change(linux_name, up)`` whenever a watched interface's state flips;
"up" means administratively up with carrier (IFF_UP and IFF_LOWER_UP).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from nefeature.vrrp.netlink import IFF_LOWER_UP, IFF_UP, RTMGRP_LINK, parse_links

log = logging.getLogger(__name__)


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
    return [(link.name, link.up) for link in parse_links(data) if link.name is not None]


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
