"""Virtual IPs and the virtual MAC on a real interface (as root, in network namespaces).

A program in the server namespace (``nft-srv-*``, interface ``Vlanif100``
10.10.10.1/24) drives one :class:`VirtualAddresses` the way the device does,
step by step: each step is a file the test writes into a control directory
(``<n>.cmd``), answered by ``<n>.done`` once done.  The client namespace
(``nft-cli-*``, the other end of the veth, given 10.10.10.50/24) is the LAN:
it asks for the VIP by ARP and sends to it.  What the kernel holds is read
with ``ip``.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.system.netns import (
    LAN_IF,
    VIP,
    VIRTUAL_MAC,
    Lab,
    Process,
    make_lab,
    require_root,
    require_tool,
    run,
    wait_for,
)

pytestmark = pytest.mark.system

CLIENT_ADDRESS = "10.10.10.50"
OTHER_MAC = "02:00:00:00:aa:aa"

DRIVER = r"""
import asyncio, logging, socket, sys
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from nefeature.vrrp.transport import VirtualAddresses, remove_leftovers

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s",
                    stream=sys.stdout)
control = Path(sys.argv[1])

def echo(sock):  # what reaches the VIP comes back: the LAN can send to it
    data, source = sock.recvfrom(2048)
    sock.sendto(data, source)

async def main():
    loop = asyncio.get_running_loop()
    virtual = VirtualAddresses("Vlanif100", IPv4Interface("10.10.10.1/24"))
    for step in range(1000):
        path = control / f"{step}.cmd"
        for _ in range(3000):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        else:
            return
        command = path.read_text().split()
        if command[0] == "add":
            mac = bytes.fromhex(command[2].replace(":", "")) if len(command) > 2 else None
            virtual.add([int(IPv4Address(command[1]))], mac)
        elif command[0] == "remove":
            virtual.remove([int(IPv4Address(command[1]))])
        elif command[0] == "leftovers":
            remove_leftovers(["Vlanif100"])
        elif command[0] == "echo":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((command[1], 7777))
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), echo, sock)
        elif command[0] == "quit":
            virtual.close()
            (control / f"{step}.done").write_text("")
            return
        (control / f"{step}.done").write_text("")

asyncio.run(main())
"""

ARP_PROBE = r"""
import socket, struct, sys, time
ifname, mine, target, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
sender = sys.argv[5] if len(sys.argv) > 5 else None
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
mac = open("/sys/class/net/%s/address" % ifname).read().strip()
mac = bytes.fromhex((sender or mac).replace(":", ""))
if sender:  # a gratuitous ARP: another device claims the address
    s.send(b"\xff" * 6 + mac + b"\x08\x06" + bytes.fromhex("0001080006040001") + mac
           + socket.inet_aton(target) + b"\x00" * 6 + socket.inet_aton(target))
else:
    s.send(b"\xff" * 6 + mac + b"\x08\x06" + bytes.fromhex("0001080006040001") + mac
           + socket.inet_aton(mine) + b"\x00" * 6 + socket.inet_aton(target))
s.settimeout(0.05)
end = time.time() + seconds
while time.time() < end:
    try:
        frame, address = s.recvfrom(2048)
    except socket.timeout:
        continue
    if address[2] == 4 or frame[12:14] != b"\x08\x06" or frame[28:32] != socket.inet_aton(target):
        continue
    kind = "reply" if frame[20:22] == b"\x00\x02" else "request"
    print(kind, ":".join("%02x" % b for b in frame[22:28]), flush=True)
"""

SEND_TO_VIP = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b"hello", (sys.argv[1], 7777))
print(s.recvfrom(100)[0].decode())
"""


class Driver:
    """The driver program in the server namespace, one step at a time."""

    def __init__(self, lab: Lab, workdir: Path, name: str = "driver") -> None:
        self.lab = lab
        self.control = workdir / f"{name}-control"
        self.control.mkdir()
        self.step = 0
        self.process: Process = lab.start(lab.server_ns, [sys.executable, "-c", DRIVER,
                                                          self.control],
                                          workdir / f"{name}.log", name)

    def do(self, *command: str) -> None:
        # written whole, then renamed: the driver polls for the file and must never read it
        # between its creation and its write (an empty command)
        pending = self.control / f"{self.step}.cmd.part"
        pending.write_text(" ".join(command))
        pending.replace(self.control / f"{self.step}.cmd")
        done = self.control / f"{self.step}.done"
        wait_for(lambda: done.exists() or not self.process.running(), 10,
                 f"{' '.join(command)} done", 0.01)
        assert done.exists(), f"{self.process.name} died:\n{self.process.output()}"
        self.step += 1

    def warnings(self) -> list[str]:
        return [line for line in self.process.output().splitlines()
                if line.startswith(("WARNING", "ERROR"))]


@pytest.fixture
def lab(tmp_path: Path):
    require_root()
    ip = require_tool("ip", "iproute2")
    with make_lab(ip) as built:
        built.add_address(built.client_ns, f"{CLIENT_ADDRESS}/24", built.client_if)
        yield built


def addresses(lab: Lab) -> dict[str, list[str]]:
    """Interface -> IPv4 addresses in the server namespace (loopback aside)."""
    out = run([lab.ip, "-n", lab.server_ns, "-4", "-o", "addr", "show"]).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        fields = line.split()
        if fields[1] != "lo":
            found.setdefault(fields[1], []).append(fields[3])
    return found


def links(lab: Lab) -> dict[str, str]:
    """Interface name -> its ``ip -d -o link`` line, in the server namespace."""
    out = run([lab.ip, "-d", "-n", lab.server_ns, "-o", "link", "show"]).stdout
    return {line.split(": ")[1].split("@")[0]: line for line in out.splitlines()}


def arp(lab: Lab, seconds: float = 0.3, claim_from: str | None = None) -> list[str]:
    """ARP for the VIP from the client: each answer as "reply MAC" / "request MAC"."""
    args = [sys.executable, "-c", ARP_PROBE, lab.client_if, CLIENT_ADDRESS, VIP, str(seconds)]
    out = lab.in_client(*args, *([claim_from] if claim_from else [])).stdout
    return out.split("\n")[:-1]


def interface_mac(lab: Lab) -> str:
    line = links(lab)[LAN_IF]
    return re.search(r"link/ether ([0-9a-f:]{17})", line).group(1)


def test_without_the_virtual_mac_the_vip_goes_on_the_interface_and_its_mac_answers(
        lab: Lab, tmp_path: Path) -> None:
    driver = Driver(lab, tmp_path)
    for _ in range(2):  # the second time finds it done: no error either way
        driver.do("add", VIP)
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24", f"{VIP}/24"]}
    assert arp(lab) == [f"reply {interface_mac(lab)}"]  # the kernel's answer
    for _ in range(2):
        driver.do("remove", VIP)
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24"]}
    assert arp(lab) == []
    driver.do("quit")
    assert driver.warnings() == []


def test_with_the_virtual_mac_a_macvlan_holds_the_vip_and_only_that_mac_answers(
        lab: Lab, tmp_path: Path) -> None:
    driver = Driver(lab, tmp_path)
    driver.do("add", VIP, VIRTUAL_MAC)
    held = addresses(lab)
    vmacs = [name for name in held if name != LAN_IF]
    assert len(vmacs) == 1 and held[vmacs[0]] == [f"{VIP}/32"], held
    assert held[LAN_IF] == ["10.10.10.1/24"]
    line = links(lab)[vmacs[0]]
    assert f"@{LAN_IF}" in line and f"link/ether {VIRTUAL_MAC}" in line, line
    assert "NOARP" in line and "macvlan mode private" in line and ",UP" in line, line
    assert "alias nefeature vrrp 1 on Vlanif100" in line, line
    # One answer, from the transport, with the virtual MAC: not the kernel's, not two.
    assert arp(lab) == [f"reply {VIRTUAL_MAC}"]
    driver.do("echo", VIP)
    reached = lab.in_client(sys.executable, "-c", SEND_TO_VIP, VIP).stdout.strip()
    assert reached == "hello"  # what the LAN sends to the virtual MAC arrives
    neighbour = run([lab.ip, "-n", lab.client_ns, "neigh", "show", VIP]).stdout
    assert f"lladdr {VIRTUAL_MAC}" in neighbour, neighbour

    driver.do("remove", VIP)  # backup now: the macvlan stays, empty, and nothing answers
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24"]}
    assert vmacs[0] in links(lab)
    assert arp(lab) == []
    driver.do("add", VIP, VIRTUAL_MAC)  # master again, on the same macvlan
    assert addresses(lab)[vmacs[0]] == [f"{VIP}/32"]
    assert arp(lab) == [f"reply {VIRTUAL_MAC}"]
    driver.do("remove", VIP)
    driver.do("quit")  # the group stops: its macvlan goes
    assert set(links(lab)) == {"lo", LAN_IF}
    assert driver.warnings() == []


def test_switching_the_virtual_mac_moves_the_held_vip(lab: Lab, tmp_path: Path) -> None:
    driver = Driver(lab, tmp_path)
    driver.do("add", VIP, VIRTUAL_MAC)
    driver.do("add", VIP)  # virtual-mac turned off while master
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24", f"{VIP}/24"]}
    assert set(links(lab)) == {"lo", LAN_IF}
    assert arp(lab) == [f"reply {interface_mac(lab)}"]
    driver.do("add", VIP, VIRTUAL_MAC)  # and on again
    assert sorted(addresses(lab)[LAN_IF]) == ["10.10.10.1/24"]
    assert arp(lab) == [f"reply {VIRTUAL_MAC}"]
    driver.do("quit")
    assert driver.warnings() == []


def test_a_claim_by_another_device_is_answered_with_a_gratuitous_arp(
        lab: Lab, tmp_path: Path) -> None:
    driver = Driver(lab, tmp_path)
    driver.do("add", VIP, VIRTUAL_MAC)
    time.sleep(1.2)  # past the repeated announcement of the takeover
    seen = arp(lab, seconds=0.5, claim_from=OTHER_MAC)
    assert seen == [f"request {VIRTUAL_MAC}"], seen  # our gratuitous ARP, once
    assert "02:00:00:00:aa:aa claimed 10.10.10.100" in driver.process.output()
    seen = arp(lab, seconds=0.5, claim_from=OTHER_MAC)
    assert seen == [], seen  # at most one answer a second: two claimers cannot storm
    driver.do("quit")


def test_a_killed_holder_answers_nothing_and_the_next_start_clears_what_it_left(
        lab: Lab, tmp_path: Path) -> None:
    first = Driver(lab, tmp_path, "first")
    first.do("add", VIP, VIRTUAL_MAC)
    first.process.signal(signal.SIGKILL)
    first.process.kill()
    # The kernel keeps the macvlan and the VIP, but nothing answers for it:
    # the LAN's switches follow whichever device advertises the virtual MAC.
    held = addresses(lab)
    assert len(held) == 2 and [f"{VIP}/32"] in held.values(), held
    assert arp(lab) == []

    second = Driver(lab, tmp_path, "second")
    second.do("leftovers")
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24"]}
    assert set(links(lab)) == {"lo", LAN_IF}
    assert "left behind by a previous run" in second.process.output()

    # Without the virtual MAC a killed holder leaves the VIP on the interface,
    # whose kernel keeps answering for it: the next start's remove() takes it off.
    second.do("add", VIP)
    second.process.kill()
    assert arp(lab) == [f"reply {interface_mac(lab)}"]
    third = Driver(lab, tmp_path, "third")
    third.do("remove", VIP)
    assert addresses(lab) == {LAN_IF: ["10.10.10.1/24"]}
    third.do("quit")
    assert third.warnings() == []
