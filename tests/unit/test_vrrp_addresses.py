"""The bytes behind virtual addresses and the virtual MAC: rtnetlink messages (rtnetlink(7),
linux/if_link.h), ARP frames (RFC 826) and advertisement frames (RFC 5798 section 7.3)."""

from __future__ import annotations

import errno
import socket
import struct

from nefeature.linkstate import parse_link_messages
from nefeature.vrrp import netlink
from nefeature.vrrp.netlink import (
    IFA_ADDRESS,
    IFA_LOCAL,
    IFF_LOWER_UP,
    IFF_NOARP,
    IFF_UP,
    IFLA_ADDRESS,
    IFLA_IFALIAS,
    IFLA_IFNAME,
    IFLA_INFO_DATA,
    IFLA_INFO_KIND,
    IFLA_LINK,
    IFLA_LINKINFO,
    IFLA_MACVLAN_MODE,
    MACVLAN_MODE_PRIVATE,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    address_request,
    attributes,
    netlink_error,
    rtattr,
)
from nefeature.vrrp.packet import Advertisement, parse_ipv4
from nefeature.vrrp.router import virtual_router_mac
from nefeature.vrrp.transport import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    Arp,
    advertisement_frame,
    arp_action,
    arp_frame,
    gratuitous_arp,
    parse_arp,
    virtual_mac_interface_name,
)

VIP = 0x0A0A0A64  # 10.10.10.100
OTHER = 0x0A0A0A65
HOST = 0x0A0A0A32  # 10.10.10.50
HOST_MAC = bytes.fromhex("020000000032")
VMAC = bytes.fromhex("00005e000101")


def header(message: bytes) -> tuple[int, int, int, int, int]:
    return struct.unpack_from("=IHHII", message)


# --- addresses ---

def test_add_request_layout():
    message = address_request(True, 7, VIP, 24, sequence=42)
    length, kind, flags, sequence, pid = header(message)
    assert (length, kind, sequence, pid) == (len(message), RTM_NEWADDR, 42, 0)
    assert flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
    assert struct.unpack_from("=BBBBI", message, 16) == (socket.AF_INET, 24, 0, 0, 7)
    attributes_ = message[24:]
    assert attributes_ == struct.pack("=HH", 8, IFA_LOCAL) + bytes([10, 10, 10, 100]) \
        + struct.pack("=HH", 8, IFA_ADDRESS) + bytes([10, 10, 10, 100])


def test_delete_request_does_not_create():
    _, kind, flags, _, _ = header(address_request(False, 7, VIP, 24, 1))
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


def _kernel_message(kind: int, body: bytes, sequence: int = 9) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, sequence, 0) + body


def test_an_address_dump_gives_interface_and_address():
    def entry(index: int, address: int, family: int = socket.AF_INET) -> bytes:
        packed = struct.pack("!I", address)
        return _kernel_message(RTM_NEWADDR, struct.pack("=BBBBI", family, 32, 0, 0, index)
                               + rtattr(IFA_ADDRESS, packed) + rtattr(IFA_LOCAL, packed))
    dump = entry(3, VIP) + entry(2, HOST) + _kernel_message(NLMSG_DONE, b"\0" * 4)
    assert netlink.parse_addresses(dump) == [(3, VIP), (2, HOST)]
    assert netlink.dump_done(dump, 9) and not netlink.dump_done(entry(3, VIP), 9)


# --- links: the virtual MAC interface, and link events ---

def test_macvlan_request_creates_a_private_noarp_macvlan_on_the_lower_interface():
    message = netlink.macvlan_request("vrrp1.7", 7, VMAC, 3)
    length, kind, flags, sequence, _ = header(message)
    assert (length, kind, sequence) == (len(message), RTM_NEWLINK, 3)
    assert flags == NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    family, _type, index, link_flags, change = struct.unpack_from("=BxHiII", message, 16)
    assert (family, index) == (socket.AF_UNSPEC, 0)
    assert link_flags & IFF_NOARP and change == IFF_NOARP and not link_flags & IFF_UP  # down
    found = attributes(message, 32, len(message))
    assert found[IFLA_IFNAME] == b"vrrp1.7\0"
    assert struct.unpack("=I", found[IFLA_LINK]) == (7,)
    assert found[IFLA_ADDRESS] == VMAC
    info = attributes(found[IFLA_LINKINFO], 0, len(found[IFLA_LINKINFO]))
    assert info[IFLA_INFO_KIND] == b"macvlan"
    data = attributes(info[IFLA_INFO_DATA], 0, len(info[IFLA_INFO_DATA]))
    assert struct.unpack("=I", data[IFLA_MACVLAN_MODE]) == (MACVLAN_MODE_PRIVATE,)


def test_link_up_delete_and_dump_requests():
    up = netlink.link_up_request(9, "nefeature vrrp 1 on lan0", 4)
    assert header(up)[1:3] == (RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert struct.unpack_from("=BxHiII", up, 16)[2:] == (9, IFF_UP, IFF_UP)
    assert attributes(up, 32, len(up))[IFLA_IFALIAS] == b"nefeature vrrp 1 on lan0"
    delete = netlink.delete_link_request(9, 5)
    assert header(delete)[1:3] == (RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK)
    assert struct.unpack_from("=BxHiII", delete, 16)[2] == 9
    dump = netlink.link_dump_request(6)
    assert header(dump)[1:3] == (RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP)


def _link_message(kind: int, index: int, flags: int, name: str, lower: int | None = None,
                  alias: str | None = None, info_kind: str | None = None) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, flags, 0) + rtattr(IFLA_IFNAME,
                                                                   name.encode() + b"\0")
    body += rtattr(IFLA_ADDRESS, VMAC)
    if lower is not None:
        body += rtattr(IFLA_LINK, struct.pack("=I", lower))
    if alias is not None:
        body += rtattr(IFLA_IFALIAS, alias.encode() + b"\0")
    if info_kind is not None:
        body += rtattr(IFLA_LINKINFO, rtattr(IFLA_INFO_KIND, info_kind.encode() + b"\0"))
    return _kernel_message(kind, body)


def test_links_are_parsed_with_their_lower_interface_alias_and_kind():
    data = (_link_message(RTM_NEWLINK, 9, IFF_UP | IFF_LOWER_UP, "vrrp1.7", 7,
                          "nefeature vrrp 1 on lan0", "macvlan")
            + _link_message(RTM_NEWLINK, 7, IFF_UP, "lan0")
            + _link_message(RTM_DELLINK, 5, IFF_UP | IFF_LOWER_UP, "uplink0"))
    vmac, lan, uplink = netlink.parse_links(data)
    assert (vmac.index, vmac.name, vmac.lower, vmac.mac, vmac.alias, vmac.kind, vmac.up) == \
        (9, "vrrp1.7", 7, VMAC, "nefeature vrrp 1 on lan0", "macvlan", True)
    assert (lan.name, lan.lower, lan.kind, lan.up) == ("lan0", None, None, False)  # no carrier
    assert uplink.deleted and not uplink.up
    assert parse_link_messages(data) == [("vrrp1.7", True), ("lan0", False), ("uplink0", False)]


def test_virtual_mac_interface_names_fit_ifnamsiz():
    assert virtual_mac_interface_name(7, 1) == "vrrp1.7"
    assert virtual_mac_interface_name(9_999_999, 255) == "vrrp255.9999999"
    assert len(virtual_mac_interface_name(2**31 - 1, 255)) <= 15
    assert virtual_mac_interface_name(2**31 - 1, 1) != virtual_mac_interface_name(2**31 - 2, 1)


# --- frames ---

def test_advertisement_frame_goes_from_the_given_mac_to_the_vrrp_group_mac():
    advertisement = Advertisement(1, 200, 100, (VIP,))
    frame = advertisement_frame(advertisement, HOST, virtual_router_mac(1))
    assert frame[:6] == bytes.fromhex("01005e000012") and frame[6:12] == VMAC
    assert frame[12:14] == b"\x08\x00"
    received = parse_ipv4(frame[14:])  # checksums and TTL 255 as a receiver checks them
    assert (received.advertisement, received.source, received.ttl) == (advertisement, HOST, 255)


def test_gratuitous_arp_is_a_broadcast_request_for_the_address_from_itself():
    frame = gratuitous_arp(VMAC, VIP)
    assert frame[:6] == BROADCAST_MAC and frame[6:12] == VMAC and len(frame) == 42
    assert parse_arp(frame) == Arp(ARP_REQUEST, VMAC, VIP, b"\0" * 6, VIP)


def test_arp_frames_round_trip_and_other_frames_are_not_arp():
    reply = Arp(ARP_REPLY, VMAC, VIP, HOST_MAC, HOST)
    frame = arp_frame(reply, HOST_MAC)
    assert frame[:6] == HOST_MAC and parse_arp(frame) == reply
    assert parse_arp(frame + b"\0" * 18) == reply  # Ethernet padding to 60 bytes
    assert parse_arp(frame[:30]) is None
    assert parse_arp(frame[:12] + b"\x08\x00" + frame[14:]) is None  # IPv4, not ARP
    assert parse_arp(frame[:14] + b"\x00\x06" + frame[16:]) is None  # not Ethernet hardware


def test_a_master_answers_requests_for_held_addresses_only_when_it_answers_arp():
    request = Arp(ARP_REQUEST, HOST_MAC, HOST, b"\0" * 6, VIP)
    assert arp_action(request, {VIP}, answering=True) == ("answer", VIP)
    assert arp_action(request, {VIP}, answering=False) is None  # the kernel answers
    assert arp_action(request, {OTHER}, answering=True) is None
    probe = Arp(ARP_REQUEST, HOST_MAC, 0, b"\0" * 6, VIP)  # RFC 5227 probe
    assert arp_action(probe, {VIP}, answering=True) == ("answer", VIP)
    assert arp_action(Arp(ARP_REPLY, HOST_MAC, HOST, VMAC, VIP), {VIP}, True) is None


def test_another_device_speaking_for_a_held_address_is_a_claim():
    other_mac = bytes.fromhex("02000000aaaa")
    for arp in (Arp(ARP_REQUEST, other_mac, VIP, b"\0" * 6, VIP),  # its gratuitous ARP
                Arp(ARP_REPLY, other_mac, VIP, HOST_MAC, HOST),  # its answer to a host
                Arp(ARP_REQUEST, VMAC, VIP, b"\0" * 6, VIP)):  # same virtual MAC, other box
        for answering in (True, False):
            assert arp_action(arp, {VIP}, answering) == ("claimed", VIP)
    assert arp_action(Arp(ARP_REPLY, other_mac, OTHER, HOST_MAC, HOST), {VIP}, True) is None
