"""RFC 6241 sections 4 and 8 / RFC 6242: hello, capabilities, replies, sessions."""

from __future__ import annotations

import re
import socket
import time

import paramiko
import pytest
from lxml import etree

from tests.conformance.conftest import NC_NS, PASSWORD, USER

EXPECTED = {
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:writable-running:1.0",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
    "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit"
    "&also-supported=report-all,report-all-tagged,trim",
}


class RawSession:
    """A hand-driven SSH netconf subsystem, to send exactly the bytes a test needs."""

    def __init__(self, device):
        self.transport = paramiko.Transport(socket.create_connection(("127.0.0.1", device.port)))
        self.transport.connect(username=USER, password=PASSWORD)
        self.channel = self.transport.open_session()
        self.channel.invoke_subsystem("netconf")
        self.channel.settimeout(10)
        self.buffer = b""

    def read_until(self, marker: bytes) -> bytes:
        deadline = time.monotonic() + 10
        while marker not in self.buffer and time.monotonic() < deadline:
            data = self.channel.recv(65536)
            if not data:
                break
            self.buffer += data
        message, _, self.buffer = self.buffer.partition(marker)
        return message

    def close(self):
        self.transport.close()


def test_hello_capabilities_are_exact_and_session_id_numeric_rfc6241_8_1(nc):
    capabilities = set(nc.server_capabilities)
    assert EXPECTED <= capabilities
    assert "urn:nefeature:yang:nefeature-dhcp-server?module=nefeature-dhcp-server" \
           "&revision=2026-11-28" in capabilities
    assert isinstance(int(nc.session_id), int) and int(nc.session_id) > 0
    from ncclient.transport.session import NetconfBase
    assert nc._session._base == NetconfBase.BASE_11  # chunked framing negotiated


def test_reply_echoes_every_rpc_attribute_rfc6241_4_2(device):
    raw = RawSession(device)
    hello = raw.read_until(b"]]>]]>")
    assert b"<session-id>" in hello
    raw.channel.sendall(f'<hello xmlns="{NC_NS}"><capabilities><capability>'
                        'urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>'
                        ']]>]]>'.encode())
    raw.channel.sendall(f'<rpc xmlns="{NC_NS}" message-id="101" xmlns:ex="urn:example" '
                        f'ex:user-id="fred"><get-config><source><running/></source>'
                        '</get-config></rpc>]]>]]>'.encode())
    reply = etree.fromstring(raw.read_until(b"]]>]]>").split(b"?>", 1)[-1])
    assert reply.get("message-id") == "101"
    assert reply.get("{urn:example}user-id") == "fred"
    raw.channel.sendall(f'<rpc xmlns="{NC_NS}"><get-config><source><running/></source>'
                        '</get-config></rpc>]]>]]>'.encode())
    error = raw.read_until(b"]]>]]>").decode()
    assert "<error-tag>missing-attribute</error-tag>" in error
    assert "<bad-attribute>message-id</bad-attribute>" in error
    raw.close()


def test_client_hello_in_chunked_framing_is_accepted_ncclient_524(device):
    raw = RawSession(device)
    raw.read_until(b"]]>]]>")
    hello = (f'<hello xmlns="{NC_NS}"><capabilities><capability>'
             'urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>').encode()
    raw.channel.sendall(b"\n#%d\n" % len(hello) + hello + b"\n##\n")
    rpc = f'<rpc xmlns="{NC_NS}" message-id="7"><get-config><source><running/></source>' \
          '</get-config></rpc>'.encode()
    raw.channel.sendall(b"\n#%d\n" % len(rpc) + rpc + b"\n##\n")
    reply = raw.read_until(b"\n##\n")
    assert b'message-id="7"' in reply and b"<data" in reply
    raw.close()


def test_a_bad_hello_closes_the_session(device):
    raw = RawSession(device)
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(b"<not-a-hello/>]]>]]>")
    deadline = time.monotonic() + 10
    while not raw.channel.closed and time.monotonic() < deadline:
        if raw.channel.recv(100) == b"":
            break
    assert raw.channel.recv(100) == b""
    raw.close()


def test_wrong_password_is_refused(device):
    with pytest.raises(Exception):
        transport = paramiko.Transport(socket.create_connection(("127.0.0.1", device.port)))
        try:
            transport.connect(username=USER, password="wrong")
        finally:
            transport.close()


def test_close_session_replies_ok_then_closes_rfc6241_7_8(device):
    session = device.connect()
    assert session.close_session().ok
    with pytest.raises(Exception):
        session.get_config(source="running")


def test_kill_session_kills_the_target_not_the_caller_rfc6241_7_9(device):
    victim, killer = device.connect(), device.connect()
    assert killer.kill_session(victim.session_id).ok
    time.sleep(0.3)
    assert killer.get_config(source="running").ok  # the caller lives on
    with pytest.raises(Exception):
        victim.get_config(source="running")
    killer.close_session()


def test_unknown_operation_is_not_supported(nc):
    from ncclient.operations import RPCError

    with pytest.raises(RPCError) as caught:
        nc.dispatch(etree.fromstring('<frobnicate xmlns="urn:example:nothing"/>'))
    assert caught.value.tag == "operation-not-supported"


def test_session_ids_are_distinct(device):
    first, second = device.connect(), device.connect()
    assert first.session_id != second.session_id
    assert re.fullmatch(r"\d+", str(first.session_id))
    first.close_session()
    second.close_session()
