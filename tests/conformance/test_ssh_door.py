"""The SSH door stays open: silent connections, probes, failed logins, startup errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
from ncclient import manager
from ncclient.transport.errors import AuthenticationError

from tests.conformance.conftest import DHCP_NS, USER


def _wait_for(device, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = device.log_text()
        if text in log:
            return log
        time.sleep(0.05)
    return device.log_text()


def test_silent_connections_do_not_hold_logins_up(device):
    """The package ran banner and key exchange in its accept thread: with 4 silent
    connections open, logins failed ('Error reading SSH protocol banner')."""
    silent = [socket.create_connection(("127.0.0.1", device.port)) for _ in range(4)]
    try:
        for _ in range(2):
            session = device.connect()
            reply = session.get_config(source="running", filter=(
                "subtree", f'<dhcp xmlns="{DHCP_NS}"><enable/></dhcp>'))
            assert "<enable>true</enable>" in reply.data_xml
            session.close_session()
    finally:
        for sock in silent:
            sock.close()
    log = _wait_for(device, "closed before login")
    assert "Traceback" not in log and " ERROR " not in log


def test_a_probe_is_one_line_without_a_traceback(device):
    probe = socket.create_connection(("127.0.0.1", device.port))
    probe.sendall(b"GET / HTTP/1.0\r\n\r\n")
    probe.close()
    log = _wait_for(device, "closed before login")
    assert "NETCONF connection from 127.0.0.1 closed before login" in log
    assert "Traceback" not in log


def test_failed_login_is_logged_with_user_and_source(device):
    with pytest.raises(AuthenticationError):
        manager.connect(host="127.0.0.1", port=device.port, username="intruder",
                        password="guess", hostkey_verify=False, look_for_keys=False,
                        allow_agent=False, timeout=30)
    log = _wait_for(device, "login failed")
    assert "NETCONF login failed: user 'intruder' from 127.0.0.1 (password)" in log
    session = device.connect()  # the right password still works
    assert session.connected
    session.close_session()


def _run(tmp_path, *options: str) -> subprocess.CompletedProcess:
    from tests.conformance.conftest import device_config

    startup = tmp_path / "startup.xml"
    startup.write_text(device_config())
    return subprocess.run([sys.executable, "-m", "nefeature", "run", "--startup", str(startup),
                           "--state-dir", str(tmp_path / "state"), *options],
                          capture_output=True, text=True, timeout=60)


def test_empty_password_file_is_a_startup_error(tmp_path):
    empty = tmp_path / "password"
    empty.write_text("\n")
    result = _run(tmp_path, "--netconf", "127.0.0.1:8300", "--netconf-user", USER,
                  "--netconf-password-file", str(empty))
    assert result.returncode == 2
    assert "is empty: nobody could log in" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("listener, message", [
    ("127.0.0.1:70000", "port 70000 is not in 1..65535"),
    ("127.0.0.1:http", "expected ADDRESS:PORT"),
    ("nohost:830", "expected ADDRESS:PORT"),
])
def test_bad_listener_is_a_startup_error(tmp_path, listener, message):
    result = _run(tmp_path, "--netconf", listener, "--netconf-user", USER,
                  "--netconf-password", "x")
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
