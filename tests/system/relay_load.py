"""A DHCP relay that runs DORAs for a fixed set of clients and records every DHCPACK.

Run inside a network namespace: ``relay_load.py GIADDR SERVER SECONDS CLIENTS RECORDS``.
It binds GIADDR:67, sends DISCOVER then REQUEST for client after client
(round robin, so every client keeps asking for its own address), and
appends one JSON line per DHCPACK to RECORDS, flushed before the next
request: the clients' own record of what the server acknowledged.  An
unanswered step times out after 0.3 s and the next client goes; the run
ends after SECONDS.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nefeature.dhcp.codec import (  # noqa: E402
    BOOTREPLY,
    DhcpMessage,
    MalformedMessage,
    MessageType,
    Option,
    decode,
    encode,
)

REPLY_TIMEOUT = 0.3


def mac_of(number: int) -> bytes:
    return bytes.fromhex("02cc") + number.to_bytes(4, "big")


def exchange(sock, server: tuple[str, int], message: DhcpMessage,
             wanted: MessageType, timeout: float = REPLY_TIMEOUT) -> DhcpMessage | None:
    sock.sendto(encode(message), server)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(4096)
            reply = decode(data)
        except (TimeoutError, socket.timeout):
            return None
        except MalformedMessage:
            continue
        if reply.op == BOOTREPLY and reply.xid == message.xid:
            return reply if reply.message_type == wanted else None
    return None


def main(giaddr: str, server_address: str, seconds: float, clients: int, records: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((giaddr, 67))
    server = (server_address, 67)
    relay = int(IPv4Address(giaddr))
    out = open(records, "a", buffering=1)
    end = time.monotonic() + seconds
    xid, number = 0, 0
    while time.monotonic() < end:
        mac = mac_of(number % clients)
        number += 1
        xid += 1
        base = dict(xid=xid, giaddr=relay, chaddr=mac.ljust(16, b"\0"))
        offer = exchange(sock, server, DhcpMessage(
            **base, options={Option.MESSAGE_TYPE: bytes([MessageType.DISCOVER])}),
            MessageType.OFFER)
        if offer is None:
            continue
        ack = exchange(sock, server, DhcpMessage(**base, options={
            Option.MESSAGE_TYPE: bytes([MessageType.REQUEST]),
            Option.REQUESTED_ADDRESS: struct.pack("!I", offer.yiaddr),
            Option.SERVER_ID: offer.options[Option.SERVER_ID]}), MessageType.ACK)
        if ack is None:
            continue
        lease_time = struct.unpack("!I", ack.options[Option.LEASE_TIME])[0]
        out.write(json.dumps({"mac": mac.hex(), "ip": str(IPv4Address(ack.yiaddr)),
                              "acked_at": time.time(), "lease_time": lease_time}) + "\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
