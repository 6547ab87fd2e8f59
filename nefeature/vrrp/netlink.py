"""rtnetlink for VRRP: addresses, the virtual MAC interface, link events (rtnetlink(7)).

Messages are built and parsed by pure functions (unit-tested against the
layouts of linux/rtnetlink.h, linux/if_link.h and linux/if_addr.h);
:class:`Rtnetlink` sends one request at a time and waits for the kernel's
answer.  A takeover costs a few of these round trips, microseconds each,
instead of starting ``ip`` on the event loop.

The virtual MAC interface is a macvlan in private mode, as keepalived's
``use_vmac`` makes (keepalived/vrrp/vrrp_vmac.c): its MAC address makes the
NIC accept frames for the virtual router MAC, and the kernel hands them to
it, so the virtual addresses on it receive what the LAN sends there.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# linux/netlink.h, linux/rtnetlink.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTMGRP_LINK = 1
# linux/if_addr.h
IFA_ADDRESS, IFA_LOCAL = 1, 2
# linux/if_link.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 5, 18, 20
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_PRIVATE = 1
# linux/if.h
IFF_UP, IFF_NOARP, IFF_LOWER_UP = 0x1, 0x80, 0x10000

HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTATTR = struct.Struct("=HH")


def rtattr(kind: int, value: bytes) -> bytes:
    return RTATTR.pack(RTATTR.size + len(value), kind) + value + b"\0" * (-len(value) % 4)


def message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | flags, sequence, 0) + body


def attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """The rtattrs in ``data[start:end]`` by type (the last one of a type wins)."""
    found = {}
    while start + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, start)
        if length < RTATTR.size:
            break
        found[kind & 0x3FFF] = data[start + RTATTR.size: start + length]  # without NLA_F_*
        start += (length + 3) & ~3
    return found


def messages(data: bytes):
    """(type, sequence, body start, end) of each netlink message in one read."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, sequence, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            return
        yield kind, sequence, offset + HEADER.size, min(offset + length, len(data))
        offset += (length + 3) & ~3


# --- addresses ---

def address_request(add: bool, ifindex: int, address: int, prefix_length: int,
                    sequence: int) -> bytes:
    """An RTM_NEWADDR/RTM_DELADDR message for an IPv4 address on an interface."""
    packed = struct.pack("!I", address)
    body = IFADDRMSG.pack(socket.AF_INET, prefix_length, 0, 0, ifindex) \
        + rtattr(IFA_LOCAL, packed) + rtattr(IFA_ADDRESS, packed)
    return message(RTM_NEWADDR if add else RTM_DELADDR,
                   NLM_F_ACK | (NLM_F_CREATE if add else 0), sequence, body)


def address_dump_request(sequence: int) -> bytes:
    return message(RTM_GETADDR, NLM_F_DUMP, sequence, IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0))


def parse_addresses(data: bytes) -> list[tuple[int, int]]:
    """(interface index, IPv4 address) of each RTM_NEWADDR in a dump."""
    found = []
    for kind, _sequence, start, end in messages(data):
        if kind != RTM_NEWADDR or start + IFADDRMSG.size > end:
            continue
        family, _prefix, _flags, _scope, index = IFADDRMSG.unpack_from(data, start)
        local = attributes(data, start + IFADDRMSG.size, end).get(IFA_LOCAL, b"")
        if family == socket.AF_INET and len(local) == 4:
            found.append((index, struct.unpack("!I", local)[0]))
    return found


# --- links ---

@dataclass(frozen=True, slots=True)
class Link:
    """What an RTM_NEWLINK / RTM_DELLINK says about one interface."""

    deleted: bool
    index: int
    flags: int
    name: str | None
    lower: int | None  # IFLA_LINK: the interface a macvlan or VLAN sits on
    mac: bytes | None
    alias: str | None
    kind: str | None  # IFLA_INFO_KIND: "macvlan", "veth", ...

    @property
    def up(self) -> bool:
        """Administratively up with carrier."""
        return not self.deleted and bool(self.flags & IFF_UP) and bool(self.flags & IFF_LOWER_UP)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")


def parse_links(data: bytes) -> list[Link]:
    """Each RTM_NEWLINK / RTM_DELLINK in a netlink read (an event or a dump)."""
    links = []
    for kind, _sequence, start, end in messages(data):
        if kind not in (RTM_NEWLINK, RTM_DELLINK) or start + IFINFOMSG.size > end:
            continue
        _family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, start)
        found = attributes(data, start + IFINFOMSG.size, end)
        info = found.get(IFLA_LINKINFO)
        info_kind = attributes(info, 0, len(info)).get(IFLA_INFO_KIND) if info else None
        lower = found.get(IFLA_LINK)
        links.append(Link(kind == RTM_DELLINK, index, flags, _text(found.get(IFLA_IFNAME)),
                          struct.unpack("=I", lower)[0] if len(lower or b"") == 4 else None,
                          found.get(IFLA_ADDRESS), _text(found.get(IFLA_IFALIAS)),
                          _text(info_kind)))
    return links


def link_dump_request(sequence: int) -> bytes:
    return message(RTM_GETLINK, NLM_F_DUMP, sequence, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def macvlan_request(name: str, lower: int, mac: bytes, sequence: int) -> bytes:
    """Create a private-mode macvlan ``name`` on interface ``lower`` with address ``mac``.

    It is created down and with IFF_NOARP: the kernel never answers ARP on
    it, so a device whose process died answers for nothing (the transport
    answers ARP itself while master).
    """
    data = rtattr(IFLA_INFO_KIND, b"macvlan") + rtattr(
        IFLA_INFO_DATA, rtattr(IFLA_MACVLAN_MODE, struct.pack("=I", MACVLAN_MODE_PRIVATE)))
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_NOARP, IFF_NOARP) \
        + rtattr(IFLA_IFNAME, name.encode() + b"\0") + rtattr(IFLA_LINK, struct.pack("=I", lower)) \
        + rtattr(IFLA_ADDRESS, mac) + rtattr(IFLA_LINKINFO, data)
    return message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sequence, body)


def link_up_request(index: int, alias: str, sequence: int) -> bytes:
    """Set an interface up and give it an alias (``ip link set up alias``)."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP) \
        + rtattr(IFLA_IFALIAS, alias.encode())
    return message(RTM_NEWLINK, NLM_F_ACK, sequence, body)


def delete_link_request(index: int, sequence: int) -> bytes:
    return message(RTM_DELLINK, NLM_F_ACK, sequence, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index,
                                                                    0, 0))


def netlink_error(reply: bytes, sequence: int) -> int | None:
    """The errno of the kernel's NLMSG_ERROR reply to ``sequence`` (0: done), None if none."""
    for kind, seq, start, end in messages(reply):
        if kind == NLMSG_ERROR and seq == sequence and end - start >= 4:
            return -struct.unpack_from("=i", reply, start)[0]
    return None


def dump_done(reply: bytes, sequence: int) -> bool:
    return any(kind in (NLMSG_DONE, NLMSG_ERROR) and seq == sequence
               for kind, seq, _start, _end in messages(reply))


class Rtnetlink:
    """A NETLINK_ROUTE socket for one request at a time (blocking, bounded by a timeout)."""

    TIMEOUT = 2.0

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.settimeout(self.TIMEOUT)
        self.sequence = 0

    def request(self, build, *args) -> int:
        """Send ``build(*args, sequence)``; the kernel's errno for it (0: done)."""
        self.sequence += 1
        self.sock.send(build(*args, self.sequence))
        error = None
        while error is None:
            error = netlink_error(self.sock.recv(65536), self.sequence)
        return error

    def dump(self, build) -> bytes:
        """Every message of a dump request, concatenated."""
        self.sequence += 1
        self.sock.send(build(self.sequence))
        parts = []
        while True:
            part = self.sock.recv(1 << 20)
            parts.append(part)
            if dump_done(part, self.sequence):
                return b"".join(parts)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def set_sysctl(path: str, value: int) -> str | None:
    """Write /proc/sys/<path>; the problem as text, or None when done."""
    try:
        with open(f"/proc/sys/{path}", "w") as file:
            file.write(str(value))
    except OSError as error:
        return error.strerror or str(error)
    return None


def get_sysctl(path: str) -> int | None:
    try:
        with open(f"/proc/sys/{path}") as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
