"""DHCP sockets for the asyncio shell: UDP port 67 and AF_PACKET per LAN.

Two kinds of socket, each handling its own half of the traffic so that no
request is answered twice:

* a UDP socket bound to port 67 takes relayed requests (giaddr set) and
  unicast requests that arrive on an interface without a raw socket (a
  renewal from a client behind a relay); IP_PKTINFO tells which interface
  and which destination address;
* an AF_PACKET socket on each interface with the DHCP server enabled takes
  the requests of directly attached clients (giaddr zero), broadcast or
  unicast, and sends their replies as Ethernet frames, to chaddr or to the
  broadcast address, before the client has an address (Kea's raw mode).
  A classic BPF filter in the kernel passes only IPv4 UDP to port 67 with
  giaddr zero, so relayed traffic costs nothing there.

Each socket is drained in one reader callback (up to ``BATCH`` datagrams),
and the whole batch goes to ``on_batch``: the device then commits once and
sends, so group commit needs no timer.  Under load a socket is read at most
once per ``READ_HOLD`` (``ReadPacer``: adaptive interrupt moderation, as a
NIC's rx-usecs): each wake-up of the process, journal append and send call
then serves what arrived in the meantime, not one or two datagrams.  A read
that finds nothing, or a rate that falls, ends the hold.

Where the optional C helper is built (``nefeature/dhcp/_batchio.c``), the UDP
socket is drained with recvmmsg(2), 64 datagrams and their IP_PKTINFO a system
call, and an empty queue costs no exception, a turn's replies leave with
sendmmsg(2), and the hold is timed by a timerfd(2); otherwise with
``socket.recvmsg`` and ``socket.sendmsg``, one datagram a call, and the event
loop's timer (whole milliseconds).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import struct
import time
from collections.abc import Callable

from nefeature.dhcp.server import BROADCAST, CLIENT_PORT, SERVER_PORT, Received, Reply
from nefeature.inet import attach_filter, checksum, interface_mac
from nefeature.vrrp.transport import lan_interface_of

log = logging.getLogger(__name__)

try:  # the optional C helper (nefeature.tools.build_helpers)
    from nefeature.dhcp import _batchio
except ImportError:
    _batchio = None

BATCH = 256
RECEIVE_AT_ONCE = 64  # datagrams per recvmmsg with the C helper
IP_PKTINFO = 8  # Linux <netinet/in.h>; not exported by the socket module in 3.11
SO_RCVBUFFORCE = 33
ETH_P_IP = 0x0800
PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
RECEIVE_BUFFER = 4 * 1024 * 1024
IPPROTO_IP = socket.IPPROTO_IP
BROADCAST_BYTES = b"\xff\xff\xff\xff"
NO_GIADDR = b"\x00\x00\x00\x00"

# tcpdump -dd 'ip and udp dst port 67 and udp[32:4] = 0' for Ethernet, i.e. IPv4,
# UDP, not a fragment, destination port 67, giaddr (UDP payload offset 24) zero.
BPF_DIRECT_DHCP = [
    (0x28, 0, 0, 12),          # ldh [12]            ethertype
    (0x15, 0, 10, 0x0800),     # jeq IPv4 else drop
    (0x30, 0, 0, 23),          # ldb [23]            IP protocol
    (0x15, 0, 8, 17),          # jeq UDP else drop
    (0x28, 0, 0, 20),          # ldh [20]            flags + fragment offset
    (0x45, 6, 0, 0x1FFF),      # jset fragment -> drop
    (0xB1, 0, 0, 14),          # ldxb 4*([14]&0xf)   IP header length
    (0x48, 0, 0, 16),          # ldh [x+16]          UDP destination port
    (0x15, 0, 3, SERVER_PORT),  # jeq 67 else drop
    (0x40, 0, 0, 46),          # ld [x+46]           giaddr (14 + 8 + 24)
    (0x15, 0, 1, 0),           # jeq 0 else drop
    (0x06, 0, 0, 0x40000),     # ret accept
    (0x06, 0, 0, 0),           # ret drop
]


#: Under load (HOLD_FROM_RATE datagrams a second or more on a socket, counted over
#: RATE_WINDOW) the socket is read at most once per READ_HOLD, counted from the start of
#: the read before.  Each wake-up costs far more than a datagram's DHCP work (cold caches
#: after perfdhcp, the scheduler), so fewer of them is most of what a busy server can save:
#: at its best rate under bench/dhcp_throughput, 32.3 µs of CPU per DORA with 0.75 ms
#: against 36.1 with 0.5, for a REQUEST->ACK p50 of 0.85 ms against 0.58 (bench/README.md,
#: "Reading a busy socket less often" and "A C decoder, and a longer hold at the knee").
#: 2,000 DORA/s (4,000 datagrams) is below the rate, so nothing waits there.
READ_HOLD = 0.00075
HOLD_FROM_RATE = 6000
RATE_WINDOW = 0.01


class ReadPacer:
    """When a socket is next read: as soon as it is readable, or ``hold`` after the last read
    started.

    Sans-IO: the caller says when a read started and how many datagrams it found, and gets
    the time of the next read back (None: when the socket is readable).  The rate is counted
    over windows of ``window`` seconds; a window at ``from_rate`` or more starts a hold
    that lasts while the windows stay there, and a read that finds nothing ends it at once
    (the load is gone, and the next datagram should not wait).  Counting the hold from the
    start of a read bounds the wait: a read, the batch's answers and the hold take
    ``hold`` together, unless the answers alone take longer."""

    def __init__(self, hold: float = READ_HOLD, from_rate: float = HOLD_FROM_RATE,
                 window: float = RATE_WINDOW) -> None:
        self.hold, self._from_rate, self._window = hold, from_rate, window
        self.holding = False
        self._window_start: float | None = None
        self._count = 0

    def after_read(self, now: float, count: int) -> float | None:
        if self._window_start is None:
            self._window_start = now
        self._count += count
        elapsed = now - self._window_start
        if elapsed >= self._window:
            self.holding = self._count >= self._from_rate * elapsed
            self._window_start, self._count = now, 0
        if not count:
            self.holding = False
        return now + self.hold if self.holding else None


class PacedReader:
    """A socket's reader callback on the event loop, paced by a :class:`ReadPacer`.

    ``read`` drains the socket and returns how many datagrams it took.  During a hold the
    socket is not watched; a timerfd from the C helper (or, without it, the loop's own
    timer) calls ``read`` when the hold is over."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, read: Callable[[], int],
                 pacer: ReadPacer | None = None) -> None:
        self._loop, self._fd, self._read = loop, fd, read
        self.pacer = pacer or ReadPacer()
        self._watching = True
        self._hold_handle: asyncio.TimerHandle | None = None
        self._timer_fd: int | None = None
        if _batchio is not None and hasattr(_batchio, "timer_open"):
            try:
                self._timer_fd = _batchio.timer_open()
            except OSError as error:  # out of descriptors: the loop's timer will do
                log.warning("no timerfd for a DHCP socket's read hold (%s)", error)
            else:
                loop.add_reader(self._timer_fd, self._on_readable)
        loop.add_reader(fd, self._on_readable)

    def _on_readable(self) -> None:
        self._hold_handle = None
        started = time.monotonic()  # not loop.time(): uvloop's is the turn's, in whole ms
        count = 0
        try:
            count = self._read()
        finally:  # an error in the batch's handling must not leave the socket unwatched
            self._pace(started, count)

    def _pace(self, started: float, count: int) -> None:
        resume_at = self.pacer.after_read(started, count)
        wait = 0.0 if resume_at is None else resume_at - time.monotonic()
        if wait <= 0:
            if not self._watching:
                if self._timer_fd is not None:
                    _batchio.timer_arm(self._timer_fd, 0)  # collect an expiry not read
                self._loop.add_reader(self._fd, self._on_readable)
                self._watching = True
            return
        if self._watching:
            self._loop.remove_reader(self._fd)
            self._watching = False
        if self._timer_fd is not None:
            _batchio.timer_arm(self._timer_fd, wait)
        else:
            self._hold_handle = self._loop.call_later(wait, self._on_readable)

    def close(self) -> None:
        if self._hold_handle is not None:
            self._hold_handle.cancel()
        if self._watching:
            self._loop.remove_reader(self._fd)
        if self._timer_fd is not None:
            self._loop.remove_reader(self._timer_fd)
            os.close(self._timer_fd)
            self._timer_fd = None


def ipv4_udp_frame(source_mac: bytes, reply: Reply) -> bytes:
    """Ethernet + IPv4 + UDP (port 67 -> 68) around a reply, checksums included."""
    udp_length = 8 + len(reply.data)
    source, destination = struct.pack("!I", reply.source), struct.pack("!I", reply.address)
    ip_header = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + udp_length, 0, 0, 64, 17, 0,
                            source, destination)
    ip_header = ip_header[:10] + struct.pack("!H", checksum(ip_header)) + ip_header[12:]
    udp_header = struct.pack("!HHHH", SERVER_PORT, reply.port, udp_length, 0)
    pseudo = source + destination + struct.pack("!BBH", 0, 17, udp_length)
    udp_checksum = checksum(pseudo + udp_header + reply.data) or 0xFFFF
    udp_header = udp_header[:6] + struct.pack("!H", udp_checksum)
    return reply.mac + source_mac + b"\x08\x00" + ip_header + udp_header + reply.data


class DhcpSockets:
    """Opens the sockets, feeds batches of :class:`Received`, sends :class:`Reply`."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 on_batch: Callable[[list[Received]], None],
                 direct_interfaces: list[str], listen_address: str = "0.0.0.0",
                 port: int = SERVER_PORT) -> None:
        self._on_batch = on_batch
        self._raw: dict[str, tuple[socket.socket, bytes]] = {}
        self._interface_names: dict[int, str] = {}
        self._pktinfo: dict[int, list] = {}  # source address -> the IP_PKTINFO to send with
        self._destinations: dict[tuple[int, int], tuple[str, int]] = {}
        # recvmmsg and sendmmsg through the C helper where it is built (a build older
        # than one of them goes without it), else socket.recvmsg and socket.sendmsg
        self.receive_many = getattr(_batchio, "receive_batch", None)
        self.send_many = getattr(_batchio, "send_batch", None)
        self.udp = self._open_udp(listen_address, port)
        self._readers = [PacedReader(loop, self.udp.fileno(), self._read_udp)]
        for name in direct_interfaces:
            try:
                raw = self._open_raw(name)
            except OSError as error:
                log.error("no raw socket on %s (%s): directly attached clients there get no"
                          " answer", name, error)
                continue
            self._raw[name] = (raw, interface_mac(name))
            self._readers.append(PacedReader(loop, raw.fileno(),
                                             functools.partial(self._read_raw, name, raw)))

    @staticmethod
    def _open_udp(address: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        _grow_receive_buffer(sock)
        sock.bind((address, port))
        sock.setblocking(False)
        return sock

    @staticmethod
    def _open_raw(name: str) -> socket.socket:
        # Protocol 0 receives nothing until bind(), so no frame slips past the filter.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        attach_filter(sock, BPF_DIRECT_DHCP)
        _grow_receive_buffer(sock)
        sock.bind((name, ETH_P_IP))
        sock.setblocking(False)
        return sock

    def _read_udp(self) -> int:
        """Read what is waiting (up to BATCH datagrams); returns how many were read."""
        batch: list[Received] = []
        read = 0
        if self.receive_many is not None:  # recvmmsg: up to 64 datagrams a system call
            receive_many, fd = self.receive_many, self.udp.fileno()
            while len(batch) < BATCH:
                try:
                    datagrams = receive_many(fd, RECEIVE_AT_ONCE)
                except OSError as error:
                    log.warning("UDP receive failed: %s", error)
                    break
                read += len(datagrams)
                for data, ifindex, destination in datagrams:
                    self._take_udp(batch, data, ifindex, destination)
                if len(datagrams) < RECEIVE_AT_ONCE:
                    break
        else:
            receive = self.udp.recvmsg
            for _ in range(BATCH):
                try:
                    data, ancillary, _flags, _source = receive(4096, 64)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as error:
                    log.warning("UDP receive failed: %s", error)
                    break
                read += 1
                ifindex, destination = 0, BROADCAST_BYTES
                for level, kind, value in ancillary:
                    if level == IPPROTO_IP and kind == IP_PKTINFO:
                        ifindex, _spec_dst, destination = PKTINFO.unpack_from(value)
                self._take_udp(batch, data, ifindex, destination)
        if batch:
            self._on_batch(batch)
        return read

    def _take_udp(self, batch: list[Received], data: bytes, ifindex: int,
                  destination: bytes) -> None:
        """A datagram from the UDP socket joins the batch, unless its raw socket has it."""
        interface = self._interface_names.get(ifindex)
        if interface is None and ifindex:
            interface = self._interface_name(ifindex)  # a virtual-MAC one: its LAN's
        if interface in self._raw and (len(data) < 28 or data.startswith(NO_GIADDR, 24)):
            return  # a direct client: its raw socket has the same packet
        batch.append(Received(data, interface, destination != BROADCAST_BYTES))

    def _interface_name(self, ifindex: int) -> str | None:
        """ifindex -> name, looked up once (an ioctl per datagram would cost more than
        the DHCP logic).  A VRRP virtual-MAC interface stands for the LAN under it:
        a unicast to the virtual MAC arrives on it, and the raw socket of the LAN
        sees the same frame."""
        try:
            name = lan_interface_of(socket.if_indextoname(ifindex))
        except OSError:
            return None
        self._interface_names[ifindex] = name
        return name

    def _read_raw(self, name: str, sock: socket.socket) -> int:
        batch: list[Received] = []
        read = 0
        for _ in range(BATCH):
            try:
                frame = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                log.warning("raw receive on %s failed: %s", name, error)
                break
            read += 1
            if len(frame) < 42:
                continue
            header_length = (frame[14] & 0x0F) * 4
            total_length = struct.unpack_from("!H", frame, 16)[0]
            payload = frame[14 + header_length + 8: 14 + total_length]
            unicast = frame[0] & 1 == 0 and frame[30:34] != b"\xff\xff\xff\xff"
            batch.append(Received(payload, name, unicast))
        if batch:
            self._on_batch(batch)
        return read

    def send(self, replies: list[Reply]) -> None:
        """Send a turn's replies: a direct client's as a frame on its raw socket, the
        others on the UDP socket, from their server identifier (the VRRP virtual IP in a
        pair), with sendmmsg where the C helper is built."""
        by_udp = []
        for reply in replies:
            raw = self._raw.get(reply.interface) if reply.interface else None
            if raw is not None and reply.mac is not None:
                sock, mac = raw
                try:
                    sock.send(ipv4_udp_frame(mac, reply))
                except OSError as error:
                    _not_sent(reply, error)
            else:
                by_udp.append(reply)
        if not by_udp:
            return
        if self.send_many is not None:
            for index, error in self.send_many(self.udp.fileno(), by_udp):
                _not_sent(by_udp[index], OSError(error, os.strerror(error)))
            return
        for reply in by_udp:
            try:
                self._send_udp(reply)
            except OSError as error:
                _not_sent(reply, error)

    def _send_udp(self, reply: Reply) -> None:
        destination = self._destinations.get((reply.address, reply.port))
        if destination is None:
            if len(self._destinations) > 65536:
                self._destinations.clear()
            destination = self._destinations[(reply.address, reply.port)] = (
                socket.inet_ntoa(reply.address.to_bytes(4, "big")), reply.port)
        if reply.address == BROADCAST or reply.port == CLIENT_PORT:
            self.udp.sendto(reply.data, destination)
            return
        pktinfo = self._pktinfo.get(reply.source)
        if pktinfo is None:
            pktinfo = self._pktinfo[reply.source] = [(socket.IPPROTO_IP, IP_PKTINFO, PKTINFO.pack(
                0, reply.source.to_bytes(4, "big"), b"\x00" * 4))]
        try:  # answer from the server identifier (the VRRP virtual IP in a pair)
            self.udp.sendmsg([reply.data], pktinfo, 0, destination)
        except OSError:
            self.udp.sendto(reply.data, destination)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers.clear()
        self.udp.close()
        for sock, _mac in self._raw.values():
            sock.close()
        self._raw.clear()


def _not_sent(reply: Reply, error: OSError) -> None:
    log.warning("could not send a reply to %s: %s",
                socket.inet_ntoa(struct.pack("!I", reply.address)), error)


def _grow_receive_buffer(sock: socket.socket) -> None:
    """A bigger receive buffer rides out a burst while a batch commits."""
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
            return
        except OSError:
            continue
