"""The hot-backup pair under the faults it must survive, with real clients.

Same topology as test_hot_backup.py (its fixtures and helpers are reused): a
switch namespace whose bridge joins DeviceA (10.10.10.1, tracked uplink),
DeviceB (10.10.10.2) and one namespace per client: busybox udhcpc and ISC
dhclient with our hook script, scapy clients with made-up MACs, and scapy
clients behind a relay agent (Option 82, a distinct circuit-id each).

The ledger.  A sniffer in the switch namespace records every DHCP frame that
enters the bridge from a host, with the kernel's receive time and the port it
came in on, so each reply is attributed to the device that sent it.  After
each fault the ledger is checked (``check_ledger``) for every client:

* every reply carries the virtual IP as server identifier, and comes from it
  (or from the device's own address: a reply that left the ACK gate after its
  device lost the VIP to a preempting peer; counted in the summary);
* no DHCPNAK to a client holding an acknowledged lease (a client whose REQUEST
  for the old master's offer reaches the new one may be NAKed: it holds
  nothing, and starts again; counted in the summary);
* a relayed reply carries Option 82 byte for byte as the relay sent it;
* no client was acknowledged two different addresses;
* no address was acknowledged to two clients with overlapping leases (a
  DHCPRELEASE seen on the wire ends its sender's lease).

Tests, one per fault (run with ``-s`` to see the figures each prints):

1. ``test_lan_partition_with_new_clients_on_both_sides``: the bridge is split
   (B's port and the ports of B's side move to a second bridge), so both
   devices are VRRP master for 10 s and the channel, which runs over the
   LAN, is cut too.  New clients on each side bind meanwhile, each from the
   share of the device it reaches (its split, read from its journal).  After the heal A
   alone is master and the LAN's unicast to the VIP reaches it (with the
   interfaces' own MACs: because A re-announces the VIP), the channel comes
   back, both journals agree, and every client renews its own address.  Run
   with the virtual MAC (the default) and without.
2. ``test_release_then_failover``: udhcpc and dhclient release their leases
   on A; A's uplink is cut and B takes over; the released addresses are not
   bound on B, which gives new clients asking for them those in its own share
   and free addresses of its share for the others.  The cut-to-first-ACK
   time from B is printed.
   ``test_the_split_follows_the_free_addresses``: 100 relayed clients use
   up most of A's share of a pool; the pair moves the split of the shares
   (both journals record the same one), the free addresses end up about
   half on each side, and the next clients get addresses of A's grown share.
3. ``test_garbage_in_the_live_channel``: an on-path host (the switch
   namespace) writes junk into the live channel's TCP connection, a segment
   with the next sequence number of the stream, first into A (as if from B)
   then into B (as if from A), while relayed clients renew 25 times a
   second: A answers every request, the channel comes back each time.
4. ``test_frozen_master[freeze]``: A is stopped (SIGSTOP) for 5 s under a
   light load (relayed renewals 50 times a second, perfdhcp DORAs): B takes
   over holding every lease A acknowledged, and answers; A wakes, one device
   ends up master, nobody changes address, both journals agree.
   ``[kill]``: the same with SIGKILL, and A restarted 5 s later on its state
   dir, preempting after its hold-time.  The fault-to-first-ACK time from B
   is printed next to VRRP's master-down interval.

Timings are printed, never asserted.  Needs root, iproute2, udhcpc, dhclient,
perfdhcp and scapy (the ``tools`` fixture skips naming what is missing).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from collections import defaultdict
from ipaddress import IPv4Address, IPv4Network

import pytest

from nefeature.dhcp.pool import Side, share_of
from tests.system.netns import VIP, VIRTUAL_MAC, explain_failure, logs_of, run, wait_for
from tests.system.test_hot_backup import (  # noqa: F401 - lab, tools: fixtures
    ADDRESS,
    CHANNEL_UP,
    ELECTION_TIMEOUT,
    GIADDR,
    HOLD_TIME,
    PERF,
    PERF_GIADDR,
    PERF_LAN,
    POLL,
    POOL1,
    RELAY_LAN,
    RELAYED,
    Device,
    Dhclient,
    Lab,
    RealClient,
    ScapyClients,
    Udhcpc,
    VipWatch,
    assert_healthy,
    bound,
    check_ack,
    check_real_event,
    lab,
    start_pair,
    tools,
    wait_journals_agree,
)

pytestmark = pytest.mark.system

DEVICE_PORT = {"pa": "A", "pb": "B"}  # the switch's port of each device
ACK, NAK, RELEASE = 5, 6, 7
ADVERT_INTERVAL = 1.0  # seconds: the example's VRRP advertisement interval
MASTER_DOWN_B = 3 * ADVERT_INTERVAL + ((256 - 100) * 100 // 256) / 100  # B has priority 100
UNCONFIRMED = re.compile(r"(\d+) DHCPACK\(s\) sent without its copy")


# --- the ledger: every DHCP frame entering the switch from a host ---

# Part of the scripts below: a DHCP message's options (code -> value).
DHCP_OPTIONS = r"""
def dhcp_options(message):
    options, i = {}, 240
    while i + 1 < len(message) and message[i] != 255:
        if message[i] == 0:
            i += 1
            continue
        options[message[i]] = message[i + 2:i + 2 + message[i + 1]]
        i += 2 + message[i + 1]
    return options
"""

# Runs in the switch namespace: one packet socket on every interface; frames the
# bridge sends out of a port (PACKET_OUTGOING) and frames seen on the bridges
# themselves are skipped, so each frame is recorded once, at the port it came in on.
LEDGER_SNIFFER = DHCP_OPTIONS + r"""
import json, socket, struct
SO_TIMESTAMPNS = 35
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
print("ready", flush=True)
ip = socket.inet_ntoa
while True:
    frame, ancillary, _, address = s.recvmsg(4096, socket.CMSG_SPACE(16))
    port, pkttype = address[0], address[2]
    if pkttype == socket.PACKET_OUTGOING or not port.startswith("p"):
        continue
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        continue
    udp = 14 + (frame[14] & 15) * 4
    sport, dport = struct.unpack_from("!HH", frame, udp)
    if not {sport, dport} & {67, 68}:
        continue
    p = frame[udp + 8:]
    if len(p) < 240 or p[236:240] != b"\x63\x82\x53\x63":
        continue
    options = dhcp_options(p)
    t = 0.0
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            t = seconds + nanoseconds / 1e9
    get = options.get
    print(json.dumps({
        "t": t, "port": port, "src": ip(frame[26:30]), "dst": ip(frame[30:34]),
        "sport": sport, "op": p[0], "xid": p[4:8].hex(), "ciaddr": ip(p[12:16]),
        "yiaddr": ip(p[16:20]), "giaddr": ip(p[24:28]), "chaddr": p[28:34].hex(),
        "type": get(53, b"\0")[0], "sid": ip(get(54)) if get(54) else None,
        "lease": struct.unpack("!I", get(51))[0] if get(51) else None,
        "o82": get(82).hex() if get(82) is not None else None}), flush=True)
"""


class Ledger:
    """The sniffer in the switch namespace, and what it recorded."""

    def __init__(self, lab: Lab) -> None:
        script = lab.dir / "ledger_sniffer.py"
        script.write_text(LEDGER_SNIFFER)
        self.process = lab.start(lab.switch, [sys.executable, "-u", script],
                                 lab.dir / "ledger.log", "ledger sniffer")
        self.process.wait_output("ready", 15, POLL)

    def packets(self) -> list[dict]:
        return [json.loads(line) for line in self.process.output().splitlines()
                if line.startswith("{")]

    def replies(self, kind: int | None = None, device: str | None = None,
                since: float = 0.0) -> list[dict]:
        return [p for p in self.packets() if p["op"] == 2 and p["t"] >= since
                and (kind is None or p["type"] == kind)
                and (device is None or DEVICE_PORT.get(p["port"]) == device)]

    def first_ack(self, device: str, since: float) -> float | None:
        acks = self.replies(ACK, device, since)
        return min((p["t"] for p in acks), default=None)


def hexmac(mac: str) -> str:
    return mac.replace(":", "").lower()


def check_ledger(packets: list[dict], option82: dict[str, str]) -> dict:
    """The ACK ledger of every client (module docstring); ``option82``: chaddr (hex) ->
    the Option 82 its relay adds.  Returns counts for the test's summary."""
    replies = [p for p in packets if p["op"] == 2]
    strangers = [p for p in replies if p["port"] not in DEVICE_PORT]
    assert not strangers, f"DHCP replies from hosts that are not a device: {strangers[:5]}"
    not_vip = [p for p in replies if p["sid"] != VIP]
    assert not not_vip, f"replies without the virtual IP as server identifier: {not_vip[:5]}"
    # From the virtual IP; but a reply that left the ACK gate after its device lost the
    # VIP (the peer preempted meanwhile) goes out from the device's own address.
    strange_source = [p for p in replies
                      if p["src"] not in (VIP, ADDRESS[DEVICE_PORT[p["port"]]])]
    assert not strange_source, f"replies from neither the VIP nor the device's address:" \
                               f" {strange_source[:5]}"
    sent82 = {(p["xid"], p["chaddr"]): p["o82"] for p in packets
              if p["op"] == 1 and p["giaddr"] != "0.0.0.0"}
    for reply in replies:
        if reply["giaddr"] == "0.0.0.0":
            continue
        key = (reply["xid"], reply["chaddr"])
        assert key in sent82, f"relayed reply to no relayed request: {reply}"
        assert reply["o82"] == sent82[key], f"Option 82 not echoed: {reply} (relay sent" \
                                            f" {sent82[key]})"
        if reply["chaddr"] in option82:
            assert reply["o82"] == option82[reply["chaddr"]], reply
    acks = [p for p in replies if p["type"] == ACK and p["yiaddr"] != "0.0.0.0"]
    addresses: dict[str, set[str]] = defaultdict(set)
    for ack in acks:
        addresses[ack["chaddr"]].add(ack["yiaddr"])
    moved = {client: sorted(held) for client, held in addresses.items() if len(held) > 1}
    assert not moved, f"clients acknowledged more than one address: {moved}"
    holders: dict[str, dict[str, float]] = defaultdict(dict)  # address -> client -> until
    doubled, naked = [], []
    ack_ids = {id(p) for p in acks}
    for p in sorted(packets, key=lambda p: p["t"]):
        if p["op"] == 1 and p["type"] == RELEASE:
            holders[p["ciaddr"]].pop(p["chaddr"], None)
        elif id(p) in ack_ids:
            others = {c: until for c, until in holders[p["yiaddr"]].items()
                      if c != p["chaddr"] and until > p["t"]}
            if others:
                doubled.append((p["yiaddr"], p["chaddr"], DEVICE_PORT[p["port"]], others))
            holders[p["yiaddr"]][p["chaddr"]] = p["t"] + p["lease"]
        elif p["op"] == 2 and p["type"] == NAK:
            held = [ip for ip in addresses.get(p["chaddr"], ())
                    if holders[ip].get(p["chaddr"], 0.0) > p["t"]]
            if held:
                naked.append((p["chaddr"], held, DEVICE_PORT[p["port"]], p["t"]))
    assert not doubled, f"addresses acknowledged to two clients with overlapping leases:" \
                        f" {doubled}"
    assert not naked, f"clients NAKed while holding an acknowledged lease: {naked}"
    return {"acks": len(acks), "acks_from_A": sum(p["port"] == "pa" for p in acks),
            "acks_from_B": sum(p["port"] == "pb" for p in acks), "clients": len(addresses),
            # to clients holding no lease: a REQUEST for another device's offer (SELECTING)
            "naks_to_clients_without_a_lease": sum(p["type"] == NAK for p in replies),
            "replies_from_a_device_address": sum(p["src"] != VIP for p in replies)}


def assert_next_server_holds(packets: list[dict], granter: str, before: float,
                             device: Device) -> int:
    """Every lease ``granter`` acknowledged before ``before`` (and its client did not
    release) is bound to that client in the journal of ``device``, the device that
    serves next; returns how many were checked."""
    held: dict[str, str] = {}  # address -> chaddr
    for p in sorted(packets, key=lambda p: p["t"]):
        if p["t"] >= before:
            break
        if p["op"] == 2 and p["type"] == ACK and DEVICE_PORT.get(p["port"]) == granter:
            held[p["yiaddr"]] = p["chaddr"]
        elif p["op"] == 1 and p["type"] == RELEASE and held.get(p["ciaddr"]) == p["chaddr"]:
            del held[p["ciaddr"]]
    rows = bound(device.rows())
    missing = {ip: chaddr for ip, chaddr in held.items()
               if ip not in rows or rows[ip]["hardware_address"].hex() != chaddr}
    assert not missing, f"leases {granter} acknowledged missing on {device.name}, which" \
                        f" serves next: {missing}"
    return len(held)


def ledger_option82(*groups: ScapyClients) -> dict[str, str]:
    return {hexmac(c["mac"]): c["option82"] for group in groups for c in group.clients
            if c.get("option82")}


def acked_after(packets: list[dict], mac: str, since: float) -> list[dict]:
    return [p for p in packets if p["op"] == 2 and p["type"] == ACK
            and p["chaddr"] == hexmac(mac) and p["t"] >= since]


def unconfirmed(device: Device) -> int:
    """DHCPACKs the device sent without the peer's copy (strict mode), from its logs."""
    return sum(int(n) for process in device.runs for n in UNCONFIRMED.findall(process.output()))


def channel_ups(device: Device) -> int:
    return len(device.lines(CHANNEL_UP))


def wait_channel_back(a: Device, b: Device, ups_before: tuple[int, int], timeout: float,
                      what: str) -> float:
    """Both devices log one more "peer connected" than before; returns when (monotonic)."""
    wait_for(lambda: channel_ups(a) > ups_before[0] and channel_ups(b) > ups_before[1],
             timeout, lambda: f"the channel to come back {what}\n{logs_of(a, b)()}", POLL)
    return time.monotonic()


# --- a light load: relayed clients renewing over and over ---

# Runs in the relay's namespace: relayed RENEWING requests (ciaddr, giaddr, Option
# 82) round-robin over the clients at ``rate`` per second until SIGTERM or
# ``duration``; then one JSON line: each request with its reply (or none).
RENEWER = DHCP_OPTIONS + r"""
import json, os, signal, socket, struct, sys, time
spec = json.loads(sys.argv[1])
stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
send.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
send.bind((spec["relay"], 67))
receive = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receive.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
receive.bind((spec["giaddr"], 67))
giaddr = socket.inet_aton(spec["giaddr"])

def request(client, xid):
    mac = bytes.fromhex(client["mac"].replace(":", ""))
    o82 = bytes.fromhex(client["option82"])
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0,
                       socket.inet_aton(client["address"]), bytes(4), bytes(4), giaddr,
                       mac, b"", b"")
    options = (b"\x63\x82\x53\x63" + bytes((53, 1, 3, 61, 7, 1)) + mac
               + bytes((55, 4, 1, 3, 51, 54, 82, len(o82))) + o82 + b"\xff")
    return head + options

def parse(data, source):
    options = dhcp_options(data)
    return {"t": time.time(), "type": options.get(53, b"\0")[0],
            "yiaddr": socket.inet_ntoa(data[16:20]),
            "sid": socket.inet_ntoa(options[54]) if 54 in options else None,
            "o82": options[82].hex() if 82 in options else None,
            "src": "%s:%d" % source}

sent, replies = [], {}

def take_reply(until):  # one reply, if one comes before until (monotonic)
    receive.settimeout(max(0.001, until - time.monotonic()))
    try:
        data, source = receive.recvfrom(4096)
    except (socket.timeout, InterruptedError):
        return
    if len(data) >= 240 and data[0] == 2:
        replies.setdefault(data[4:8].hex(), parse(data, source))

print("ready", flush=True)
clients, interval = spec["clients"], 1.0 / spec["rate"]
end = time.monotonic() + spec["duration"]
next_send = time.monotonic()
n = 0
while not stopping and time.monotonic() < end:
    now = time.monotonic()
    if now >= next_send:
        client = clients[n % len(clients)]
        n += 1
        xid = int.from_bytes(os.urandom(4), "big")
        send.sendto(request(client, xid), (spec["server"], 67))
        sent.append({"t": time.time(), "xid": "%08x" % xid, "mac": client["mac"]})
        next_send += interval
        continue
    take_reply(next_send)
drain = time.monotonic() + 1.0  # the last replies
while time.monotonic() < drain:
    take_reply(drain)
for request in sent:
    request["reply"] = replies.get(request["xid"])
print(json.dumps(sent), flush=True)
"""


SERVER_SOURCES = {f"{address}:67" for address in (VIP, *ADDRESS.values())}  # see check_ledger


class RenewLoad:
    """Relayed clients (already bound) renewing ``rate`` times a second, in the relay's
    namespace (never while a :class:`ScapyClients` run of the same relay is going)."""

    def __init__(self, lab: Lab, relay: ScapyClients, rate: float, duration: float) -> None:
        self.clients = {c["mac"]: c for c in relay.clients if c["address"]}
        script = lab.dir / "renewer.py"
        script.write_text(RENEWER)
        spec = {"server": VIP, "relay": RELAY_LAN, "giaddr": GIADDR, "rate": rate,
                "duration": duration, "clients": list(self.clients.values())}
        self.process = lab.start(lab.ns[relay.label], [sys.executable, "-u", script,
                                                       json.dumps(spec)],
                                 lab.dir / "renewer.log", "renewer")
        self.process.wait_output("ready", 15, POLL)
        self._results: list[dict] | None = None

    def finish(self) -> list[dict]:
        """Stop the load; every request with its reply (or None), checked."""
        if self._results is None:
            self.process.signal(signal.SIGTERM)
            status = self.process.wait(15)
            output = self.process.output()
            assert status == 0, f"renewer exited {status}:\n{output}"
            self._results = json.loads(output.strip().splitlines()[-1])
            for request in self._results:
                reply = request["reply"]
                if reply is None:
                    continue
                client = self.clients[request["mac"]]
                assert reply["type"] == ACK and reply["yiaddr"] == client["address"], \
                    f"renewal of {client}: {reply}"
                assert reply["sid"] == VIP and reply["src"] in SERVER_SOURCES, \
                    f"reply to {request['mac']} sent at {request['t']:.3f}: {reply}"
                assert reply["o82"] == client["option82"], reply
        return self._results

    def stop(self) -> None:
        if self.process.running():
            self.process.stop()


def unanswered(results: list[dict], since: float = 0.0, until: float = float("inf")) \
        -> list[float]:
    return [r["t"] for r in results if since <= r["t"] <= until and r["reply"] is None]


def spans(times: list[float], since: float, gap: float = 0.1) -> list[tuple]:
    """Runs of ``times`` (each within ``gap`` of the previous): (first, last, how many),
    in seconds from ``since``."""
    runs: list[list[float]] = []
    for t in sorted(times):
        if runs and t - runs[-1][-1] <= gap:
            runs[-1].append(t)
        else:
            runs.append([t])
    return [(round(r[0] - since, 3), round(r[-1] - since, 3), len(r)) for r in runs]


def longest_silence(times: list[float], since: float, until: float) -> float:
    """The longest stretch in [since, until] with none of ``times`` in it."""
    points = [since, *sorted(t for t in times if since < t < until), until]
    return max(b - a for a, b in zip(points, points[1:]))


# --- clients ---

def bind(real: list[RealClient], relay: ScapyClients) -> None:
    """Real clients and relayed ones obtain leases, all at once; checks what each got."""
    marks = {client: client.start_obtain() for client in real}
    dora(relay, relay.clients, RELAYED)
    for client, mark in marks.items():
        check_real_event(client.finish(mark), client)


def renew_real(*clients: RealClient) -> None:
    """Each real client renews (concurrently) and must keep its address."""
    marks = {client: client.start_renew() for client in clients}
    for client, mark in marks.items():
        check_real_event(client.finish_renew(mark), client, expect=client.address)


def dora(group: ScapyClients, clients: list[dict], network) -> None:
    results = ScapyClients.results(group.start("dora", clients))
    for result, client in zip(results, clients):
        client["address"] = check_ack(result, network, option82=client.get("option82"))


def renew_scapy(group: ScapyClients, network, arp_mac: str | None = None) -> None:
    """Every client of the group renews its own address (direct ones ARP for the
    virtual IP themselves: only ``arp_mac`` may answer)."""
    results = ScapyClients.results(group.start("renew", group.clients))
    for result, client in zip(results, group.clients):
        check_ack(result, network, expect=client["address"], option82=client.get("option82"))
        if arp_mac is not None:
            assert result["arp"] == [arp_mac], \
                f"ARP for {VIP} answered by {result['arp']}, expected only {arp_mac}"


def in_own_share(device: str, address: str, split: int) -> bool:
    """The address is in the device's share of pool1 by that device's split: A is the
    primary (lower source address)."""
    secondary = share_of(int(IPv4Address(address)), split) is Side.SECONDARY
    return secondary == (device == "B")


# --- 1. LAN partition ---

@pytest.mark.parametrize("virtual_mac", [True, False], ids=["virtual-mac", "interface-mac"])
def test_lan_partition_with_new_clients_on_both_sides(lab: Lab, virtual_mac: bool) -> None:
    """With the virtual MAC, hosts on B's side keep their ARP entry through the heal;
    with the interfaces' own MACs they follow A only because A announces the VIP
    again when it hears B as a second master (or B saying priority 0 as it yields)."""
    run([lab.ip, "-n", lab.switch, "link", "add", "br1", "type", "bridge", "stp_state", "0",
         "mcast_snooping", "0"])
    run([lab.ip, "-n", lab.switch, "link", "set", "br1", "up"])
    ledger = Ledger(lab)
    old_a = Udhcpc(lab, "u1", persistent=True)  # A's side, bound before the partition
    old_b = Dhclient(lab, "d1")  # B's side, bound before
    relay = ScapyClients(lab, "rl", relayed=True, count=3)  # B's side, 3 more join later
    new_a = Udhcpc(lab, "na", persistent=True)
    new_b = Udhcpc(lab, "nb", persistent=True)
    direct_a = ScapyClients(lab, "sa", relayed=False, count=3)
    direct_b = ScapyClients(lab, "sb", relayed=False, count=3)
    b_side = ["B", "d1", "rl", "nb", "sb"]
    a, b = start_pair(lab, virtual_mac)
    answers_arp = VIRTUAL_MAC if virtual_mac else lab.macs["A"]
    watch = VipWatch(lab)
    watch.start()
    real = [old_a, old_b, new_a, new_b]
    try:
        bind([old_a, old_b], relay)
        wait_journals_agree(a, b)
        ups = (channel_ups(a), channel_ups(b))

        split = time.time()
        for label in b_side:
            run([lab.ip, "-n", lab.switch, "link", "set", f"p{label.lower()}", "master", "br1"])
        lab.wait_holders({"A", "B"}, ELECTION_TIMEOUT, "B master on its side of the"
                         " partition, A still master on its own", logs_of(a, b))
        both_since = time.monotonic()
        b_master_after = time.time() - split

        # New clients on both sides, all at once.
        late_relayed = relay.add(3)
        marks = {c: c.start_obtain() for c in (new_a, new_b)}
        runs = [(group, group.start("dora", group.clients), POOL1)
                for group in (direct_a, direct_b)]
        runs.append((relay, relay.start("dora", late_relayed), RELAYED))
        for client, mark in marks.items():
            check_real_event(client.finish(mark), client)
        for group, process, network in runs:
            clients = late_relayed if group is relay else group.clients
            for result, client in zip(ScapyClients.results(process), clients):
                client["address"] = check_ack(result, network,
                                              option82=client.get("option82"))
        assert lab.holders() == {"A", "B"}, "the partition ended early"
        granted = {"A": [new_a.address, *(c["address"] for c in direct_a.clients)],
                   "B": [new_b.address, *(c["address"] for c in direct_b.clients)]}
        splits = {"A": a.split("pool1"), "B": b.split("pool1")}
        assert splits["B"] <= splits["A"], f"the shares overlap: {splits}"
        wrong_share = {device: [ip for ip in addresses
                                if not in_own_share(device, ip, splits[device])]
                       for device, addresses in granted.items()}
        assert not any(wrong_share.values()), \
            f"addresses granted during the partition outside the device's share:" \
            f" {wrong_share} (granted {granted}, splits {splits})"
        time.sleep(max(0.0, both_since + 10.0 - time.monotonic()))

        heal = time.time()
        for label in reversed(b_side):  # B last: the two masters meet with every host back
            run([lab.ip, "-n", lab.switch, "link", "set", f"p{label.lower()}", "master", "br0"])
        lab.wait_holders({"A"}, ELECTION_TIMEOUT, "A alone master after the heal",
                         logs_of(a, b))
        single_after = time.time() - heal
        # The relay last sent to B: its unicast to the VIP must reach A again.
        lab.wait_neighbour("rl", "A", 5, "after the heal (A re-announces the virtual IP)")
        wait_channel_back(a, b, ups, 40, "after the heal")
        channel_after = time.time() - heal
        wait_journals_agree(a, b, timeout=20)
        # A, which serves on, now holds every lease B granted on its side
        from_b = assert_next_server_holds(ledger.packets(), "B", heal, a)

        renewed = time.time()
        marks = {c: c.start_renew() for c in real}
        renew_scapy(direct_a, POOL1, answers_arp)
        renew_scapy(direct_b, POOL1, answers_arp)
        renew_scapy(relay, RELAYED)
        for client, mark in marks.items():
            check_real_event(client.finish_renew(mark), client, expect=client.address)
        wait_journals_agree(a, b)
        time.sleep(0.5)  # the last replies reach the sniffer
        packets = ledger.packets()
        summary = check_ledger(packets, ledger_option82(relay))
        everyone = [*((c.mac, c.address) for c in real),
                    *((c["mac"], c["address"]) for g in (direct_a, direct_b, relay)
                      for c in g.clients)]
        for mac, address in everyone:
            acks = acked_after(packets, mac, renewed)
            assert acks and all(p["yiaddr"] == address for p in acks), \
                f"{mac} ({address}) renewed after the heal: {acks}"
        partition_acks = [p for p in packets if p["op"] == 2 and p["type"] == ACK
                          and split < p["t"] < heal]
        assert {DEVICE_PORT[p["port"]] for p in partition_acks} == {"A", "B"}, \
            "both sides granted leases during the partition"
        assert_healthy(a, b)
        print("\n[partition] " + json.dumps({
            **summary, "B_acks_checked_on_A_after_heal": from_b,
            "B_master_after_split_s": round(b_master_after, 2),
            "both_masters_s": round(watch.both(), 2),
            "A_alone_master_after_heal_s": round(single_after, 2),
            "channel_up_after_heal_s": round(channel_after, 2),
            "granted_during_partition": granted,
            "unconfirmed_acks": {"A": unconfirmed(a), "B": unconfirmed(b)},
            "warnings": {"A": a.warnings(), "B": b.warnings()}}))
    finally:
        watch.stop()
        for client in real:
            client.stop()


# --- 2. release, then failover ---

def dhclient_release(client: Dhclient) -> None:
    """``dhclient -r`` on the client's lease file: a DHCPRELEASE to the server."""
    client.stop()
    result = run(client.lab.exec_args(client.lab.ns[client.label], client.binary, "-r",
                                      *client.common, "lan0"), timeout=30)
    assert f"DHCPRELEASE of {client.address}" in result.stderr, result.stderr


def udhcpc_release(client: Udhcpc) -> None:
    seen = len(client.events())
    client.process.signal(signal.SIGUSR2)
    client.wait_event({"deconfig"}, seen)
    assert f"unicasting a release of {client.address}" in client.process.output(), \
        client.process.output()


def test_release_then_failover(lab: Lab) -> None:
    ledger = Ledger(lab)
    leaving_u = Udhcpc(lab, "u1", persistent=True)
    leaving_d = Dhclient(lab, "d1")
    staying = Udhcpc(lab, "u2", persistent=True)
    relay = ScapyClients(lab, "rl", relayed=True, count=4)
    newcomers = ScapyClients(lab, "sc", relayed=False, count=0)
    a, b = start_pair(lab)
    load = None
    try:
        bind([leaving_u, leaving_d, staying], relay)
        released = {leaving_u.address, leaving_d.address}
        wait_journals_agree(a, b)

        udhcpc_release(leaving_u)
        dhclient_release(leaving_d)
        with explain_failure(logs_of(a, b)):
            wait_for(lambda: not released & (set(bound(a.rows())) | set(bound(b.rows()))),
                     10, lambda: f"{sorted(released)} released in both journals:"
                                 f" A {sorted(bound(a.rows()))} B {sorted(bound(b.rows()))}",
                     POLL)
        load = RenewLoad(lab, relay, rate=25, duration=60)
        time.sleep(1.0)

        cut = time.time()
        lab.link("A", "uplink0p", "down")
        lab.wait_holders({"B"}, ELECTION_TIMEOUT, "B master after A's uplink went down",
                         logs_of(a, b))
        checked = assert_next_server_holds(ledger.packets(), "A", cut, b)
        time.sleep(1.0)
        rows_b = {row["ip"]: row for row in b.rows()}
        still = {ip: rows_b[ip]["state"] for ip in released
                 if ip in rows_b and rows_b[ip]["state"] == "bound"}
        assert not still, f"released addresses bound on the new master: {still}"
        # New clients ask B for exactly the released addresses: B gives those in its own
        # share of the pool, and for those in A's (A granted them) a free one of its own.
        wanted = newcomers.add(len(released))
        for client, address in zip(wanted, sorted(released)):
            client["requested"] = address
        dora(newcomers, wanted, POOL1)
        split_b = b.split("pool1")
        given = {client["requested"]: client["address"] for client in wanted}
        assert all(in_own_share("B", address, split_b) for address in given.values()), \
            f"B gave new clients addresses outside its share (split {split_b}): {given}"
        assert all(given[ip] == ip for ip in released if in_own_share("B", ip, split_b)), \
            f"B did not give a released address of its share to a client asking for it: {given}"
        renew_real(staying)
        results = load.finish()
        time.sleep(0.5)
        first_b = ledger.first_ack("B", cut)
        assert first_b is not None, "B sent no DHCPACK after the cut"
        assert unanswered(results, cut + 5.0) == [], "requests unanswered once B was master"
        wait_journals_agree(a, b)
        packets = ledger.packets()
        summary = check_ledger(packets, ledger_option82(relay))
        assert not [p for p in packets if p["op"] == 2 and p["type"] == ACK
                    and p["port"] == "pa" and p["t"] > first_b], "A acknowledged after B"
        assert_healthy(a, b)
        print("\n[release-failover] " + json.dumps({
            **summary, "released": sorted(released), "A_acks_checked_on_B": checked,
            "uplink_cut_to_first_B_ack_ms": round((first_b - cut) * 1000, 1),
            "budget_ms (advert interval + 50 ms)": ADVERT_INTERVAL * 1000 + 50,
            "renewals": len(results), "unanswered": len(unanswered(results)),
            "unanswered_runs_s (first, last, count)": spans(unanswered(results), cut),
            "unconfirmed_acks": {"A": unconfirmed(a), "B": unconfirmed(b)}}))
    finally:
        if load is not None:
            load.stop()
        for client in (leaving_u, leaving_d, staying):
            client.stop()


def free_by_share(device: Device, pool: IPv4Network, split: int) -> dict[str, int]:
    """Free addresses of a /24 pool in each device's share, from the device's journal
    (the relayed pool hands out .2 to .254: .0, .1 (the gateway) and .255 never)."""
    held = {row["ip"] for row in device.rows() if row["state"] in ("bound", "offered")}
    free = {"A": 0, "B": 0}
    for address in list(pool.hosts())[1:]:
        if str(address) not in held:
            free["B" if in_own_share("B", str(address), split) else "A"] += 1
    return free


def test_the_split_follows_the_free_addresses(lab: Lab) -> None:
    """100 relayed clients use up most of A's half of a /24: within a rebalance period
    the pair moves the split, both journals hold the same one, the free addresses are
    back to about half on each side, and new clients get addresses of A's grown share."""
    relay = ScapyClients(lab, "rl", relayed=True, count=100)
    a, b = start_pair(lab)
    assert a.split("relayed") == b.split("relayed") == 50
    dora(relay, relay.clients, RELAYED)
    with explain_failure(logs_of(a, b)):
        wait_for(lambda: a.split("relayed") == b.split("relayed") != 50, 20,
                 lambda: f"the split to move on both devices: A {a.split('relayed')},"
                         f" B {b.split('relayed')}", POLL)
    wait_journals_agree(a, b)
    split = a.split("relayed")
    free = free_by_share(a, RELAYED, split)
    assert split < 50 and abs(free["A"] - free["B"]) <= 0.15 * sum(free.values()), \
        f"split {split}: free addresses per share {free}"
    newcomers = relay.add(20)
    dora(relay, newcomers, RELAYED)
    outside = [c["address"] for c in newcomers
               if not in_own_share("A", c["address"], a.split("relayed"))]
    assert not outside, f"A gave addresses outside its share: {outside}"
    wait_journals_agree(a, b)
    assert_healthy(a, b)
    print("\n[split] " + json.dumps({"split": split, "free_after_move": free,
                                     "split_after_20_more": a.split("relayed")}))


# --- 3. garbage in the live channel ---

# Runs in the switch namespace (on path): waits for a TCP segment of the channel
# from ``src`` to ``dst`` entering the switch at ``in_port``, and sends at once, out
# of ``out_port`` towards ``dst``, a segment as if from ``src`` that continues its
# byte stream (the next sequence number, the same ack, window and options) with
# ``junk`` as payload.  Prints what it sent.
TCP_INJECTOR = r"""
import json, socket, struct, sys, time
in_port, out_port, src, dst, service = sys.argv[1:6]
junk = bytes.fromhex(sys.argv[6])
src, dst, service = socket.inet_aton(src), socket.inet_aton(dst), int(service)
sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
sniff.bind((in_port, 0))
out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind((out_port, 0))

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

print("ready", flush=True)
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    sniff.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        frame, address = sniff.recvfrom(65535)
    except socket.timeout:
        break
    if address[2] == socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00" \
            or frame[23] != 6 or frame[26:30] != src or frame[30:34] != dst:
        continue
    ihl = (frame[14] & 15) * 4
    tcp = 14 + ihl
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", frame, tcp)
    flags, header = offset_flags & 0x3F, (offset_flags >> 12) * 4
    if service not in (sport, dport) or flags & 0x07 or not flags & 0x10:
        continue  # not the channel, or SYN, FIN, RST, or no ACK
    length = struct.unpack_from("!H", frame, 16)[0] - ihl - header
    next_seq = (seq + length) & 0xFFFFFFFF
    segment = struct.pack("!HHIIHHHH", sport, dport, next_seq, ack,
                          (header // 4) << 12 | 0x18, window, 0, 0)
    segment += frame[tcp + 20:tcp + header] + junk
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    segment = segment[:16] + struct.pack("!H", checksum(pseudo + segment)) + segment[18:]
    ip_id = (struct.unpack_from("!H", frame, 18)[0] + 1) & 0xFFFF
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ip_id, 0x4000, 64, 6, 0,
                     src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    out.send(frame[:14] + ip + segment)
    print(json.dumps({"t": time.time(), "seq": next_seq, "ack": ack, "after": length,
                      "bytes": len(junk)}), flush=True)
    break
else:
    print("no segment", flush=True)
"""

JUNK = b"\xff" * 48  # read as a frame length of 4 GiB: rejected at once
WATCHED = 5.0  # seconds after each injection whose renewals are looked at
CHANNEL_PORT = 10000  # examples/pair's remote-backup-service tcp-port


def inject_junk(lab: Lab, into: str, a: Device, b: Device, attempts: int = 5) -> float:
    """Write JUNK into the live channel towards device ``into`` (as if from its peer),
    until ``into`` drops the connection; returns when the segment went out (wall)."""
    peer = "B" if into == "A" else "A"
    target = a if into == "A" else b
    script = lab.dir / "tcp_injector.py"
    script.write_text(TCP_INJECTOR)
    drops = len(target.lines("remote backup service1: frame length"))
    for attempt in range(1, attempts + 1):
        injector = lab.start(lab.switch, [sys.executable, "-u", script, f"p{peer.lower()}",
                                          f"p{into.lower()}", ADDRESS[peer], ADDRESS[into],
                                          CHANNEL_PORT, JUNK.hex()],
                             lab.dir / f"injector-{into}-{attempt}.log", f"injector {attempt}")
        assert injector.wait(20) == 0, injector.output()
        line = injector.output().splitlines()[-1]
        assert line.startswith("{"), f"no channel segment seen: {injector.output()}"
        sent = json.loads(line)
        try:
            wait_for(lambda: len(target.lines("remote backup service1: frame length")) > drops,
                     2.0, "the junk to be read", POLL)
            return sent["t"]
        except AssertionError:
            continue  # the peer's own next segment got there first: ours was a duplicate
    raise AssertionError(f"{target.name} never read the junk in {attempts} attempts"
                         f"\n{target.logs()}")


def test_garbage_in_the_live_channel(lab: Lab) -> None:
    ledger = Ledger(lab)
    udhcpc = Udhcpc(lab, "u1", persistent=True)
    dhclient = Dhclient(lab, "d1")
    relay = ScapyClients(lab, "rl", relayed=True, count=6)
    a, b = start_pair(lab)
    load = None
    try:
        bind([udhcpc, dhclient], relay)
        wait_journals_agree(a, b)
        load = RenewLoad(lab, relay, rate=25, duration=90)
        time.sleep(1.0)
        attacks = {}
        for into in ("A", "B"):
            ups = (channel_ups(a), channel_ups(b))
            t0 = time.monotonic()
            at = inject_junk(lab, into, a, b)
            renew_real(udhcpc, dhclient)  # real clients renew while the channel is down
            wait_channel_back(a, b, ups, 30, f"after junk into {into}")
            attacks[into] = {"at": at, "channel_back_s": round(time.monotonic() - t0, 2)}
        time.sleep(max(0.0, at + WATCHED - time.time()))  # the load runs on past the window
        results = load.finish()
        assert lab.holders() == {"A"}, "A stays the only master"
        time.sleep(0.5)
        packets = ledger.packets()
        summary = check_ledger(packets, ledger_option82(relay))
        missed = unanswered(results)
        assert not missed, f"{len(missed)} of {len(results)} renewals unanswered by the" \
                           f" master (at {[round(t - attacks['A']['at'], 3) for t in missed]}" \
                           f" s from the first attack)"
        served = [p for p in packets if p["op"] == 2 and p["type"] == ACK]
        assert {DEVICE_PORT[p["port"]] for p in served} == {"A"}, "only A answered"
        assert not a.lines("stops serving") and ("master", "backup") not in [
            (old, new) for old, new, _ in a.transitions()], a.output()
        wait_journals_agree(a, b)
        assert_healthy(a, b)
        latency = [r["reply"]["t"] - r["t"] for r in results]
        figures = {}
        for into, attack in attacks.items():
            window = [r for r in results if attack["at"] <= r["t"] <= attack["at"] + WATCHED]
            figures[f"junk_into_{into}"] = {
                "channel_back_s": attack["channel_back_s"],
                "renewals_in_window": len(window),
                "max_reply_ms": round(max(r["reply"]["t"] - r["t"] for r in window) * 1000, 1),
                "longest_ack_gap_on_A_ms": round(longest_silence(
                    [p["t"] for p in served], attack["at"], attack["at"] + WATCHED) * 1000, 1)}
        print("\n[garbage] " + json.dumps({
            **summary, "renewals": len(results), "unanswered": len(missed),
            "median_reply_ms": round(sorted(latency)[len(latency) // 2] * 1000, 2),
            **figures,
            "drops_logged": {"A": a.lines("remote backup service1: frame length"),
                             "B": b.lines("remote backup service1: frame length")},
            "unconfirmed_acks": {"A": unconfirmed(a), "B": unconfirmed(b)}}))
    finally:
        if load is not None:
            load.stop()
        for client in (udhcpc, dhclient):
            client.stop()


# --- 4. a frozen master (and a killed one) ---

FREEZE = 5.0  # seconds A stays stopped, or dead before its restart


@pytest.mark.parametrize("fault", ["freeze", "kill"])
def test_frozen_master(lab: Lab, fault: str) -> None:
    """``freeze``: SIGSTOP for 5 s, then SIGCONT.  ``kill``: SIGKILL (the box lives on,
    its kernel keeps the VIP), a restart 5 s later on the same state dir, and the
    preemption after A's hold-time, once it holds B's table."""
    ledger = Ledger(lab)
    udhcpc = Udhcpc(lab, "u1", persistent=True)
    dhclient = Dhclient(lab, "d1")
    relay = ScapyClients(lab, "rl", relayed=True, count=6)
    lab.attach("pf", "lan0")
    lab.addr("pf", f"{PERF_LAN}/24")
    lab.addr("pf", f"{PERF_GIADDR}/{PERF.prefixlen}")
    a, b = start_pair(lab)
    watch = VipWatch(lab)
    load = perf = None
    try:
        bind([udhcpc, dhclient], relay)
        wait_journals_agree(a, b)
        watch.start()
        load = RenewLoad(lab, relay, rate=50, duration=120)
        perf = lab.start(lab.ns["pf"], [lab.tools["perfdhcp"], "-4", "-l", PERF_GIADDR,
                                        "-r", "10", "-R", "1000000", "-p", "60", "-t", "1",
                                        VIP], lab.dir / "perfdhcp.log", "perfdhcp")
        time.sleep(3.0)

        struck = time.time()
        if fault == "freeze":
            a.process.signal(signal.SIGSTOP)
        else:
            a.kill()
        try:
            lab.wait_holders({"A", "B"}, ELECTION_TIMEOUT, "B takes the VIP (A's kernel"
                             " keeps its own)", logs_of(a, b))
            took_over = time.time()
            checked = assert_next_server_holds(ledger.packets(), "A", struck, b)
            time.sleep(max(0.0, struck + FREEZE - time.time()))
        finally:
            back = time.time()
            if fault == "freeze":
                a.process.signal(signal.SIGCONT)
        if fault == "freeze":
            with explain_failure(logs_of(a, b)):
                wait_for(lambda: len(lab.holders()) == 1, ELECTION_TIMEOUT,
                         "one VIP holder after A woke", POLL)
        else:
            a.start()
            a.wait_ready()
            lab.wait_holders({"A"}, HOLD_TIME + ELECTION_TIMEOUT, "A master again after its"
                             " restart and hold-time", logs_of(a, b))
        settled = time.time()
        time.sleep(3.0)
        master = lab.holders()
        assert len(master) == 1, f"VIP holders after A came back: {master}"
        renew_real(udhcpc, dhclient)
        results = load.finish()
        perf.stop()
        watch.stop()
        wait_for(lambda: channel_ups(a) >= 1 and channel_ups(b) >= 2, 30,
                 lambda: f"the channel back after the {fault}\n{logs_of(a, b)()}", POLL)
        wait_journals_agree(a, b, timeout=30)
        time.sleep(0.5)
        packets = ledger.packets()
        summary = check_ledger(packets, ledger_option82(relay))
        acks = [p for p in packets if p["op"] == 2 and p["type"] == ACK]
        first_b = min((p["t"] for p in acks if p["port"] == "pb" and p["t"] > struck),
                      default=None)
        assert first_b is not None, f"B never answered after the {fault}"
        last_a = max(p["t"] for p in acks if p["port"] == "pa" and p["t"] < struck)
        a_after = [p["t"] for p in acks if p["port"] == "pa" and p["t"] > back]
        assert_healthy(a, b)
        renewer_acks = [r["reply"]["t"] for r in results if r["reply"]]
        figures = {
            f"{fault}_to_first_B_ack_ms": round((first_b - struck) * 1000, 1),
            "budget_ms (master-down interval + 100 ms)": round(MASTER_DOWN_B * 1000 + 100),
            "last_A_ack_before_ms": round((last_a - struck) * 1000, 1),
            "longest_time_with_no_ack_ms": round(longest_silence(
                [p["t"] for p in acks], struck - 1, took_over + 3) * 1000, 1),
            "A_acks_checked_on_B_at_takeover": checked}
        if fault == "freeze":
            figures.update({
                "woken_A": "kept serving" if master == {"A"} else "stepped down",
                "first_A_ack_after_wake_ms": round((min(a_after) - back) * 1000, 1)
                if a_after else None,
                "renewer_longest_no_ack_after_wake_ms": round(longest_silence(
                    renewer_acks, back, settled + 3) * 1000, 1)})
        else:
            figures.update({
                "A_master_again_after_restart_s": round(settled - back, 2),
                "renewer_longest_no_ack_around_preemption_ms": round(longest_silence(
                    renewer_acks, settled - 2, settled + 3) * 1000, 1)})
        print(f"\n[{fault}] " + json.dumps({
            **summary, **figures,
            "renewals": len(results), "unanswered": len(unanswered(results)),
            "unanswered_runs_s (first, last, count)": spans(unanswered(results), struck),
            "both_held_vip_s": round(watch.both(), 2),
            "unconfirmed_acks": {"A": unconfirmed(a), "B": unconfirmed(b)},
            "transitions": {"A": a.transitions(), "B": b.transitions()}}))
    finally:
        if a.process is not None:
            a.process.signal(signal.SIGCONT)
        watch.stop()
        if load is not None:
            load.stop()
        if perf is not None:
            perf.stop()
        for client in (udhcpc, dhclient):
            client.stop()
