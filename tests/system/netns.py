"""Helpers for system tests in network namespaces (docs/architecture.md).

Everything a test builds here is its own: namespaces with a random suffix
(:class:`Namespaces` deletes exactly the ones it created, and with them every
link inside), and processes started as direct children (``ip netns exec``
execs in place, so the PID we hold is the program's) and stopped by that PID.
DHCP clients run with :func:`write_hook` as their script, never their stock
one, which would rewrite the host's /etc/resolv.conf (a namespace made by
``ip netns`` shares the host's mount namespace).

Two labs are built from these pieces:

* :class:`Lab` (:func:`make_lab`): two namespaces joined by one veth whose
  server end is ``Vlanif100`` (test_dhcp_clients.py);
* :class:`Lan`: a switch namespace whose Linux bridge joins one namespace per
  host; routers have ``Vlanif100`` and maybe the tracked uplink, and who is
  VRRP master is read from the kernel (test_vrrp.py, test_hot_backup.py).

:class:`Nefeature` is ``nefeature run`` in either, restartable on its state
dir; :func:`journal_rows` reads its lease journal.

Every wait is bounded; every resource is released in a ``finally``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import IO, TypeVar

import pytest

from nefeature.dhcp.journal import snapshot

ROOT = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)  # the interpreter running the tests, in whatever environment
NEFEATURE = [PYTHON, "-m", "nefeature"]  # the project's command, from that environment
PAIR = ROOT / "examples" / "pair"  # deviceA.xml, deviceB.xml: the hot backup pair
LAN_IF = "Vlanif100"  # the Linux interface the example configs name
VIP = "10.10.10.100"  # the pair's VRRP virtual IP
VIRTUAL_MAC = "00:00:5e:00:01:01"  # its group's virtual router MAC (RFC 5798 section 7.3)
READY_LINE = "serving DHCP"
START_TIMEOUT = 30.0  # seconds for nefeature's start (imports) on a busy 2-core box
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

T = TypeVar("T")
N = TypeVar("N", bound="Namespaces")

Arg = str | os.PathLike


# --- prerequisites (the only reasons a system test may skip) ---

def require_root(needs: str = "network namespaces, port 67, raw sockets") -> None:
    if os.geteuid() != 0:
        pytest.skip(f"system test needs root ({needs})")


def require_tool(name: str, package: str) -> str:
    """Absolute path of a program, or skip naming what is missing."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/bin")
    if path is None:
        pytest.skip(f"`{name}` is not installed (Debian package {package};"
                    " `make test` installs it when run as root)")
    return path


# --- waiting, and saying why ---

def wait_for(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str],
             interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout`` seconds.

    ``what`` may be a callable, evaluated only on failure (to show the state then).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {text}")
        time.sleep(interval)


@contextmanager
def explain_failure(describe: Callable[[], str]) -> Iterator[None]:
    """Append ``describe()`` (logs, state) to an AssertionError raised in the block."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"{error}\n{describe()}") from None


def logs_of(*programs) -> Callable[[], str]:
    """For failure messages: the logs of programs that have a ``logs()`` method."""
    return lambda: "\n".join(program.logs() for program in programs)


def run(args: Sequence[Arg], timeout: float = 15.0,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command to completion (bounded), capturing its output."""
    args = [str(arg) for arg in args]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


# --- processes, stopped by PID ---

class Process:
    """A direct child with its output in a file; stopped by PID, SIGKILL as a last resort."""

    def __init__(self, args: Sequence[Arg], log: Path, name: str) -> None:
        self.args = [str(arg) for arg in args]
        self.log = log
        self.name = name
        self._out: IO[bytes] = open(log, "ab")  # noqa: SIM115 - closed by stop() or kill()
        try:
            self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._out,
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

    def logs(self) -> str:
        """The output under a heading, for failure messages."""
        return f"--- {self.name} ({self.log})\n{self.output()}"

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def wait_output(self, text: str, timeout: float, interval: float = 0.05) -> None:
        """Wait until the output contains ``text``; fail at once if the program exits first."""

        def seen() -> bool:
            if text in self.output():
                return True
            assert self.running(), \
                f"{self.name} exited {self.popen.returncode} before {text!r}:\n{self.output()}"
            return False

        wait_for(seen, timeout, f"{text!r} from {self.name}", interval)

    def wait(self, timeout: float) -> int:
        """Wait for a process expected to end by itself; SIGKILL it if it does not."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout} s;"
                                 f" output:\n{self.output()}") from None

    def terminate(self, timeout: float = STOP_GRACE) -> int:
        """SIGTERM and wait; SIGKILL and fail if it does not end in time."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(STOP_GRACE)
            raise AssertionError(f"{self.name} (pid {self.pid}) ignored SIGTERM for"
                                 f" {timeout} s:\n{self.output()}") from None

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; always reaps. Returns the status."""
        try:
            if self.running():
                os.kill(self.pid, signal.SIGTERM)
                try:
                    self.popen.wait(grace)
                except subprocess.TimeoutExpired:
                    os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait(grace)
        finally:
            self._out.close()

    def kill(self) -> int:
        """SIGKILL, and reap."""
        try:
            if self.running():
                os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait(STOP_GRACE)
        finally:
            self._out.close()

    def crash(self) -> int:
        """Freeze (SIGSTOP), then SIGKILL, and reap: no chance to say goodbye."""
        self.signal(signal.SIGSTOP)
        return self.kill()


def stop_all(programs: Iterable) -> list[str]:
    """``stop()`` each program (anything with ``name`` and ``stop()``); the errors, if any."""
    errors = []
    for program in programs:
        try:
            program.stop()
        except Exception as error:  # noqa: BLE001 - keep tearing down
            errors.append(f"{program.name}: {error!r}")
    return errors


# --- namespaces, and the processes in them ---

class Namespaces:
    """The namespaces a test created and the processes it started in them.

    Names end in this lab's random :attr:`suffix`; :meth:`close` stops every
    process by its PID, then deletes exactly the namespaces :meth:`add_namespace`
    created, and with them every link inside.
    """

    def __init__(self, ip: str, poll: float = 0.05) -> None:
        self.ip = ip
        self.poll = poll  # seconds between two looks in this lab's waits
        self.suffix = secrets.token_hex(3)
        self.created: list[str] = []
        self.processes: list[Process] = []

    def add_namespace(self, name: str) -> str:
        run([self.ip, "netns", "add", name])
        self.created.append(name)
        run([self.ip, "-n", name, "link", "set", "lo", "up"])
        return name

    def exec_args(self, namespace: str, *args: Arg) -> list[str]:
        return [self.ip, "netns", "exec", namespace, *map(str, args)]

    def start(self, namespace: str, args: Sequence[Arg], log: Path, name: str) -> Process:
        """Start a direct child inside a namespace; :meth:`close` stops it."""
        process = Process(self.exec_args(namespace, *args), log, name)
        self.processes.append(process)
        return process

    def close(self) -> list[str]:
        """Stop every process (newest first), delete every namespace we made; the errors."""
        errors = stop_all(reversed(self.processes))
        for namespace in reversed(self.created):
            result = run([self.ip, "netns", "del", namespace], check=False)
            if result.returncode != 0:
                errors.append(f"ip netns del {namespace}: {result.stderr.strip()}")
        return errors


@contextmanager
def torn_down(lab: N) -> Iterator[N]:
    """Yield ``lab``, then close it; teardown errors fail, unless the block already failed."""
    try:
        yield lab
    finally:
        errors = lab.close()
        if errors and sys.exc_info()[0] is None:  # never hide the test's own failure
            raise AssertionError("teardown: " + "; ".join(errors))


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


# --- lab 1: two namespaces and a veth ---

class Lab(Namespaces):
    """Two namespaces joined by a veth: the server end is ``Vlanif100``."""

    def __init__(self, ip: str) -> None:
        super().__init__(ip)
        suffix = self.suffix
        self.server_ns = f"nft-srv-{suffix}"
        self.client_ns = f"nft-cli-{suffix}"
        self.client_if = f"nftc{suffix}"  # unique: dhcpcd names global files after it
        self.client_mac = "02:4e:46:" + ":".join(suffix[i:i + 2] for i in (0, 2, 4))
        self.server_if = LAN_IF

    def build(self, server_address: str) -> None:
        ip = self.ip
        for ns in (self.server_ns, self.client_ns):
            self.add_namespace(ns)
        veth_server = f"nfts{self.suffix}"  # renamed to Vlanif100 inside the server namespace
        run([ip, "-n", self.server_ns, "link", "add", veth_server, "type", "veth", "peer",
             "name", self.client_if, "netns", self.client_ns])
        run([ip, "-n", self.server_ns, "link", "set", veth_server, "name", self.server_if])
        run([ip, "-n", self.client_ns, "link", "set", self.client_if, "address",
             self.client_mac])
        for ns, link in ((self.server_ns, self.server_if), (self.client_ns, self.client_if)):
            run([ip, "-n", ns, "link", "set", link, "up"])
        self.add_address(self.server_ns, server_address, self.server_if)

    def in_client(self, *args: Arg, timeout: float = 15.0,
                  check: bool = True) -> subprocess.CompletedProcess:
        return run(self.exec_args(self.client_ns, *args), timeout=timeout, check=check)

    def client_addresses(self) -> list[str]:
        out = run([self.ip, "-n", self.client_ns, "-4", "-o", "addr", "show", "dev",
                   self.client_if]).stdout
        return [line.split()[3] for line in out.splitlines() if " inet " in line]

    @property
    def client_mac_bytes(self) -> bytes:
        return mac_bytes(self.client_mac)

    def add_address(self, namespace: str, address: str, device: str) -> None:
        run([self.ip, "-n", namespace, "addr", "add", address, "dev", device])


@contextmanager
def make_lab(ip: str, server_address: str = "10.10.10.1/24") -> Iterator[Lab]:
    """Create the namespaces and the veth; on exit stop every process, delete both.

    Deleting a namespace destroys the veth end inside it, and with it the pair.
    """
    with torn_down(Lab(ip)) as lab:
        lab.build(server_address)
        yield lab


# --- lab 2: hosts on a bridge, routers sharing the virtual IP ---

class Lan(Namespaces):
    """A switch namespace ``<prefix>-sw-<suffix>`` whose bridge ``br0`` joins hosts, each in
    its own namespace ``<prefix>-<label>-<suffix>`` behind a veth (``p<label>`` on the
    switch side).  Routers have ``Vlanif100`` and maybe the tracked ``uplink0``; who
    is VRRP master is read from the kernel: which routers hold :data:`VIP` (on
    ``Vlanif100``, or on the virtual-MAC interface over it).  Where the LAN sends to
    the VIP is a host's ARP entry for it, and for the virtual MAC, the bridge port
    that MAC was last seen on."""

    def __init__(self, ip: str, workdir: Path, prefix: str, poll: float) -> None:
        super().__init__(ip, poll)
        self.dir = workdir
        self.prefix = prefix
        self.switch = f"{prefix}-sw-{self.suffix}"
        self.ns: dict[str, str] = {}  # label -> namespace
        self.ifname: dict[str, str] = {}  # label -> its interface on the bridge
        self.macs: dict[str, str] = {}  # label -> that interface's MAC
        self.address: dict[str, str] = {}  # router label -> its address on Vlanif100
        self.routers: list[str] = []

    def build(self) -> None:
        self.add_namespace(self.switch)
        run([self.ip, "-n", self.switch, "link", "add", "br0", "type", "bridge", "stp_state",
             "0", "mcast_snooping", "0"])
        run([self.ip, "-n", self.switch, "link", "set", "br0", "up"])

    def attach(self, label: str, ifname: str, mac: str | None = None,
               join: bool = True) -> str:
        """A namespace for ``label`` with ``ifname`` plugged into the bridge (with ``join``
        false, the port stays out of the bridge until :meth:`join`)."""
        namespace = self.add_namespace(f"{self.prefix}-{label.lower()}-{self.suffix}")
        self.ns[label] = namespace
        self.ifname[label] = ifname
        port = f"p{label.lower()}"
        run([self.ip, "-n", self.switch, "link", "add", port, "type", "veth", "peer", "name",
             ifname, "netns", namespace])
        if mac is not None:
            self.link(label, ifname, "address", mac)
        run([self.ip, "-n", self.switch, "link", "set", port, "up"])
        self.link(label, ifname, "up")
        if join:
            self.join(label)
        out = run([self.ip, "-n", namespace, "-o", "link", "show", "dev", ifname]).stdout
        self.macs[label] = re.search(r"link/ether ([0-9a-f:]{17})", out).group(1)
        return namespace

    def join(self, label: str) -> None:
        run([self.ip, "-n", self.switch, "link", "set", f"p{label.lower()}", "master", "br0"])

    def add_router(self, label: str, address: str, uplink: bool = True,
                   joined: bool = True) -> str:
        """``Vlanif100`` with ``address``/24 on the bridge; with ``uplink``, also ``uplink0``,
        a veth whose peer ``uplink0p`` stays in the namespace: ``link(label, "uplink0p",
        "down")`` takes its carrier away."""
        namespace = self.attach(label, LAN_IF, join=joined)
        self.address[label] = address
        self.routers.append(label)
        self.addr(label, f"{address}/24")
        if uplink:
            run([self.ip, "-n", namespace, "link", "add", "uplink0", "type", "veth", "peer",
                 "name", "uplink0p"])
            self.link(label, "uplink0", "up")
            self.link(label, "uplink0p", "up")
        return namespace

    def addr(self, label: str, address: str, ifname: str | None = None) -> None:
        run([self.ip, "-n", self.ns[label], "addr", "add", address, "dev",
             ifname or self.ifname[label]])

    def link(self, label: str, ifname: str, *settings: str) -> None:
        run([self.ip, "-n", self.ns[label], "link", "set", ifname, *settings])

    # the virtual IP: who holds it, and where the LAN sends to it

    def vip_interface(self, label: str) -> str | None:
        """The interface of ``label``'s namespace that holds the VIP, if any."""
        out = run([self.ip, "-n", self.ns[label], "-4", "-o", "addr", "show"]).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 3 and fields[3].startswith(f"{VIP}/"):
                return fields[1]
        return None

    def has_vip(self, label: str) -> bool:
        return self.vip_interface(label) is not None

    def drop_vip(self, label: str) -> None:
        """Take the VIP off ``label`` as its kernel would lose it with the whole box."""
        interface = self.vip_interface(label)
        if interface is not None:
            out = run([self.ip, "-n", self.ns[label], "-4", "-o", "addr", "show", "dev",
                       interface]).stdout
            prefix = next(f.split()[3] for f in out.splitlines() if f" {VIP}/" in f)
            run([self.ip, "-n", self.ns[label], "addr", "del", prefix, "dev", interface])

    def holders(self) -> set[str]:
        return {label for label in self.routers if self.has_vip(label)}

    def wait_holders(self, expected: set[str], timeout: float, what: str,
                     context: Callable[[], str] = lambda: "") -> float:
        """Wait until exactly ``expected`` hold the VIP; return when (monotonic)."""
        with explain_failure(context):
            wait_for(lambda: self.holders() == expected, timeout,
                     lambda: f"{what}: VIP holders {sorted(expected)}"
                             f" (now {sorted(self.holders())})", self.poll)
        return time.monotonic()

    def assert_steady(self, expected: set[str], seconds: float, what: str) -> None:
        """The holders stay exactly ``expected`` for ``seconds`` (no flapping, no 2 masters)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            now = self.holders()
            assert now == expected, f"{what}: VIP holders became {sorted(now)}," \
                                    f" expected {sorted(expected)}"
            time.sleep(self.poll)

    def touch_vip(self, label: str) -> None:
        """Make a host's kernel resolve the VIP (as a client sending to it would)."""
        run(self.exec_args(self.ns[label], sys.executable, "-c",
                           f"import socket; socket.socket(2, 2).sendto(b'x', ('{VIP}', 9))"))

    def neighbour(self, label: str) -> str | None:
        """The MAC a host's kernel has for the VIP: where the LAN sends unicast to it."""
        out = run([self.ip, "-n", self.ns[label], "neigh", "show", VIP, "dev",
                   self.ifname[label]]).stdout
        match = re.search(r"lladdr ([0-9a-f:]{17})", out)
        return match.group(1) if match else None

    def bridge_port_of(self, mac: str) -> str | None:
        """The label behind the bridge port that ``mac`` was last seen on (the switch's
        forwarding entry), None when the switch does not know it."""
        out = run(["bridge", "-n", self.switch, "fdb", "show", "br", "br0"]).stdout
        ports = {f"p{label.lower()}": label for label in self.ns}
        for line in out.splitlines():
            fields = line.split()
            if fields[:2] == [mac, "dev"] and "permanent" not in fields:
                return ports.get(fields[2])
        return None

    def unicast_target(self, label: str) -> str | None:
        """The router that gets what ``label`` sends to the VIP: the owner of the MAC
        in its ARP entry, or for the virtual MAC, the router behind its bridge port."""
        mac = self.neighbour(label)
        if mac == VIRTUAL_MAC:
            return self.bridge_port_of(mac)
        return next((router for router, known in self.macs.items() if known == mac), None)

    def wait_neighbour(self, label: str, router: str, timeout: float, why: str) -> None:
        """Wait until what ``label`` sends to the VIP reaches ``router``."""
        wait_for(lambda: self.unicast_target(label) == router, timeout,
                 lambda: f"{label}'s unicast to {VIP} to reach {router} {why}; its ARP"
                         f" entry is {self.neighbour(label)}, which reaches"
                         f" {self.unicast_target(label)}", self.poll)


# --- the server under test ---

class Nefeature:
    """``nefeature run`` in one namespace of a lab, restartable on its state dir.

    Each run logs to a file no earlier run wrote (``<name>-<n>.log``), so a
    ready line is always this run's.
    """

    def __init__(self, lab: Namespaces, namespace: str, config: Path, state_dir: Path,
                 log_dir: Path, name: str, extra_args: Sequence[Arg] = ()) -> None:
        self.lab = lab
        self.extra_args = list(extra_args)  # e.g. --netconf HOST:PORT
        self.namespace = namespace
        self.config = config
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.name = name
        self.process: Process | None = None
        self.runs: list[Process] = []
        self.started_at = 0.0  # wall clock of the latest start

    @property
    def journal(self) -> Path:
        return self.state_dir / "leases.sqlite"

    def start(self) -> Process:
        assert self.process is None or not self.process.running(), f"{self.name} already running"
        number = len(self.runs) + 1
        stem = self.name.replace(" ", "-")
        while (log := self.log_dir / f"{stem}-{number}.log").exists():
            number += 1
        self.started_at = time.time()
        self.process = self.lab.start(self.namespace, [
            *NEFEATURE, "run", "--startup", self.config, "--state-dir", self.state_dir,
            *self.extra_args], log, f"{self.name} run {number}")
        self.runs.append(self.process)
        return self.process

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        self.process.wait_output(READY_LINE, timeout, self.lab.poll)

    def stop(self) -> int:
        assert self.process is not None
        return self.process.stop()

    def kill(self) -> int:
        assert self.process is not None
        return self.process.kill()

    def output(self) -> str:
        """The latest run's log."""
        return self.process.output() if self.process else ""

    def logs(self) -> str:
        """Every run's log, each under a heading."""
        return "\n".join(process.logs() for process in self.runs)

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.output().splitlines() if needle in line]

    def wait_log(self, needle: str, timeout: float, count: int = 1) -> str:
        """The ``count``-th line of the latest run's log that contains ``needle``."""
        def seen() -> str | None:
            found = self.lines(needle)
            return found[count - 1] if len(found) >= count else None

        with explain_failure(self.logs):
            return wait_for(seen, timeout, f"{self.name} to log {needle!r}", self.lab.poll)

    def transitions(self) -> list[tuple[str, str, str]]:
        return re.findall(r"VRRP Vlanif100 vrid 1: (\w+) -> (\w+) \(([\w-]+)\)", self.output())

    def wait_transition(self, old: str, new: str, reason: str, timeout: float = 5.0) -> None:
        """The VRRP transition is in the log.  A device adds or drops the virtual address
        a moment before it logs the transition, so a test that has just seen the address
        move waits for the line instead of reading the log at once."""
        self.wait_log(f"VRRP Vlanif100 vrid 1: {old} -> {new} ({reason})", timeout)

    def problems(self, levels: Sequence[str] = ("ERROR", "CRITICAL", "WARNING")) -> list[str]:
        """Lines of any run's log with a traceback or a record of one of ``levels``."""
        return [line for process in self.runs for line in process.output().splitlines()
                if "Traceback" in line or any(f" {level} " in line for level in levels)]

    def warnings(self) -> list[str]:
        return self.problems(("WARNING",))

    def assert_healthy(self, levels: Sequence[str] = ("ERROR", "CRITICAL", "WARNING")) -> None:
        """No traceback, and no record of ``levels`` (by default: not even a warning)."""
        bad = self.problems(levels)
        assert not bad, f"{self.name} logged problems:\n" + "\n".join(bad) + f"\n{self.logs()}"

    def rows(self) -> list[dict]:
        return journal_rows(self.journal)

    def split(self, pool: str) -> int | None:
        return journal_split(self.journal, pool)


class Server(Nefeature):
    """The server of a :class:`Lab`: ``start`` returns once it serves."""

    def __init__(self, lab: Lab, config: Path, state_dir: Path, log_dir: Path) -> None:
        super().__init__(lab, lab.server_ns, config, state_dir, log_dir, "server")

    def start(self, timeout: float = 20.0) -> Process:
        process = super().start()
        self.wait_ready(timeout)
        return process


# --- configurations derived from the examples ---

def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not unique in the example config"
    return text.replace(old, new)


def ip_pool(name: str, network: IPv4Network, gateway: str, identifier: str | None = None,
            backup_profile: str | None = None) -> str:
    """One ``<ip-pool>`` of the DHCP server model, to insert before ``</ip-pools>``."""
    optional = "".join(f"        <{leaf}>{value}</{leaf}>\n" for leaf, value in (
        ("identifier-ip", identifier), ("remote-backup-profile", backup_profile)) if value)
    return (f"      <ip-pool>\n"
            f"        <ip-pool-name>{name}</ip-pool-name>\n"
            f"        <network>\n"
            f"          <ip-address>{network.network_address}</ip-address>\n"
            f"          <mask>{network.netmask}</mask>\n"
            f"        </network>\n"
            f"        <gateway-list>{gateway}</gateway-list>\n"
            f"{optional}"
            f"      </ip-pool>\n")


def add_pools(text: str, *pools: str) -> str:
    return replace_once(text, "    </ip-pools>", "".join(pools) + "    </ip-pools>")


def pair_device(lan: Lan, label: str, *pools: str,
                advertise_centiseconds: int | None = None) -> Nefeature:
    """examples/pair/device{A,B}.xml in ``lan.ns[label]``, with more pools bound to the
    profile and, if given, a faster VRRP advertisement interval."""
    text = (PAIR / f"device{label}.xml").read_text()
    if advertise_centiseconds is not None:
        text = replace_once(text, "<vrid>1</vrid>", "<vrid>1</vrid>\n          "
                            f"<advertise-interval-centi-sec>{advertise_centiseconds}"
                            "</advertise-interval-centi-sec>")
    config = write_config(lan.dir / f"device{label}.xml", add_pools(text, *pools))
    return Nefeature(lan, lan.ns[label], config, lan.dir / f"state-{label}", lan.dir,
                     f"Device{label}")


def write_config(path: Path, text: str) -> Path:
    """Write a derived config and check it with ``nefeature validate``."""
    path.write_text(text)
    result = run([*NEFEATURE, "validate", path], check=False)
    assert result.returncode == 0, f"generated config {path} is invalid:\n{result.stdout}" \
                                   f"{result.stderr}\n{text}"
    return path


# --- the lease journal, read-only ---

def journal_rows(path: Path) -> list[dict]:
    """All rows of DIR/leases.sqlite and of its log not yet folded, read-only (the server
    may hold it open); none while it does not exist yet."""
    if not Path(path).exists():
        return []
    db = snapshot(path)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM leases ORDER BY address").fetchall()
    finally:
        db.close()
    result = []
    for row in rows:
        entry = dict(row)
        for column in ("client", "hardware_address", "client_id", "option82"):
            if entry.get(column) is not None:
                entry[column] = bytes(entry[column])
        entry["ip"] = str(IPv4Address(entry["address"]))
        result.append(entry)
    return result


def journal_split(path: Path, pool: str) -> int | None:
    """The split of a backed-up pool's shares the journal holds (None: none yet)."""
    db = snapshot(path)
    try:
        row = db.execute("SELECT value FROM journal_info WHERE key = ?",
                         ("pool-split " + pool,)).fetchone()
    finally:
        db.close()
    return None if row is None else int(row[0])


def journal_row(path: Path, address: str) -> dict | None:
    return next((row for row in journal_rows(path) if row["ip"] == address), None)


# --- the clients' hook script ---

HOOK = """#!/bin/sh
# Test hook for dhclient (-sf), udhcpc (-s) and dhcpcd (-c): logs what the
# client learned and sets the address (so unicast renew/release work).  It
# never touches resolv.conf, routes or anything outside the interface.
event="${{reason:-$1}}"
addr="${{new_ip_address:-$ip}}"
mask="${{new_subnet_mask:-$subnet}}"
printf 'event=%s\\tip=%s\\tmask=%s\\trouter=%s\\tdns=%s\\tlease=%s\\tserver=%s\\n' \\
  "$event" "$addr" "$mask" "${{new_routers:-$router}}" \\
  "${{new_domain_name_servers:-$dns}}" "${{new_dhcp_lease_time:-$lease}}" \\
  "${{new_dhcp_server_identifier:-$serverid}}" >> {log}
case "$event" in
  BOUND|RENEW|REBIND|REBOOT|bound|renew)
    if [ -n "$addr" ] && [ -n "$mask" ] && [ -n "$interface" ]; then
      {ip} addr replace "$addr/$mask" dev "$interface"
    fi;;
esac
exit 0
"""


def write_hook(path: Path, log: Path, ip: str) -> Path:
    path.write_text(HOOK.format(log=_shell_quote(str(log)), ip=_shell_quote(ip)))
    path.chmod(0o755)
    return path


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def hook_events(log: Path) -> list[dict[str, str]]:
    """The hook log as dicts: event, ip, mask, router, dns, lease, server."""
    if not log.exists():
        return []
    events = []
    for line in log.read_text().splitlines():
        events.append(dict(item.split("=", 1) for item in line.split("\t") if "=" in item))
    return events


BOUND_EVENTS = frozenset({"BOUND", "RENEW", "REBIND", "REBOOT", "bound", "renew"})


def wait_for_event(log: Path, names: set[str] | frozenset[str], after: int = 0,
                   timeout: float = 20.0, what: str = "", process: Process | None = None,
                   interval: float = 0.05) -> dict[str, str]:
    """The first hook event named in ``names`` past the first ``after`` events."""

    def found() -> dict[str, str] | None:
        for event in hook_events(log)[after:]:
            if event.get("event") in names:
                return event
        if process is not None and not process.running():
            # one last look: the event may have come just before the exit
            for event in hook_events(log)[after:]:
                if event.get("event") in names:
                    return event
            raise AssertionError(f"{process.name} exited {process.popen.returncode} without"
                                 f" {sorted(names)}; output:\n{process.output()}\n"
                                 f"hook log: {hook_events(log)}")
        return None

    def state() -> str:
        output = process.output() if process is not None else ""
        return f"{output}\nhook: {hook_events(log)}"

    with explain_failure(state):
        return wait_for(found, timeout, what or f"hook event {sorted(names)} in {log}", interval)
