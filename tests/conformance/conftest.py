"""A real device process with NETCONF on loopback, and real clients to judge it.

The device runs ``nefeature run`` (no root needed: DHCP on a high port, no
directly served interface, VRRP on the emulated LAN), and the tests talk to
it with ncclient and netconf-console2 over SSH, as controllers would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import ncclient.transport.session
import pytest
from ncclient import manager

from tests.conftest import EXAMPLES

ncclient.transport.session.TICK = 0.001  # or every RPC waits 100 ms (tooling.md 1.5)

USER, PASSWORD = "admin", "conformance-secret"
NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
DHCP_NS = "urn:nefeature:yang:nefeature-dhcp-server"
IF_NS = "urn:nefeature:yang:nefeature-interfaces"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def device_config() -> str:
    """examples/single/server.xml without a directly served interface, plus a VRRP group."""
    text = (EXAMPLES / "single" / "server.xml").read_text().split("-->", 1)[1]
    text = text.replace('<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server">\n'
                        '      <select>global</select>\n    </dhcp>\n', "")
    return text.replace("</mask>\n    </ipv4>", """</mask>
      <vrrp xmlns="urn:nefeature:yang:nefeature-vrrp">
        <vrrp-instance>
          <vrid>1</vrid>
          <priority>120</priority>
          <virtual-ipv4-addresses>
            <virtual-ipv4-address><ipv4-address>10.10.10.100</ipv4-address></virtual-ipv4-address>
          </virtual-ipv4-addresses>
        </vrrp-instance>
      </vrrp>
    </ipv4>""", 1)


class DeviceProcess:
    def __init__(self, tmp: Path, environment: dict[str, str] | None = None):
        self.environment = {**os.environ, **(environment or {})}
        self.state_dir = tmp / "state"
        self.startup = tmp / "startup.xml"
        self.startup.write_text(device_config())
        self.log = tmp / "device.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self, users: tuple[str, ...] = ("--netconf-user", USER, "--netconf-password",
                                              PASSWORD)) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "nefeature", "run", "--startup", str(self.startup),
                   "--state-dir", str(self.state_dir), "--netconf", f"127.0.0.1:{self.port}",
                   *users,
                   "--dhcp-port", str(free_port(socket.SOCK_DGRAM)),
                   "--emulate-lan", f"239.255.70.{os.getpid() % 200 + 10}:{free_port(socket.SOCK_DGRAM)}"]
        self.process = subprocess.Popen(command, stderr=open(self.log, "w"),
                                        env=self.environment)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "NETCONF over SSH" in self.log.read_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("device did not start:\n" + self.log.read_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def connect(self, **kwargs) -> manager.Manager:
        return manager.connect(host="127.0.0.1", port=self.port, username=USER,
                               password=PASSWORD, hostkey_verify=False, look_for_keys=False,
                               allow_agent=False, timeout=30, **kwargs)

    def log_text(self) -> str:
        return self.log.read_text()


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    process = DeviceProcess(tmp_path_factory.mktemp("device"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def nc(device):
    session = device.connect()
    yield session
    if session.connected:
        session.close_session()


def pool_edit(dns: str, operation: str | None = None, extra: str = "") -> str:
    attribute = f' xmlns:nc="{NC_NS}" nc:operation="{operation}"' if operation else ""
    return (f'<config xmlns="{NC_NS}"><dhcp xmlns="{DHCP_NS}"><server><ip-pools><ip-pool>'
            f"<ip-pool-name>pool1</ip-pool-name><dns-list{attribute}>{dns}</dns-list>{extra}"
            "</ip-pool></ip-pools></server></dhcp></config>")


def dns_of(session, source="running") -> list[str]:
    reply = session.get_config(source=source, filter=("subtree", (
        f'<dhcp xmlns="{DHCP_NS}"><server><ip-pools><ip-pool><dns-list/></ip-pool>'
        "</ip-pools></server></dhcp>")))
    return re.findall(r"<dns-list>([^<]+)</dns-list>", reply.data_xml)


def restore(session) -> None:
    """Put the pool's DNS list back to the example's single server."""
    session.discard_changes()
    current = dns_of(session)
    for value in current:
        if value != "10.10.10.53":
            session.edit_config(target="candidate", config=pool_edit(value, "remove"))
    if "10.10.10.53" not in current:
        session.edit_config(target="candidate", config=pool_edit("10.10.10.53"))
    session.commit()
