"""VRRP on the wire: advertisements, the virtual router MAC, virtual addresses, an emulated LAN.

Advertisements (``RawVrrpLink``, root).  One AF_PACKET socket per interface
carries whole Ethernet frames of IPv4 protocol 112 to 224.0.0.18 with TTL
255 (RFC 5798 section 5.1.1.3); a classic BPF filter in the kernel lets only
those through, and the IPv4 datagram inside goes to the engine as a raw IP
socket would deliver it, with its real TTL (section 7.1).  A master's
advertisements leave from the virtual router MAC (section 7.3) when its
group's virtual-MAC interface exists on this host, so every switch on the
LAN learns where the virtual router is from each advertisement; otherwise
from the interface's MAC.  The socket is a tap on the interface: it also
sees the advertisements another master sends from the same virtual MAC,
which the kernel hands to this host's own virtual-MAC interface alone (a
raw IP socket on the interface would never see them, and two masters would
never hear each other).

Virtual addresses (``VirtualAddresses``, one per group).  With the virtual
MAC, a master holds its virtual IPs (as /32) on a macvlan interface that
has that MAC, as keepalived's ``use_vmac`` does (``nefeature.vrrp.netlink``):
made when the group first becomes master, empty while it is backup, deleted
with the group or when the device stops.  The macvlan has IFF_NOARP and no
IPv6, and the interface under it answers ARP only for addresses it holds
itself (``arp_ignore=1``) and asks only from them (``arp_announce=2``), so
the kernel ties the virtual IPs to no MAC anywhere: this transport answers
ARP for them, with the virtual MAC (section 8.1.2), while the group is
master.  A device whose process was killed, or is frozen, answers nothing
and sends nothing from the virtual MAC; the addresses its kernel keeps
until it restarts are unreachable from the LAN, whose switches follow the
new master's advertisements.  Without the virtual MAC (``virtual-mac
false``) the virtual IPs go on the interface itself and its kernel answers
ARP for them with the interface's MAC, as keepalived does without
``use_vmac``; a killed master then keeps answering for them until it
restarts and removes them.

Either way a master announces each address it takes with a gratuitous ARP
(section 6.4.1), again a second later in case one was lost, and whenever
it sees another device speak for one of its addresses (an ARP from that
address that this host did not send), at most once a second per address.

``EmulatedVrrpLink`` carries the same IPv4 datagrams as UDP payload in a
multicast group on loopback, for devices that share one host without root
(``make demo``): no MAC there, virtual or not (``NoVirtualAddresses``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from nefeature.inet import attach_filter, checksum, interface_mac
from nefeature.vrrp import netlink
from nefeature.vrrp.netlink import Rtnetlink, get_sysctl, set_sysctl
from nefeature.vrrp.packet import VRRP_PROTOCOL, Advertisement, ipv4_datagram
from nefeature.vrrp.router import VIRTUAL_MAC_PREFIX, virtual_router_mac

log = logging.getLogger(__name__)

ETH_P_ALL, ETH_P_IP, ETH_P_ARP = 0x0003, 0x0800, 0x0806
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST = 1, 0
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent
VRRP_GROUP_MAC = bytes.fromhex("01005e000012")  # 224.0.0.18
BROADCAST_MAC = b"\xff" * 6
ARP_REQUEST, ARP_REPLY = 1, 2
ARP_HEADER = struct.Struct("!HHBBH6s4s6s4s")  # Ethernet/IPv4 ARP (RFC 826)
VIRTUAL_MAC_ALIAS = "nefeature vrrp"  # marks the macvlans this program made
ANNOUNCE_AGAIN = 1.0  # seconds until a master's second gratuitous ARP
CLAIM_HOLD_OFF = 1.0  # seconds between two answers to another device's claims

# tcpdump -dd 'ip proto 112' for Ethernet
BPF_VRRP = [
    (0x28, 0, 0, 12),          # ldh [12]     ethertype
    (0x15, 0, 3, ETH_P_IP),    # jeq IPv4 else drop
    (0x30, 0, 0, 23),          # ldb [23]     IP protocol
    (0x15, 0, 1, VRRP_PROTOCOL),  # jeq 112 else drop
    (0x06, 0, 0, 0x40000),     # ret accept
    (0x06, 0, 0, 0),           # ret drop
]
# tcpdump -dd arp
BPF_ARP = [
    (0x28, 0, 0, 12),          # ldh [12]     ethertype
    (0x15, 0, 1, ETH_P_ARP),   # jeq ARP else drop
    (0x06, 0, 0, 0x40000),     # ret accept
    (0x06, 0, 0, 0),           # ret drop
]


def packet_tap(linux_name: str, program: list[tuple[int, int, int, int]]) -> socket.socket:
    """An AF_PACKET socket seeing every frame on the interface that ``program`` passes.

    Bound to ETH_P_ALL, it sees frames before a macvlan takes them: those
    sent from this host's own virtual MAC by another device too.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # nothing until bind()
    attach_filter(sock, program)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernels: readers skip PACKET_OUTGOING frames themselves
    sock.bind((linux_name, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def virtual_mac_interface_name(lower_index: int, vrid: int) -> str:
    """The macvlan holding a group's virtual MAC: ``vrrp<VRID>.<ifindex of its LAN>``."""
    name = f"vrrp{vrid}.{lower_index}"
    return name if len(name) <= 15 else f"vr{vrid}.{lower_index:x}"  # IFNAMSIZ - 1


def lan_interface_of(name: str) -> str:
    """The interface a virtual-MAC interface sits on; any other interface is its own LAN.

    What the LAN sends to the virtual MAC arrives on the macvlan, so the
    DHCP server finds its interface configuration through this.
    """
    base = Path("/sys/class/net") / name
    try:
        if bytes.fromhex((base / "address").read_text().strip().replace(":", "")
                         )[:5] == VIRTUAL_MAC_PREFIX:
            lowers = [p.name[len("lower_"):] for p in base.iterdir()
                      if p.name.startswith("lower_")]
            if len(lowers) == 1:
                return lowers[0]
    except (OSError, ValueError):
        pass
    return name


def advertisement_frame(advertisement: Advertisement, source: int, source_mac: bytes) -> bytes:
    """An Ethernet frame to 01:00:5e:00:00:12 carrying the advertisement's IPv4 datagram."""
    return (VRRP_GROUP_MAC + source_mac + struct.pack("!H", ETH_P_IP)
            + ipv4_datagram(advertisement, source))


@dataclass(frozen=True, slots=True)
class Arp:
    operation: int
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int


def arp_frame(arp: Arp, destination: bytes) -> bytes:
    return (destination + arp.sender_mac + struct.pack("!H", ETH_P_ARP)
            + ARP_HEADER.pack(1, ETH_P_IP, 6, 4, arp.operation, arp.sender_mac,
                              struct.pack("!I", arp.sender_ip), arp.target_mac,
                              struct.pack("!I", arp.target_ip)))


def gratuitous_arp(mac: bytes, address: int) -> bytes:
    """An ARP request for ``address`` from itself, to every host on the link."""
    return arp_frame(Arp(ARP_REQUEST, mac, address, b"\0" * 6, address), BROADCAST_MAC)


def parse_arp(frame: bytes) -> Arp | None:
    """An Ethernet/IPv4 ARP frame's fields, None for anything else."""
    if len(frame) < 14 + ARP_HEADER.size or frame[12:14] != b"\x08\x06":
        return None
    hardware, protocol, hardware_length, protocol_length, operation, sender_mac, sender_ip, \
        target_mac, target_ip = ARP_HEADER.unpack_from(frame, 14)
    if (hardware, protocol, hardware_length, protocol_length) != (1, ETH_P_IP, 6, 4):
        return None
    return Arp(operation, sender_mac, struct.unpack("!I", sender_ip)[0], target_mac,
               struct.unpack("!I", target_ip)[0])


def arp_action(arp: Arp, held: set[int], answering: bool) -> tuple[str, int] | None:
    """What a master does about an ARP that another device sent.

    ``("claimed", address)``: the sender speaks for one of our addresses
    (its own gratuitous ARP, a reply, or a request from it): announce ours.
    ``("answer", address)``: a request for one of our addresses, when this
    transport answers ARP itself (with the virtual MAC).
    """
    if arp.sender_ip in held:
        return "claimed", arp.sender_ip
    if answering and arp.operation == ARP_REQUEST and arp.target_ip in held:
        return "answer", arp.target_ip
    return None


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
                datagram = self._receive()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("VRRP receive failed: %s", error)
                return
            if datagram is not None and datagram[12:16] != self._own_source:  # not our own
                self._on_datagram(datagram)

    def _receive(self) -> bytes | None:
        return self.sock.recv(2048)

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
    """Sends and receives advertisements on one interface, as Ethernet frames."""

    def __init__(self, loop: asyncio.AbstractEventLoop, linux_name: str, primary: int,
                 on_datagram: Callable[[bytes], None]) -> None:
        self.linux_name = linux_name
        self.ifindex = socket.if_nametoindex(linux_name)
        self.mac = interface_mac(linux_name)
        sock = packet_tap(linux_name, BPF_VRRP)
        # The NIC's multicast filter must pass 01:00:5e:00:00:12 (no IP socket joins it).
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack(
            "=iHH8s", self.ifindex, PACKET_MR_MULTICAST, 6, VRRP_GROUP_MAC))
        super().__init__(loop, sock, primary, on_datagram)

    def _receive(self) -> bytes | None:
        frame, address = self.sock.recvfrom(2048)
        header_length = (frame[14] & 0x0F) * 4 if len(frame) > 14 else 0
        if address[2] == PACKET_OUTGOING or checksum(frame[14:14 + header_length]) != 0:
            return None  # our own, or an IPv4 header the kernel would have dropped
        return frame[14:]

    def _send(self, advertisement: Advertisement) -> None:
        self.sock.send(advertisement_frame(advertisement, self.primary,
                                           self.source_mac(advertisement.vrid)))

    def source_mac(self, vrid: int) -> bytes:
        """The group's virtual MAC when its interface exists on this host, else ours."""
        try:
            socket.if_nametoindex(virtual_mac_interface_name(self.ifindex, vrid))
        except OSError:
            return self.mac
        return virtual_router_mac(vrid)


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


def _our_virtual_mac_interfaces(nl: Rtnetlink, lower: int) -> list[netlink.Link]:
    return [link for link in netlink.parse_links(nl.dump(netlink.link_dump_request))
            if link.lower == lower and link.kind == "macvlan"
            and (link.alias or "").startswith(VIRTUAL_MAC_ALIAS)]


def remove_leftovers(linux_names: Iterable[str]) -> list[str]:
    """Delete every virtual-MAC interface this program made on these interfaces.

    For the start of a device, before any group runs: a previous run that
    crashed as master left them, with their addresses, behind.  Returns
    the names deleted.
    """
    deleted = []
    try:
        with Rtnetlink() as nl:
            for linux_name in sorted(set(linux_names)):
                try:
                    lower = socket.if_nametoindex(linux_name)
                except OSError:
                    continue
                for link in _our_virtual_mac_interfaces(nl, lower):
                    if nl.request(netlink.delete_link_request, link.index) == 0:
                        deleted.append(link.name or str(link.index))
    except OSError as error:
        log.warning("looking for virtual MAC interfaces left behind: %s", error)
    for name in deleted:
        log.info("removed %s, left behind by a previous run", name)
    return deleted


class VirtualAddresses:
    """One group's virtual IPs on its interface: held while master, announced, answered for.

    ``add(addresses, virtual_mac)`` when the group becomes master (or gains
    addresses, or its virtual-MAC setting changes: the held addresses then
    move), ``remove(addresses)`` when it stops being master (or loses
    addresses), ``close()`` when the group goes or the device stops.  The
    virtual-MAC interface is made by the first ``add`` that needs it and
    kept, empty, while the group is backup (as keepalived keeps its
    ``use_vmac`` interface): deleting a link costs the kernel tens of
    milliseconds, which a takeover must not wait for; ``close()`` deletes it.
    ``remove`` also clears what a previous run left on the interface (the
    addresses, wherever they are under it).  The interface's own address is
    never added or removed (an address owner's virtual IP is its interface
    address).
    """

    def __init__(self, linux_name: str, interface_address: IPv4Interface) -> None:
        self.linux_name = linux_name
        self.prefix_length = interface_address.network.prefixlen
        self.own_address = int(interface_address.ip)
        self.held: set[int] = set()
        self.virtual_mac: bytes | None = None  # what answers for the held addresses
        self._where: dict[int, tuple[int, int]] = {}  # address -> (ifindex, prefix length)
        self._virtual_index: int | None = None  # the virtual-MAC interface we made
        self._sock: socket.socket | None = None  # ARP in and out
        self._loop: asyncio.AbstractEventLoop | None = None
        self._answered_claim: dict[int, float] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    # --- the shell's calls ---

    def add(self, addresses: Iterable[int], virtual_mac: bytes | None = None) -> None:
        """Hold ``addresses`` too, answered for with ``virtual_mac`` (None: the interface's
        MAC), and announce them; a different ``virtual_mac`` moves every held address."""
        new = set(addresses) - self.held - {self.own_address}
        if virtual_mac != self.virtual_mac:
            moving = set(self.held)
            self.remove(moving)
            self._delete_virtual_interface()
            new |= moving
        self.virtual_mac = virtual_mac
        for address in sorted(set(addresses) & self.held - new):
            self.announce(address)  # held already: announced again (another master was heard)
        if not new:
            return
        try:
            with Rtnetlink() as nl:
                home, prefix = self._home(nl)
                if home is None and self.virtual_mac is not None:
                    log.warning("no virtual MAC on %s: its interface's MAC answers for %s",
                                self.linux_name, _addresses(new))
                    self.virtual_mac = None
                    home, prefix = self._home(nl)
                for address in sorted(new):
                    if self._change(nl, True, home, address, prefix):
                        self.held.add(address)
                        self._where[address] = (home, prefix)
        except OSError as error:
            log.warning("adding %s on %s: %s", _addresses(new), self.linux_name, error)
        self._open_arp()
        for address in sorted(new & self.held):
            self.announce(address)
            self._later(ANNOUNCE_AGAIN, self._announce_if_held, address)

    def remove(self, addresses: Iterable[int]) -> None:
        """Stop holding ``addresses``: off the interface, or off the virtual-MAC one."""
        leaving = set(addresses) - {self.own_address}
        self.held -= leaving
        if not self.held:
            self._cancel_timers()
        if not leaving:
            return
        try:
            with Rtnetlink() as nl:
                known = {a: self._where.pop(a) for a in leaving if a in self._where}
                if len(known) < len(leaving):  # not added by us: wherever a previous run put it
                    known.update(self._found(nl, leaving - set(known)))
                for address, (index, prefix) in sorted(known.items()):
                    self._change(nl, False, index, address, prefix)
        except OSError as error:
            log.warning("removing %s from %s: %s", _addresses(leaving), self.linux_name, error)

    def close(self) -> None:
        """Stop answering ARP and delete the virtual-MAC interface (the shell removes the
        addresses first, when the group stops)."""
        self._close_arp()
        self._delete_virtual_interface()

    def announce(self, address: int) -> None:
        """A gratuitous ARP for one held address, from the MAC that answers for it."""
        self._open_arp()
        try:
            mac = self.virtual_mac or interface_mac(self.linux_name)
            if self._sock is not None:
                self._sock.send(gratuitous_arp(mac, address))
        except OSError as error:
            log.warning("gratuitous ARP for %s on %s failed: %s", IPv4Address(address),
                        self.linux_name, error)

    # --- where the addresses live ---

    def _home(self, nl: Rtnetlink) -> tuple[int | None, int]:
        """The interface index the addresses go on, and their prefix length."""
        lower = socket.if_nametoindex(self.linux_name)
        if self.virtual_mac is None:
            return lower, self.prefix_length
        vrid = self.virtual_mac[-1]
        name = virtual_mac_interface_name(lower, vrid)
        try:
            self._virtual_index = socket.if_nametoindex(name)
            return self._virtual_index, 32
        except OSError:
            pass
        # Before the virtual IPs exist anywhere, the interface under them must neither
        # answer ARP for them (arp_ignore 1: only for its own addresses) nor ask from
        # them (arp_announce 2: its own address as the sender of its requests), or a
        # host would bind a virtual IP to the interface's MAC.
        for setting, value in (("arp_ignore", 1), ("arp_announce", 2)):
            path = f"net/ipv4/conf/{self.linux_name}/{setting}"
            if (get_sysctl(path) or 0) < value:
                self._sysctl(path, value)
        if not self._check(nl.request(netlink.macvlan_request, name, lower, self.virtual_mac),
                           f"creating {name}"):
            return None, 32
        index = self._virtual_index = socket.if_nametoindex(name)
        if Path(f"/proc/sys/net/ipv6/conf/{name}").exists():  # not where IPv6 is off
            self._sysctl(f"net/ipv6/conf/{name}/disable_ipv6", 1)  # no link-local, NDP, MLD
        # What arrives here is answered through the LAN interface: no reverse-path check.
        self._sysctl(f"net/ipv4/conf/{name}/rp_filter", 0)
        if get_sysctl("net/ipv4/conf/all/rp_filter") == 1:
            log.warning("net.ipv4.conf.all.rp_filter is 1 (strict): what the LAN sends to the"
                        " virtual MAC is dropped; set it to 0 or 2 (loose)")
        self._check(nl.request(netlink.link_up_request, index,
                               f"{VIRTUAL_MAC_ALIAS} {vrid} on {self.linux_name}"),
                    f"setting {name} up")
        return index, 32

    def _found(self, nl: Rtnetlink, addresses: set[int]) -> dict[int, tuple[int, int]]:
        """Where the kernel has these addresses: on the interface or a virtual-MAC one."""
        lower = socket.if_nametoindex(self.linux_name)
        prefixes = {lower: self.prefix_length}
        prefixes.update((link.index, 32) for link in _our_virtual_mac_interfaces(nl, lower))
        return {address: (index, prefixes[index]) for index, address in
                netlink.parse_addresses(nl.dump(netlink.address_dump_request))
                if index in prefixes and address in addresses}

    def _delete_virtual_interface(self) -> None:
        if self._virtual_index is None:
            return
        index, self._virtual_index = self._virtual_index, None
        try:
            with Rtnetlink() as nl:
                error = nl.request(netlink.delete_link_request, index)
        except OSError as failure:
            error = failure.errno or 0
        if error not in (0, errno.ENODEV):
            self._check(error, "deleting the virtual MAC interface")

    def _change(self, nl: Rtnetlink, add: bool, index: int, address: int, prefix: int) -> bool:
        error = nl.request(netlink.address_request, add, index, address, prefix)
        # Already there (add) or already gone (delete): the state we wanted.
        fine = {0, errno.EEXIST} if add else {0, errno.EADDRNOTAVAIL, errno.ENOENT}
        return error in fine or self._check(error, f"{'adding' if add else 'removing'} "
                                                   f"{IPv4Address(address)}")

    def _check(self, error: int, what: str) -> bool:
        if error:
            log.warning("%s on %s: %s", what, self.linux_name, os.strerror(error))
        return not error

    def _sysctl(self, path: str, value: int) -> None:
        problem = set_sysctl(path, value)
        if problem is not None:
            log.warning("setting %s to %d: %s", path, value, problem)

    # --- ARP: answering, announcing, noticing claims ---

    def _open_arp(self) -> None:
        if self._sock is not None:
            return
        try:
            self._sock = packet_tap(self.linux_name, BPF_ARP)
        except OSError as error:
            log.warning("no ARP socket on %s: %s", self.linux_name, error)
            return
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # not on an event loop (a script): announce only
        if self._loop is not None:
            self._loop.add_reader(self._sock.fileno(), self._read_arp)

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _close_arp(self) -> None:
        """Closing a packet socket waits for the kernel (synchronize_net, 5-20 ms here):
        only when the group goes, never on a takeover; a backup's reader ignores all."""
        self._cancel_timers()
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _read_arp(self) -> None:
        for _ in range(64):
            try:
                frame, address = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                log.warning("ARP receive on %s failed: %s", self.linux_name, error)
                return
            arp = parse_arp(frame)
            if arp is None or address[2] == PACKET_OUTGOING:
                continue
            action = arp_action(arp, self.held, self.virtual_mac is not None)
            if action is None:
                continue
            kind, held_address = action
            if kind == "answer":
                self._answer(arp)
            elif self._loop.time() >= self._answered_claim.get(held_address, float("-inf")):
                self._answered_claim[held_address] = self._loop.time() + CLAIM_HOLD_OFF
                log.info("%s claimed %s on %s: announcing it", _mac(arp.sender_mac),
                         IPv4Address(held_address), self.linux_name)
                # After the rest of this loop pass: an advertisement read in the same
                # pass may make this group give the address up first.
                self._later(0.0, self._announce_if_held, held_address)

    def _answer(self, request: Arp) -> None:
        reply = Arp(ARP_REPLY, self.virtual_mac, request.target_ip, request.sender_mac,
                    request.sender_ip)
        try:
            self._sock.send(arp_frame(reply, request.sender_mac))
        except OSError as error:
            log.warning("ARP reply for %s on %s failed: %s", IPv4Address(request.target_ip),
                        self.linux_name, error)

    def _announce_if_held(self, address: int) -> None:
        if address in self.held:
            self.announce(address)

    def _later(self, delay: float, callback: Callable, *args) -> None:
        """Call back on the loop after ``delay`` unless the ARP side closes first."""
        if self._loop is None:
            return

        def run() -> None:
            self._timers.discard(handle)
            callback(*args)
        handle = self._loop.call_later(delay, run)
        self._timers.add(handle)


class NoVirtualAddresses:
    """For the emulated LAN: the virtual IPs exist only in the advertisements."""

    def add(self, addresses: Iterable[int], virtual_mac: bytes | None = None) -> None:
        pass

    def remove(self, addresses: Iterable[int]) -> None:
        pass

    def close(self) -> None:
        pass


def _addresses(addresses: Iterable[int]) -> str:
    return ", ".join(str(IPv4Address(a)) for a in sorted(addresses))


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
