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


def test_public_key_user_from_authorized_keys(tmp_path):
    """A user with a key in --netconf-authorized-keys logs in with it, not with a password."""
    from ncclient import manager

    from tests.conformance.conftest import DeviceProcess

    key = paramiko.RSAKey.generate(2048)
    key.write_private_key_file(str(tmp_path / "id_rsa"))
    (tmp_path / "authorized_keys").write_text(f"ssh-rsa {key.get_base64()} operator@test\n")
    device = DeviceProcess(tmp_path)
    device.start(users=("--netconf-user", "operator", "--netconf-authorized-keys",
                        str(tmp_path / "authorized_keys")))
    try:
        session = manager.connect(host="127.0.0.1", port=device.port, username="operator",
                                  key_filename=str(tmp_path / "id_rsa"), hostkey_verify=False,
                                  look_for_keys=False, allow_agent=False, timeout=30)
        assert session.get_config(source="running").ok
        session.close_session()
        with pytest.raises(Exception):
            manager.connect(host="127.0.0.1", port=device.port, username="operator",
                            password="guess", hostkey_verify=False, look_for_keys=False,
                            allow_agent=False, timeout=10)
    finally:
        device.stop()


def test_refuses_non_loopback_netconf_without_a_user(tmp_path):
    import subprocess
    import sys

    startup = tmp_path / "startup.xml"
    startup.write_text('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>')
    result = subprocess.run([sys.executable, "-m", "nefeature", "run", "--startup", str(startup),
                             "--state-dir", str(tmp_path / "s"), "--netconf", "192.0.2.1:830"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "needs --netconf-user" in result.stderr and "no default password" in result.stderr


def test_a_missing_interface_is_reported_not_fatal(tmp_path):
    """VRRP configured on an interface the host lacks: the device runs and says why."""
    import subprocess
    import sys

    from tests.conformance.conftest import DeviceProcess, device_config, free_port

    device = DeviceProcess(tmp_path)
    device.startup.write_text(device_config().replace("<name>Vlanif100</name>",
                                                      "<name>Vlanif100</name>"
                                                      "<linux-name>nfx-absent0</linux-name>"))
    device.port = free_port()
    device.process = subprocess.Popen(
        [sys.executable, "-m", "nefeature", "run", "--startup", str(device.startup),
         "--state-dir", str(device.state_dir), "--netconf", f"127.0.0.1:{device.port}",
         "--netconf-user", USER, "--netconf-password", "x" * 12,
         "--dhcp-port", str(free_port(socket.SOCK_DGRAM))], stderr=open(device.log, "w"))
    try:
        deadline = time.monotonic() + 30
        while "NETCONF over SSH" not in device.log_text():
            assert device.process.poll() is None, device.log_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        log = device.log_text()
        assert "VRRP on nfx-absent0:" in log and "Traceback" not in log
    finally:
        device.stop()
