"""VRRP on the wire: a raw IP socket per interface, virtual addresses, and an emulated LAN.

``RawVrrpLink`` (root): an IPv4 raw socket for protocol 112 bound to the
interface, sending from its primary address, joined to 224.0.0.18, TTL 255
(RFC 5798 section 5.1.1.3); it delivers whole IPv4 datagrams, so the TTL
check of section 7.1 sees the real TTL.  ``VirtualAddresses`` adds the
virtual IPs to the interface when a router becomes master and announces
them with gratuitous ARP (section 6.4.2), and removes them when it stops
being master.  Like keepalived without ``use_vmac``, the interface's own
MAC answers for the virtual IPs.

``EmulatedVrrpLink`` carries the same IPv4 datagrams as UDP payload in a
multicast group on loopback, for devices that share one host without root
(``make demo``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from nefeature.vrrp.packet import VRRP_GROUP, VRRP_PROTOCOL, VRRP_TTL, Advertisement, encode, \
    ipv4_datagram

log = logging.getLogger(__name__)

IP_MULTICAST_ALL = 49
SO_BINDTODEVICE = 25
ETH_P_ARP = 0x0806


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


class VirtualAddresses:
    """Adds and removes a group's virtual IPs on its interface, with gratuitous ARP."""

    def __init__(self, linux_name: str, interface_address: IPv4Interface) -> None:
        self.linux_name = linux_name
        self.prefix_length = interface_address.network.prefixlen

    def _ip(self, action: str, address: int) -> bool:
        result = subprocess.run(
            ["ip", "-4", "addr", action, f"{IPv4Address(address)}/{self.prefix_length}",
             "dev", self.linux_name],
            capture_output=True, text=True, timeout=5)
        # Already there (add) or already gone (del): the state we wanted, not an error.
        quiet = ("File exists", "already assigned", "Cannot assign", "Address not found")
        if result.returncode != 0 and not any(text in result.stderr for text in quiet):
            log.warning("ip addr %s %s on %s: %s", action, IPv4Address(address), self.linux_name,
                        result.stderr.strip())
            return False
        return True

    def add(self, addresses: tuple[int, ...]) -> None:
        for address in addresses:
            if self._ip("add", address):
                self.gratuitous_arp(address)

    def remove(self, addresses: tuple[int, ...]) -> None:
        for address in addresses:
            self._ip("del", address)

    def gratuitous_arp(self, address: int) -> None:
        """An ARP request for the address from itself, to every host on the link."""
        try:
            mac = bytes.fromhex(
                Path(f"/sys/class/net/{self.linux_name}/address").read_text().strip()
                .replace(":", ""))
            ip = struct.pack("!I", address)
            frame = (b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
                     + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip)
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
                sock.bind((self.linux_name, 0))
                sock.send(frame)
        except OSError as error:
            log.warning("gratuitous ARP for %s on %s failed: %s", IPv4Address(address),
                        self.linux_name, error)


class NoVirtualAddresses:
    """For the emulated LAN: the virtual IPs exist only in the advertisements."""

    def add(self, addresses: tuple[int, ...]) -> None:
        pass

    def remove(self, addresses: tuple[int, ...]) -> None:
        pass
