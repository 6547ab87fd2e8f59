"""`nefeature run` as a service, without root: readiness, logging, SIGHUP reload, SIGTERM.

The device runs as the conformance tests run it (DHCP on a high port, VRRP on the emulated
LAN); what systemd would do is done by hand: a notify socket of our own in $NOTIFY_SOCKET,
$JOURNAL_STREAM naming the device's stderr, signals by PID.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conformance.conftest import DeviceProcess, dns_of, free_port

NEW_DNS = "10.10.10.54"


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(30)
    yield sock
    sock.close()


def receive(sock: socket.socket, expected: str) -> list[str]:
    """Notifications until ``expected`` arrives (the socket's timeout bounds the wait)."""
    seen = []
    while expected not in seen:
        seen.append(sock.recv(4096).decode())
    return seen


def wait_log(device: DeviceProcess, text: str, count: int = 1, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while device.log_text().count(text) < count:
        assert device.process.poll() is None, device.log_text()
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{device.log_text()}"
        time.sleep(0.05)
    return device.log_text()


def test_ready_reload_and_stop_reach_the_service_manager(tmp_path, notify_socket):
    device = DeviceProcess(tmp_path, {"NOTIFY_SOCKET": str(tmp_path / "notify")})
    device.start()
    try:
        assert receive(notify_socket, "READY=1") == ["READY=1"]
        device.process.send_signal(signal.SIGHUP)
        assert receive(notify_socket, "READY=1") == ["RELOADING=1", "READY=1"]
        device.process.send_signal(signal.SIGTERM)
        assert receive(notify_socket, "STOPPING=1") == ["STOPPING=1"]
        assert device.process.wait(15) == 0
    finally:
        device.stop()


def test_sighup_commits_the_edited_startup_file(tmp_path):
    device = DeviceProcess(tmp_path)
    device.start()
    session = device.connect()
    try:
        session.create_subscription()
        assert dns_of(session) == ["10.10.10.53"]
        device.startup.write_text(device.startup.read_text().replace(
            "<dns-list>10.10.10.53</dns-list>", f"<dns-list>{NEW_DNS}</dns-list>"))
        device.process.send_signal(signal.SIGHUP)
        log = wait_log(device, "reload: ")
        assert f"reload: {device.startup} committed" in log
        assert dns_of(session) == [NEW_DNS]
        assert dns_of(session, source="candidate") == [NEW_DNS]  # nobody was editing it
        assert dns_of(session, source="startup") == [NEW_DNS]
        # the commit path: the same notification a NETCONF commit sends
        notification = session.take_notification(timeout=10)
        assert notification is not None and "netconf-config-change" in notification.notification_xml

        # a broken file leaves running as it was, and says why
        valid = device.startup.read_text()
        device.startup.write_text(valid.replace("<day>1</day>", "<day>1000</day>").replace(
            f"<dns-list>{NEW_DNS}</dns-list>", "<dns-list>10.10.10.55</dns-list>"))
        device.process.send_signal(signal.SIGHUP)
        log = wait_log(device, "reload: ", count=2)
        assert re.search(r"ERROR reload: .*lease-time/day: .*the running configuration is "
                         r"unchanged", log), log
        assert dns_of(session) == [NEW_DNS]

        # a session holding the lock on running keeps it: the reload is refused
        device.startup.write_text(valid.replace(f"<dns-list>{NEW_DNS}</dns-list>",
                                                "<dns-list>10.10.10.55</dns-list>"))
        session.lock(target="running")
        device.process.send_signal(signal.SIGHUP)
        log = wait_log(device, "reload: ", count=3)
        assert "locked by session" in log.splitlines()[-1], log
        assert dns_of(session) == [NEW_DNS]
        session.unlock(target="running")
        assert device.process.poll() is None
        assert "Traceback" not in device.log_text()
    finally:
        if session.connected:
            session.close_session()
        device.stop()


def test_logs_take_the_journal_form_under_systemd(tmp_path, notify_socket):
    """stderr is the journal stream ($JOURNAL_STREAM = its device:inode): `<priority>name: text`,
    no timestamp; --log-level warning keeps info records out."""
    device = DeviceProcess(tmp_path)
    with open(device.log, "w") as log:
        status = os.fstat(log.fileno())
        environment = {**device.environment, "NOTIFY_SOCKET": str(tmp_path / "notify"),
                       "JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        device.process = subprocess.Popen(
            [sys.executable, "-m", "nefeature", "run", "--startup", str(device.startup),
             "--state-dir", str(device.state_dir), "--log-level", "warning",
             "--dhcp-port", str(free_port(socket.SOCK_DGRAM)),
             "--emulate-lan", f"239.255.71.{os.getpid() % 200 + 10}:"
                              f"{free_port(socket.SOCK_DGRAM)}"],
            stdin=subprocess.DEVNULL, stderr=log, env=environment)
    try:
        receive(notify_socket, "READY=1")
        device.process.send_signal(signal.SIGHUP)  # an info record: filtered out at warning
        receive(notify_socket, "READY=1")
        device.startup.write_text("<broken")
        device.process.send_signal(signal.SIGHUP)  # an error record
        wait_log(device, "reload: ")
    finally:
        device.stop()
    lines = device.log_text().splitlines()
    assert all(re.match(r"<[0-7]>[\w.]+: ", line) for line in lines), lines
    assert any(line.startswith("<3>nefeature: reload: ") for line in lines), lines
    assert not any(line.startswith("<6>") for line in lines), lines  # info filtered


def test_sigterm_stops_cleanly(tmp_path):
    device = DeviceProcess(tmp_path)
    device.start()
    device.process.send_signal(signal.SIGTERM)
    assert device.process.wait(15) == 0
    assert device.log_text().rstrip().endswith("stopped"), device.log_text()
    wal = device.state_dir / "leases.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_startup_saved_by_a_newer_release_is_refused(tmp_path):
    device = DeviceProcess(tmp_path)
    device.start()
    session = device.connect()
    try:
        session.copy_config(source="running", target="startup")
    finally:
        session.close_session()
        device.stop()
    saved = device.state_dir / "startup.xml"
    text = saved.read_text()
    assert re.search(r"<\?nefeature-yang nefeature-interfaces@\d{4}-\d\d-\d\d ", text), text
    saved.write_text(re.sub(r"nefeature-vrrp@[\d-]+", "nefeature-vrrp@2999-01-01", text))
    result = subprocess.run([sys.executable, "-m", "nefeature", "run", "--startup",
                             str(device.startup), "--state-dir", str(device.state_dir)],
                            capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 78, result.stderr
    assert f"{saved} was saved with nefeature-vrrp revision 2999-01-01, newer than this " \
           "release's" in result.stderr


def test_version():
    from nefeature.backup.frames import PROTOCOL_VERSION
    from nefeature.datastore.schema import modules
    from nefeature.dhcp.journal import SCHEMA_VERSION

    for argv in (["--version"], ["run", "--version"]):
        result = subprocess.run([sys.executable, "-m", "nefeature", *argv], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert re.fullmatch(r"nefeature \d+\.\d+\.\d+\S*", lines[0]), lines
        for module in modules():
            if module.implemented:
                assert f"{module.name}@{module.revision}" in lines[1]
        assert lines[2:] == [f"lease journal schema: {SCHEMA_VERSION}",
                             f"remote backup protocol: {PROTOCOL_VERSION}"]
