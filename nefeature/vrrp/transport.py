"""VRRP on the wire: a raw IP socket per interface, virtual addresses, and an emulated LAN.

``RawVrrpLink`` (root): an IPv4 raw socket for protocol 112 bound to the
interface, sending from its primary address, joined to 224.0.0.18, TTL 255
(RFC 5798 section 5.1.1.3); it delivers whole IPv4 datagrams, so the TTL
check of section 7.1 sees the real TTL.  ``VirtualAddresses`` adds the
virtual IPs to the interface when a router becomes master and announces
them with gratuitous ARP (section 6.4.2), and removes them when it stops
being master.  Like keepalived without ``use_vmac``, the interface's own
MAC answers for the virtual IPs.  Addresses change over rtnetlink
(RTM_NEWADDR / RTM_DELADDR, rtnetlink(7)) rather than by running ``ip``:
a takeover costs microseconds instead of a 10 ms process start on the
event loop, and the gratuitous ARP reuses one packet socket.

``EmulatedVrrpLink`` carries the same IPv4 datagrams as UDP payload in a
multicast group on loopback, for devices that share one host without root
(``make demo``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import errno
import os
import struct
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from nefeature.vrrp.packet import VRRP_GROUP, VRRP_PROTOCOL, VRRP_TTL, Advertisement, encode, \
    ipv4_datagram

log = logging.getLogger(__name__)

IP_MULTICAST_ALL = 49
SO_BINDTODEVICE = 25
ETH_P_ARP = 0x0806

# rtnetlink(7), linux/rtnetlink.h, linux/if_addr.h
RTM_NEWADDR, RTM_DELADDR = 20, 21
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
NLMSG_ERROR = 2
IFA_ADDRESS, IFA_LOCAL = 1, 2


def _mreqn(group: int, address: int, ifindex: int) -> bytes:
    return struct.pack("!II", group, address) + struct.pack("=i", ifindex)


class _Link:
    """A socket carrying whole IPv4 VRRP datagrams, read on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, primary: int,
                 on_datagram: Callable[[bytes], None]) -> None:
        self._loop = loop
        self.sock = sock
        self.primary = primary
        self._own_source = struct.pack("!I", primary)
        self._on_datagram = on_datagram
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._read)

    def _read(self) -> None:
        for _ in range(64):
            try:
                datagram = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("VRRP receive failed: %s", error)
                return
            if datagram[12:16] != self._own_source:  # our own, looped back
                self._on_datagram(datagram)

    def send(self, advertisement: Advertisement) -> None:
        try:
            self._send(advertisement)
        except OSError as error:
            log.warning("VRRP send failed: %s", error)

    def _send(self, advertisement: Advertisement) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()


class RawVrrpLink(_Link):
    """Sends and receives advertisements on one interface."""

    def __init__(self, loop: asyncio.AbstractEventLoop, linux_name: str, primary: int,
                 on_datagram: Callable[[bytes], None]) -> None:
        ifindex = socket.if_nametoindex(linux_name)
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
        sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, linux_name.encode())
        sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        _mreqn(VRRP_GROUP, primary, ifindex))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _mreqn(0, primary, ifindex))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)
        # No bind(): a raw socket bound to an address only receives datagrams for that
        # address.  IP_MULTICAST_IF above makes the primary address the source.
        super().__init__(loop, sock, primary, on_datagram)

    def _send(self, advertisement: Advertisement) -> None:
        self.sock.sendto(encode(advertisement, self.primary), (str(IPv4Address(VRRP_GROUP)), 0))


class EmulatedVrrpLink(_Link):
    """The same datagrams over UDP multicast on loopback (no root needed)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, group: str, port: int, primary: int,
                 on_datagram: Callable[[bytes], None]) -> None:
        self.destination = (group, port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((group, port))
        loopback = socket.inet_aton("127.0.0.1")
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(group) + loopback)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, loopback)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        super().__init__(loop, sock, primary, on_datagram)

    def _send(self, advertisement: Advertisement) -> None:
        self.sock.sendto(ipv4_datagram(advertisement, self.primary), self.destination)


def _rtattr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def address_request(add: bool, ifindex: int, address: int, prefix_length: int,
                    sequence: int) -> bytes:
    """An RTM_NEWADDR/RTM_DELADDR netlink message for an IPv4 address on an interface."""
    packed = struct.pack("!I", address)
    body = struct.pack("=BBBBI", socket.AF_INET, prefix_length, 0, 0, ifindex) \
        + _rtattr(IFA_LOCAL, packed) + _rtattr(IFA_ADDRESS, packed)
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if add else 0)
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWADDR if add else RTM_DELADDR, flags,
                       sequence, 0) + body


def netlink_error(reply: bytes, sequence: int) -> int | None:
    """The errno of the kernel's NLMSG_ERROR reply to ``sequence`` (0: done), None if none."""
    offset = 0
    while offset + 16 <= len(reply):
        length, kind, _, seq, _ = struct.unpack_from("=IHHII", reply, offset)
        if kind == NLMSG_ERROR and seq == sequence and length >= 20:
            return -struct.unpack_from("=i", reply, offset + 16)[0]
        offset += max(16, (length + 3) & ~3)
    return None


class VirtualAddresses:
    """Adds and removes a group's virtual IPs on its interface, with gratuitous ARP."""

    def __init__(self, linux_name: str, interface_address: IPv4Interface) -> None:
        self.linux_name = linux_name
        self.prefix_length = interface_address.network.prefixlen
        self._sequence = 0
        self._arp_socket: socket.socket | None = None

    def _change(self, add: bool, address: int) -> bool:
        self._sequence += 1
        # Already there (add) or already gone (del): the state we wanted, not an error.
        fine = {0, errno.EEXIST} if add else {0, errno.EADDRNOTAVAIL, errno.ENOENT}
        try:
            request = address_request(add, socket.if_nametoindex(self.linux_name), address,
                                      self.prefix_length, self._sequence)
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
                nl.settimeout(2.0)
                nl.send(request)
                error = None
                while error is None:
                    error = netlink_error(nl.recv(65536), self._sequence)
            problem = None if error in fine else os.strerror(error)
        except OSError as failure:
            problem = failure.strerror or str(failure)
        if problem is not None:
            log.warning("%s %s on %s: %s", "adding" if add else "removing",
                        IPv4Address(address), self.linux_name, problem)
            return False
        return True

    def add(self, addresses: tuple[int, ...]) -> None:
        for address in addresses:
            if self._change(True, address):
                self.gratuitous_arp(address)

    def remove(self, addresses: tuple[int, ...]) -> None:
        for address in addresses:
            self._change(False, address)

    def gratuitous_arp(self, address: int) -> None:
        """An ARP request for the address from itself, to every host on the link."""
        try:
            mac = bytes.fromhex(
                Path(f"/sys/class/net/{self.linux_name}/address").read_text().strip()
                .replace(":", ""))
            ip = struct.pack("!I", address)
            frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
                     + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip)
            if self._arp_socket is None:
                self._arp_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                self._arp_socket.bind((self.linux_name, 0))
            self._arp_socket.send(frame)
        except OSError as error:
            log.warning("gratuitous ARP for %s on %s failed: %s", IPv4Address(address),
                        self.linux_name, error)
            self.close()

    def close(self) -> None:
        if self._arp_socket is not None:
            self._arp_socket.close()
            self._arp_socket = None


class NoVirtualAddresses:
    """For the emulated LAN: the virtual IPs exist only in the advertisements."""

    def add(self, addresses: tuple[int, ...]) -> None:
        pass

    def remove(self, addresses: tuple[int, ...]) -> None:
        pass

    def close(self) -> None:
        pass
