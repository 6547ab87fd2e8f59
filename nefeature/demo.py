"""``make demo``: the whole feature on one machine, no root, in about a minute.

Two devices run as separate ``nefeature run`` processes with Huawei's pair
configuration (examples/pair), adapted to loopback: VRRP travels on the
emulated LAN (UDP multicast on loopback), the remote backup channel uses
127.0.1.1 and 127.0.1.2, and DHCP clients sit behind a relay (giaddr
127.20.0.1) in a pool bound to the backup profile.  The relay sends every
request to both devices, as a LAN would; only the VRRP master answers.

The script binds the clients through DeviceA, cuts DeviceA's tracked
uplink (SIGUSR1: the emulated cable), watches DeviceB take over, renews
every client, restores the uplink (SIGUSR2), watches the batch backup and
DeviceA taking the role back after its preemption delay, and prints a
summary: clients, renewals, leases lost, duplicates, switchover time.
Device state is read over NETCONF, as any controller would.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from nefeature.dhcp.codec import BOOTREQUEST, DhcpMessage, MessageType, Option, decode, encode

EXAMPLES = Path(str(resources.files("nefeature") / "examples"))  # examples/, shipped in the package
RELAY = "127.20.0.1"
HOLD_TIME = 5  # DeviceA's preemption delay in the demo (600 s in Huawei's example)


def free_port(kind=socket.SOCK_STREAM, low: int = 0, high: int = 0) -> int:
    """A free port; within low..high when given (the model limits the backup port)."""
    for _ in range(100):
        candidate = random.randint(low, high) if high else 0
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def demo_config(name: str, sync_port: int) -> str:
    """examples/pair/device<name>.xml, moved onto loopback for the demo."""
    text = (EXAMPLES / "pair" / f"device{name}.xml").read_text().split("-->", 1)[1]
    own, peer = ("127.0.1.1", "127.0.1.2") if name == "A" else ("127.0.1.2", "127.0.1.1")
    text = text.replace('    <dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server">\n'
                        '      <server-enable>enable</server-enable>\n    </dhcp>\n', "")
    text = text.replace("<hold-time>600</hold-time>", f"<hold-time>{HOLD_TIME}</hold-time>")
    head, _, tail = text.rpartition("</interfaces>")  # the top-level list's end
    text = head + f"""  <interface>
    <name>Sync0</name>
    <description>remote backup channel (loopback in the demo)</description>
    <linux-name>lo</linux-name>
    <ipv4><address>{own}</address><mask>255.255.255.0</mask></ipv4>
  </interface>
</interfaces>""" + tail
    text = re.sub(r"<peer-ip>[^<]+</peer-ip>", f"<peer-ip>{peer}</peer-ip>", text)
    text = re.sub(r"<source-ip>[^<]+</source-ip>", f"<source-ip>{own}</source-ip>", text)
    text = text.replace("<tcp-port>10000</tcp-port>", f"<tcp-port>{sync_port}</tcp-port>")
    return text.replace("</ip-pools>", """  <ip-pool>
        <ip-pool-name>clients</ip-pool-name>
        <network><ip-address>127.20.0.0</ip-address><mask>255.255.255.0</mask></network>
        <gateway-list>127.20.0.1</gateway-list>
        <lease-time><day>0</day><hour>1</hour><minute>0</minute></lease-time>
        <identifier-ip>10.10.10.100</identifier-ip>
        <remote-backup-profile>service1</remote-backup-profile>
      </ip-pool>
    </ip-pools>""")


@dataclass
class DemoDevice:
    name: str
    directory: Path
    config: str
    lan: str
    relay_port: int
    dhcp_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    netconf_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    manager: object = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "startup.xml").write_text(self.config)
        self.log = open(self.directory / "device.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nefeature", "run", "--startup",
             str(self.directory / "startup.xml"), "--state-dir", str(self.directory / "state"),
             "--netconf", f"127.0.0.1:{self.netconf_port}", "--emulate-lan", self.lan,
             "--dhcp-port", str(self.dhcp_port), "--relay-port", str(self.relay_port)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "NETCONF over SSH" not in (self.directory / "device.log").read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Device{self.name} did not start:\n"
                                   + (self.directory / "device.log").read_text())
            time.sleep(0.05)
        import ncclient.transport.session
        from ncclient import manager

        ncclient.transport.session.TICK = 0.001
        password = (self.directory / "state" / "netconf-password").read_text().strip()
        self.password = password
        self.manager = manager.connect(host="127.0.0.1", port=self.netconf_port,
                                       username="admin", password=password,
                                       hostkey_verify=False, look_for_keys=False,
                                       allow_agent=False, timeout=30)

    def status(self) -> dict:
        """VRRP state, profile states and leases, read over NETCONF."""
        data = self.manager.get(filter=("subtree", (
            '<interfaces xmlns="urn:nefeature:yang:nefeature-interfaces"><interface>'
            "<name>Vlanif100</name></interface></interfaces>"))).data_xml
        leases = self.manager.get(filter=("subtree", (
            '<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><server>'
            "<ip-pool-user-infos/></server></dhcp>"))).data_xml
        rbs = self.manager.get(filter=("subtree", (
            '<rbs xmlns="urn:nefeature:yang:nefeature-rbs"><profiles/></rbs>'))).data_xml
        bound = re.findall(r"<ip-pool-user-info><pool-name>clients</pool-name><ip-address>"
                           r"([^<]+)</ip-address><mac-address>([^<]+)</mac-address>"
                           r"(?:(?!</ip-pool-user-info>).)*?<status>used</status>", leases, re.S)
        state = re.search(r"<state><state>(\w+)</state>", data)
        return {"vrrp": state.group(1) if state else "?", "leases": dict(bound),
                "peer-sync": leases.count("<origin>peer-sync</origin>"),
                "pending": sum(map(int, re.findall(r"<pending-updates>(\d+)<", rbs))),
                "batch": (re.findall(r"<status>(\w+)</status>", rbs) or ["-"])[0]}

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        try:
            if self.manager is not None:
                self.manager.timeout = 5  # stopping: the device is terminated next anyway
                self.manager.close_session()
        except Exception:
            pass
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Client:
    number: int
    mac: bytes
    address: int = 0
    server_id: bytes = b""

    @property
    def option82(self) -> bytes:
        circuit = f"Vlanif100:{self.number}".encode()
        return bytes([1, len(circuit)]) + circuit + bytes([2, 9]) + b"demo-rely"


class Relay:
    """A DHCP relay on 127.20.0.1 that copies every request to both devices."""

    def __init__(self, port: int, devices: list[DemoDevice]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((RELAY, port))
        self.sock.settimeout(0.05)
        self.devices = devices
        self.answered_by: dict[int, str] = {}

    def exchange(self, client: Client, kind: MessageType, timeout: float = 3.0, **extra):
        xid = random.getrandbits(32)
        options = {Option.MESSAGE_TYPE: bytes([kind]), Option.CLIENT_ID: b"\x01" + client.mac,
                   Option.RELAY_AGENT_INFORMATION: client.option82}
        options.update(extra.pop("options", {}))
        message = DhcpMessage(op=BOOTREQUEST, xid=xid, hops=1, chaddr=client.mac.ljust(16, b"\0"),
                              giaddr=struct.unpack("!I", socket.inet_aton(RELAY))[0],
                              options=options, **extra)
        data = encode(message)
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                for device in self.devices:
                    if device.process.poll() is None:
                        self.sock.sendto(data, ("127.0.0.1", device.dhcp_port))
                next_send = time.monotonic() + 1.0  # retransmit like a client
            try:
                reply, source = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            answer = decode(reply)
            if answer.xid == xid:
                name = next((d.name for d in self.devices if d.dhcp_port == source[1]), "?")
                self.answered_by[client.number] = name
                return answer, name
        return None, None

    def dora(self, client: Client) -> bool:
        offer, _ = self.exchange(client, MessageType.DISCOVER)
        if offer is None or offer.message_type != MessageType.OFFER:
            return False
        ack, _ = self.exchange(client, MessageType.REQUEST, options={
            Option.REQUESTED_ADDRESS: struct.pack("!I", offer.yiaddr),
            Option.SERVER_ID: offer.options[Option.SERVER_ID]})
        if ack is None or ack.message_type != MessageType.ACK:
            return False
        client.address, client.server_id = ack.yiaddr, ack.options[Option.SERVER_ID]
        return True

    def renew(self, client: Client) -> tuple[bool, str | None]:
        """RENEWING: ciaddr set, no server identifier; same address back?"""
        ack, name = self.exchange(client, MessageType.REQUEST, ciaddr=client.address)
        ok = ack is not None and ack.message_type == MessageType.ACK and \
            ack.yiaddr == client.address and ack.options.get(Option.SERVER_ID) == client.server_id \
            and ack.options.get(Option.RELAY_AGENT_INFORMATION) == client.option82
        return ok, name


def command(script: str, module: str) -> str:
    """How to run one of our commands from this interpreter's environment: the entry point
    beside the interpreter (relative to the current directory when under it), else -m."""
    path = Path(sys.executable).parent / script
    if not path.exists():
        return f"{sys.executable} -m {module}"
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else os.path.join(".", relative) \
        if os.sep not in relative else relative


def ip(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


def show(devices: list[DemoDevice], note: str) -> list[dict]:
    states = [d.status() for d in devices]
    cells = [f"Device{d.name}: {s['vrrp']:<7} {len(s['leases']):>3} leases "
             f"({s['peer-sync']} from peer), {s['pending']} unacked"
             for d, s in zip(devices, states)]
    print(f"  {time.strftime('%H:%M:%S')}  {' | '.join(cells)}  <- {note}")
    return states


def wait_for(predicate, timeout: float, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(step)
    return None


def run(clients: int, keep_running: bool, directory: Path) -> int:
    relay_port = free_port(socket.SOCK_DGRAM)
    lan = f"239.255.{os.getpid() % 250}.18:{free_port(socket.SOCK_DGRAM)}"
    sync_port = free_port(low=20000, high=55535)  # the model's tcp-port range
    devices = [DemoDevice("A", directory / "deviceA", demo_config("A", sync_port), lan,
                          relay_port),
               DemoDevice("B", directory / "deviceB", demo_config("B", sync_port), lan,
                          relay_port)]
    relay = Relay(relay_port, devices)
    random.seed(1)  # the same clients and transaction ids on every run
    population = [Client(n, bytes([0x02, 0, 0, 0, n // 256, n % 256])) for n in
                  range(1, clients + 1)]
    try:
        print("Starting DeviceA and DeviceB (Huawei's pair on an emulated LAN) ...")
        for device in devices:
            device.start()
        for device in devices:
            device.wait_ready()
        a, b = devices
        ready = wait_for(lambda: a.status()["vrrp"] == "master" and
                         b.status()["vrrp"] == "backup", 30, 0.2)
        if not ready:
            print("VRRP did not elect DeviceA: see", directory)
            return 1
        show(devices, "VRRP elected DeviceA (priority 200); the backup channel is up")

        print(f"\nBinding {clients} clients through the relay (Option 82 on each) ...")
        started = time.monotonic()
        bound = [c for c in population if relay.dora(c)]
        rate = len(bound) / max(time.monotonic() - started, 1e-6)
        wait_for(lambda: b.status()["peer-sync"] >= len(bound), 10, 0.1)
        show(devices, f"{len(bound)} of {clients} clients bound by DeviceA "
                      f"({rate:.0f} DORA/s, one client at a time)")

        print("\nCutting DeviceA's tracked uplink (GigabitEthernet0/1/2) ...")
        cut_at = time.monotonic()
        a.signal(signal.SIGUSR1)
        wait_for(lambda: b.status()["vrrp"] == "master", 10, 0.02)
        switchover = time.monotonic() - cut_at
        at_switchover = show(devices, f"DeviceB is master after {switchover * 1000:.0f} ms")
        lost = [c for c in bound if ip(c.address) not in at_switchover[1]["leases"]]

        print("\nEvery client renews (unicast to the server identifier, the virtual IP) ...")
        started = time.monotonic()
        renewals = [relay.renew(c) for c in bound]
        renew_rate = len(bound) / max(time.monotonic() - started, 1e-6)
        renewed = sum(1 for ok, _ in renewals if ok)
        by_b = sum(1 for _, name in renewals if name == "B")
        newcomer = Client(clients + 1, bytes([0x02, 0, 0, 0, 0xFF, 0xFF]))
        new_ok = relay.dora(newcomer)
        show(devices, f"{renewed}/{len(bound)} renewed their address ({by_b} answered by "
                      f"DeviceB, {renew_rate:.0f}/s); a new client got "
                      f"{ip(newcomer.address) if new_ok else 'nothing'}")

        print(f"\nRestoring DeviceA's uplink; it takes the role back after {HOLD_TIME} s ...")
        a.signal(signal.SIGUSR2)
        back = wait_for(lambda: a.status()["vrrp"] == "master", HOLD_TIME + 20, 0.2)
        final = show(devices, "DeviceA is master again" if back else "DeviceA did not return")
        owners: dict[str, set] = {}
        for state in final:
            for address, mac in state["leases"].items():
                owners.setdefault(address, set()).add(mac)
        duplicates = sum(1 for macs in owners.values() if len(macs) > 1)
        tables_agree = final[0]["leases"] == final[1]["leases"]

        print("\nSummary")
        print(f"  clients bound                 {len(bound)} of {clients}")
        print(f"  switchover (uplink cut -> B)  {switchover * 1000:.0f} ms")
        print(f"  renewals after switchover     {renewed} of {len(bound)} with the same address")
        print(f"  leases lost at switchover     {len(lost)}")
        print(f"  duplicate addresses           {duplicates}")
        print(f"  new client after switchover   {'ok' if new_ok else 'FAILED'}")
        print(f"  tables agree at the end       {'yes' if tables_agree else 'no'}")
        print(f"  DeviceA master again          {'yes' if back else 'no'}")
        print(f"\nLogs and state: {directory}")
        interactive = sys.stdin is not None and sys.stdin.isatty()
        if keep_running or interactive:
            print("\nThe devices are still running. Attach the VRP shell to either one:")
            for device in devices:
                print(f"  {command('nefeature-cli', 'nefeature_cli')} --port "
                      f"{device.netconf_port} --user admin --password-file "
                      f"{device.directory / 'state' / 'netconf-password'}")
            try:
                if keep_running:
                    print("Ctrl+C stops them.", flush=True)
                    while all(d.process.poll() is None for d in devices):
                        time.sleep(1)
                else:
                    input("Press Enter to stop them. ")
            except (KeyboardInterrupt, EOFError):
                pass
        else:
            print("The devices have stopped. To attach the VRP shell to them, run the demo "
                  f"again with --keep-running:\n  {command('nefeature', 'nefeature')} demo "
                  "--keep-running")
        good = (len(bound) == clients and renewed == len(bound) and not lost and not duplicates
                and new_ok and back and tables_agree)
        return 0 if good else 1
    except KeyboardInterrupt:
        print("\nInterrupted: stopping the devices.")
        return 130
    finally:
        for device in devices:
            device.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nefeature demo", description=__doc__)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--keep-running", action="store_true",
                        help="keep the devices up after the summary (for the VRP shell) until "
                             "Ctrl+C; on a terminal they stay until Enter anyway")
    parser.add_argument("--dir", help="where the devices keep state and logs")
    args = parser.parse_args(argv)
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nefeature-demo-"))
    return run(args.clients, args.keep_running, directory)
