"""Helpers for system tests in network namespaces (DESIGN.md section 8).

Everything a test builds here is its own: namespaces with a random suffix, a
veth pair whose ends live only inside them, processes started as direct
children (``ip netns exec`` execs in place, so the PID we hold is the
program's) and stopped by that PID.  DHCP clients run with :func:`write_hook`
as their script, never their stock one, which would rewrite the host's
/etc/resolv.conf (research/tooling.md section 3).

Every wait is bounded; every resource is released in a ``finally``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import IO, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
NEFEATURE = VENV_BIN / "nefeature"
PYTHON = VENV_BIN / "python"
SERVER_INTERFACE = "Vlanif100"  # the Linux interface named in examples/single/server.xml
READY_LINE = "serving DHCP"
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

T = TypeVar("T")


# --- prerequisites (the only reasons a system test may skip) ---

def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("system test needs root (network namespaces, port 67, raw sockets)")


def require_tool(name: str, package: str) -> str:
    """Absolute path of a program, or skip naming what is missing."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"`{name}` is not installed (Debian package {package};"
                    " `make test` installs it when run as root)")
    return path


# --- waiting ---

def wait_for(predicate: Callable[[], T], timeout: float, what: str,
             interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def run(args: list[str], timeout: float = 15.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command to completion (bounded), capturing its output."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")
    return result


# --- processes, stopped by PID ---

class Process:
    """A direct child with its output in a file; stopped by PID, SIGKILL as a last resort."""

    def __init__(self, args: list[str], log: Path, name: str) -> None:
        self.args = args
        self.log = log
        self.name = name
        self._out: IO[bytes] = open(log, "ab")
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

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait for a process expected to end by itself; SIGKILL it if it does not."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within {timeout} s;"
                                 f" output:\n{self.output()}") from None

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
        """SIGKILL (a crash), and reap."""
        try:
            if self.running():
                os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait(STOP_GRACE)
        finally:
            self._out.close()


# --- namespaces and the link between them ---

@dataclass
class Lab:
    """Two namespaces joined by a veth: the server end is ``Vlanif100``."""

    ip: str
    server_ns: str
    client_ns: str
    client_if: str
    client_mac: str
    server_if: str = SERVER_INTERFACE
    processes: list[Process] = field(default_factory=list)

    def exec_args(self, namespace: str, *args: str | os.PathLike) -> list[str]:
        return [self.ip, "netns", "exec", namespace, *map(str, args)]

    def in_client(self, *args: str | os.PathLike, timeout: float = 15.0,
                  check: bool = True) -> subprocess.CompletedProcess:
        return run(self.exec_args(self.client_ns, *args), timeout=timeout, check=check)

    def start(self, namespace: str, args: list[str | os.PathLike], log: Path,
              name: str) -> Process:
        """Start a direct child inside a namespace; the lab stops it at teardown."""
        process = Process(self.exec_args(namespace, *args), log, name)
        self.processes.append(process)
        return process

    def client_addresses(self) -> list[str]:
        out = run([self.ip, "-n", self.client_ns, "-4", "-o", "addr", "show", "dev",
                   self.client_if]).stdout
        return [line.split()[3] for line in out.splitlines() if " inet " in line]

    @property
    def client_mac_bytes(self) -> bytes:
        return bytes.fromhex(self.client_mac.replace(":", ""))

    def add_address(self, namespace: str, address: str, device: str) -> None:
        run([self.ip, "-n", namespace, "addr", "add", address, "dev", device])


@contextmanager
def make_lab(ip: str, server_address: str = "10.10.10.1/24") -> Iterator[Lab]:
    """Create the namespaces and the veth; on exit stop every process, delete both.

    Deleting a namespace destroys the veth end inside it, and with it the pair.
    """
    suffix = secrets.token_hex(3)
    lab = Lab(ip=ip, server_ns=f"nft-srv-{suffix}", client_ns=f"nft-cli-{suffix}",
              client_if=f"nftc{suffix}",  # unique: dhcpcd names global files after it
              client_mac="02:4e:46:" + ":".join(suffix[i:i + 2] for i in (0, 2, 4)))
    created: list[str] = []
    try:
        for ns in (lab.server_ns, lab.client_ns):
            run([ip, "netns", "add", ns])
            created.append(ns)
        veth_server = f"nfts{suffix}"  # renamed to Vlanif100 inside the server namespace
        run([ip, "-n", lab.server_ns, "link", "add", veth_server, "type", "veth", "peer", "name",
             lab.client_if, "netns", lab.client_ns])
        run([ip, "-n", lab.server_ns, "link", "set", veth_server, "name", lab.server_if])
        run([ip, "-n", lab.client_ns, "link", "set", lab.client_if, "address", lab.client_mac])
        for ns, link in ((lab.server_ns, lab.server_if), (lab.client_ns, lab.client_if)):
            run([ip, "-n", ns, "link", "set", "lo", "up"])
            run([ip, "-n", ns, "link", "set", link, "up"])
        run([ip, "-n", lab.server_ns, "addr", "add", server_address, "dev", lab.server_if])
        yield lab
    finally:
        errors = []
        for process in reversed(lab.processes):
            try:
                process.stop()
            except Exception as error:  # keep tearing down
                errors.append(f"{process.name}: {error!r}")
        for ns in created:
            result = run([ip, "netns", "del", ns], check=False)
            if result.returncode != 0:
                errors.append(f"ip netns del {ns}: {result.stderr.strip()}")
        if errors and sys.exc_info()[0] is None:  # never hide the test's own failure
            raise AssertionError("teardown: " + "; ".join(errors))


# --- the server under test ---

class Server:
    """``nefeature run`` in the lab's server namespace."""

    def __init__(self, lab: Lab, config: Path, state_dir: Path, log_dir: Path) -> None:
        self.lab = lab
        self.config = config
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.process: Process | None = None
        self.starts = 0
        self.log_paths: list[Path] = []

    @property
    def journal(self) -> Path:
        return self.state_dir / "leases.sqlite"

    def start(self, timeout: float = 20.0) -> Process:
        assert self.process is None or not self.process.running(), "server already running"
        self.starts += 1
        log = self.log_dir / f"server-{self.starts}.log"
        while log.exists():  # never read another run's "serving DHCP" as ours
            self.starts += 1
            log = self.log_dir / f"server-{self.starts}.log"
        self.log_paths.append(log)
        process = self.lab.start(self.lab.server_ns, [
            NEFEATURE, "run", "--startup", self.config, "--state-dir", self.state_dir], log,
            f"nefeature run #{self.starts}")
        self.process = process

        def ready() -> bool:
            if READY_LINE in process.output():
                return True
            if not process.running():
                raise AssertionError(f"nefeature run exited {process.popen.returncode}"
                                     f" before serving:\n{process.output()}")
            return False

        wait_for(ready, timeout, f"'{READY_LINE}' from nefeature run")
        return process

    def stop(self) -> int:
        assert self.process is not None
        return self.process.stop()

    def kill(self) -> int:
        assert self.process is not None
        return self.process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')}"
            for path in self.log_paths if path.exists())

    def assert_healthy(self) -> None:
        """No traceback, warning or error in any of the server's logs so far."""
        text = self.logs()
        bad = [line for line in text.splitlines()
               if "Traceback" in line or any(f" {level} " in line for level in
                                             ("WARNING", "ERROR", "CRITICAL"))]
        assert not bad, f"the server logged warnings or errors:\n{text}"


# --- the lease journal, read-only ---

def journal_rows(path: Path) -> list[dict]:
    """All rows of DIR/leases.sqlite, opened read-only (the server may hold it open)."""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM leases ORDER BY address").fetchall()
        return [dict(row) | {"ip": str(IPv4Address(row["address"]))} for row in rows]
    finally:
        db.close()


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
                   timeout: float = 20.0, what: str = "", process: Process | None = None
                   ) -> dict[str, str]:
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

    return wait_for(found, timeout, what or f"hook event {sorted(names)} in {log}")
