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

Who is master is read from the kernel: the virtual IP on ``Vlanif100``
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

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
NEFEATURE = ROOT / ".venv" / "bin" / "nefeature"
PAIR = ROOT / "examples" / "pair"
VIP = "10.10.10.100"
LAN_IF = "Vlanif100"
OBSERVER_ADDRESS = "10.10.10.50"
READY_LINE = "serving DHCP"
POLL = 0.015  # seconds between two looks at the virtual IP
STOP_GRACE = 5.0
START_TIMEOUT = 30.0  # nefeature's start (imports) on a busy 2-core box
MARGIN = 2.0  # seconds added to every protocol-derived deadline
# A rejoining nefeature device may preempt only after the batch backup from the
# master, or, with no backup channel, 10 s after its start (hotbackup.CHANNEL_GRACE).
PREEMPT_GATE = 10.0

T = TypeVar("T")


# --- prerequisites: the only reasons to skip ---

def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin")


@pytest.fixture(scope="module")
def ip_tool() -> str:
    if os.geteuid() != 0:
        pytest.skip("VRRP system tests need root (network namespaces, raw sockets)")
    path = _which("ip")
    if path is None:
        pytest.skip("`ip` is not installed (Debian package iproute2)")
    return path


@pytest.fixture(scope="module")
def keepalived_tool(ip_tool: str) -> str:
    path = _which("keepalived")
    if path is None:
        pytest.skip("`keepalived` is not installed (Debian package keepalived;"
                    " `make test` installs it when run as root)")
    return path


# --- small helpers ---

def run(args: list[str], timeout: float = 15.0, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


def wait_for(predicate: Callable[[], T], timeout: float, what: str,
             interval: float = POLL) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


def interval_s(centiseconds: int) -> float:
    return centiseconds / 100


def master_down_s(centiseconds: int, priority: int) -> float:
    """RFC 5798 Master_Down_Interval (3 x interval + Skew_Time) in seconds."""
    skew = ((256 - priority) * centiseconds) // 256
    return (3 * centiseconds + skew) / 100


def skew_s(centiseconds: int, priority: int) -> float:
    return (((256 - priority) * centiseconds) // 256) / 100


class Proc:
    """A direct child with its output in a file, stopped by PID."""

    def __init__(self, args: list[str], log: Path, name: str) -> None:
        self.args = args
        self.log = log
        self.name = name
        self._out: IO[bytes] = open(log, "wb")  # noqa: SIM115 - closed by cleanup()
        try:
            self.popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._out,
                                          stderr=subprocess.STDOUT)
        except BaseException:
            self._out.close()
            raise

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def crash(self) -> None:
        """Freeze, then SIGKILL, and reap: no chance to say goodbye."""
        if self.running():
            os.kill(self.pid, signal.SIGSTOP)
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait(STOP_GRACE)

    def terminate(self, timeout: float = STOP_GRACE) -> int:
        """SIGTERM and wait; SIGKILL and fail if it does not end in time."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(STOP_GRACE)
            raise AssertionError(f"{self.name} (pid {self.pid}) ignored SIGTERM for"
                                 f" {timeout} s:\n{self.output()}") from None

    def cleanup(self) -> None:
        try:
            if self.running():
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.popen.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
                    self.popen.wait(STOP_GRACE)
        finally:
            self._out.close()


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
seen = set()
end = time.time() + float(sys.argv[4])
while time.time() < end:
    try:
        frame = s.recv(2048)
    except socket.timeout:
        continue
    if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == target:
        seen.add(":".join("%02x" % b for b in frame[22:28]))
print(" ".join(sorted(seen)))
"""


class Lan:
    """Routers A and B and an observer on one bridge, each in its own namespace."""

    def __init__(self, ip: str, workdir: Path) -> None:
        self.ip = ip
        self.dir = workdir
        suffix = secrets.token_hex(3)
        self.switch = f"nfv-sw-{suffix}"
        self.observer = f"nfv-c-{suffix}"
        self.ns: dict[str, str] = {}
        self.ports: dict[str, str] = {}
        self.address: dict[str, str] = {}
        self.created: list[str] = []
        self.processes: list[Proc] = []
        self.keepaliveds: list[Keepalived] = []
        self.suffix = suffix
        self.sniffer: Proc | None = None

    # building

    def _ns(self, name: str) -> str:
        run([self.ip, "netns", "add", name])
        self.created.append(name)
        run([self.ip, "-n", name, "link", "set", "lo", "up"])
        return name

    def build(self) -> None:
        self._ns(self.switch)
        run([self.ip, "-n", self.switch, "link", "add", "br0", "type", "bridge", "stp_state", "0",
             "mcast_snooping", "0"])
        run([self.ip, "-n", self.switch, "link", "set", "br0", "up"])
        self._ns(self.observer)
        self._port("pc", self.observer, "lan0")
        run([self.ip, "-n", self.observer, "addr", "add", f"{OBSERVER_ADDRESS}/24", "dev", "lan0"])
        log = self.dir / "sniffer.log"
        self.sniffer = self.start(self.observer, [sys.executable, "-u", "-c", SNIFFER, "lan0"],
                                  log, "VRRP sniffer")
        wait_for(lambda: "ready" in self.sniffer.output() or not self.sniffer.running(), 10,
                 "the VRRP sniffer")
        assert self.sniffer.running(), self.sniffer.output()

    def _port(self, port: str, namespace: str, name: str, join: bool = True) -> None:
        run([self.ip, "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name",
             name, "netns", namespace])
        run([self.ip, "-n", self.switch, "link", "set", port, "up"])
        run([self.ip, "-n", namespace, "link", "set", name, "up"])
        if join:
            self.join_port(port)

    def join_port(self, port: str) -> None:
        run([self.ip, "-n", self.switch, "link", "set", port, "master", "br0"])

    def add_router(self, label: str, address: str, uplink: bool = True,
                   joined: bool = True) -> str:
        """Namespace with Vlanif100 on the bridge (port ``p<label>``) and maybe uplink0."""
        namespace = self._ns(f"nfv-{label.lower()}-{self.suffix}")
        self.ns[label] = namespace
        self.ports[label] = f"p{label.lower()}"
        self.address[label] = address
        self._port(self.ports[label], namespace, LAN_IF, join=joined)
        run([self.ip, "-n", namespace, "addr", "add", f"{address}/24", "dev", LAN_IF])
        if uplink:
            run([self.ip, "-n", namespace, "link", "add", "uplink0", "type", "veth", "peer",
                 "name", "uplink0p"])
            run([self.ip, "-n", namespace, "link", "set", "uplink0", "up"])
            run([self.ip, "-n", namespace, "link", "set", "uplink0p", "up"])
        return namespace

    def join(self, label: str) -> None:
        self.join_port(self.ports[label])

    def uplink_down(self, label: str) -> None:
        run([self.ip, "-n", self.ns[label], "link", "set", "uplink0p", "down"])

    # processes

    def start(self, namespace: str, args: list, log: Path, name: str) -> Proc:
        process = Proc([self.ip, "netns", "exec", namespace, *map(str, args)], log, name)
        self.processes.append(process)
        return process

    # observation

    def has_vip(self, label: str) -> bool:
        out = run([self.ip, "-n", self.ns[label], "-4", "-o", "addr", "show", "dev",
                   LAN_IF]).stdout
        return f"inet {VIP}/" in out

    def holders(self) -> set[str]:
        return {label for label in self.ns if self.has_vip(label)}

    def wait_holders(self, expected: set[str], timeout: float, what: str) -> float:
        """Wait until exactly ``expected`` hold the virtual IP; return when (monotonic)."""
        wait_for(lambda: self.holders() == expected, timeout,
                 f"{what}: VIP holders {sorted(expected)} (now {sorted(self.holders())})")
        return time.monotonic()

    def assert_steady(self, expected: set[str], seconds: float, what: str) -> None:
        """The holders stay exactly ``expected`` for ``seconds`` (no flapping, no 2 masters)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = self.holders()
            assert now == expected, f"{what}: VIP holders became {sorted(now)}," \
                                    f" expected {sorted(expected)}"
            time.sleep(POLL)

    def mac(self, label: str) -> str:
        out = run([self.ip, "-n", self.ns[label], "-o", "link", "show", "dev", LAN_IF]).stdout
        return re.search(r"link/ether ([0-9a-f:]{17})", out).group(1)

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

    def arp_answers(self, seconds: float = 0.3) -> set[str]:
        """MACs that answer an ARP request for the VIP from the observer: the LAN's view."""
        out = run([self.ip, "netns", "exec", self.observer, sys.executable, "-c", ARP_PROBE,
                   "lan0", OBSERVER_ADDRESS, VIP, str(seconds)]).stdout
        return set(out.split())

    def touch_vip(self) -> None:
        """Make the observer's kernel resolve the VIP (as a client sending to it would)."""
        run([self.ip, "netns", "exec", self.observer, sys.executable, "-c",
             f"import socket; socket.socket(2, 2).sendto(b'x', ('{VIP}', 9))"])

    def observer_neighbour(self) -> str | None:
        out = run([self.ip, "-n", self.observer, "neigh", "show", VIP, "dev", "lan0"]).stdout
        match = re.search(r"lladdr ([0-9a-f:]{17})", out)
        return match.group(1) if match else None

    # teardown

    def close(self) -> list[str]:
        errors = []
        for keepalived in self.keepaliveds:
            try:
                keepalived.cleanup()
            except Exception as error:  # noqa: BLE001 - keep tearing down
                errors.append(f"{keepalived.name}: {error!r}")
        for process in reversed(self.processes):
            try:
                process.cleanup()
            except Exception as error:  # noqa: BLE001
                errors.append(f"{process.name}: {error!r}")
        for namespace in reversed(self.created):
            result = run([self.ip, "netns", "del", namespace], check=False)
            if result.returncode != 0:
                errors.append(f"ip netns del {namespace}: {result.stderr.strip()}")
        return errors


@pytest.fixture
def lan(ip_tool: str, tmp_path: Path) -> Iterator[Lan]:
    lan = Lan(ip_tool, tmp_path)
    try:
        lan.build()
        yield lan
    finally:
        errors = lan.close()
    assert not errors, "teardown: " + "; ".join(errors)


# --- nefeature ---

def nefeature_config(path: Path, device: str, *, priority: int | None = None,
                     interval_cs: int | None = None, hold_time: int | None = None) -> Path:
    """examples/pair/device{A,B}.xml with some VRRP leaves changed, validated."""
    text = (PAIR / f"device{device}.xml").read_text()
    extra = ""
    if interval_cs is not None:
        extra += f"<advertise-interval-centi-sec>{interval_cs}</advertise-interval-centi-sec>"
    if device == "A":
        if priority is not None:
            text = _replace_once(text, "<priority>200</priority>",
                                 f"<priority>{priority}</priority>")
        if hold_time is not None:
            text = _replace_once(text, "<hold-time>600</hold-time>",
                                 f"<hold-time>{hold_time}</hold-time>")
    else:
        if priority is not None:
            extra += f"<priority>{priority}</priority>"
        if hold_time is not None:
            extra += f"<preempt><hold-time>{hold_time}</hold-time></preempt>"
    text = _replace_once(text, "<vrid>1</vrid>", "<vrid>1</vrid>" + extra)
    path.write_text(text)
    result = run([str(NEFEATURE), "validate", str(path)], check=False)
    assert result.returncode == 0, f"generated config {path} is invalid:\n{result.stdout}" \
                                   f"{result.stderr}\n{text}"
    return path


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not unique in the example config"
    return text.replace(old, new)


class Nefeature:
    """``nefeature run`` in one router namespace."""

    def __init__(self, lan: Lan, label: str, config: Path) -> None:
        self.lan = lan
        self.label = label
        self.name = f"nefeature {label}"
        state = lan.dir / f"state-{label}"
        runs = len(list(lan.dir.glob(f"nefeature-{label}-*.log")))
        self.process = lan.start(lan.ns[label], [NEFEATURE, "run", "--startup", config,
                                                 "--state-dir", state],
                                 lan.dir / f"nefeature-{label}-{runs + 1}.log", self.name)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            if READY_LINE in self.process.output():
                return True
            assert self.process.running(), \
                f"{self.name} exited {self.process.popen.returncode}:\n{self.process.output()}"
            return False
        wait_for(ready, timeout, f"'{READY_LINE}' from {self.name}")

    def output(self) -> str:
        return self.process.output()

    def assert_healthy(self) -> None:
        """No traceback, error or warning in the log."""
        text = self.output()
        bad = [line for line in text.splitlines()
               if "Traceback" in line or re.search(r" (ERROR|CRITICAL|WARNING) ", line)]
        assert not bad, f"{self.name} logged problems:\n" + "\n".join(bad) + \
            f"\n--- full log:\n{text}"

    def transitions(self) -> list[tuple[str, str, str]]:
        return re.findall(r"VRRP Vlanif100 vrid 1: (\w+) -> (\w+) \(([\w-]+)\)", self.output())


def start_nefeature(lan: Lan, label: str, config: Path) -> Nefeature:
    return Nefeature(lan, label, config)


# --- keepalived ---

class Keepalived:
    """keepalived (VRRP only, foreground) as a VRRPv3 router in one namespace."""

    def __init__(self, lan: Lan, label: str, tool: str, *, priority: int, interval_cs: int,
                 track_uplink: bool = False) -> None:
        self.lan = lan
        self.label = label
        self.name = f"keepalived {label}"
        base = lan.dir / f"keepalived-{label}"
        self.conf = base.with_suffix(".conf")
        self.pidfile = base.with_suffix(".pid")
        self.vrrp_pidfile = Path(f"{base}-vrrp.pid")
        track = "  track_interface {\n    uplink0 weight -110\n  }\n" if track_uplink else ""
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
        check = run([lan.ip, "netns", "exec", lan.ns[label], tool, "-t", "-l", "-f",
                     str(self.conf)], check=False)
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
        self.vrrp_pid = wait_for(child, timeout, f"{self.name}'s VRRP child")

    def crash(self) -> None:
        """SIGSTOP both processes, then SIGKILL both (perf-reference.md section 6)."""
        pids = [self.process.pid] + ([self.vrrp_pid] if self.vrrp_pid else [])
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.process.popen.wait(STOP_GRACE)
        if self.vrrp_pid:
            wait_for(lambda: _pid_gone(self.vrrp_pid), STOP_GRACE, f"{self.name}'s VRRP child")

    def cleanup(self) -> None:
        if self.process.running():
            self.process.cleanup()
        if self.vrrp_pid and not _pid_gone(self.vrrp_pid):
            os.kill(self.vrrp_pid, signal.SIGKILL)

    def output(self) -> str:
        return self.process.output()


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


def fail_context(*routers) -> str:
    return "\n".join(f"--- {r.name}:\n{r.output()}" for r in routers)


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
    try:
        settle(lan, "A", "B", interval, master_down_s(interval, 100) + PREEMPT_GATE + MARGIN,
               "election of the priority-200 router")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, b)}") from None
    priorities = {x["prio"] for x in lan.adverts() if x["src"] == "10.10.10.1"}
    assert priorities == {200}, f"A advertised priorities {priorities}"
    a.assert_healthy()
    b.assert_healthy()


# --- (b) crash of the master ---

def test_backup_takes_over_when_master_crashes(lan: Lan) -> None:
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    settle(lan, "A", "B", interval, MARGIN, "A stays master when B joins")
    lan.touch_vip()
    wait_for(lambda: lan.observer_neighbour() == lan.mac("A"), 5,
             "the observer to resolve the VIP to A's MAC")

    t0 = time.monotonic()
    a.process.crash()
    deadline = master_down_s(interval, 100) + MARGIN
    try:
        took = lan.wait_holders({"A", "B"}, deadline, "B takes over after A's crash") - t0
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, b)}") from None
    # A's process is gone but its kernel keeps the address it was given: only
    # the LAN's view can move.  B's gratuitous ARP must repoint the observer.
    wait_for(lambda: lan.observer_neighbour() == lan.mac("B"), 5,
             f"the observer's ARP entry for {VIP} to move to B ({lan.mac('B')});"
             f" it is {lan.observer_neighbour()}")
    assert ("backup", "master", "no-response") in b.transitions(), b.output()
    assert took < deadline
    since = time.time()
    lan.assert_steady({"A", "B"}, 5 * interval_s(interval), "after the takeover")
    assert lan.advertisers(since) == {"10.10.10.2"}
    b.assert_healthy()


# --- (c) tracked uplink ---

def test_tracked_uplink_down_hands_over(lan: Lan) -> None:
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    settle(lan, "A", "B", interval, MARGIN, "A master before the uplink fails")

    since = time.time()
    lan.uplink_down("A")
    try:
        lan.wait_holders({"B"}, master_down_s(interval, 100) + MARGIN,
                         "B master and A without the VIP after A's uplink went down")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, b)}") from None
    # A advertised its reduced priority (200 - 110) before yielding
    assert any(x["src"] == "10.10.10.1" and x["prio"] == 90 for x in lan.adverts(since)), \
        lan.adverts(since)
    settle(lan, "B", "A", interval, 1, "B stays master while A's uplink is down")
    assert a.process.running() and b.process.running()
    assert ("master", "backup", "higher-priority-advertisement") in a.transitions(), a.output()
    a.assert_healthy()
    b.assert_healthy()


# --- (d) interop with keepalived ---

def test_nefeature_takes_over_from_crashed_keepalived(lan: Lan, keepalived_tool: str) -> None:
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    k = Keepalived(lan, "A", keepalived_tool, priority=200, interval_cs=interval,
                   track_uplink=True)
    k.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN + 3,
                     "keepalived A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    try:
        settle(lan, "A", "B", interval, MARGIN, "keepalived A stays master, nefeature B backs up")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(k, b)}") from None
    assert b.transitions() == [("initialize", "backup", "startup")], b.output()

    lan.touch_vip()
    k.crash()
    try:
        lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN,
                         "nefeature B takes over from the crashed keepalived")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(k, b)}") from None
    since = time.time()
    lan.assert_steady({"A", "B"}, 5 * interval_s(interval), "after the takeover")
    assert lan.advertisers(since) == {"10.10.10.2"}
    wait_for(lambda: lan.observer_neighbour() == lan.mac("B"), 5,
             "the observer's ARP entry for the VIP to move to B")
    b.assert_healthy()


def test_keepalived_takes_over_from_crashed_nefeature(lan: Lan, keepalived_tool: str) -> None:
    interval = 10
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "nefeature A becomes master")
    k = Keepalived(lan, "B", keepalived_tool, priority=100, interval_cs=interval)
    k.wait_ready()
    try:
        settle(lan, "A", "B", interval, MARGIN, "nefeature A stays master, keepalived B backs up")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, k)}") from None

    lan.touch_vip()
    a.process.crash()
    try:
        lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN,
                         "keepalived B takes over from the crashed nefeature")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, k)}") from None
    since = time.time()
    lan.assert_steady({"A", "B"}, 5 * interval_s(interval), "after the takeover")
    assert lan.advertisers(since) == {"10.10.10.2"}
    wait_for(lambda: lan.observer_neighbour() == lan.mac("B"), 5,
             "the observer's ARP entry for the VIP to move to B")
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
    try:
        settle(lan, "B", "A", interval, master_down_s(interval, 100) + MARGIN,
               "equal priority: 10.10.10.2 wins over 10.10.10.1")
        lan.assert_steady({"B"}, 1.0, "equal priority, later")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{fail_context(a, b)}") from None
    for router in (a, b):
        if isinstance(router, Nefeature):
            router.assert_healthy()


def test_equal_priority_higher_address_wins_nefeature_pair(lan: Lan) -> None:
    interval = 10
    _tie(lan,
         lambda: start_nefeature(lan, "A", nefeature_config(
             lan.dir / "a.xml", "A", priority=100, interval_cs=interval, hold_time=0)),
         lambda: start_nefeature(lan, "B", nefeature_config(
             lan.dir / "b.xml", "B", interval_cs=interval)),
         interval)


def test_equal_priority_nefeature_yields_to_higher_keepalived(lan: Lan,
                                                              keepalived_tool: str) -> None:
    interval = 10

    def keepalived() -> Keepalived:
        k = Keepalived(lan, "B", keepalived_tool, priority=100, interval_cs=interval)
        k.wait_ready()
        return k

    _tie(lan,
         lambda: start_nefeature(lan, "A", nefeature_config(
             lan.dir / "a.xml", "A", priority=100, interval_cs=interval, hold_time=0)),
         keepalived, interval)


def test_equal_priority_nefeature_wins_over_lower_keepalived(lan: Lan,
                                                             keepalived_tool: str) -> None:
    interval = 10

    def keepalived() -> Keepalived:
        k = Keepalived(lan, "A", keepalived_tool, priority=100, interval_cs=interval)
        k.wait_ready()
        return k

    _tie(lan, keepalived,
         lambda: start_nefeature(lan, "B", nefeature_config(
             lan.dir / "b.xml", "B", interval_cs=interval)),
         interval)


# --- (f) clean stop of the master ---

def test_sigterm_of_master_hands_over_with_priority_zero(lan: Lan) -> None:
    interval = 100  # 1 s: Skew_Time (0.61 s) and Master_Down_Interval (3.61 s) far apart
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    a = start_nefeature(lan, "A", nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval,
                                                   hold_time=0))
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    settle(lan, "A", "B", interval, MARGIN, "A master before its clean stop")

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
    lan.add_router("A", "10.10.10.1")
    lan.add_router("B", "10.10.10.2", uplink=False)
    config = nefeature_config(lan.dir / "a.xml", "A", interval_cs=interval)  # hold-time 600
    a = start_nefeature(lan, "A", config)
    a.wait_ready()
    lan.wait_holders({"A"}, master_down_s(interval, 200) + MARGIN, "A alone becomes master")
    b = start_nefeature(lan, "B", nefeature_config(lan.dir / "b.xml", "B", interval_cs=interval))
    b.wait_ready()
    settle(lan, "A", "B", interval, MARGIN, "A master before its crash")
    a.process.crash()
    lan.wait_holders({"A", "B"}, master_down_s(interval, 100) + MARGIN,
                     "B takes over; the crash leaves A's address behind")

    restarted = Nefeature(lan, "A", config)
    restarted.wait_ready()
    wait_for(lambda: "new master 10.10.10.2" in restarted.output(), 5,
             "the restarted A to hear B as master")
    assert ("backup", "master", "no-response") not in restarted.transitions()
    lan.wait_holders({"B"}, 3, "only B holds the VIP once A runs again as backup")
    assert lan.arp_answers() == {lan.mac("B")}, "A still answers ARP for the VIP"
    restarted.assert_healthy()
