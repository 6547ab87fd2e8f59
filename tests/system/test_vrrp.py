"""VRRPv3 hot backup in network namespaces: nefeature against itself and against keepalived.

Topology (one per test, every name with a random suffix, deleted at the end)::

        nfv-a-XXXX            nfv-sw-XXXX (bridge br0)            nfv-b-XXXX
    uplink0 <-> uplink0p     pa  pb  pc                           Vlanif100 10.10.10.2/24
    Vlanif100 10.10.10.1/24 --'   |   '-- lan0 10.10.10.50/24 (nfv-c-XXXX, the LAN observer)
                                  '-------------------------------'

* Router A (10.10.10.1) is examples/pair/deviceA.xml: priority 200, tracks
  GigabitEthernet0/1/2 = ``uplink0`` (a veth whose peer ``uplink0p`` is in the
  same namespace; ``ip link set uplink0p down`` takes its carrier away) with
  decrement 110.  Router B (10.10.10.2) is examples/pair/deviceB.xml, priority
  100.  Tests derive their configs from these by text replacement (advertise
  interval, priority, preempt hold-time) and check them with ``nefeature validate``.
* keepalived 2.2.7 plays either router as the interop peer (``vrrp_version 3``,
  ``track_interface { uplink0 weight -110 }`` for A).
* The observer namespace sniffs every VRRP advertisement on the LAN
  (AF_PACKET) and resolves the virtual IP the way a client does, so a test sees
  what the LAN sees: who advertises, with which priority, and whose MAC answers
  for 10.10.10.100.

The bridge, the namespaces, the processes and ``nefeature run`` come from
tests/system/netns.py (:class:`netns.Lan`, :class:`netns.Nefeature`).  Who is
master is read from the kernel: the virtual IP on ``Vlanif100``
(``ip -n NS -4 -o addr show dev Vlanif100``), polled every 15 ms up to a
deadline.  A crash is SIGSTOP then SIGKILL (for keepalived, of both its
processes first: its VRRP child treats the parent's death as a clean stop,
research/perf-reference.md section 6).

Timings are not what these tests check: every deadline is generous.  The one
timing used as evidence is in the SIGTERM test, where the priority-0 path
(Skew_Time, 0.61 s at a 1-s interval) and the Master_Down path (at least
2.61 s after the last advertisement) are seconds apart.

Needs root, iproute2 and keepalived; skips naming what is missing.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.system import netns
from tests.system.netns import (
    LAN_IF,
    PAIR,
    PYTHON,
    ROOT,
    START_TIMEOUT,
    STOP_GRACE,
    VIP,
    VIRTUAL_MAC,
    Nefeature,
    Process,
    explain_failure,
    ip_pool,
    logs_of,
    pair_device,
    replace_once,
    require_root,
    require_tool,
    run,
    stop_all,
    torn_down,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.system

OBSERVER = "C"  # the observer's label: namespace nfv-c-XXXX, bridge port pc
OBSERVER_IF = "lan0"
OBSERVER_ADDRESS = "10.10.10.50"
POLL = 0.015  # seconds between two looks at the virtual IP
MARGIN = 2.0  # seconds added to every protocol-derived deadline
# A rejoining nefeature device may preempt only after the batch backup from the
# master, or, with no backup channel, 10 s after its start (hotbackup.CHANNEL_GRACE).
PREEMPT_GATE = 10.0
CHANNEL_UP = "remote backup service1: protected: peer connected"
BATCH_RECEIVED = "batch backup of"
NETCONF_PORT = 830  # on each router namespace's loopback
NETCONF_PASSWORD = "nfv-test"
NETCONF_ARGS = ("--netconf", f"127.0.0.1:{NETCONF_PORT}", "--netconf-user", "admin",
                "--netconf-password", NETCONF_PASSWORD)


# --- prerequisites: the only reasons to skip ---

@pytest.fixture(scope="module")
def ip_tool() -> str:
    require_root("network namespaces, raw sockets")
    return require_tool("ip", "iproute2")


@pytest.fixture(scope="module")
def keepalived_tool(ip_tool: str) -> str:
    return require_tool("keepalived", "keepalived")


# --- small helpers ---

def interval_s(centiseconds: int) -> float:
    return centiseconds / 100


def master_down_s(centiseconds: int, priority: int) -> float:
    """RFC 5798 Master_Down_Interval (3 x interval + Skew_Time) in seconds."""
    skew = ((256 - priority) * centiseconds) // 256
    return (3 * centiseconds + skew) / 100


def skew_s(centiseconds: int, priority: int) -> float:
    return (((256 - priority) * centiseconds) // 256) / 100


def _pid_gone(pid: int) -> bool:
    """True once ``pid`` has exited (gone, or a zombie nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# --- the LAN ---

SNIFFER = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind((sys.argv[1], 0))
print("ready", flush=True)
while True:
    frame, addr = s.recvfrom(2048)
    ip = frame
    if len(ip) < 28 or ip[9] != 112:
        continue
    ihl = (ip[0] & 15) * 4
    v = ip[ihl:]
    print("%.6f %s %s ttl=%d ver=%d vrid=%d prio=%d int=%d n=%d" % (
        time.time(), ":".join("%02x" % b for b in addr[4][:6]), socket.inet_ntoa(ip[12:16]),
        ip[8], v[0] >> 4, v[1], v[2], struct.unpack("!H", v[4:6])[0] & 0xFFF, v[3]), flush=True)
"""

ARP_PROBE = r"""
import socket, sys, time
ifname, mine, target = sys.argv[1], socket.inet_aton(sys.argv[2]), socket.inet_aton(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
mac = open("/sys/class/net/%s/address" % ifname).read().strip()
mac = bytes.fromhex(mac.replace(":", ""))
s.send(b"\xff" * 6 + mac + b"\x08\x06" + bytes.fromhex("0001080006040001")
       + mac + mine + b"\x00" * 6 + target)
s.settimeout(0.05)
seen = []
end = time.time() + float(sys.argv[4])
while time.time() < end:
    try:
        frame = s.recv(2048)
    except socket.timeout:
        continue
    if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == target \
            and frame[38:42] == mine:  # an answer to this request, not to another program's
        seen.append(":".join("%02x" % b for b in frame[22:28]))
print(" ".join(sorted(seen)))
"""


class Lan(netns.Lan):
    """Routers A and B and an observer on one bridge, each in its own namespace."""

    def __init__(self, ip: str, workdir: Path) -> None:
        super().__init__(ip, workdir, "nfv", POLL)
        self.keepaliveds: list[Keepalived] = []
        self.sniffer: Process | None = None

    def build(self) -> None:
        super().build()
        self.attach(OBSERVER, OBSERVER_IF)
        self.addr(OBSERVER, f"{OBSERVER_ADDRESS}/24")
        self.sniffer = self.start(self.ns[OBSERVER], [sys.executable, "-u", "-c", SNIFFER,
                                                      OBSERVER_IF],
                                  self.dir / "sniffer.log", "VRRP sniffer")
        self.sniffer.wait_output("ready", 10, POLL)
        assert self.sniffer.running(), self.sniffer.output()

    # observation

    def adverts(self, since: float = 0.0) -> list[dict]:
        """VRRP advertisements the observer saw (wall-clock ``t``), oldest first."""
        result = []
        for line in self.sniffer.output().splitlines():
            fields = line.split()
            if len(fields) < 3 or fields[0] == "ready":
                continue
            entry = {"t": float(fields[0]), "mac": fields[1], "src": fields[2]}
            entry.update((k, int(v)) for k, v in (f.split("=") for f in fields[3:]))
            if entry["t"] >= since:
                result.append(entry)
        return result

    def advertisers(self, since: float, until: float | None = None) -> set[str]:
        """Sources of non-zero-priority advertisements in a time window."""
        return {a["src"] for a in self.adverts(since)
                if a["prio"] > 0 and (until is None or a["t"] <= until)}

    def arp_answers(self, seconds: float = 0.3, address: str = VIP) -> list[str]:
        """The MAC of each answer to one ARP request for ``address`` from the observer (two
        devices answering with one MAC count twice): the LAN's view."""
        out = run(self.exec_args(self.ns[OBSERVER], sys.executable, "-c", ARP_PROBE,
                                 OBSERVER_IF, OBSERVER_ADDRESS, address, str(seconds))).stdout
        return out.split()

    # teardown

    def close(self) -> list[str]:
        return stop_all(self.keepaliveds) + super().close()


@pytest.fixture
def lan(ip_tool: str, tmp_path: Path) -> Iterator[Lan]:
    with torn_down(Lan(ip_tool, tmp_path)) as built:
        built.build()
        yield built


# --- nefeature ---

def nefeature_config(path: Path, device: str, *, priority: int | None = None,
                     interval_cs: int | None = None, hold_time: int | None = None,
                     track: bool = True) -> Path:
    """examples/pair/device{A,B}.xml with some VRRP leaves changed (and A's tracking line
    gone without ``track``), validated."""
    text = (PAIR / f"device{device}.xml").read_text()
    if not track:
        start, end = text.index("          <track>"), text.index("</track>") + len("</track>\n")
        text = text[:start] + text[end:]
    extra = ""
    if interval_cs is not None:
        extra += f"<advertise-interval-centi-sec>{interval_cs}</advertise-interval-centi-sec>"
    if device == "A":
        if priority is not None:
            text = replace_once(text, "<priority>200</priority>",
                                f"<priority>{priority}</priority>")
        if hold_time is not None:
            text = replace_once(text, "<hold-time>600</hold-time>",
                                f"<hold-time>{hold_time}</hold-time>")
    else:
        if priority is not None:
            extra += f"<priority>{priority}</priority>"
        if hold_time is not None:
            extra += f"<preempt><hold-time>{hold_time}</hold-time></preempt>"
    text = replace_once(text, "<vrid>1</vrid>", "<vrid>1</vrid>" + extra)
    return write_config(path, text)


def start_nefeature(lan: Lan, label: str, config: Path) -> Nefeature:
    """``nefeature run`` in a router's namespace, on its state dir STATE-<label>, with
    NETCONF on the namespace's loopback (:func:`netconf_commit`, :func:`cli_commit`)."""
    router = Nefeature(lan, lan.ns[label], config, lan.dir / f"state-{label}", lan.dir,
                       f"nefeature {label}", NETCONF_ARGS)
    router.start()
    return router


# --- keepalived ---

class Keepalived:
    """keepalived (VRRP only, foreground) as a VRRPv3 router in one namespace."""

    def __init__(self, lan: Lan, label: str, tool: str, *, priority: int, interval_cs: int,
                 track_uplink: bool = False, use_vmac: bool = False) -> None:
        self.lan = lan
        self.label = label
        self.name = f"keepalived {label}"
        base = lan.dir / f"keepalived-{label}"
        self.conf = base.with_suffix(".conf")
        self.pidfile = base.with_suffix(".pid")
        self.vrrp_pidfile = Path(f"{base}-vrrp.pid")
        track = "  track_interface {\n    uplink0 weight -110\n  }\n" if track_uplink else ""
        track += "  use_vmac\n" if use_vmac else ""
        self.conf.write_text(
            "global_defs {\n"
            f"  router_id nfv-{label}\n"
            "  vrrp_version 3\n"
            "}\n"
            "vrrp_instance VI_1 {\n"
            "  state BACKUP\n"
            f"  interface {LAN_IF}\n"
            "  virtual_router_id 1\n"
            f"  priority {priority}\n"
            f"  advert_int {interval_cs / 100:g}\n"
            f"{track}"
            "  virtual_ipaddress {\n"
            f"    {VIP}/24\n"
            "  }\n"
            "}\n")
        check = run(lan.exec_args(lan.ns[label], tool, "-t", "-l", "-f", self.conf),
                    check=False)
        assert check.returncode == 0, f"keepalived -t {self.conf}:\n{check.stdout}{check.stderr}"
        self.process = lan.start(lan.ns[label], [
            tool, "-n", "-l", "-D", "-P", "-f", self.conf, "-p", self.pidfile,
            "-r", self.vrrp_pidfile, "-i", f"nfv-{label}"], base.with_suffix(".log"), self.name)
        lan.keepaliveds.append(self)
        self.vrrp_pid: int | None = None

    def wait_ready(self, timeout: float = 15.0) -> None:
        def child() -> int | None:
            assert self.process.running(), \
                f"{self.name} exited {self.process.popen.returncode}:\n{self.process.output()}"
            try:
                pid = int(self.vrrp_pidfile.read_text().strip())
            except (OSError, ValueError):
                return None
            return pid if not _pid_gone(pid) else None
        self.vrrp_pid = wait_for(child, timeout, f"{self.name}'s VRRP child", POLL)

    def crash(self) -> None:
        """SIGSTOP both processes, then SIGKILL both (perf-reference.md section 6)."""
        pids = [self.process.pid] + ([self.vrrp_pid] if self.vrrp_pid else [])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.process.popen.wait(STOP_GRACE)
        if self.vrrp_pid:
            wait_for(lambda: _pid_gone(self.vrrp_pid), STOP_GRACE, f"{self.name}'s VRRP child",
                     POLL)

    def stop(self) -> None:
        """Teardown: the main process by its PID, then the VRRP child if it outlived it."""
        self.process.stop()
        if self.vrrp_pid and not _pid_gone(self.vrrp_pid):
            os.kill(self.vrrp_pid, signal.SIGKILL)

    def output(self) -> str:
        return self.process.output()

    def logs(self) -> str:
        return self.process.logs()


# --- shared scenario steps ---

def settle(lan: Lan, master: str, backup: str, interval_cs: int, timeout: float,
           what: str) -> None:
    """Wait for ``master`` alone to hold the VIP, and check it stays so for 5 intervals."""
    lan.wait_holders({master}, timeout, what)
    start = time.time()
    lan.assert_steady({master}, max(0.5, 5 * interval_s(interval_cs)), what)
    seen = lan.advertisers(start)
    assert seen == {lan.address[master]}, \
        f"{what}: advertisers on the LAN {sorted(seen)}, expected only {lan.address[master]}"
    assert backup not in lan.holders()


def a_master_then_b(lan: Lan, interval: int, what: str,
                    a_config: Path | None = None) -> tuple[Nefeature, Nefeature]:
    """A (tracked uplink; by default preempt hold-time 0) alone becomes master, then B
    (no uplink) starts, and A must stay master (:func:`settle`, ``what``)."""
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", a_config or nefeature_config(
        lan.dir / "a.xml", "A", interval_cs=interval, hold_time=0))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    settle(lan, "A", "B", interval, MARGIN, what)
    return a, b


def nefeature_a_then_keepalived_b(lan: Lan, tool: str, interval: int, *, track: bool = True,
                                  priority_b: int = 100, use_vmac: bool = False
                                  ) -> tuple[Nefeature, Keepalived]:
    """nefeature A (hold-time 0) alone becomes master, then keepalived B joins, and A
    must stay master (:func:`settle`)."""
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0, track=track))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "nefeature A becomes master")
    k = Keepalived(lan, "B", tool, priority=priority_b, interval_cs=interval, use_vmac=use_vmac)
    k.wait_ready()
    with explain_failure(logs_of(a, k)):
        settle(lan, "A", "B", interval, MARGIN, "nefeature A stays master, keepalived B backs up")
    return a, k


def keepalived_a_then_nefeature_b(lan: Lan, tool: str, interval: int, *, priority_a: int = 200,
                                  track_uplink: bool = True, use_vmac: bool = False
                                  ) -> tuple[Keepalived, Nefeature]:
    """keepalived A alone becomes master, then nefeature B joins, and A must stay master."""
    lan.add_router("A", "10.10.10.1", uplink=track_uplink)
    lan.add_router("B", "10.10.10.2", uplink=False)
    k = Keepalived(lan, "A", tool, priority=priority_a, interval_cs=interval,
                   track_uplink=track_uplink, use_vmac=use_vmac)
    k.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, priority_a) + MARGIN + 3,
                     "keepalived A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    with explain_failure(logs_of(k, b)):
        settle(lan, "A", "B", interval, MARGIN, "keepalived A stays master, nefeature B backs up")
    return k, b


# --- (a) election ---

def test_higher_priority_is_elected(lan: Lan) -> None:
    """Both start together: A (200) becomes master and holds the VIP, B (100) does not."""
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    # hold-time 0: if B happens to come up first, A must still take over at once
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0))
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    a.wait_ready()
    b.wait_ready()
    with explain_failure(logs_of(a, b)):
        settle(lan, "A", "B", interval, master_down_s(interval, 100) + PREEMPT_GATE + MARGIN,
               "election of the priority-200 router")
    priorities = {x["prio"] for x in lan.adverts() if x["src"] == "10.10.10.1"}
    assert priorities == {200}, f"A advertised priorities {priorities}"
    a.assert_healthy()
    b.assert_healthy()


# --- (b) crash of the master ---

def test_backup_takes_over_when_master_crashes(lan: Lan) -> None:
    interval = 10
    a, b = a_master_then_b(lan, interval, "A stays master when B joins")
    lan.touch_vip(OBSERVER)
    lan.wait_neighbour(OBSERVER, "A", 5, "(A is master)")

    t0 = time.monotonic()
    a.process.crash()
    deadline = master_down_s(interval, 100) + MARGIN
    took = lan.wait_holders({"A", "B"}, deadline, "B takes over after A's crash",
                            logs_of(a, b)) - t0
    # A's process is gone but its kernel keeps the address it was given: only
    # the LAN's view can move.  B's gratuitous ARP must repoint the observer.
    lan.wait_neighbour(OBSERVER, "B", 5, "after A's crash")
    assert ("backup", "master", "no-response") in b.transitions(), b.output()
    assert took < deadline
    since = time.time()
    lan.assert_steady({"A", "B"}, 5 * interval_s(interval), "after the takeover")
    assert lan.advertisers(since) == {"10.10.10.2"}
    b.assert_healthy()


# --- (c) tracked uplink ---

def test_tracked_uplink_down_hands_over(lan: Lan) -> None:
    interval = 10
    a, b = a_master_then_b(lan, interval, "A master before the uplink fails")

    since = time.time()
    lan.link("A", "uplink0p", "down")
    lan.wait_holders({"B"}, master_down_s(interval, 100) + MARGIN,
                     "B master and A without the VIP after A's uplink went down", logs_of(a, b))
    # A advertised its reduced priority (200 - 110) before yielding
    assert any(x["src"] == "10.10.10.1" and x["prio"] == 90 for x in lan.adverts(since)), \
        lan.adverts(since)
    settle(lan, "B", "A", interval, 1, "B stays master while A's uplink is down")
    assert a.process.running() and b.process.running()
    assert ("master", "backup", "higher-priority-advertisement") in a.transitions(), a.output()
    a.assert_healthy()
    b.assert_healthy()


# --- (d) interop with keepalived ---

def b_takes_over_from_crashed_a(lan: Lan, interval: int, what: str, a, b) -> None:
    """B holds the VIP (A's kernel keeps it after the crash), is the only advertiser for
    5 intervals, and the observer's ARP entry for the VIP moves to B."""
    lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN, what, logs_of(a, b))
    since = time.time()
    lan.assert_steady({"A", "B"}, 5 * interval_s(interval), "after the takeover")
    assert lan.advertisers(since) == {"10.10.10.2"}
    lan.wait_neighbour(OBSERVER, "B", 5, "after the takeover")


def test_nefeature_takes_over_from_crashed_keepalived(lan: Lan, keepalived_tool: str) -> None:
    interval = 10
    k, b = keepalived_a_then_nefeature_b(lan, keepalived_tool, interval)
    assert b.transitions() == [("initialize", "backup", "startup")], b.output()

    lan.touch_vip(OBSERVER)
    k.crash()
    b_takes_over_from_crashed_a(lan, interval, "nefeature B takes over from the crashed"
                                " keepalived", k, b)
    b.assert_healthy()


def test_keepalived_takes_over_from_crashed_nefeature(lan: Lan, keepalived_tool: str) -> None:
    interval = 10
    a, k = nefeature_a_then_keepalived_b(lan, keepalived_tool, interval)
    lan.touch_vip(OBSERVER)
    a.process.crash()
    b_takes_over_from_crashed_a(lan, interval, "keepalived B takes over from the crashed"
                                " nefeature", a, k)
    a.assert_healthy()


# --- (e) equal priority: the higher primary address wins ---

def _tie(lan: Lan, start_a: Callable[[], object], start_b: Callable[[], object],
         interval: int) -> None:
    """Both routers come up on their own (both master), then meet on the LAN.

    Each router's port is up (Vlanif100 has carrier) but not yet in the
    bridge, so both reach Master at their own pace, whatever their start-up
    times; joining the ports puts two masters of equal priority on one LAN,
    where RFC 5798 6.4.3 says the one with the lower primary address yields.
    """
    lan.add_router("A", "10.10.10.1", joined=False)
    lan.add_router("B", "10.10.10.2", joined=False)
    a, b = start_a(), start_b()
    a.wait_ready()
    b.wait_ready()
    lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN + 3,
                     "both routers master while apart")
    lan.join("A")
    lan.join("B")
    with explain_failure(logs_of(a, b)):
        settle(lan, "B", "A", interval, master_down_s(interval, 100) + MARGIN,
               "equal priority: 10.10.10.2 wins over 10.10.10.1")
        lan.assert_steady({"B"}, 1.0, "equal priority, later")
    for router in (a, b):
        if isinstance(router, Nefeature):
            router.assert_healthy()


def _tie_nefeature(lan: Lan, label: str, interval: int) -> Callable[[], Nefeature]:
    """Starts nefeature as ``label`` at priority 100 (A: changed from 200, hold-time 0)."""
    changes = {"priority": 100, "hold_time": 0} if label == "A" else {}
    return lambda: start_nefeature(lan, label, nefeature_config(
        lan.dir / f"{label.lower()}.xml", label, interval_cs=interval, **changes))


def _tie_keepalived(lan: Lan, label: str, tool: str, interval: int) -> Callable[[], Keepalived]:
    """Starts keepalived as ``label`` at priority 100 and waits for its VRRP child."""
    def start() -> Keepalived:
        k = Keepalived(lan, label, tool, priority=100, interval_cs=interval)
        k.wait_ready()
        return k
    return start


def test_equal_priority_higher_address_wins_nefeature_pair(lan: Lan) -> None:
    interval = 10
    _tie(lan, _tie_nefeature(lan, "A", interval), _tie_nefeature(lan, "B", interval), interval)


def test_equal_priority_nefeature_yields_to_higher_keepalived(lan: Lan,
                                                              keepalived_tool: str) -> None:
    interval = 10
    _tie(lan, _tie_nefeature(lan, "A", interval),
         _tie_keepalived(lan, "B", keepalived_tool, interval), interval)


def test_equal_priority_nefeature_wins_over_lower_keepalived(lan: Lan,
                                                             keepalived_tool: str) -> None:
    interval = 10
    _tie(lan, _tie_keepalived(lan, "A", keepalived_tool, interval),
         _tie_nefeature(lan, "B", interval), interval)


# --- (f) clean stop of the master ---

def test_sigterm_of_master_hands_over_with_priority_zero(lan: Lan) -> None:
    interval = 100  # 1 s: Skew_Time (0.61 s) and Master_Down_Interval (3.61 s) far apart
    a, b = a_master_then_b(lan, interval, "A master before its clean stop")

    since = time.time()
    t0 = time.monotonic()
    status = a.process.terminate()
    assert status == 0, f"nefeature A exited {status} on SIGTERM:\n{a.output()}"
    took = lan.wait_holders({"B"}, master_down_s(interval, 100) + MARGIN,
                            "B master and A's VIP removed after A's SIGTERM") - t0
    zero = [x for x in lan.adverts(since) if x["src"] == "10.10.10.1" and x["prio"] == 0]
    assert zero, f"A sent no priority-0 advertisement: {lan.adverts(since)}"
    # Without priority 0, B would wait Master_Down_Interval after A's last
    # advertisement: at least 3.61 - 1 = 2.61 s after the SIGTERM.
    limit = master_down_s(interval, 100) - interval_s(interval) - 0.1
    assert took < limit, f"B took {took:.2f} s: not the priority-0 path (< {limit:.2f} s)"
    assert "stopped" in a.output()
    assert ("master", "initialize", "shutdown") in a.transitions(), a.output()
    assert not lan.has_vip("A")
    a.assert_healthy()
    b.assert_healthy()


# --- a crashed master restarts as backup ---

def test_restarted_backup_removes_vip_left_by_crash(lan: Lan) -> None:
    """A crashes as master; B takes over; A restarts (preempt hold-time 600 s: stays backup).

    The crash leaves 10.10.10.100 on A's Vlanif100 (no process to remove it).
    Once A runs again as backup, only B may hold and answer for the VIP.
    """
    interval = 10
    config = nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval)  # hold-time 600
    a, b = a_master_then_b(lan, interval, "A master before its crash", a_config=config)
    a.process.crash()
    lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN,
                     "B takes over; the crash leaves A's address behind")

    restarted = start_nefeature(lan, "A", config)
    restarted.wait_ready()
    restarted.wait_log("new master 10.10.10.2", 5)  # the restarted A hears B as master
    assert ("backup", "master", "no-response") not in restarted.transitions()
    lan.wait_holders({"B"}, 3, "only B holds the VIP once A runs again as backup")
    assert lan.arp_answers() == [VIRTUAL_MAC], "A still answers ARP for the VIP"
    restarted.assert_healthy()


# --- (g) the virtual MAC: one device answers for the VIP, the switch follows ---

def virtual_mac_holders(lan: Lan) -> set[str]:
    """Routers with an interface of MAC :data:`VIRTUAL_MAC` that holds an IPv4 address
    (keepalived's use_vmac keeps its interface while backup, without the address)."""
    holders = set()
    for label in lan.routers:
        out = run([lan.ip, "-n", lan.ns[label], "-o", "link", "show"]).stdout
        for line in out.splitlines():
            if f"link/ether {VIRTUAL_MAC}" in line:
                name = line.split(": ")[1].split("@")[0]
                addresses = run([lan.ip, "-n", lan.ns[label], "-4", "-o", "addr", "show",
                                 "dev", name]).stdout
                if " inet " in addresses:
                    holders.add(label)
    return holders


def assert_one_master(lan: Lan, master: str, virtual: bool, what: str,
                      timeout: float = 3 * MARGIN) -> None:
    """The LAN's view of one master: the VIP on ``master`` alone; one answer to ARP for it,
    with the virtual MAC if ``master`` uses it (else its interface's MAC); the virtual MAC
    on ``master`` alone, and the switch forwarding it there; the observer's unicast to the
    VIP reaching ``master``."""
    lan.wait_holders({master}, timeout, what)
    expected = VIRTUAL_MAC if virtual else lan.macs[master]
    answers = lan.arp_answers()
    assert answers == [expected], f"{what}: ARP for {VIP} answered by {answers}," \
                                  f" expected {expected} once"
    assert virtual_mac_holders(lan) == ({master} if virtual else set()), what
    if virtual:
        wait_for(lambda: lan.bridge_port_of(VIRTUAL_MAC) == master, timeout,
                 lambda: f"{what}: the switch to forward {VIRTUAL_MAC} to {master}, not"
                         f" {lan.bridge_port_of(VIRTUAL_MAC)}", POLL)
    lan.touch_vip(OBSERVER)
    lan.wait_neighbour(OBSERVER, master, timeout, what)


def test_master_uses_the_virtual_mac_for_arp_and_advertisements(lan: Lan) -> None:
    interval = 10
    a, b = a_master_then_b(lan, interval, "A master, B backup")
    since = time.time()
    assert_one_master(lan, "A", True, "A master")
    time.sleep(5 * interval_s(interval))
    macs = {x["mac"] for x in lan.adverts(since) if x["src"] == "10.10.10.1"}
    assert macs == {VIRTUAL_MAC}, f"A advertised from {macs}"  # RFC 5798 section 7.3
    a.assert_healthy()
    b.assert_healthy()


@pytest.mark.parametrize("use_vmac", [True, False], ids=["use_vmac", "interface-mac"])
def test_keepalived_backup_takes_over_and_gives_back(lan: Lan, keepalived_tool: str,
                                                      use_vmac: bool) -> None:
    """nefeature A (virtual MAC) master, keepalived B backup; A's tracked uplink fails and
    keepalived takes over; it comes back and A preempts: one master at every check."""
    interval = 10
    a, k = nefeature_a_then_keepalived_b(lan, keepalived_tool, interval, use_vmac=use_vmac)
    with explain_failure(logs_of(a, k)):
        assert_one_master(lan, "A", True, "nefeature A master")
        lan.link("A", "uplink0p", "down")
        assert_one_master(lan, "B", use_vmac, "keepalived B master after A's uplink failed")
        lan.link("A", "uplink0p", "up")
        # hold-time 0, but no DHCP backup peer: A may preempt 10 s after its start
        assert_one_master(lan, "A", True, "nefeature A master again",
                          PREEMPT_GATE + 3 * MARGIN)
    a.assert_healthy()


@pytest.mark.parametrize("use_vmac", [True, False], ids=["use_vmac", "interface-mac"])
def test_nefeature_backup_takes_over_from_keepalived_and_gives_back(
        lan: Lan, keepalived_tool: str, use_vmac: bool) -> None:
    """keepalived A (tracked uplink) master, nefeature B (virtual MAC) backup; keepalived's
    uplink fails and nefeature takes over; it comes back and keepalived preempts."""
    interval = 10
    k, b = keepalived_a_then_nefeature_b(lan, keepalived_tool, interval, use_vmac=use_vmac)
    with explain_failure(logs_of(k, b)):
        assert_one_master(lan, "A", use_vmac, "keepalived A master")
        lan.link("A", "uplink0p", "down")
        # no DHCP backup peer: B may preempt 10 s after its start
        assert_one_master(lan, "B", True, "nefeature B master after keepalived's uplink failed",
                          PREEMPT_GATE + 3 * MARGIN)
        lan.link("A", "uplink0p", "up")
        assert_one_master(lan, "A", use_vmac, "keepalived A master again")
        assert ("master", "backup", "higher-priority-advertisement") in b.transitions()
    b.assert_healthy()


# --- (h) switchovers with a relay and directly attached clients on the LAN ---

RELAY = "rl"


class NeighbourWatch:
    """Samples, in a thread, the MAC that some hosts' kernels have for the VIP."""

    def __init__(self, lan: Lan, labels: list[str], period: float = 0.25) -> None:
        self.lan = lan
        self.seen: dict[str, set[str]] = {label: set() for label in labels}
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for label, seen in self.seen.items():
                mac = self.lan.neighbour(label)
                if mac is not None:
                    seen.add(mac)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_acked_after(path: Path, since: float, what: str, key: str = "acked_at") -> None:
    """Wait until a client's record (relay_load ACKs, renew_load answered renewals) shows
    an answer to something it sent after ``since``."""
    def answered() -> bool:
        return any(r[key] > since and r.get("answered", True) for r in records(path))
    wait_for(answered, 10 * MARGIN, f"{what}: an answer after the switchover ({path.name})",
             POLL)


def test_switchovers_keep_the_relay_on_the_virtual_mac_and_renewals_answered(
        lan: Lan, tmp_path: Path) -> None:
    """The pair serves a relay (relay_load.py) and a directly attached client that renews
    unicast, asking ARP afresh each time (renew_load.py), through three switchovers: A's
    tracked uplink cut (to B), SIGKILL of B (to A), and a 9 s freeze of A (to B, then
    back to A when it wakes).  The relay's ARP entry for the VIP holds the virtual MAC
    throughout, so it never has to relearn; the switch follows each new master; after
    the uplink cut and the SIGKILL no renewal goes unanswered once the new master holds
    the VIP (the killed device's kernel keeps it, but answers no ARP for it)."""
    from tests.system.test_hot_backup import ADDRESS, GIADDR, RELAY_LAN, RELAYED

    interval = 10
    for label in ("A", "B"):
        lan.add_router(label, ADDRESS[label], uplink=label == "A")
        run([lan.ip, "-n", lan.ns[label], "route", "replace", str(RELAYED), "via", RELAY_LAN])
    lan.attach(RELAY, "lan0")
    lan.addr(RELAY, f"{RELAY_LAN}/24")
    lan.addr(RELAY, f"{GIADDR}/24")
    pool = ip_pool("relayed", RELAYED, GIADDR, identifier=VIP, backup_profile="service1")
    a = pair_device(lan, "A", pool, advertise_centiseconds=interval)
    b = pair_device(lan, "B", pool, advertise_centiseconds=interval)
    a.start()
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A master", logs_of(a))
    b.start()
    for device in (a, b):
        device.wait_log(CHANNEL_UP, START_TIMEOUT)
    acks, renewals = tmp_path / "acks.jsonl", tmp_path / "renewals.jsonl"
    relay = lan.start(lan.ns[RELAY], [PYTHON, ROOT / "tests" / "system" / "relay_load.py",
                                      GIADDR, VIP, "3600", "20", acks],
                      tmp_path / "relay.log", "relay load")
    renewer = lan.start(lan.ns[OBSERVER], [PYTHON, ROOT / "tests" / "system" / "renew_load.py",
                                           OBSERVER_IF, VIP, "3600", renewals],
                        tmp_path / "renewer.log", "renewing client")
    renewer.wait_output("bound", START_TIMEOUT)
    watch = NeighbourWatch(lan, [RELAY, OBSERVER])
    windows: list[tuple[float, float]] = []  # one master, settled: renewals must be answered
    try:
        with explain_failure(logs_of(a, b, relay, renewer)):
            wait_acked_after(acks, 0, "A serves the relay")
            assert_one_master(lan, "A", True, "A master")

            fault = time.time()
            lan.link("A", "uplink0p", "down")  # 1: tracked link cut
            lan.wait_holders({"B"}, MARGIN * 3, "B master after A's uplink was cut")
            switched = time.time()
            assert_one_master(lan, "B", True, "B master after A's uplink was cut")
            wait_acked_after(acks, switched, "B serves the relay")
            wait_acked_after(renewals, switched + 1, "B answers renewals", "sent_at")
            lan.link("A", "uplink0p", "up")  # A stays backup: preempt hold-time 600 s
            windows.append((switched + 1, time.time()))

            b.kill()  # 2: SIGKILL of the master; its kernel keeps the VIP and the macvlan
            lan.wait_holders({"A", "B"}, MARGIN * 3, "A master after B was killed")
            switched = time.time()
            wait_for(lambda: lan.bridge_port_of(VIRTUAL_MAC) == "A", MARGIN, "switch to A",
                     POLL)
            assert lan.arp_answers() == [VIRTUAL_MAC], "the killed B answers ARP"
            wait_acked_after(acks, switched, "A serves the relay")
            wait_acked_after(renewals, switched + 1, "A answers renewals", "sent_at")
            time.sleep(3)  # renewals keep coming while B is dead
            windows.append((switched + 1, time.time()))

            b.start()  # its leftovers go before it joins the group
            b.wait_ready()
            b.wait_log(BATCH_RECEIVED, START_TIMEOUT)
            assert_one_master(lan, "A", True, "A master, B restarted as backup")
            frozen = time.time()
            a.process.signal(signal.SIGSTOP)  # 3: a 9 s freeze of the master
            try:
                lan.wait_holders({"A", "B"}, MARGIN * 3, "B master while A is frozen")
                switched = time.time()
                wait_for(lambda: lan.bridge_port_of(VIRTUAL_MAC) == "B", MARGIN,
                         "switch to B", POLL)
                wait_acked_after(acks, switched, "B serves the relay while A is frozen")
                time.sleep(max(0.0, frozen + 9 - time.time()))
            finally:
                a.process.signal(signal.SIGCONT)
            woke = time.time()
            assert_one_master(lan, "A", True, "A master again once awake (priority 200)")
            wait_acked_after(acks, woke, "A serves the relay again")
        assert relay.running() and renewer.running()
    finally:
        watch.stop()
    assert watch.seen[RELAY] == {VIRTUAL_MAC}, f"the relay's ARP entry held {watch.seen[RELAY]}"
    assert watch.seen[OBSERVER] <= {VIRTUAL_MAC}, watch.seen[OBSERVER]
    unanswered = [r for r in records(renewals) for start, end in windows
                  if start <= r["sent_at"] <= end and not r["answered"]]
    counted = [r for r in records(renewals) for start, end in windows
               if start <= r["sent_at"] <= end]
    assert counted and not unanswered, f"{len(unanswered)} of {len(counted)} renewals" \
                                       f" unanswered after a switchover: {unanswered}"
    print(f"\n[switchovers] {len(counted)} renewals after the uplink cut and the SIGKILL,"
          f" {len(unanswered)} unanswered; {len(records(renewals))} renewals and"
          f" {len(records(acks))} relayed DHCPACKs in all; the relay's ARP entry for the VIP"
          f" held {sorted(watch.seen[RELAY])}")
    for device in (a, b):
        device.assert_healthy(("ERROR", "CRITICAL"))


# --- (i) live reconfiguration: each kind of change, then the fault it must react to ---

EDIT = r"""
import sys
import ncclient.transport.session
from ncclient import manager
ncclient.transport.session.TICK = 0.001
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="admin",
                    password=sys.argv[2], hostkey_verify=False, look_for_keys=False,
                    allow_agent=False, timeout=30)
m.edit_config(target="candidate", config=f'<config xmlns="{NC}" xmlns:nc="{NC}">{sys.argv[3]}'
                                         '</config>')
m.commit()
m.close_session()
print("committed", flush=True)
"""


def healthy_but_for_ssh(router: Nefeature) -> None:
    """No problem logged, but for paramiko's ERROR when an ncclient process exits after
    its close-session without an SSH disconnect (the client's manners, not the device's)."""
    bad = [line for line in router.problems() if " paramiko.transport ERROR " not in line]
    assert not bad, f"{router.name} logged problems:\n" + "\n".join(bad)


def vrrp_edit(inner: str, vrid: int = 1, operation: str = "") -> str:
    """A NETCONF edit of one VRRP group on Vlanif100."""
    return ('<interfaces xmlns="urn:nefeature:yang:nefeature-interfaces"><interface>'
            '<name>Vlanif100</name><ipv4><vrrp xmlns="urn:nefeature:yang:nefeature-vrrp">'
            f'<vrrp-instance{operation}><vrid>{vrid}</vrid>{inner}</vrrp-instance></vrrp>'
            '</ipv4></interface></interfaces>')


def netconf_commit(lan: Lan, label: str, edit: str) -> None:
    """edit-config on the candidate and commit, over NETCONF (ncclient) in ``label``'s
    namespace."""
    result = run(lan.exec_args(lan.ns[label], PYTHON, "-c", EDIT, str(NETCONF_PORT),
                               NETCONF_PASSWORD, edit), timeout=60)
    assert "committed" in result.stdout, result


def cli_commit(lan: Lan, label: str, *commands: str) -> None:
    """VRP commands in Vlanif100's view, then commit, from the shell (nefeature-cli)."""
    lines = ["system-view", "interface Vlanif100", *commands, "commit"]
    result = run(lan.exec_args(lan.ns[label], netns.PYTHON, "-m", "nefeature_cli", "--port",
                               str(NETCONF_PORT), "--password", NETCONF_PASSWORD,
                               *[arg for line in lines for arg in ("-c", line)]), timeout=60)
    assert result.returncode == 0, result


def gate_open(router: Nefeature) -> None:
    """Wait out the preemption gate of a device with no DHCP backup peer."""
    time.sleep(max(0.0, router.started_at + PREEMPT_GATE + 0.5 - time.time()))


def test_live_track_added_from_the_shell_hands_over_to_keepalived(
        lan: Lan, keepalived_tool: str) -> None:
    """The issue's case: type the group, commit, then add the tracking line and commit:
    cutting that uplink must hand the role to the peer (keepalived)."""
    interval = 10
    a, k = nefeature_a_then_keepalived_b(lan, keepalived_tool, interval, track=False)
    with explain_failure(logs_of(a, k)):
        cli_commit(lan, "A", "vrrp vrid 1 track interface GigabitEthernet0/1/2 reduced 110")
        lan.assert_steady({"A"}, 1.0, "A master with its uplink up")
        since = time.time()
        lan.link("A", "uplink0p", "down")
        assert_one_master(lan, "B", False, "keepalived B master after A's uplink was cut")
        assert any(x["src"] == "10.10.10.1" and x["prio"] == 90 for x in lan.adverts(since))
    healthy_but_for_ssh(a)


def test_live_track_added_over_netconf_on_a_down_link_counts_at_once(lan: Lan) -> None:
    """A tracking line committed over NETCONF while its link is already down lowers the
    priority at once; the link coming back gives it back; the next cut hands over."""
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0, track=False))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    with explain_failure(logs_of(a, b)):
        settle(lan, "A", "B", interval, MARGIN, "A master, B backup")
        lan.link("A", "uplink0p", "down")  # nothing tracks it yet
        lan.assert_steady({"A"}, 1.0, "an untracked link changes nothing")
        gate_open(b)
        netconf_commit(lan, "A", vrrp_edit(
            "<track><interfaces><interface><interface>GigabitEthernet0/1/2</interface>"
            "<priority-decrement>110</priority-decrement></interface></interfaces></track>"))
        assert_one_master(lan, "B", True, "B master once A tracks its down uplink")
        gate_open(a)
        lan.link("A", "uplink0p", "up")
        assert_one_master(lan, "A", True, "A master again with its uplink back")
        lan.link("A", "uplink0p", "down")
        assert_one_master(lan, "B", True, "B master on the next cut")
    healthy_but_for_ssh(a)
    healthy_but_for_ssh(b)


def test_live_priority_change_hands_over_to_keepalived_and_back(
        lan: Lan, keepalived_tool: str) -> None:
    interval = 10
    a, k = nefeature_a_then_keepalived_b(lan, keepalived_tool, interval, priority_b=150,
                                         use_vmac=True)
    with explain_failure(logs_of(a, k)):
        since = time.time()
        netconf_commit(lan, "A", vrrp_edit("<priority>100</priority>"))
        assert_one_master(lan, "B", True, "keepalived B master once A runs at 100")
        assert any(x["src"] == "10.10.10.1" and x["prio"] == 100 for x in lan.adverts(since))
        gate_open(a)
        netconf_commit(lan, "A", vrrp_edit("<priority>200</priority>"))
        assert_one_master(lan, "A", True, "A master again at 200 (preempts at once)")
    healthy_but_for_ssh(a)


def test_live_preempt_mode_and_delay_against_keepalived(lan: Lan, keepalived_tool: str) -> None:
    """nefeature B raised above keepalived's priority with preemption off stays backup;
    preemption turned on with a 3 s delay takes the role, not before the delay."""
    interval = 10
    delay = 3
    k, b = keepalived_a_then_nefeature_b(lan, keepalived_tool, interval, priority_a=150,
                                         track_uplink=False)
    with explain_failure(logs_of(k, b)):
        gate_open(b)
        netconf_commit(lan, "B", vrrp_edit("<priority>200</priority>"
                                           "<preempt><enabled>false</enabled></preempt>"))
        lan.assert_steady({"A"}, 2.0, "B at 200 without preemption stays backup")
        committed = time.monotonic()
        cli_commit(lan, "B", "undo vrrp vrid 1 preempt-mode",
                   f"vrrp vrid 1 preempt-mode timer delay {delay}")
        took = lan.wait_holders({"B"}, delay + 3 * MARGIN, "B preempts after its delay")
        assert took - committed >= delay - 0.5, "B preempted before its delay"
        assert_one_master(lan, "B", True, "nefeature B master")
    healthy_but_for_ssh(b)


def test_live_interval_change_is_advertised_and_a_crash_then_taken_over(lan: Lan) -> None:
    a, b = a_master_then_b(lan, 100, "A master, B backup, 1 s interval")
    with explain_failure(logs_of(a, b)):
        netconf_commit(lan, "A", vrrp_edit(
            "<advertise-interval-centi-sec>10</advertise-interval-centi-sec>"))
        since = time.time()
        time.sleep(1.0)
        intervals = {x["int"] for x in lan.adverts(since) if x["src"] == "10.10.10.1"}
        assert intervals == {10}, f"A advertised intervals {intervals}"
        assert len([x for x in lan.adverts(since) if x["src"] == "10.10.10.1"]) >= 5
        a.process.crash()
        lan.wait_holders({"A", "B"}, master_down_s(10, 100) + MARGIN, "B takes over")
        assert ("backup", "master", "no-response") in b.transitions()
    healthy_but_for_ssh(b)


SECOND_VIP = "10.10.10.101"


def test_live_virtual_address_added_and_removed(lan: Lan) -> None:
    interval = 10
    a, b = a_master_then_b(lan, interval, "A master, B backup")
    added = vrrp_edit("<virtual-ipv4-addresses><virtual-ipv4-address><ipv4-address>"
                      f"{SECOND_VIP}</ipv4-address></virtual-ipv4-address>"
                      "</virtual-ipv4-addresses>")
    with explain_failure(logs_of(a, b)):
        for label in ("A", "B"):
            netconf_commit(lan, label, added)
        assert lan.arp_answers(address=SECOND_VIP) == [VIRTUAL_MAC]
        assert SECOND_VIP in run([lan.ip, "-n", lan.ns["A"], "-4", "-o", "addr"]).stdout
        lan.link("A", "uplink0p", "down")
        assert_one_master(lan, "B", True, "B master with both addresses")
        assert lan.arp_answers(address=SECOND_VIP) == [VIRTUAL_MAC]
        assert SECOND_VIP in run([lan.ip, "-n", lan.ns["B"], "-4", "-o", "addr"]).stdout
        netconf_commit(lan, "B", added.replace("<virtual-ipv4-address>",
                                               '<virtual-ipv4-address nc:operation="delete">'))
        wait_for(lambda: lan.arp_answers(address=SECOND_VIP) == [], MARGIN,
                 "nobody answers for the removed address", POLL)
        assert SECOND_VIP not in run([lan.ip, "-n", lan.ns["B"], "-4", "-o", "addr"]).stdout
        assert lan.arp_answers() == [VIRTUAL_MAC]
    healthy_but_for_ssh(a)
    healthy_but_for_ssh(b)


def test_live_virtual_mac_off_and_on(lan: Lan) -> None:
    interval = 10
    a, b = a_master_then_b(lan, interval, "A master, B backup")
    with explain_failure(logs_of(a, b)):
        assert_one_master(lan, "A", True, "A master with the virtual MAC")
        netconf_commit(lan, "A", vrrp_edit("<virtual-mac>false</virtual-mac>"))
        since = time.time()
        assert_one_master(lan, "A", False, "A master with its interface's MAC")
        assert lan.vip_interface("A") == LAN_IF
        time.sleep(3 * interval_s(interval))
        macs = {x["mac"] for x in lan.adverts(since) if x["src"] == "10.10.10.1"}
        assert macs == {lan.macs["A"]}, f"A advertised from {macs}"
        lan.link("A", "uplink0p", "down")  # B (virtual MAC on) takes over
        assert_one_master(lan, "B", True, "B master after A's uplink was cut")
        lan.link("A", "uplink0p", "up")
        assert_one_master(lan, "A", False, "A master again, interface MAC")
        netconf_commit(lan, "A", vrrp_edit("<virtual-mac>true</virtual-mac>"))
        assert_one_master(lan, "A", True, "A master with the virtual MAC again")
    healthy_but_for_ssh(a)
    healthy_but_for_ssh(b)


def test_live_group_created_then_deleted(lan: Lan) -> None:
    """A second group (VRID 2, its own virtual MAC) created on both routers by a commit,
    then deleted on its master: the other router takes it over at once (priority 0)."""
    interval = 10
    a, b = a_master_then_b(lan, interval, "A master, B backup")
    second_mac = "00:00:5e:00:01:02"
    group = ("<virtual-ipv4-addresses><virtual-ipv4-address><ipv4-address>"
             f"{SECOND_VIP}</ipv4-address></virtual-ipv4-address></virtual-ipv4-addresses>"
             f"<advertise-interval-centi-sec>{interval}</advertise-interval-centi-sec>")
    with explain_failure(logs_of(a, b)):
        gate_open(a)
        netconf_commit(lan, "B", vrrp_edit(group, vrid=2))
        netconf_commit(lan, "A", vrrp_edit(group + "<priority>200</priority>", vrid=2))
        wait_for(lambda: lan.arp_answers(address=SECOND_VIP) == [second_mac]
                 and lan.bridge_port_of(second_mac) == "A", 3 * MARGIN,
                 "A master of group 2, answering with its virtual MAC", POLL)
        assert lan.arp_answers() == [VIRTUAL_MAC] and lan.bridge_port_of(VIRTUAL_MAC) == "A"
        since = time.time()
        netconf_commit(lan, "A", vrrp_edit("", vrid=2, operation=' nc:operation="delete"'))
        wait_for(lambda: lan.bridge_port_of(second_mac) == "B", 3 * MARGIN,
                 "B master of group 2", POLL)
        assert lan.arp_answers(address=SECOND_VIP) == [second_mac]
        assert any(x["vrid"] == 2 and x["src"] == "10.10.10.1" and x["prio"] == 0
                   for x in lan.adverts(since)), "A did not say priority 0 for group 2"
        assert_one_master(lan, "A", True, "group 1 untouched: A master")
    healthy_but_for_ssh(a)
    healthy_but_for_ssh(b)
