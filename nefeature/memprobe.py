"""Where a running device's memory goes: a JSON line every few seconds (issue 9, the soak).

Enabled by the environment of ``nefeature run`` (bench/soak ``--probe`` sets it)::

    NEFEATURE_MEMPROBE=/path/probe-{pid}.jsonl  the file to append to ({pid}: this process)
    NEFEATURE_MEMPROBE_INTERVAL=30              seconds between lines
    NEFEATURE_MEMPROBE_TRACEMALLOC=1            also trace Python allocations (slow) and
                                                write the lines that grew most

Each line has the process's resident memory split as /proc reports it
(anonymous, file-backed: the SQLite ``-shm`` wal-index is mapped from a
file), the glibc main-arena figures (in use vs. free: fragmentation),
SQLite's own heap, the lease journal's WAL and wal-index sizes, the Python
allocator's block count, and the length of every growing structure of the
engines.  Nothing here changes what the device does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _library(name: str):
    path = ctypes.util.find_library(name)
    try:
        return ctypes.CDLL(path) if path else None
    except OSError:
        return None


def proc_memory(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem in KiB from /proc/PID/status."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    result = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            result[key] = int(value.split()[0])
    return result


#: Structures that could grow with traffic, and how long each is.
SIZES = {
    "leases": lambda device: len(device.dhcp.table.by_address),
    "clients": lambda device: len(device.dhcp.table.by_client),
    "deadlines": lambda device: len(device.dhcp.table._deadlines),
    "pending": lambda device: len(device.dhcp.table.pending),
    "limiter": lambda device: len(device.dhcp._client_limiter._buckets),
    "recycled": lambda device: sum(len(q) for p in device.dhcp.pools.values() for q in p.addresses._recycled.values()),
    "acked_expiry": lambda device: len(device.dhcp.peer_expiry),
    "in_flight": lambda device: sum(len(v) for v in device.backup._in_flight.values()),
    "parked": lambda device: sum(map(len, device.core._gate.values())),
    "unacked": lambda device: sum(c.pending for c in device.backup.channels.values()),
    "events": lambda device: len(device.recent_events),
    "after_commit": lambda device: sum(map(len, device.core._gate.values())),
}


def _size(device, length) -> int | None:
    try:
        return length(device)
    except (AttributeError, TypeError):
        return None  # the structure changed shape; the probe must not stop the device


class MemoryProbe:
    """Appends one JSON line of memory figures of ``device`` per ``interval`` seconds."""

    def __init__(self, device, path: str | Path, interval: float = 30.0,
                 trace: bool = False) -> None:
        self.device = device
        self.path = Path(path)
        self.interval = interval
        self.trace = trace
        self.started = time.monotonic()
        self._libc = _library("c")
        if self._libc is not None and hasattr(self._libc, "mallinfo2"):
            self._libc.mallinfo2.restype = _MallInfo2
        self._sqlite = _library("sqlite3")
        if self._sqlite is not None:
            self._sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        self._first = None
        if trace:
            tracemalloc.start(8)

    def start(self, loop) -> None:
        self._loop = loop
        loop.call_later(self.interval, self._tick)

    def _tick(self) -> None:
        try:
            self.write()
        finally:
            self._loop.call_later(self.interval, self._tick)

    def sample(self) -> dict:
        device = self.device
        line: dict = {"t": round(time.monotonic() - self.started, 1)}
        line.update(proc_memory())
        if self._libc is not None and hasattr(self._libc, "mallinfo2"):
            info = self._libc.mallinfo2()
            line["malloc"] = {"arena": info.arena, "in_use": info.uordblks,
                              "free": info.fordblks, "mmapped": info.hblkhd}
        if self._sqlite is not None:
            line["sqlite_heap"] = self._sqlite.sqlite3_memory_used()
        journal = Path(device.journal.path)
        for suffix in ("-wal", "-shm"):
            other = journal.with_name(journal.name + suffix)
            line["journal" + suffix] = other.stat().st_size if other.exists() else 0
        line["python_blocks"] = sys.getallocatedblocks()
        line["sizes"] = {name: _size(device, length) for name, length in SIZES.items()}
        if self.trace:
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)])
            line["traced"] = tracemalloc.get_traced_memory()[0]
            if self._first is None:
                self._first = snapshot
            else:
                line["grew"] = [str(stat) for stat in
                                snapshot.compare_to(self._first, "lineno")[:15]]
        return line

    def write(self) -> None:
        with self.path.open("a") as out:
            out.write(json.dumps(self.sample()) + "\n")


def from_environment(device) -> MemoryProbe | None:
    path = os.environ.get("NEFEATURE_MEMPROBE")
    if not path:
        return None
    return MemoryProbe(device, path.format(pid=os.getpid()), float(os.environ.get("NEFEATURE_MEMPROBE_INTERVAL", "30")),
                       os.environ.get("NEFEATURE_MEMPROBE_TRACEMALLOC") == "1")
