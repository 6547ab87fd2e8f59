"""``nefeature run`` against real DHCP clients, a relay agent, and its own restarts.

Each test builds two network namespaces joined by a veth (the server end is
``Vlanif100``, as examples/single/server.xml names it), runs the server in one
as a direct child, and drives clients from the other:

* dhclient, udhcpc and dhcpcd each obtain, renew and release a lease from
  examples/single/server.xml; what they learned comes from our own hook
  script, what the server recorded from its lease journal;
* a scapy relay agent (giaddr 10.20.0.1, Option 82) does DISCOVER, OFFER,
  REQUEST, ACK against a second pool;
* a client keeps its address across a clean stop (SIGTERM) and a crash
  (SIGKILL right after the ACK) of the server.

Needs root, iproute2 and the client packages; skips naming what is missing.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from tests.system.netns import (
    BOUND_EVENTS,
    PYTHON,
    ROOT,
    Lab,
    Process,
    Server,
    add_pools,
    explain_failure,
    hook_events,
    ip_pool,
    journal_row,
    journal_rows,
    make_lab,
    require_root,
    require_tool,
    run,
    wait_for,
    wait_for_event,
    write_hook,
)

SINGLE_CONFIG = ROOT / "examples" / "single" / "server.xml"
SERVER_ADDRESS = "10.10.10.1"
FIRST_DYNAMIC = IPv4Address("10.10.10.10")  # 10.10.10.1-10.10.10.9 are excluded
LAST_DYNAMIC = IPv4Address("10.10.10.254")
ONE_DAY = "86400"
RESOLV_CONF = Path("/etc/resolv.conf")
DHCPCD_LEASE_DIR = Path("/var/lib/dhcpcd")
DHCPCD_RUN_DIR = Path("/run/dhcpcd")


# --- fixtures ---

@pytest.fixture
def lab():
    """Fresh namespaces and veth; every process started in them is stopped at the end."""
    require_root()
    ip = require_tool("ip", "iproute2")
    with make_lab(ip) as built:
        yield built


def _stop_and_check(server: Server) -> None:
    """Teardown: a running server must stop cleanly on SIGTERM and have logged no error."""
    if server.process is not None and server.process.running():
        status = server.stop()
        assert status == 0, f"nefeature run exited {status} on SIGTERM:\n{server.logs()}"
    server.assert_healthy()


@pytest.fixture
def server(lab: Lab, tmp_path: Path):
    """``nefeature run`` with examples/single/server.xml and a fresh state dir."""
    running = Server(lab, SINGLE_CONFIG, tmp_path / "state", tmp_path)
    running.start()
    yield running
    _stop_and_check(running)


@pytest.fixture
def hook(lab: Lab, tmp_path: Path) -> tuple[Path, Path]:
    """(script, log): the only script a client is allowed to run."""
    log = tmp_path / "hook.log"
    return write_hook(tmp_path / "hook.sh", log, lab.ip), log


@pytest.fixture
def host_resolv_conf():
    """Fail if anything in the test rewrote the host's /etc/resolv.conf."""
    before = _fingerprint(RESOLV_CONF)
    yield
    assert _fingerprint(RESOLV_CONF) == before, "the host's /etc/resolv.conf was changed"


def _fingerprint(path: Path) -> tuple | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


# --- the three clients, behind one interface ---

class Client:
    """Drives one client program: obtain, renew, release; each returns what it saw."""

    name = ""

    def __init__(self, lab: Lab, tmp_path: Path, hook: tuple[Path, Path], binary: str) -> None:
        self.binary = binary  # absolute path
        self.lab = lab
        self.tmp = tmp_path
        self.hook, self.hook_log = hook
        self.process: Process | None = None
        self.runs = 0

    def _start(self, args: list) -> Process:
        self.runs += 1
        self.process = self.lab.start(self.lab.client_ns, args,
                                      self.tmp / f"{self.name}-{self.runs}.log",
                                      f"{self.name} #{self.runs}")
        return self.process

    def _events(self) -> int:
        return len(hook_events(self.hook_log))

    def cleanup(self) -> None:
        """Remove whatever the client left outside tmp_path."""


class Dhclient(Client):
    """ISC dhclient in the foreground; renewing is a second run on the same lease file
    (an INIT-REBOOT REQUEST for the address it holds); release is ``dhclient -r``."""

    name = "dhclient"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.config = self.tmp / "dhclient.conf"  # not /etc/dhcp/dhclient.conf
        self.config.write_text("request subnet-mask, routers, domain-name-servers;\n")
        self.common = ["-4", "-v", "-cf", self.config, "-pf", self.tmp / "dhclient.pid",
                       "-lf", self.tmp / "dhclient.leases", "-sf", self.hook]

    def _run_until_bound(self) -> dict:
        seen = self._events()
        process = self._start([self.binary, "-d", "-1", *self.common, self.lab.client_if])
        return wait_for_event(self.hook_log, BOUND_EVENTS, after=seen, process=process,
                              what="dhclient to bind")

    def obtain(self) -> dict:
        event = self._run_until_bound()
        assert event["event"] == "BOUND"
        return event

    def renew(self) -> dict:
        address = next(e["ip"] for e in reversed(hook_events(self.hook_log))
                       if e["event"] in BOUND_EVENTS)
        self.process.stop()
        event = self._run_until_bound()
        output = self.process.output()
        assert event["event"] == "REBOOT", output
        assert f"DHCPREQUEST for {address}" in output and "DHCPDISCOVER" not in output, output
        return event

    def release(self, address: str) -> None:
        self.process.stop()
        result = self.lab.in_client(self.binary, "-r", *self.common, self.lab.client_if)
        assert f"DHCPRELEASE of {address}" in result.stderr, result.stderr


class Udhcpc(Client):
    """busybox udhcpc in the foreground; SIGUSR1 renews (unicast, ciaddr set), SIGUSR2
    releases."""

    name = "udhcpc"

    def obtain(self) -> dict:
        process = self._start([self.binary, "-f", "-i", self.lab.client_if, "-s", self.hook,
                               "-t", "5", "-T", "1", "-A", "1"])
        return wait_for_event(self.hook_log, {"bound"}, process=process,
                              what="udhcpc to bind")

    def renew(self) -> dict:
        seen = self._events()
        self.process.signal(signal.SIGUSR1)
        event = wait_for_event(self.hook_log, {"bound", "renew"}, after=seen,
                               process=self.process, what="udhcpc to renew")
        output = self.process.output()
        assert event["event"] == "renew" and "sending renew" in output, output
        return event

    def release(self, address: str) -> None:
        seen = self._events()
        self.process.signal(signal.SIGUSR2)
        wait_for_event(self.hook_log, {"deconfig"}, after=seen, process=self.process,
                       what="udhcpc to release")
        output = self.process.output()
        assert f"unicasting a release of {address}" in output, output
        self.process.stop()


class Dhcpcd(Client):
    """dhcpcd in the foreground (-B); ``dhcpcd -n`` makes it rebind, ``dhcpcd -k`` release
    and exit.  Both commands signal the daemon (HUP, ALRM); if the daemon's log shows
    it never received the signal, the command is sent again (at most three times):
    a client-side race, never a retry of a request the server saw."""

    name = "dhcpcd"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.config = self.tmp / "dhcpcd.conf"
        self.config.write_text("ipv4only\nnoarp\nnodelay\nnohook resolv.conf\n"
                               "option subnet_mask, routers, domain_name_servers\n")
        self.common = ["-4", "-f", self.config, "-c", self.hook]

    def obtain(self) -> dict:
        process = self._start([self.binary, "-B", "-d", *self.common, self.lab.client_if])
        event = wait_for_event(self.hook_log, BOUND_EVENTS, process=process,
                               what="dhcpcd to bind")
        assert event["event"] == "BOUND", process.output()
        return event

    def _command(self, flag: str, received: str, done) -> object:
        for _attempt in range(3):
            mark = self.process.output().count(received)
            try:
                self.lab.in_client(self.binary, flag, *self.common, self.lab.client_if,
                                   timeout=10, check=False)
            except subprocess.TimeoutExpired:
                pass  # `dhcpcd -k` waits for the daemon to exit; judged below
            try:
                return wait_for(done, 4.0, f"dhcpcd {flag}")
            except AssertionError:
                if self.process.output().count(received) > mark:
                    raise  # the daemon acted on it: whatever is missing is real
        raise AssertionError(f"dhcpcd never logged '{received}' after `dhcpcd {flag}`:\n"
                             f"{self.process.output()}")

    def renew(self) -> dict:
        seen = self._events()

        def renewed():
            return next((e for e in hook_events(self.hook_log)[seen:]
                         if e["event"] in BOUND_EVENTS), None)

        return self._command("-n", "received SIGHUP", renewed)

    def release(self, address: str) -> None:
        self._command("-k", "received SIGALRM", lambda: not self.process.running())
        output = self.process.output()
        assert f"releasing lease of {address}" in output, output

    def cleanup(self) -> None:
        for directory in (DHCPCD_LEASE_DIR, DHCPCD_RUN_DIR):
            for path in directory.glob(f"{self.lab.client_if}*"):  # our unique name only
                path.unlink(missing_ok=True)


CLIENTS = {
    "dhclient": (Dhclient, "isc-dhcp-client"),
    "udhcpc": (Udhcpc, "udhcpc"),
    "dhcpcd": (Dhcpcd, "dhcpcd5"),
}


@pytest.fixture(params=sorted(CLIENTS))
def dhcp_client(request, lab: Lab, tmp_path: Path, hook):
    kind, package = CLIENTS[request.param]
    client = kind(lab, tmp_path, hook, require_tool(request.param, package))
    try:
        yield client
    finally:
        if client.process is not None:
            client.process.stop()
        client.cleanup()


# --- assertions ---

def assert_pool1_lease(event: dict) -> str:
    """What the client learned is examples/single/server.xml's pool1; returns the address."""
    address = IPv4Address(event["ip"])
    assert FIRST_DYNAMIC <= address <= LAST_DYNAMIC, event
    assert event["mask"] == "255.255.255.0", event
    assert event["router"].split() == [SERVER_ADDRESS], event
    assert event["dns"].split() == ["10.10.10.53"], event
    assert event["lease"] == ONE_DAY, event
    assert event["server"] == SERVER_ADDRESS, event
    return str(address)


def wait_for_journal_state(server: Server, address: str, state: str,
                           timeout: float = 10.0) -> dict:
    def row():
        found = journal_row(server.journal, address)
        return found if found is not None and found["state"] == state else None

    with explain_failure(lambda: f"journal: {journal_rows(server.journal)}"):
        return wait_for(row, timeout, f"journal row {address} in state {state!r}")


# --- 1. real clients: obtain, renew, release ---

@pytest.mark.system
def test_client_obtains_renews_and_releases(dhcp_client: Client, server: Server, lab: Lab,
                                            host_resolv_conf) -> None:
    first = dhcp_client.obtain()
    address = assert_pool1_lease(first)
    assert f"{address}/24" in lab.client_addresses()
    bound = wait_for_journal_state(server, address, "bound")
    assert bytes(bound["hardware_address"]) == lab.client_mac_bytes
    assert bound["pool"] == "pool1"
    assert round(bound["expiry"] - bound["start"]) == int(ONE_DAY), bound

    renewed = dhcp_client.renew()
    assert assert_pool1_lease(renewed) == address, (first, renewed)
    extended = journal_row(server.journal, address)
    assert extended["state"] == "bound" and extended["start"] > bound["start"], (
        bound, extended)  # the server, not the client's cache, renewed it
    assert round(extended["expiry"] - extended["start"]) == int(ONE_DAY), extended

    dhcp_client.release(address)
    released = wait_for_journal_state(server, address, "released")
    assert bytes(released["hardware_address"]) == lab.client_mac_bytes
    assert [row["ip"] for row in journal_rows(server.journal)] == [address]
    server.assert_healthy()


# --- 2. a relayed client (scapy relay agent, Option 82) ---

RELAY_ADDRESS = "10.10.10.2"
GIADDR = "10.20.0.1"
RELAY_NETWORK = IPv4Network("10.20.0.0/24")
CIRCUIT_ID = b"eth0/1/2:100"
REMOTE_ID = b"relay-a"
OPTION_82 = (bytes((1, len(CIRCUIT_ID))) + CIRCUIT_ID
             + bytes((2, len(REMOTE_ID))) + REMOTE_ID)

# Runs in the client namespace: a relay agent for one client, DISCOVER to ACK.  It
# sends from RELAY_ADDRESS:67 and receives on GIADDR:67, where the server must reply;
# it prints the raw replies (hex) and where they came from, as JSON on stdout.
RELAY_AGENT = r'''
import json, os, socket, sys
from scapy.layers.dhcp import BOOTP, DHCP

relay, giaddr, server, mac_hex, option82_hex, timeout = sys.argv[1:7]
mac, option82 = bytes.fromhex(mac_hex), bytes.fromhex(option82_hex)
xid = int.from_bytes(os.urandom(4), "big")
send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
send.bind((relay, 67))
receive = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receive.bind((giaddr, 67))
receive.settimeout(float(timeout))

def request(kind, extra):
    packet = BOOTP(op=1, htype=1, hlen=6, hops=1, xid=xid, chaddr=mac + bytes(10),
                   giaddr=giaddr) / DHCP(options=[("message-type", kind),
                   ("client_id", b"\x01" + mac), ("param_req_list", [1, 3, 6, 51]),
                   *extra, ("relay_agent_information", option82), "end"])
    send.sendto(bytes(packet), (server, 67))
    while True:  # skip anything that is not the answer to this transaction
        data, source = receive.recvfrom(4096)
        if len(data) >= 8 and int.from_bytes(data[4:8], "big") == xid:
            return {"data": data.hex(), "source": list(source)}

offer = request("discover", [])
reply = BOOTP(bytes.fromhex(offer["data"]))
options = dict(o for o in reply[DHCP].options if isinstance(o, tuple))
ack = request("request", [("server_id", options["server_id"]),
                          ("requested_addr", reply.yiaddr)])
print(json.dumps({"xid": xid, "offer": offer, "ack": ack}))
'''


def relay_config(tmp_path: Path) -> Path:
    """examples/single/server.xml plus relay-pool (10.20.0.0/24, gateway 10.20.0.1)."""
    config = tmp_path / "relay-server.xml"
    config.write_text(add_pools(SINGLE_CONFIG.read_text(),
                                ip_pool("relay-pool", RELAY_NETWORK, GIADDR)))
    return config


def parse_bootp(hex_data: str):
    from scapy.layers.dhcp import BOOTP  # imported here: collecting stays fast

    return BOOTP(bytes.fromhex(hex_data))


def dhcp_options(packet) -> dict:
    from scapy.layers.dhcp import DHCP

    return dict(o for o in packet[DHCP].options if isinstance(o, tuple))


def check_relayed_reply(exchange: dict, name: str, message_type: int, mac: bytes) -> str:
    """The reply came from the server to the relay, parses, and echoes Option 82."""
    from scapy.layers.dhcp import DHCP

    reply = exchange[name]
    assert reply["source"] == [SERVER_ADDRESS, 67], reply
    data = bytes.fromhex(reply["data"])
    packet = parse_bootp(reply["data"])
    assert packet.haslayer(DHCP), f"{name} does not parse as DHCP: {data.hex()}"
    assert packet.op == 2 and packet.xid == exchange["xid"], packet.show(dump=True)
    assert packet.giaddr == GIADDR and bytes(packet.chaddr)[:6] == mac
    assert IPv4Address(packet.yiaddr) in RELAY_NETWORK
    assert packet.yiaddr != GIADDR  # the gateway is not leased out
    options = dhcp_options(packet)
    assert options["message-type"] == message_type, options
    assert options["server_id"] == SERVER_ADDRESS, options
    assert options["subnet_mask"] == "255.255.255.0", options
    assert options["router"] == GIADDR, options
    assert options["relay_agent_information"] == OPTION_82, options
    assert bytes((82, len(OPTION_82))) + OPTION_82 in data  # byte for byte on the wire
    return packet.yiaddr


@pytest.mark.system
def test_relayed_client_gets_relay_pool_lease_with_option82(lab: Lab,
                                                            tmp_path: Path) -> None:
    lab.add_address(lab.client_ns, f"{RELAY_ADDRESS}/24", lab.client_if)
    lab.add_address(lab.client_ns, f"{GIADDR}/24", lab.client_if)
    run([lab.ip, "-n", lab.server_ns, "route", "add", str(RELAY_NETWORK), "via", RELAY_ADDRESS])
    server = Server(lab, relay_config(tmp_path), tmp_path / "state", tmp_path)
    server.start()
    try:
        agent = tmp_path / "relay_agent.py"
        agent.write_text(RELAY_AGENT)
        mac = bytes.fromhex("02000a140099")
        result = lab.in_client(PYTHON, agent, RELAY_ADDRESS, GIADDR, SERVER_ADDRESS, mac.hex(),
                               OPTION_82.hex(), "5", timeout=30, check=False)
        assert result.returncode == 0, (f"relay agent failed:\n{result.stderr}\n"
                                        f"server:\n{server.logs()}")
        exchange = json.loads(result.stdout.strip().splitlines()[-1])

        offered = check_relayed_reply(exchange, "offer", 2, mac)
        acked = check_relayed_reply(exchange, "ack", 5, mac)
        assert acked == offered
        ack_options = dhcp_options(parse_bootp(exchange["ack"]["data"]))
        assert ack_options["lease_time"] == 86400, ack_options  # the default: one day

        row = wait_for_journal_state(server, acked, "bound")
        assert row["pool"] == "relay-pool"
        assert bytes(row["option82"]) == OPTION_82
        assert bytes(row["hardware_address"]) == mac
        assert bytes(row["client_id"]) == b"\x01" + mac
    finally:
        _stop_and_check(server)


# --- 3. the same address after a restart of the server ---

def udhcpc_once(lab: Lab, tmp_path: Path, label: str,
                client_id: str | None = None) -> str:
    udhcpc = require_tool("udhcpc", "udhcpc")
    """One udhcpc run to a lease and exit (-q, fresh DISCOVER: no -r); returns the address.

    ``client_id`` (hex) makes it another client on the same link (option 61 instead of
    the MAC-based one)."""
    log = tmp_path / f"hook-{label}.log"
    script = write_hook(tmp_path / f"hook-{label}.sh", log, lab.ip)
    extra = ["-C", "-x", f"0x3d:{client_id}"] if client_id else []
    process = lab.start(lab.client_ns, [
        udhcpc, "-f", "-q", "-n", "-i", lab.client_if, "-s", script, "-t", "5", "-T", "1",
        *extra], tmp_path / f"udhcpc-{label}.log", f"udhcpc {label}")
    status = process.wait(20)
    assert status == 0, f"udhcpc {label} exited {status}:\n{process.output()}"
    bound = [e for e in hook_events(log) if e["event"] == "bound"]
    assert len(bound) == 1, (hook_events(log), process.output())
    return assert_pool1_lease(bound[0])


def check_same_address_after_restart(lab: Lab, tmp_path: Path, server: Server,
                                     address: str) -> None:
    """Restarted server: it loaded the lease, gives another client another address,
    and our client (fresh DISCOVER) its old one."""
    server.start()
    assert "1 leases loaded" in server.process.output(), server.process.output()
    other = udhcpc_once(lab, tmp_path, "other-client", client_id="01020000c0ffee")
    assert other != address, "the restarted server handed the remembered address to another client"
    again = udhcpc_once(lab, tmp_path, "after-restart")
    assert again == address
    row = wait_for_journal_state(server, address, "bound")
    assert bytes(row["hardware_address"]) == lab.client_mac_bytes


@pytest.fixture
def udhcpc_tool():
    require_tool("udhcpc", "udhcpc")


@pytest.mark.system
def test_lease_survives_server_stop_and_start(udhcpc_tool, lab: Lab, server: Server,
                                              tmp_path: Path) -> None:
    address = udhcpc_once(lab, tmp_path, "before-stop")
    wait_for_journal_state(server, address, "bound")
    status = server.stop()
    assert status == 0, f"nefeature run exited {status} on SIGTERM:\n{server.logs()}"
    assert "stopped" in server.process.output()
    check_same_address_after_restart(lab, tmp_path, server, address)


@pytest.mark.system
def test_lease_survives_server_kill_9_after_ack(udhcpc_tool, lab: Lab, server: Server,
                                                tmp_path: Path) -> None:
    address = udhcpc_once(lab, tmp_path, "before-kill")
    server.kill()  # no chance to flush anything: the ACK went out after the commit
    row = journal_row(server.journal, address)
    assert row is not None and row["state"] == "bound", journal_rows(server.journal)
    assert bytes(row["hardware_address"]) == lab.client_mac_bytes
    check_same_address_after_restart(lab, tmp_path, server, address)
