"""Does any DHCPACK leave before its lease row is in the local journal?  Read it off an strace.

The device runs under ``strace -ff -ttt -T -xx -s 65535 -y -e
trace=sendmmsg,sendmsg,sendto,write`` (:func:`strace_argv`); those system calls carry
everything that matters: a DHCP reply is one message of a ``sendmmsg`` on the UDP socket
(a turn's replies, each with IP_PKTINFO, where the C helper is built), a ``sendmsg`` (the
same without the helper) or a ``sendto`` (a plain UDP send, or an Ethernet frame on the
AF_PACKET socket of a directly attached LAN); a journal commit is one ``write`` of whole
records to the
journal's log (``leases.sqlite.log-N``, nefeature/dhcp/journal.py).  The backup
channel's TCP bytes and VRRP adverts are ``sendto`` too, and are ignored because they
are not BOOTP replies; SQLite's own writes (the log folded into the database, on the
journal's thread) are ``pwrite64`` and are not traced: the log is what makes a lease
durable.

What a trace yields (:func:`parse_trace`):

* DHCPACKs: the BOOTP payload of each send, and of each message a ``sendmmsg`` sent
  (its return value says how many, from the first) (RFC 2131 section 2: ``op`` 2,
  ``yiaddr``, ``chaddr``; RFC 2132 section 9.6: option 53 = 5), with the time the call
  was entered;
* lease rows: every write to a file descriptor whose path (``-y``) is a log file is
  decoded as the journal's records (``journal.read_records``: length, CRC-32, the rows).
  A row is (address, pool, client, hardware address, state, start, ...), ``start``
  being the transaction time of the lease.  A row version (address, hardware address,
  start) counts as in the journal when the write that holds it has returned (the call's
  entry time plus its ``-T`` duration).

The check (:func:`check`): an ACK for (yiaddr, chaddr) sent at time t is about the
newest bound version of that row whose start is at most t (the engine stamps ``start``
when it handles the REQUEST, before the reply exists).  It is a violation when that
version's write returned after t, or when no such version reached the log in the trace
at all.  The lag is t minus the write's return.  Times across threads compare soundly:
a thread stopped at a system call's exit cannot wake another one before strace has
recorded that exit.
"""

from __future__ import annotations

import statistics
import struct
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from nefeature.dhcp.journal import LOG_SUFFIX, read_records

TRACED_SYSCALLS = ("sendmmsg", "sendmsg", "sendto", "write")
IOV_BASE = 'iov_base="'  # where a sendmsg or sendmmsg message's buffer starts

BOOTREPLY = 2
DHCP_MAGIC = b"\x63\x82\x53\x63"
OPTION_MESSAGE_TYPE, OPTION_END, OPTION_PAD = 53, 255, 0
DHCPACK = 5
ETHERTYPE_IPV4 = b"\x08\x00"
UDP = 17
DHCP_SERVER_PORT = 67

LOG_FILE = ".sqlite" + LOG_SUFFIX  # leases.sqlite.log-N
# A row of the log (nefeature/dhcp/journal.py, COLUMNS)
ADDRESS, HARDWARE_ADDRESS, STATE, START = 0, 3, 4, 5
BOUND = "bound"


def strace_argv(pid: int, output_prefix: Path | str, strace: str = "strace") -> list[str]:
    """strace attached to ``pid`` and its threads (``-ff``: one file per thread,
    ``output_prefix.TID``, so no call is ever split into unfinished/resumed halves)."""
    return [strace, "-ff", "-ttt", "-T", "-xx", "-s", "65535", "-y",
            "-e", "trace=" + ",".join(TRACED_SYSCALLS), "-o", str(output_prefix), "-p", str(pid)]


# --- one line of the trace ---

@dataclass(slots=True)
class Call:
    time: float  # entered (strace -ttt)
    returned: float  # time + its -T duration
    name: str
    fd: int
    path: str  # what -y resolved the descriptor to
    data: bytes  # the buffer written or sent

    def excerpt(self) -> str:
        """The call as strace showed it, with the buffer's bytes left out."""
        return (f"{self.time:.6f} {self.name}({self.fd}<{self.path}>, <{len(self.data)} bytes>"
                f") <{self.returned - self.time:.6f}>")


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


def parse_line(line: str) -> list[Call]:
    """The successful sends and writes of one line of an ``-xx -y -T`` trace: one Call per
    datagram or write (a ``sendmmsg`` sends several), none for another line."""
    stamp, _, call = line.partition(" ")
    name, paren, rest = call.partition("(")
    if not paren or name not in TRACED_SYSCALLS or "<unfinished" in rest:
        return []
    result_at = rest.rfind(") = ")
    if result_at < 0:
        return []
    result = rest[result_at + 4:].split()
    if not result or not result[0].isdigit():
        return []  # a failed call (= -1 EAGAIN ...) sent or wrote nothing
    duration = float(result[-1].strip("<>")) if result[-1].startswith("<") else 0.0
    fd_text, _, rest = rest.partition("<")
    path_hex, _, args = rest.partition(">, ")
    time = float(stamp)
    path = _unhex(path_hex).decode(errors="replace")
    if name in ("sendmmsg", "sendmsg"):  # one iov a message; a sendmmsg's first ``result`` went
        sent = int(result[0]) if name == "sendmmsg" else 1
        buffers = [_quoted(args, start + len(IOV_BASE))
                   for start in _occurrences(args, IOV_BASE)][:sent]
    else:
        buffers = [_quoted(args, args.find('"') + 1)]
    return [Call(time, time + duration, name, int(fd_text), path, data) for data in buffers]


def _quoted(args: str, start: int) -> bytes:
    """The ``-xx`` string that starts at ``start`` (every byte escaped, so no quote
    inside it)."""
    return _unhex(args[start:args.find('"', start)])


def _occurrences(text: str, needle: str) -> Iterator[int]:
    start = text.find(needle)
    while start >= 0:
        yield start
        start = text.find(needle, start + 1)


# --- DHCP replies ---

def bootp_payload(data: bytes) -> bytes | None:
    """The BOOTP message in a UDP payload or in an IPv4/UDP Ethernet frame from port 67."""
    if len(data) >= 240 and data[0] == BOOTREPLY and data[236:240] == DHCP_MAGIC:
        return data
    if len(data) >= 14 + 20 + 8 + 240 and data[12:14] == ETHERTYPE_IPV4:
        ihl = (data[14] & 0x0F) * 4
        udp = 14 + ihl
        if data[23] == UDP and struct.unpack_from("!H", data, udp)[0] == DHCP_SERVER_PORT:
            return bootp_payload(data[udp + 8:])
    return None


def message_type(message: bytes) -> int | None:
    i = 240
    while i < len(message):
        code = message[i]
        if code == OPTION_END:
            return None
        if code == OPTION_PAD:
            i += 1
            continue
        if i + 1 >= len(message):
            return None
        length = message[i + 1]
        if code == OPTION_MESSAGE_TYPE and length >= 1:
            return message[i + 2]
        i += 2 + length
    return None


@dataclass(frozen=True, slots=True)
class Ack:
    time: float
    address: int  # yiaddr
    hardware_address: bytes  # chaddr, hlen bytes
    line: str


def dhcp_ack(call: Call) -> Ack | None:
    """The DHCPACK this send carries, if it carries one that binds an address."""
    message = bootp_payload(call.data)
    if message is None or message_type(message) != DHCPACK:
        return None
    address = int.from_bytes(message[16:20], "big")
    if address == 0:
        return None  # an ACK to DHCPINFORM binds nothing
    hlen = min(message[2], 16)
    hardware_address = bytes(message[28:28 + hlen])
    return Ack(call.time, address, hardware_address,
               f"{call.excerpt()}: DHCPACK yiaddr {IPv4Address(address)} chaddr "
               f"{hardware_address.hex(':')}")


# --- the whole trace ---

@dataclass
class Trace:
    acks: list[Ack] = field(default_factory=list)
    # (address, hardware address) -> {start: when the commit holding that bound version returned}
    committed: dict[tuple[int, bytes], dict[float, float]] = field(
        default_factory=lambda: defaultdict(dict))
    committed_line: dict[tuple[int, bytes, float], str] = field(default_factory=dict)
    log_writes: int = 0
    rows: int = 0
    replies: int = 0  # every DHCP reply sent (OFFERs, ACKs, NAKs)
    files: int = 0
    first: float | None = None
    last: float | None = None


def _log_write(trace: Trace, call: Call) -> None:
    """The rows of one commit: every bound one is in the journal once the write returned."""
    records, _whole = read_records(call.data)
    trace.log_writes += 1
    for rows, _deletes, _info in records:
        for row in rows:
            trace.rows += 1
            if row[STATE] != BOUND:
                continue
            key = (row[ADDRESS], bytes(row[HARDWARE_ADDRESS]))
            start = float(row[START])
            if start not in trace.committed[key]:
                trace.committed[key][start] = call.returned
                trace.committed_line[key + (start,)] = f"{call.excerpt()}: the log write"


def parse_trace(paths: Sequence[Path]) -> Trace:
    """Read the per-thread files of one ``strace -ff`` run."""
    trace = Trace(files=len(paths))
    for path in paths:
        for call in _calls(path):
            trace.first = call.time if trace.first is None else min(trace.first, call.time)
            trace.last = call.time if trace.last is None else max(trace.last, call.time)
            if call.name == "write":
                if LOG_FILE in call.path:
                    _log_write(trace, call)
                continue
            if bootp_payload(call.data) is not None:
                trace.replies += 1
            ack = dhcp_ack(call)
            if ack is not None:
                trace.acks.append(ack)
    trace.acks.sort(key=lambda ack: ack.time)
    return trace


def _calls(path: Path) -> Iterator[Call]:
    with open(path, errors="replace") as lines:
        for line in lines:
            yield from parse_line(line)


def trace_files(output_prefix: Path) -> list[Path]:
    return sorted(output_prefix.parent.glob(output_prefix.name + ".*"))


# --- the verdict ---

@dataclass
class Violation:
    address: str
    hardware_address: str
    ack_time: float
    row_committed: float | None  # None: never in the traced log writes
    ack_line: str
    row_line: str

    def describe(self) -> str:
        when = ("its row never reached the log in the trace" if self.row_committed is None
                else "its row's log write returned "
                     f"{1e3 * (self.row_committed - self.ack_time):.3f} ms later")
        return (f"DHCPACK {self.address} to {self.hardware_address} at {self.ack_time:.6f}:"
                f" {when}\n"
                f"  ack: {self.ack_line}\n  row: {self.row_line or '(none)'}")


@dataclass
class Report:
    acks: int
    acks_before_row: int
    lag_ms_p50: float | None
    lag_ms_p99: float | None
    lag_ms_min: float | None
    replies: int
    log_writes: int
    log_rows: int
    trace_seconds: float
    violations: list[Violation]

    def summary(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "violations"}
        out["violation_examples"] = [v.describe() for v in self.violations[:5]]
        return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def check(trace: Trace) -> Report:
    lags, violations = [], []
    for ack in trace.acks:
        versions = trace.committed.get((ack.address, ack.hardware_address), {})
        earlier = [start for start in versions if start <= ack.time]
        start = max(earlier) if earlier else None
        committed = versions[start] if start is not None else None
        if committed is None or committed > ack.time:
            violations.append(Violation(
                str(IPv4Address(ack.address)), ack.hardware_address.hex(":"), ack.time, committed,
                ack.line, trace.committed_line.get((ack.address, ack.hardware_address, start), "")))
        else:
            lags.append(1e3 * (ack.time - committed))
    span = (trace.last - trace.first) if trace.first is not None else 0.0
    return Report(len(trace.acks), len(violations), _percentile(lags, 50), _percentile(lags, 99),
                  min(lags) if lags else None, trace.replies, trace.log_writes, trace.rows,
                  span, violations)
