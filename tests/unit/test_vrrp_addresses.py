"""The rtnetlink messages that put a virtual IP on an interface (rtnetlink(7))."""

from __future__ import annotations

import errno
import socket
import struct

from nefeature.vrrp.transport import (
    IFA_ADDRESS,
    IFA_LOCAL,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    RTM_DELADDR,
    RTM_NEWADDR,
    address_request,
    netlink_error,
)

VIP = 0x0A0A0A64  # 10.10.10.100


def test_add_request_layout():
    message = address_request(True, 7, VIP, 24, sequence=42)
    length, kind, flags, sequence, pid = struct.unpack_from("=IHHII", message)
    assert (length, kind, sequence, pid) == (len(message), RTM_NEWADDR, 42, 0)
    assert flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
    assert struct.unpack_from("=BBBBI", message, 16) == (socket.AF_INET, 24, 0, 0, 7)
    attributes = message[24:]
    assert attributes == struct.pack("=HH", 8, IFA_LOCAL) + bytes([10, 10, 10, 100]) \
        + struct.pack("=HH", 8, IFA_ADDRESS) + bytes([10, 10, 10, 100])


def test_delete_request_does_not_create():
    _, kind, flags, _, _ = struct.unpack_from("=IHHII", address_request(False, 7, VIP, 24, 1))
    assert kind == RTM_DELADDR and flags == NLM_F_REQUEST | NLM_F_ACK


def _error_reply(sequence: int, error: int) -> bytes:
    body = struct.pack("=i", -error) + struct.pack("=IHHII", 40, RTM_NEWADDR, 0, sequence, 0)
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, 0, sequence, 1234) + body


def test_the_kernel_answer_for_our_sequence_is_found():
    assert netlink_error(_error_reply(5, 0), 5) == 0
    assert netlink_error(_error_reply(5, errno.EEXIST), 5) == errno.EEXIST
    assert netlink_error(_error_reply(4, 0) + _error_reply(5, errno.EPERM), 5) == errno.EPERM
    assert netlink_error(_error_reply(4, 0), 5) is None
    assert netlink_error(b"\x00" * 10, 5) is None
