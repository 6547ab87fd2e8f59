"""DHCP server dual-device hot backup in the Figure 4-10 topology (network namespaces).

Topology (built per test, every name with a random suffix, deleted at the end)::

    nhb-sw-XXXXXX: Linux bridge br0 (the "switch"), one veth port per namespace
     |
     +-- nhb-a-: DeviceA  Vlanif100 10.10.10.1/24; uplink0 <-> uplink0p (tracked uplink)
     +-- nhb-b-: DeviceB  Vlanif100 10.10.10.2/24
     +-- nhb-u1- .. nhb-u4-: udhcpc, one per namespace (u4 comes after the switchover)
     +-- nhb-d1- .. nhb-d3-: dhclient, one per namespace
     +-- nhb-sc-: scapy clients with made-up MACs, directly attached
     +-- nhb-rl-: scapy relay agent 10.10.10.250/24 + giaddr 10.20.0.1/24, Option 82
     +-- nhb-pf-: perfdhcp as a relay, 10.10.10.251/24 + giaddr 10.30.0.2/20
     +-- nhb-ob-: an observer (10.10.10.50) whose ARP entry shows where the VIP is

* DeviceA and DeviceB run ``nefeature run`` with examples/pair/device{A,B}.xml,
  changed by text substitution: A's preempt hold-time is 5 s (not 600), and
  both get two more pools bound to remote-backup-profile service1: ``relayed``
  (10.20.0.0/24, giaddr 10.20.0.1, behind the relay at 10.10.10.250) and
  ``perf`` (10.30.0.0/20, perfdhcp's giaddr 10.30.0.2 at 10.10.10.251); each
  device routes those subnets to their relay.  A's tracked uplink
  GigabitEthernet0/1/2 is ``uplink0``, a veth whose peer ``uplink0p`` stays in
  A's namespace: ``ip link set uplink0p down`` cuts it.
* Clients: busybox udhcpc and ISC dhclient, each in its own namespace, with
  our own hook script (logs the environment, ``ip addr replace``); scapy
  clients with made-up MACs on one AF_PACKET socket in one namespace; scapy
  clients behind a relay agent (Option 82, distinct circuit-id per client).
* Who is VRRP master is read from the kernel: which device holds the virtual
  IP 10.10.10.100 on Vlanif100.  What each device stored is read from its
  lease journal (STATE/leases.sqlite, opened read-only while it runs).

Tests:

1. ``test_uplink_failure_moves_clients_to_b_with_their_leases``: bind 16
   clients through A; every lease is in both journals (B's row origin
   peer-sync, Option 82 intact); A's uplink goes down, B becomes the only
   master; every client renews its same address from server identifier
   10.10.10.100 (udhcpc SIGUSR1 = unicast RENEWING, udhcpc ``-r``, dhclient
   INIT-REBOOT, scapy RENEWING direct and through the relay with Option 82
   echoed); new clients get addresses nobody holds; the uplink returns, A
   takes the role back after its hold-time, the LAN follows it (gratuitous
   ARP), relayed clients renew on A, and both journals agree.
2. ``test_crash_takeover_and_rejoin_with_batch_backup``: A is frozen and
   killed while master (SIGSTOP, SIGKILL; then its box "goes dark": the
   leftover VIP is removed and Vlanif100 taken down, as if the whole router
   died); B takes over; the same renewals succeed on B; A restarts on its own
   state dir, receives the batch backup, and becomes master only after its
   journal holds B's versions of every lease; the LAN follows A back
   (gratuitous ARP) and relayed clients renew on A; both journals agree.
3. ``test_restarted_device_drops_leftover_vip_and_announces_takeover``: only
   A's process crashes, its kernel keeps the VIP; restarted, A must drop it
   while backup, and announce it (gratuitous ARP) when it preempts.
4. ``test_switchover_under_perfdhcp_load``: perfdhcp (as a relay) loads the
   pair; A's uplink is cut in the middle; no address is acknowledged to two
   clients, every ACK from A was preceded by B's journal commit (B's journal
   is read every 0.5 s during the run: an ACK seen on the wire before a read
   began must be in that read), and the journals agree.  The counts are
   printed (run pytest with ``-s`` to see them).

The bridge, the namespaces, the processes, the hook script and ``nefeature
run`` come from tests/system/netns.py (:class:`netns.Lan`,
:class:`netns.Nefeature`), shared with test_vrrp.py.

Timings are never assertions here except protocol semantics with generous
slack (A does not preempt before its hold-time).  Needs root, iproute2,
udhcpc, dhclient, perfdhcp (kea-admin) and scapy in the virtualenv; skips
naming what is missing.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from tests.system.netns import (
    BOUND_EVENTS,
    LAN_IF,
    PAIR,
    PYTHON,
    VIP,
    VIRTUAL_MAC,
    Lan,
    Nefeature,
    Process,
    add_pools,
    explain_failure,
    hook_events,
    ip_pool,
    logs_of,
    mac_bytes,
    replace_once,
    require_root,
    require_tool,
    run,
    torn_down,
    wait_for,
    wait_for_event,
    write_config,
    write_hook,
)

pytestmark = pytest.mark.system

CLIENT_IF = "lan0"
ADDRESS = {"A": "10.10.10.1", "B": "10.10.10.2"}
POOL1 = IPv4Network("10.10.10.0/24")
RELAY_LAN = "10.10.10.250"
GIADDR = "10.20.0.1"
RELAYED = IPv4Network("10.20.0.0/24")
PERF_LAN = "10.10.10.251"
PERF_GIADDR = "10.30.0.2"
PERF = IPv4Network("10.30.0.0/20")
HOLD_TIME = 5  # A's preempt hold-time in the test configs (600 in Huawei's example)
ONE_DAY = 86400

CHANNEL_UP = "remote backup service1: protected: peer connected"
ELECTION_TIMEOUT = 25.0  # master-down interval (3.6 s) or hold-time, plus a lot of margin
POLL = 0.02

# Two more pools bound to service1: behind the relay, and perfdhcp's.
EXTRA_POOLS = (ip_pool("relayed", RELAYED, GIADDR, identifier=VIP, backup_profile="service1"),
               ip_pool("perf", PERF, PERF_GIADDR, identifier=VIP, backup_profile="service1"))


# --- prerequisites: the only reasons to skip ---

@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    require_root()
    check = subprocess.run([str(PYTHON), "-c", "import scapy.layers.dhcp"],
                           capture_output=True, timeout=60)
    if check.returncode != 0:
        pytest.skip("scapy is not installed in the virtualenv")
    return {"ip": require_tool("ip", "iproute2"), "udhcpc": require_tool("udhcpc", "udhcpc"),
            "dhclient": require_tool("dhclient", "isc-dhcp-client"),
            "perfdhcp": require_tool("perfdhcp", "kea-admin")}


# --- small helpers ---

def random_mac() -> str:
    return "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))


def log_time(line: str) -> float:
    """Wall-clock time of a ``nefeature run`` log line (logging's asctime, local time)."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


# --- the topology ---

class Lab(Lan):
    """The switch, the two devices and the client namespaces; everything is ours."""

    def __init__(self, tools: dict[str, str], workdir: Path) -> None:
        super().__init__(tools["ip"], workdir, "nhb", POLL)
        self.tools = tools

    def add_device(self, label: str) -> None:
        """Vlanif100 with the device's address; A also gets its tracked uplink."""
        self.add_router(label, ADDRESS[label], uplink=label == "A")
        self.routes(label)

    def routes(self, label: str) -> None:
        """A device's static routes to the relayed subnets (gone when Vlanif100 goes down)."""
        for network, via in ((RELAYED, RELAY_LAN), (PERF, PERF_LAN)):
            run([self.ip, "-n", self.ns[label], "route", "replace", str(network), "via", via])


@pytest.fixture
def lab(tools: dict[str, str], tmp_path: Path) -> Iterator[Lab]:
    with torn_down(Lab(tools, tmp_path)) as built:
        built.build()
        built.add_device("A")
        built.add_device("B")
        yield built


# --- the devices ---

def device_config(path: Path, label: str, virtual_mac: bool = True) -> Path:
    """examples/pair/device{A,B}.xml with hold-time 5 s and the relayed and perf pools
    (and, without ``virtual_mac``, the interface's own MAC answering for the VIP)."""
    text = (PAIR / f"device{label}.xml").read_text()
    if label == "A":
        text = replace_once(text, "<hold-time>600</hold-time>",
                            f"<hold-time>{HOLD_TIME}</hold-time>")
    if not virtual_mac:
        text = replace_once(text, "<vrid>1</vrid>",
                            "<vrid>1</vrid>\n          <virtual-mac>false</virtual-mac>")
    return write_config(path, add_pools(text, *EXTRA_POOLS))


class Device(Nefeature):
    """``nefeature run`` in a device namespace; restartable on the same state dir."""

    def __init__(self, lab: Lab, label: str, virtual_mac: bool = True) -> None:
        super().__init__(lab, lab.ns[label],
                         device_config(lab.dir / f"device{label}.xml", label, virtual_mac),
                         lab.dir / f"state-{label}", lab.dir, f"Device{label}")
        self.label = label


def bound(rows: list[dict]) -> dict[str, dict]:
    return {row["ip"]: row for row in rows if row["state"] == "bound"}


SYNCED_COLUMNS = ("pool", "client", "hardware_address", "state", "start", "expiry",
                  "client_id", "hostname", "option82", "static")


def same_lease(a: dict, b: dict) -> bool:
    return all(a[c] == b[c] for c in SYNCED_COLUMNS)


def show_rows(rows: list[dict] | dict) -> str:
    rows = list(rows.values()) if isinstance(rows, dict) else rows
    return "\n".join(
        f"  {r['ip']:<15} {r['pool']:<8} {r['state']:<8} {r['origin']:<9}"
        f" hw={r['hardware_address'].hex()} start={r['start']:.3f} expiry={r['expiry']}"
        f" opt82={r['option82'].hex() if r['option82'] else None}" for r in rows) or "  (empty)"


def journals_agree(a: Device, b: Device) -> tuple[bool, str]:
    """Both journals hold the same bound (address, client) pairs."""
    rows_a, rows_b = bound(a.rows()), bound(b.rows())
    pairs_a = {(ip, r["client"]) for ip, r in rows_a.items()}
    pairs_b = {(ip, r["client"]) for ip, r in rows_b.items()}
    if pairs_a == pairs_b:
        return True, ""
    only_a = sorted(ip for ip, _ in pairs_a - pairs_b)
    only_b = sorted(ip for ip, _ in pairs_b - pairs_a)
    return False, (f"only in A's journal: {only_a}; only in B's: {only_b}\n"
                   f"A:\n{show_rows(rows_a)}\nB:\n{show_rows(rows_b)}")


def wait_journals_agree(a: Device, b: Device, timeout: float = 15.0) -> None:
    last = [""]

    def agree() -> bool:
        ok, last[0] = journals_agree(a, b)
        return ok

    with explain_failure(lambda: last[0]):
        wait_for(agree, timeout, "both journals to agree on the bound leases", interval=0.2)


def duplicate_addresses(*journals: dict[str, dict]) -> dict[str, set]:
    """Addresses bound to different clients in different journals."""
    clients: dict[str, set] = {}
    for rows in journals:
        for ip, row in rows.items():
            clients.setdefault(ip, set()).add(row["client"])
    return {ip: c for ip, c in clients.items() if len(c) > 1}


def clients_with_several_addresses(rows: dict[str, dict]) -> dict[tuple, list[str]]:
    by_client: dict[tuple, list[str]] = {}
    for ip, row in rows.items():
        by_client.setdefault((row["pool"], row["client"]), []).append(ip)
    return {k: v for k, v in by_client.items() if len(v) > 1}


def assert_healthy(*devices: Device) -> None:
    """No traceback or error in any run's log (warnings are reported, not failed on)."""
    for device in devices:
        device.assert_healthy(("ERROR", "CRITICAL"))


def start_pair(lab: Lab, virtual_mac: bool = True) -> tuple[Device, Device]:
    """Start A then B; wait until A alone holds the VIP and the channel is up on both."""
    a, b = Device(lab, "A", virtual_mac), Device(lab, "B", virtual_mac)
    a.start()
    b.start()
    a.wait_ready()
    b.wait_ready()
    lab.wait_holders({"A"}, ELECTION_TIMEOUT, "A (priority 200) becomes master",
                     logs_of(a, b))
    a.wait_log(CHANNEL_UP, ELECTION_TIMEOUT)
    b.wait_log(CHANNEL_UP, ELECTION_TIMEOUT)
    lab.assert_steady({"A"}, 1.0, "A stays the only master")
    assert_healthy(a, b)
    return a, b


# --- clients ---

class RealClient:
    """One dhclient or udhcpc in its own namespace, with our hook script."""

    def __init__(self, lab: Lab, label: str, kind: str) -> None:
        self.lab = lab
        self.label = label
        self.kind = kind
        self.mac = random_mac()
        lab.attach(label, CLIENT_IF, self.mac)
        self.dir = lab.dir / label
        self.dir.mkdir()
        self.hook_log = self.dir / "hook.log"
        self.hook = write_hook(self.dir / "hook.sh", self.hook_log, lab.ip)
        self.process: Process | None = None
        self.runs = 0
        self.address: str | None = None

    def events(self) -> list[dict[str, str]]:
        return hook_events(self.hook_log)

    def _start(self, args: list) -> Process:
        self.runs += 1
        self.process = self.lab.start(self.lab.ns[self.label], args,
                                      self.dir / f"{self.kind}-{self.runs}.log",
                                      f"{self.kind} {self.label} #{self.runs}")
        return self.process

    def wait_event(self, names: set[str] | frozenset[str], after: int,
                   timeout: float = 30.0) -> dict[str, str]:
        return wait_for_event(self.hook_log, names, after, timeout,
                              f"{self.kind} {self.label}: {sorted(names)}", self.process, POLL)

    def stop(self) -> None:
        if self.process is not None and self.process.running():
            self.process.terminate()


class Udhcpc(RealClient):
    """busybox udhcpc.  ``persistent``: stays in the foreground, SIGUSR1 renews (unicast
    REQUEST with ciaddr to the server identifier: RENEWING).  Otherwise one-shot runs
    (``-q``), the renewal is a new run with ``-r <address>``."""

    def __init__(self, lab: Lab, label: str, persistent: bool) -> None:
        super().__init__(lab, label, "udhcpc")
        self.persistent = persistent
        self.binary = lab.tools["udhcpc"]

    def _args(self, *extra: str) -> list:
        return [self.binary, "-f", "-n", "-i", CLIENT_IF, "-s", self.hook, "-t", "5", "-T", "2",
                "-A", "1", *extra]

    def start_obtain(self) -> int:
        seen = len(self.events())
        self._start(self._args() if self.persistent else self._args("-q"))
        return seen

    def finish(self, seen: int) -> dict:
        event = self.wait_event({"bound"}, seen)
        if not self.persistent:
            status = self.process.wait(20)
            assert status == 0, f"{self.process.name} exited {status}:\n{self.process.output()}"
        self.address = event["ip"]
        return event

    def start_renew(self) -> int:
        seen = len(self.events())
        if self.persistent:
            self.process.signal(signal.SIGUSR1)
        else:
            self._start(self._args("-q", "-r", self.address))
        return seen

    def finish_renew(self, seen: int) -> dict:
        names = {"renew", "bound"}
        event = self.wait_event(names, seen)
        output = self.process.output()
        if self.persistent:
            assert event["event"] == "renew" and "sending renew" in output, output
        else:
            status = self.process.wait(20)
            assert status == 0, f"{self.process.name} exited {status}:\n{output}"
        return event


class Dhclient(RealClient):
    """ISC dhclient in the foreground; the renewal is a second run on the same lease
    file after a stop: an INIT-REBOOT REQUEST for the address it holds."""

    def __init__(self, lab: Lab, label: str) -> None:
        super().__init__(lab, label, "dhclient")
        self.binary = lab.tools["dhclient"]
        conf = self.dir / "dhclient.conf"  # not /etc/dhcp/dhclient.conf
        conf.write_text("request subnet-mask, routers, dhcp-lease-time, dhcp-server-identifier;\n"
                        "timeout 30;\nreboot 10;\n")
        self.common = ["-4", "-v", "-cf", conf, "-pf", self.dir / "dhclient.pid",
                       "-lf", self.dir / "dhclient.leases", "-sf", self.hook]

    def start_obtain(self) -> int:
        seen = len(self.events())
        self._start([self.binary, "-d", "-1", *self.common, CLIENT_IF])
        return seen

    def finish(self, seen: int) -> dict:
        event = self.wait_event(BOUND_EVENTS, seen)
        assert event["event"] == "BOUND", (event, self.process.output())
        self.address = event["ip"]
        return event

    def start_renew(self) -> int:
        self.stop()
        return self.start_obtain()

    def finish_renew(self, seen: int) -> dict:
        event = self.wait_event(BOUND_EVENTS, seen)
        output = self.process.output()
        assert event["event"] == "REBOOT", \
            f"{self.label}: expected INIT-REBOOT to succeed, got {event}:\n{output}"
        assert f"DHCPREQUEST for {self.address}" in output and "DHCPDISCOVER" not in output \
            and "DHCPNAK" not in output, output
        return event


# Runs inside a client namespace: scapy DHCP clients, either directly attached (one
# AF_PACKET socket, a made-up MAC per client) or behind a relay agent (UDP, giaddr,
# Option 82).  argv[1] is a JSON spec; prints one JSON list of results on stdout.
SCAPY_CLIENTS = r'''
import json, os, socket, sys, time
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

spec = json.loads(sys.argv[1])
server, timeout, tries = spec["server"], spec.get("timeout", 2.0), spec.get("tries", 3)
PRL = [1, 3, 6, 51, 54, 58, 59]

def options(packet):
    return dict(o for o in packet[DHCP].options if isinstance(o, tuple))

def summary(data, src_mac=None, src=None):
    packet = BOOTP(data)
    o = options(packet)
    r82 = o.get("relay_agent_information")
    return {"type": o.get("message-type"), "yiaddr": packet.yiaddr, "ciaddr": packet.ciaddr,
            "giaddr": packet.giaddr, "server_id": o.get("server_id"),
            "lease_time": o.get("lease_time"), "option82": r82.hex() if r82 else None,
            "src_mac": src_mac, "src": src, "raw": data.hex(), "t": time.time()}

def dhcp(kind, mac, xid, extra=(), **fields):
    return BOOTP(op=1, htype=1, hlen=6, xid=xid, chaddr=mac + bytes(10), **fields) / DHCP(
        options=[("message-type", kind), ("client_id", b"\x01" + mac),
                 ("param_req_list", PRL), *extra, "end"])

def macstr(mac):
    return ":".join("%02x" % b for b in mac)

results = []
if spec["mode"] == "direct":
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    sock.bind((spec["ifname"], 0))

    def receive(match, wait):
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            try:
                frame, address = sock.recvfrom(4096)
            except socket.timeout:
                return None
            if address[2] == socket.PACKET_OUTGOING:
                continue
            found = match(frame)
            if found is not None:
                return found

    def dhcp_reply(mac, xid):
        def match(frame):
            if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
                return None
            ihl = (frame[14] & 15) * 4
            udp = 14 + ihl
            if int.from_bytes(frame[udp + 2:udp + 4], "big") != 68:
                return None
            payload = frame[udp + 8:]
            if payload[0] != 2 or payload[4:8] != xid.to_bytes(4, "big") \
                    or payload[28:34] != mac:
                return None
            return summary(payload, macstr(frame[6:12]), socket.inet_ntoa(frame[26:30]))
        return match

    def exchange(frame, mac, xid, wanted):
        for attempt in range(tries):
            sock.send(bytes(frame))
            reply = receive(dhcp_reply(mac, xid), timeout)
            if reply is not None:
                reply["attempts"] = attempt + 1
                return reply
        return {"type": None, "error": "no reply to %s" % wanted}

    def arp(mac, mine):
        sock.send(bytes(Ether(src=macstr(mac), dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=macstr(mac), psrc=mine, pdst=server)))
        seen = []
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            def match(frame):
                if frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" \
                        and frame[28:32] == socket.inet_aton(server):
                    return macstr(frame[22:28])
            answer = receive(match, end - time.monotonic())
            if answer is not None and answer not in seen:
                seen.append(answer)
        return seen

    broadcast = dict(src="0.0.0.0", dst="255.255.255.255")
    for client in spec["clients"]:
        mac = bytes.fromhex(client["mac"].replace(":", ""))
        xid = int.from_bytes(os.urandom(4), "big")
        result = {"mac": client["mac"], "op": client["op"]}
        eth = Ether(src=client["mac"], dst="ff:ff:ff:ff:ff:ff")
        if client["op"] == "dora":
            wish = [("requested_addr", client["requested"])] if client.get("requested") else []
            offer = exchange(eth / IP(**broadcast) / UDP(sport=68, dport=67)
                             / dhcp("discover", mac, xid, wish), mac, xid, "DISCOVER")
            result["offer"] = offer
            if offer["type"] != 2:
                results.append(result)
                continue
            result["ack"] = exchange(eth / IP(**broadcast) / UDP(sport=68, dport=67) / dhcp(
                "request", mac, xid, [("server_id", offer["server_id"]),
                                      ("requested_addr", offer["yiaddr"])]), mac, xid, "REQUEST")
        else:  # RENEWING: unicast to the server identifier, ciaddr set, no option 50/54
            ciaddr = client["ciaddr"]
            answers = arp(mac, ciaddr)
            result["arp"] = answers
            if not answers:
                result["ack"] = {"type": None, "error": "nobody answered ARP for " + server}
                results.append(result)
                continue
            result["ack"] = exchange(
                Ether(src=client["mac"], dst=answers[0]) / IP(src=ciaddr, dst=server)
                / UDP(sport=68, dport=67) / dhcp("request", mac, xid, ciaddr=ciaddr),
                mac, xid, "REQUEST (renewing)")
        results.append(result)
else:  # relay agent: from RELAY_LAN:67 to the server, replies to giaddr:67
    relay, giaddr = spec["relay"], spec["giaddr"]
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    send.bind((relay, 67))
    receive = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receive.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    receive.bind((giaddr, 67))

    def exchange(packet, xid, wanted):
        for attempt in range(tries):
            send.sendto(bytes(packet), (server, 67))
            end = time.monotonic() + timeout
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                receive.settimeout(left)
                try:
                    data, source = receive.recvfrom(4096)
                except socket.timeout:
                    break
                if len(data) >= 8 and data[0] == 2 and int.from_bytes(data[4:8], "big") == xid:
                    reply = summary(data, None, "%s:%d" % source)
                    reply["attempts"] = attempt + 1
                    return reply
        return {"type": None, "error": "no reply to %s" % wanted}

    for client in spec["clients"]:
        mac = bytes.fromhex(client["mac"].replace(":", ""))
        option82 = bytes.fromhex(client["option82"])
        xid = int.from_bytes(os.urandom(4), "big")
        result = {"mac": client["mac"], "op": client["op"]}
        r82 = [("relay_agent_information", option82)]
        if client["op"] == "dora":
            offer = exchange(dhcp("discover", mac, xid, r82, giaddr=giaddr, hops=1), xid,
                             "DISCOVER")
            result["offer"] = offer
            if offer["type"] != 2:
                results.append(result)
                continue
            result["ack"] = exchange(dhcp(
                "request", mac, xid, [("server_id", offer["server_id"]),
                                      ("requested_addr", offer["yiaddr"]), *r82],
                giaddr=giaddr, hops=1), xid, "REQUEST")
        else:  # a renewal the relay forwards: ciaddr and giaddr set, unicast to the server
            result["ack"] = exchange(dhcp("request", mac, xid, r82, giaddr=giaddr, hops=1,
                                          ciaddr=client["ciaddr"]), xid, "REQUEST (renewing)")
        results.append(result)
print(json.dumps(results))
'''


def option82_for(index: int) -> bytes:
    circuit = f"GE0/1/{index}:100".encode()
    remote = b"relay-250"
    return bytes((1, len(circuit))) + circuit + bytes((2, len(remote))) + remote


class ScapyClients:
    """A set of scapy clients in one namespace: directly attached, or behind the relay."""

    def __init__(self, lab: Lab, label: str, relayed: bool, count: int) -> None:
        self.lab = lab
        self.label = label
        self.relayed = relayed
        lab.attach(label, CLIENT_IF)
        if relayed:
            lab.addr(label, f"{RELAY_LAN}/24")
            lab.addr(label, f"{GIADDR}/24")
        else:
            lab.link(label, CLIENT_IF, "promisc", "on")  # frames to the made-up MACs
        self.script = lab.dir / "scapy_clients.py"
        self.script.write_text(SCAPY_CLIENTS)
        self.clients: list[dict] = []
        self.runs = 0
        self.add(count)

    def add(self, count: int) -> list[dict]:
        new = []
        for _ in range(count):
            index = len(self.clients) + 1
            client = {"mac": random_mac(), "address": None}
            if self.relayed:
                client["option82"] = option82_for(index).hex()
            self.clients.append(client)
            new.append(client)
        return new

    def start(self, op: str, clients: list[dict]) -> Process:
        spec = {"server": VIP, "mode": "relay" if self.relayed else "direct",
                "ifname": CLIENT_IF, "relay": RELAY_LAN, "giaddr": GIADDR, "clients": [
                    {"mac": c["mac"], "op": op, "ciaddr": c["address"],
                     "option82": c.get("option82"), "requested": c.get("requested")}
                    for c in clients]}
        self.runs += 1
        return self.lab.start(self.lab.ns[self.label], [PYTHON, self.script, json.dumps(spec)],
                              self.lab.dir / f"{self.label}-{self.runs}.log",
                              f"scapy clients {self.label} #{self.runs}")

    @staticmethod
    def results(process: Process, timeout: float = 90.0) -> list[dict]:
        status = process.wait(timeout)
        output = process.output()
        assert status == 0, f"{process.name} exited {status}:\n{output}"
        return json.loads(output.strip().splitlines()[-1])


# --- what a client got, and what the journals say ---

def check_ack(result: dict, network: IPv4Network, expect: str | None = None,
              option82: str | None = None) -> str:
    """A DHCPACK from the virtual IP, for an address of ``network``; returns it."""
    ack = result.get("ack") or {}
    assert ack.get("type") == 5, f"client {result['mac']} {result['op']}: no DHCPACK: {result}"
    assert ack["server_id"] == VIP, result
    address = ack["yiaddr"]
    assert IPv4Address(address) in network, result
    if expect is not None:
        assert address == expect, f"client {result['mac']} got {address}, held {expect}: {result}"
    if option82 is not None:
        assert ack["option82"] == option82, \
            f"Option 82 not echoed byte for byte to {result['mac']}: {ack['option82']}" \
            f" != {option82}"
        raw = bytes.fromhex(ack["raw"])
        wanted = bytes.fromhex(option82)
        assert bytes((82, len(wanted))) + wanted in raw
    if ack.get("src") and ":" in ack["src"]:  # relayed: from the VIP, port 67
        assert ack["src"] == f"{VIP}:67", result
    elif ack.get("src"):
        assert ack["src"] == VIP, result
    return address


def check_real_event(event: dict, client: RealClient, expect: str | None = None) -> str:
    assert event["server"] == VIP, f"{client.label}: server identifier {event}"
    assert IPv4Address(event["ip"]) in POOL1, event
    assert event["mask"] == "255.255.255.0" and event["router"].split() == [VIP], event
    if expect is not None:
        assert event["ip"] == expect, f"{client.label} got {event['ip']}, held {expect}"
    return event["ip"]


class Clients:
    """The whole client population of a test."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.udhcpc = [Udhcpc(lab, "u1", True), Udhcpc(lab, "u2", True),
                       Udhcpc(lab, "u3", False)]
        self.dhclient = [Dhclient(lab, f"d{i}") for i in (1, 2, 3)]
        self.direct = ScapyClients(lab, "sc", relayed=False, count=4)
        self.relay = ScapyClients(lab, "rl", relayed=True, count=6)
        self.late = Udhcpc(lab, "u4", False)  # a new client after the switchover

    @property
    def real(self) -> list[RealClient]:
        return [*self.udhcpc, *self.dhclient]

    def expected(self) -> dict[str, dict]:
        """address -> (hardware address, option 82) of every client that holds one."""
        held = {}
        for client in [*self.real, self.late]:
            if client.address:
                held[client.address] = {"hw": mac_bytes(client.mac), "option82": None,
                                        "who": f"{client.kind} {client.label}"}
        for group in (self.direct, self.relay):
            for client in group.clients:
                if client["address"]:
                    held[client["address"]] = {
                        "hw": mac_bytes(client["mac"]),
                        "option82": bytes.fromhex(client["option82"])
                        if client.get("option82") else None,
                        "who": f"scapy {group.label} {client['mac']}"}
        return held

    def bind_all(self) -> None:
        """Everybody obtains a lease, concurrently; checks what each learned."""
        seen = {client: client.start_obtain() for client in self.real}
        direct = self.direct.start("dora", self.direct.clients)
        relay = self.relay.start("dora", self.relay.clients)
        for client, mark in seen.items():
            check_real_event(client.finish(mark), client)
        for result, client in zip(ScapyClients.results(direct), self.direct.clients):
            client["address"] = check_ack(result, POOL1)
        for result, client in zip(ScapyClients.results(relay), self.relay.clients):
            client["address"] = check_ack(result, RELAYED, option82=client["option82"])
        addresses = list(self.expected())
        assert len(addresses) == len(self.real) + len(self.direct.clients) + \
            len(self.relay.clients), f"two clients share an address: {addresses}"

    def renew_all(self, server_mac: str) -> list[dict]:
        """Every client renews and must get its same address from the device whose
        Vlanif100 has ``server_mac`` (ARP for the VIP answered once, with the virtual
        MAC); returns the scapy acks."""
        seen = {client: client.start_renew() for client in self.real}
        direct = self.direct.start("renew", self.direct.clients)
        relay = self.relay.start("renew", self.relay.clients)
        for client, mark in seen.items():
            check_real_event(client.finish_renew(mark), client, expect=client.address)
        acks = []
        for result, client in zip(ScapyClients.results(direct), self.direct.clients):
            check_ack(result, POOL1, expect=client["address"])
            assert result["arp"] == [VIRTUAL_MAC], \
                f"ARP for {VIP} answered by {result['arp']}, expected only {VIRTUAL_MAC}"
            assert result["ack"]["src_mac"] == server_mac, result
            acks.append(result)
        for result, client in zip(ScapyClients.results(relay), self.relay.clients):
            check_ack(result, RELAYED, expect=client["address"], option82=client["option82"])
            acks.append(result)
        return acks

    def renew_relayed(self) -> None:
        """The relayed clients renew once more (after the role moved back)."""
        results = ScapyClients.results(self.relay.start("renew", self.relay.clients))
        for result, client in zip(results, self.relay.clients):
            check_ack(result, RELAYED, expect=client["address"], option82=client["option82"])

    def relayed_leases(self) -> dict[str, dict]:
        mine = {c["address"] for c in self.relay.clients}
        return {ip: want for ip, want in self.expected().items() if ip in mine}

    def bind_new(self) -> list[str]:
        """A new direct client (udhcpc) and a new relayed one (scapy)."""
        mark = self.late.start_obtain()
        new_relayed = self.relay.add(1)
        relay = self.relay.start("dora", new_relayed)
        addresses = [check_real_event(self.late.finish(mark), self.late)]
        result = ScapyClients.results(relay)[0]
        new_relayed[0]["address"] = check_ack(result, RELAYED, option82=new_relayed[0]["option82"])
        addresses.append(new_relayed[0]["address"])
        return addresses

    def stop(self) -> None:
        for client in [*self.real, self.late]:
            client.stop()


def assert_in_journal(device: Device, expected: dict[str, dict], origin: str | None) -> dict:
    """Every expected lease is bound in the device's journal to its client."""
    rows = bound(device.rows())
    missing, wrong = [], []
    for ip, want in expected.items():
        row = rows.get(ip)
        if row is None:
            missing.append(f"{ip} ({want['who']})")
            continue
        if row["hardware_address"] != want["hw"] or row["option82"] != want["option82"] \
                or (origin is not None and row["origin"] != origin):
            wrong.append(f"{ip} ({want['who']}): hw={row['hardware_address'].hex()}"
                         f" option82={row['option82']!r} origin={row['origin']};"
                         f" expected hw={want['hw'].hex()} option82={want['option82']!r}"
                         f" origin={origin}")
    assert not missing and not wrong, (
        f"{device.name}'s journal: missing {missing}; wrong {wrong}\n"
        f"journal:\n{show_rows(device.rows())}")
    return rows


def assert_strict_sync(a: Device, b: Device, expected: dict[str, dict]) -> None:
    """A granted every lease (origin local), B holds the same rows (origin peer-sync)."""
    rows_a = assert_in_journal(a, expected, "local")
    rows_b = assert_in_journal(b, expected, "peer-sync")
    differ = [ip for ip in expected if not same_lease(rows_a[ip], rows_b[ip])]
    assert not differ, f"B's copy differs from A's for {differ}:\nA:\n{show_rows(rows_a)}\n" \
                       f"B:\n{show_rows(rows_b)}"


def assert_served_by(device: Device, expected: dict[str, dict], since: float) -> None:
    """The device itself granted (renewed) every lease after ``since`` (wall clock)."""
    rows = assert_in_journal(device, expected, "local")
    old = [f"{ip} start={rows[ip]['start']:.3f}" for ip in expected if rows[ip]["start"] < since]
    assert not old, f"{device.name} did not renew {old} (since {since:.3f})\n{show_rows(rows)}"


class VipWatch(threading.Thread):
    """Samples who holds the VIP every 50 ms; reports any time both did."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.samples: list[tuple[float, frozenset]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.samples.append((time.monotonic(), frozenset(self.lab.holders())))
            except Exception:  # the lab may be going away
                return
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def both(self) -> float:
        """Longest run of samples in which both devices held the VIP (seconds)."""
        longest, start = 0.0, None
        for t, holders in self.samples:
            if holders == {"A", "B"}:
                start = t if start is None else start
                longest = max(longest, t - start + 0.05)
            else:
                start = None
        return longest


# --- 1. tracked uplink down ---

def test_uplink_failure_moves_clients_to_b_with_their_leases(lab: Lab) -> None:
    clients = Clients(lab)
    a, b = start_pair(lab)
    watch = VipWatch(lab)
    watch.start()
    try:
        clients.bind_all()
        expected = clients.expected()
        assert len(expected) == 16
        assert_strict_sync(a, b, expected)  # already there: each ACK waited for B

        switch = time.time()
        lab.link("A", "uplink0p", "down")
        lab.wait_holders({"B"}, ELECTION_TIMEOUT, "B master, A without the VIP after A's"
                         " uplink went down", logs_of(a, b))
        a.wait_transition("master", "backup", "higher-priority-advertisement")
        b.wait_transition("backup", "master", "preempted")
        lab.assert_steady({"B"}, 1.0, "B stays the only master")

        clients.renew_all(lab.macs["B"])
        assert_served_by(b, expected, switch)
        new = clients.bind_new()
        assert not set(new) & set(expected), f"new clients got held addresses: {new}"
        everyone = clients.expected()
        assert len(everyone) == len(expected) + 2
        assert_in_journal(b, {ip: everyone[ip] for ip in new}, "local")
        assert not duplicate_addresses(bound(a.rows()), bound(b.rows()))
        wait_journals_agree(a, b)  # A, backup now, applied B's renewals and new leases
        assert_in_journal(a, everyone, "peer-sync")

        # The uplink returns: A takes the role back after its hold-time.
        back = time.monotonic()
        lab.link("A", "uplink0p", "up")
        lab.wait_holders({"A"}, HOLD_TIME + ELECTION_TIMEOUT, "A master again after its"
                         " uplink returned", logs_of(a, b))
        assert time.monotonic() - back >= HOLD_TIME - 1.0, \
            f"A preempted before its {HOLD_TIME} s hold-time:\n{a.output()}"
        lab.assert_steady({"A"}, 1.0, "A stays the only master")
        # A announced the VIP: the relay, which last sent to B, follows without asking
        lab.wait_neighbour("rl", "A", 5, "after A took the role back (gratuitous ARP)")
        renewed = time.time()
        clients.renew_relayed()
        assert_served_by(a, clients.relayed_leases(), renewed)
        wait_journals_agree(a, b)
        assert watch.both() < 1.5, f"both devices held the VIP for {watch.both():.2f} s"
        assert_healthy(a, b)
        print(f"\n[uplink] 16 clients bound on A, synced to B; {len(everyone)} leases after"
              f" switchover; dual VIP holders for at most {watch.both():.2f} s;"
              f" warnings: A {a.warnings()} B {b.warnings()}")
    finally:
        watch.stop()
        clients.stop()


# --- 2. crash of A, takeover by B, A rejoins with a batch backup ---

def test_crash_takeover_and_rejoin_with_batch_backup(lab: Lab) -> None:
    clients = Clients(lab)
    a, b = start_pair(lab)
    try:
        clients.bind_all()
        expected = clients.expected()
        assert_strict_sync(a, b, expected)

        # A dies while master: frozen, then killed.  A dead box has no kernel either:
        # the VIP it had added goes, and its LAN port loses carrier.
        t0 = time.monotonic()
        crash = time.time()
        a.process.crash()
        lab.drop_vip("A")
        lab.link("A", LAN_IF, "down")
        lab.wait_holders({"B"}, ELECTION_TIMEOUT, "B master after A's crash", logs_of(a, b))
        took = time.monotonic() - t0
        b.wait_transition("backup", "master", "no-response")

        clients.renew_all(lab.macs["B"])
        assert_served_by(b, expected, crash)
        new = clients.bind_new()
        assert not set(new) & set(expected), f"new clients got held addresses: {new}"
        everyone = clients.expected()
        on_b = {ip: row for ip, row in bound(b.rows()).items()}
        assert_in_journal(b, everyone, "local")

        # A returns on its own state dir (old versions of every lease, none of the new).
        lab.link("A", LAN_IF, "up")  # the box is back, with its static routes
        lab.routes("A")
        a.start()
        a.wait_ready()
        want = {(ip, row["client"], row["expiry"]) for ip, row in on_b.items()}
        synced_at: float | None = None
        master_seen: float | None = None
        deadline = time.monotonic() + HOLD_TIME + ELECTION_TIMEOUT + 10
        while time.monotonic() < deadline:
            rows = bound(a.rows())
            have = {(ip, row["client"], row["expiry"]) for ip, row in rows.items()}
            now = time.time()
            if synced_at is None and want <= have:
                synced_at = now
            if lab.has_vip("A"):
                master_seen = time.time()
                assert synced_at is not None, (
                    f"A holds the VIP but its journal lacks B's leases"
                    f" {sorted(want - have)}:\n{show_rows(rows)}\n{a.logs()}")
                break
            time.sleep(POLL)
        assert master_seen is not None, f"A never became master again:\n{a.logs()}" \
                                        f"\n{b.logs()}"
        lab.wait_holders({"A"}, ELECTION_TIMEOUT, "B gives the VIP back", logs_of(a, b))
        became = [line for line in a.lines("VRRP Vlanif100 vrid 1: backup -> master")]
        assert became and "(preempted)" in became[0], a.output()
        master_logged = log_time(became[0])
        assert synced_at <= master_logged, \
            f"A became master at {master_logged:.3f} before its journal had every lease" \
            f" ({synced_at:.3f})"
        assert master_logged - a.started_at >= HOLD_TIME - 1.0, \
            f"A preempted before its hold-time:\n{a.output()}"
        assert a.lines(CHANNEL_UP), a.output()
        rows_a = assert_in_journal(a, everyone, "peer-sync")  # everything came from B
        for ip, row in on_b.items():
            assert same_lease(rows_a[ip], row), f"{ip}: A {rows_a[ip]} B {row}"
        lab.wait_neighbour("rl", "A", 5, "after A took the role back (gratuitous ARP)")
        back = time.time()
        clients.renew_relayed()
        assert_served_by(a, clients.relayed_leases(), back)
        wait_journals_agree(a, b)
        assert_healthy(a, b)
        print(f"\n[crash] B master {took:.2f} s after SIGSTOP of A; A's journal complete"
              f" {master_logged - synced_at:.2f} s before it became master again"
              f" ({master_logged - a.started_at:.2f} s after its restart);"
              f" warnings: A {a.warnings()} B {b.warnings()}")
    finally:
        clients.stop()


# --- 3. a process crash on a live box: the kernel keeps the VIP ---

def test_restarted_device_drops_leftover_vip_and_announces_takeover(lab: Lab) -> None:
    """SIGKILL leaves the VIP on A's Vlanif100 (nobody can remove it while A is
    dead).  Restarted, A is a backup and must not keep it (keepalived 2.2.7 logs
    "removing VIPs." and drops them at startup); when A preempts, it must send a
    gratuitous ARP so the LAN moves back from B's MAC to A's."""
    lab.attach("ob", CLIENT_IF)
    lab.addr("ob", "10.10.10.50/24")
    a, b = start_pair(lab)
    lab.touch_vip("ob")
    lab.wait_neighbour("ob", "A", 5, "(A is master)")

    a.process.crash()
    lab.wait_holders({"A", "B"}, ELECTION_TIMEOUT, "B takes over; A's kernel still has the"
                     " address the killed process added", logs_of(a, b))
    lab.wait_neighbour("ob", "B", 5, "after B took over (gratuitous ARP)")

    a.start()
    a.wait_ready()
    lab.wait_holders({"B"}, 3.0, f"restarted A, a backup for its {HOLD_TIME} s hold-time,"
                     " to drop the leftover VIP", logs_of(a, b))
    lab.wait_holders({"A"}, HOLD_TIME + ELECTION_TIMEOUT, "A master again", logs_of(a, b))
    lab.wait_neighbour("ob", "A", 5, "after A took the role back (gratuitous ARP)")
    assert_healthy(a, b)
    assert not [w for w in a.warnings() if "ip addr" in w], a.warnings()


# --- 4. switchover under load ---

# Runs in the perfdhcp namespace: every DHCP message perfdhcp sends (out) and every
# reply to its relay address (in), with the time, the Ethernet source (which device
# sent a reply), the message type, xid, yiaddr and chaddr; one tab-separated line each.
DHCP_SNIFFER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL: also
s.bind((sys.argv[1], 0))                                               # what we send
giaddr = socket.inet_aton(sys.argv[2])
print("ready", flush=True)
while True:
    frame, address = s.recvfrom(4096)
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        continue
    outgoing = address[2] == socket.PACKET_OUTGOING
    if (frame[26:30] if outgoing else frame[30:34]) != giaddr:
        continue
    udp = 14 + (frame[14] & 15) * 4
    p = frame[udp + 8:]
    if len(p) < 240 or p[0] != (1 if outgoing else 2):
        continue
    kind, i = 0, 240
    while i + 1 < len(p) and p[i] != 255:
        if p[i] == 0:
            i += 1
            continue
        if p[i] == 53:
            kind = p[i + 2]
        i += 2 + p[i + 1]
    print("%.6f\t%s\t%s\t%d\t%s\t%s\t%s" % (
        time.time(), "out" if outgoing else "in", frame[6:12].hex(), kind, p[4:8].hex(),
        socket.inet_ntoa(p[16:20]), p[28:34].hex()), flush=True)
"""

PERF_RATE = 200  # 4-way exchanges per second
PERF_PERIOD = 10  # seconds; A's uplink is cut 40 % of the way in


def perfdhcp_stats(output: str) -> dict:
    """The rate and the per-exchange counters of perfdhcp's final report."""
    stats: dict = {}
    rate = re.search(r"Rate: ([\d.]+) 4-way exchanges/second", output)
    stats["rate"] = float(rate.group(1)) if rate else None
    for name, body in re.findall(r"\*\*\*Statistics for: ([\w-]+)\*\*\*\n(.*?)(?=\*\*\*|\Z)",
                                 output, re.S):
        stats[name] = {key: int(value) for key, value in
                       re.findall(r"^(sent packets|received packets|drops|rejected leases|"
                                  r"non unique addresses|orphans): (\d+)$", body, re.M)}
    return stats


class JournalSnapshots(threading.Thread):
    """Reads a journal every ``interval`` seconds: (wall clock before the read, bound
    address -> hardware address)."""

    def __init__(self, device: Device, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.device = device
        self.interval = interval
        self.snapshots: list[tuple[float, dict[str, str]]] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            started = time.time()
            try:
                rows = bound(self.device.rows())
            except sqlite3.Error as error:
                self.errors.append(repr(error))
            else:
                self.snapshots.append(
                    (started, {ip: r["hardware_address"].hex() for ip, r in rows.items()}))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def test_switchover_under_perfdhcp_load(lab: Lab) -> None:
    lab.attach("pf", CLIENT_IF)
    lab.addr("pf", f"{PERF_LAN}/24")
    lab.addr("pf", f"{PERF_GIADDR}/{PERF.prefixlen}")
    a, b = start_pair(lab)
    mac_a, mac_b = lab.macs["A"].replace(":", ""), lab.macs["B"].replace(":", "")
    sniffer_script = lab.dir / "dhcp_sniffer.py"
    sniffer_script.write_text(DHCP_SNIFFER)
    sniffer = lab.start(lab.ns["pf"], [sys.executable, "-u", sniffer_script, CLIENT_IF,
                                       PERF_GIADDR], lab.dir / "sniffer.log", "DHCP sniffer")
    sniffer.wait_output("ready", 15, POLL)
    assert sniffer.running(), sniffer.output()
    watch = VipWatch(lab)
    snapshots = JournalSnapshots(b)
    watch.start()
    snapshots.start()
    try:
        started = time.time()
        perf = lab.start(lab.ns["pf"], [lab.tools["perfdhcp"], "-4", "-l", PERF_GIADDR,
                                "-r", str(PERF_RATE), "-R", "2000", "-p", str(PERF_PERIOD),
                                "-t", "1", VIP], lab.dir / "perfdhcp.log", "perfdhcp")
        time.sleep(PERF_PERIOD * 0.4)
        assert perf.running(), perf.output()
        cut = time.time()
        lab.link("A", "uplink0p", "down")
        lab.wait_holders({"B"}, ELECTION_TIMEOUT, "B master after A's uplink went down"
                         " under load", logs_of(a, b))
        switched = time.time()
        status = perf.wait(PERF_PERIOD + 30)
        time.sleep(1.0)  # the last replies reach the sniffer
        sniffer.stop()
        snapshots.stop()
        watch.stop()
        perf_out = perf.output()
        assert status in (0, 3), f"perfdhcp exited {status}:\n{perf_out}"  # 3: drops

        packets = []
        for line in sniffer.output().splitlines()[1:]:
            fields = line.split("\t")
            if len(fields) == 7:
                packets.append({"t": float(fields[0]), "dir": fields[1], "mac": fields[2],
                                "type": int(fields[3]), "xid": fields[4], "yiaddr": fields[5],
                                "chaddr": fields[6]})
        sent = [p for p in packets if p["dir"] == "out"]
        replies = [p for p in packets if p["dir"] == "in"]
        acks = [r for r in replies if r["type"] == 5]
        naks = [r for r in replies if r["type"] == 6]
        strangers = {r["mac"] for r in replies} - {mac_a, mac_b}
        assert not strangers, f"replies from unknown MACs {strangers}"
        acks_a = [r for r in acks if r["mac"] == mac_a]
        acks_b = [r for r in acks if r["mac"] == mac_b]
        assert acks_a and acks_b, f"ACKs from A {len(acks_a)}, from B {len(acks_b)}\n{perf_out}"
        late_a = [r for r in acks_a if r["t"] > switched + 1.0]
        assert not late_a, f"A acknowledged {len(late_a)} leases after B took over: {late_a[:5]}"
        answered = {(r["xid"], {5: 3, 6: 3, 2: 1}.get(r["type"])) for r in replies}
        unanswered = [p for p in sent if (p["xid"], p["type"]) not in answered]

        # no address acknowledged to two clients
        holders: dict[str, set] = {}
        for r in acks:
            holders.setdefault(r["yiaddr"], set()).add(r["chaddr"])
        doubled = {ip: c for ip, c in holders.items() if len(c) > 1}

        def evidence(addresses) -> str:
            """The wire history of some addresses, perfdhcp's progress, both devices' logs."""
            wire = [f"  {p['t'] - cut:+.3f}s {p['dir']} from {p['mac']} type {p['type']}"
                    f" xid {p['xid']} yiaddr {p['yiaddr']} chaddr {p['chaddr']}"
                    for p in packets if p["yiaddr"] in addresses]
            return (f"\nA is {mac_a}, B is {mac_b}; times relative to the uplink cut"
                    f" ({cut:.3f}), B master at {switched - cut:+.3f}s\n" + "\n".join(wire)
                    + f"\n--- perfdhcp\n{perf_out}\n{logs_of(a, b)()}")

        assert not doubled, f"addresses ACKed to two clients: {doubled}" + evidence(doubled)
        moved: dict[str, set] = {}
        for r in acks:
            moved.setdefault(r["chaddr"], set()).add(r["yiaddr"])
        moved = {c: ips for c, ips in moved.items() if len(ips) > 1}

        # strict sync, as the LAN saw it: an ACK from A that reached the perfdhcp
        # namespace before a read of B's journal began is in that read
        assert not snapshots.errors, snapshots.errors
        checked, early = 0, []
        for taken, rows in snapshots.snapshots:
            for r in acks_a:
                if r["t"] < taken:
                    checked += 1
                    if rows.get(r["yiaddr"]) != r["chaddr"]:
                        early.append((round(taken - r["t"], 3), r))
        assert not early, evidence({r["yiaddr"] for _, r in early[:10]}) + \
                          f"\n{len(early)} ACKs from A left before B had the lease" \
                          f" (seconds before the journal read, ack): {early[:10]}"

        wait_journals_agree(a, b, timeout=30)
        rows_a, rows_b = bound(a.rows()), bound(b.rows())
        assert not duplicate_addresses(rows_a, rows_b)
        lost = [r for r in acks_a if rows_b.get(r["yiaddr"], {}).get(
            "hardware_address", b"").hex() != r["chaddr"]]
        assert not lost, f"{len(lost)} leases A acknowledged are not in B's journal:" \
                         f" {lost[:10]}" + evidence({r["yiaddr"] for r in lost[:10]})
        local_a = {ip: row for ip, row in rows_a.items() if row["origin"] == "local"}
        not_on_b = [ip for ip, row in local_a.items()
                    if ip not in rows_b or rows_b[ip]["client"] != row["client"]]
        assert not not_on_b, f"A's own leases missing on B: {not_on_b[:10]}"
        assert len(acks_a) == len(local_a), (len(acks_a), len(local_a))
        several = clients_with_several_addresses(rows_b)
        assert not several, f"clients with two bound leases on B: {several}"
        assert watch.both() < 1.5, f"both devices held the VIP for {watch.both():.2f} s"
        assert_healthy(a, b)
        summary = {
            "perfdhcp": perfdhcp_stats(perf_out),
            "cut_at_s": round(cut - started, 2), "B_master_after_cut_s": round(switched - cut, 2),
            "acks_from_A": len(acks_a), "acks_from_B": len(acks_b), "naks": len(naks),
            "unanswered": [(round(p["t"] - cut, 3), {1: "DISCOVER", 3: "REQUEST"}.get(
                p["type"], p["type"])) for p in unanswered][:20],
            "distinct_addresses_acked": len(holders), "duplicate_addresses": len(doubled),
            "clients_whose_address_changed": len(moved),
            "journal_A_bound": len(rows_a), "journal_B_bound": len(rows_b),
            "A_local_rows": len(local_a), "strict_checks": checked,
            "B_journal_reads": len(snapshots.snapshots),
            "both_held_vip_s": round(watch.both(), 2),
            "warnings_A": a.warnings(), "warnings_B": b.warnings()}
        print("\n[perfdhcp] " + json.dumps(summary))
    finally:
        snapshots.stop()
        watch.stop()
