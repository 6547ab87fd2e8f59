"""A directly attached DHCP client that renews without pause, asking ARP afresh each time.

Run inside a network namespace: ``renew_load.py IFNAME SERVER SECONDS RECORDS``.
It binds one lease for the interface's own MAC (DISCOVER and REQUEST,
broadcast, from the interface's address), puts the address on the
interface, then renews it again and again until SECONDS have passed: a
DHCPREQUEST with ciaddr set, unicast to SERVER (the server identifier, a
VRRP virtual IP) from the leased address, as a client in RENEWING state
sends it (RFC 2131 section 4.4.5).  Before each renewal the kernel's ARP
entry for SERVER is deleted, so every renewal asks the LAN who holds it:
a device that answers ARP for an address it no longer serves shows up as
an unanswered renewal.  One JSON line per renewal goes to RECORDS
(``sent_at``, wall clock, and ``answered``, within ``REPLY_TIMEOUT``).
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nefeature.dhcp.codec import BROADCAST_FLAG, DhcpMessage, MessageType, Option  # noqa: E402
from tests.system.relay_load import exchange  # noqa: E402

REPLY_TIMEOUT = 2.0  # seconds; a real client waits longer before it retransmits
PAUSE = 0.1  # seconds between two renewals
SO_BINDTODEVICE = 25


def main(ifname: str, server: str, seconds: float, records: str) -> int:
    mac = bytes.fromhex(Path(f"/sys/class/net/{ifname}/address").read_text().strip()
                        .replace(":", ""))
    chaddr = mac.ljust(16, b"\0")
    broadcast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    broadcast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    broadcast.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    broadcast.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
    broadcast.bind(("0.0.0.0", 68))
    offer = exchange(broadcast, ("255.255.255.255", 67), DhcpMessage(
        xid=1, flags=BROADCAST_FLAG, chaddr=chaddr,
        options={Option.MESSAGE_TYPE: bytes([MessageType.DISCOVER])}), MessageType.OFFER,
        REPLY_TIMEOUT)
    assert offer is not None, "no DHCPOFFER"
    ack = exchange(broadcast, ("255.255.255.255", 67), DhcpMessage(
        xid=2, flags=BROADCAST_FLAG, chaddr=chaddr, options={
            Option.MESSAGE_TYPE: bytes([MessageType.REQUEST]),
            Option.REQUESTED_ADDRESS: struct.pack("!I", offer.yiaddr),
            Option.SERVER_ID: offer.options[Option.SERVER_ID]}), MessageType.ACK, REPLY_TIMEOUT)
    assert ack is not None, "no DHCPACK"
    broadcast.close()
    leased = str(IPv4Address(ack.yiaddr))
    subprocess.run(["ip", "addr", "add", f"{leased}/24", "dev", ifname], check=True)
    print("bound", leased, flush=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((leased, 68))
    out = open(records, "a", buffering=1)
    end = time.monotonic() + seconds
    xid = 100
    while time.monotonic() < end:
        xid += 1
        subprocess.run(["ip", "neigh", "del", server, "dev", ifname], capture_output=True)
        sent_at = time.time()
        reply = exchange(sock, (server, 67), DhcpMessage(
            xid=xid, ciaddr=ack.yiaddr, chaddr=chaddr,
            options={Option.MESSAGE_TYPE: bytes([MessageType.REQUEST])}), MessageType.ACK,
            REPLY_TIMEOUT)
        out.write(json.dumps({"sent_at": sent_at, "answered": reply is not None}) + "\n")
        time.sleep(PAUSE)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]))
