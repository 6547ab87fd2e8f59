"""Hostile NETCONF input (issue 9): refused with the right error or a closed session,
the server still answering others, memory bounded."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import paramiko
import pytest

from tests.conformance.conftest import NC_NS, USER
from tests.conformance.test_rfc6241_session import RawSession

HELLO_11 = (f'<hello xmlns="{NC_NS}"><capabilities><capability>urn:ietf:params:netconf:base:1.1'
            "</capability></capabilities></hello>]]>]]>").encode()


def chunked(text: str) -> bytes:
    data = text.encode()
    return b"\n#%d\n" % len(data) + data + b"\n##\n"


def session_11(device) -> RawSession:
    raw = RawSession(device)
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(HELLO_11)
    return raw


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def closed(raw: RawSession, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if raw.channel.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return raw.channel.closed


def still_serving(device) -> bool:
    session = device.connect()
    try:
        return session.get_config(source="running").ok
    finally:
        session.close_session()


def test_external_entity_is_not_read(device, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET-VALUE")
    raw = session_11(device)
    raw.channel.sendall(chunked(
        f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "file://{secret}">]>'
        f'<rpc xmlns="{NC_NS}" message-id="1"><get-config><source><running/></source>'
        "<filter><x>&x;</x></filter></get-config></rpc>"))
    reply = raw.read_until(b"\n##\n").decode()
    assert "malformed-message" in reply and "TOP-SECRET-VALUE" not in reply
    raw.close()


def test_entity_expansion_is_refused(device):
    laughs = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};">'
                     for i in range(1, 10))
    raw = session_11(device)
    raw.channel.sendall(chunked(f'<!DOCTYPE rpc [<!ENTITY l0 "ha">{laughs}]>'
                                f'<rpc xmlns="{NC_NS}" message-id="2"><get><filter>&l9;'
                                "</filter></get></rpc>"))
    reply = raw.read_until(b"\n##\n").decode()
    assert "malformed-message" in reply
    raw.close()
    assert still_serving(device)


def test_deep_nesting_is_an_error_not_a_crash(device):
    depth = 5000
    raw = session_11(device)
    raw.channel.sendall(chunked(f'<rpc xmlns="{NC_NS}" message-id="3"><get><filter>'
                                + "<a>" * depth + "</a>" * depth + "</filter></get></rpc>"))
    reply = raw.read_until(b"\n##\n").decode()
    assert "malformed-message" in reply
    raw.close()
    assert still_serving(device)


def test_100_mb_message_is_refused_with_memory_bounded(device):
    before = rss_kib(device.process.pid)
    raw = session_11(device)
    raw.channel.sendall(b"\n#104857600\n")
    block = b"<a>" * 21845
    sent = 0
    try:
        while sent < 100 * 1024 * 1024:
            raw.channel.sendall(block)
            sent += len(block)
    except (OSError, socket.timeout, EOFError):
        pass  # the server hung up on us
    assert closed(raw)
    raw.close()
    assert rss_kib(device.process.pid) - before < 50 * 1024
    assert still_serving(device)


def test_bad_framing_closes_only_that_session(device):
    raw = session_11(device)
    raw.channel.sendall(b"\n#abc\n<rpc/>")
    assert closed(raw)
    raw.close()
    assert still_serving(device)


def test_garbage_before_the_hello_closes_the_session(device):
    raw = RawSession(device)
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(b"\x00\xff garbage \x01" * 100 + b"]]>]]>")
    assert closed(raw)
    raw.close()
    assert still_serving(device)


def test_wrong_passwords_are_refused_and_slowed(device):
    """After three free guesses from one source, each further one waits its slot (1 s, then
    doubling): the sixth certainly waits, even if the server recorded a failure only after
    the next connection began."""
    timings = []
    for attempt in range(6):
        transport = paramiko.Transport(socket.create_connection(("127.0.0.1", device.port)))
        started = time.monotonic()
        with pytest.raises(paramiko.AuthenticationException):
            transport.connect(username=USER, password=f"guess-{attempt}")
        timings.append(time.monotonic() - started)
        transport.close()
    assert timings[-1] >= 1.0 > timings[0], timings  # the rate limit's delay, not load
    assert still_serving(device)
