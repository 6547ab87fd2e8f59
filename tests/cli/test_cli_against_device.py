"""nefeature-cli against a running device: batch scripts, exit status, and a terminal session."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nefeature.datastore.validation import validate_config_text
from tests.conformance.conftest import PASSWORD, USER, DeviceProcess
from tests.conftest import EXAMPLES

EMPTY = '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'


@pytest.fixture
def empty_device(tmp_path):
    device = DeviceProcess(tmp_path)
    device.startup.write_text(EMPTY)
    device.start()
    yield device
    device.stop()


def cli(device, *args: str, stdin: str | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "nefeature_cli", "--port", str(device.port),
                           "--user", USER, "--password", PASSWORD, *args],
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def canonical(tree: dict) -> bytes:
    """The tree as the server serializes it (system-ordered lists sorted by key)."""
    from lxml import etree

    from nefeature.datastore.xmlform import to_xml

    return etree.tostring(to_xml(tree, etree.Element("data")))


def running(device) -> dict:
    from ncclient import manager  # noqa: F401  (conftest set TICK)

    session = device.connect()
    try:
        from nefeature.datastore.schema import data_model

        return data_model().from_xml(session.get_config(source="running").data_ele).raw_value()
    finally:
        session.close_session()


@pytest.mark.parametrize("name", ["deviceA", "deviceB"])
def test_huaweis_sample_typed_in_gives_the_example_configuration(empty_device, name):
    result = cli(empty_device, str(EXAMPLES / "pair" / f"{name}.cli"))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = validate_config_text((EXAMPLES / "pair" / f"{name}.xml").read_bytes()).explicit
    assert canonical(running(empty_device)) == canonical(expected)


def test_error_stops_the_batch_and_names_the_line(empty_device):
    result = cli(empty_device, "-c", "system-view", "-c", "ip pooll p1", "-c", "commit")
    assert result.returncode == 1
    assert "Error: Unrecognized command found at '^' position." in result.stdout
    assert result.stderr.strip() == "nefeature-cli: line 2: ip pooll p1"
    assert "commit" not in result.stdout.split("ip pooll p1")[1]


def test_script_on_standard_input(empty_device):
    result = cli(empty_device, stdin="system-view\ndhcp enable\ncommit\ndisplay current-configuration\n")
    assert result.returncode == 0, result.stdout
    assert "\ndhcp enable\n" in result.stdout


def test_commit_error_in_words_an_engineer_understands(empty_device):
    result = cli(empty_device, "-c", "system-view", "-c", "remote-backup-profile p1",
                 "-c", "backup-id 5 remote-backup-service nothere", "-c", "commit")
    assert result.returncode == 1
    assert 'Error: "nothere" is not configured: service-name must name an existing one ' \
           "(remote-backup-profile p1: service-name)" in result.stdout


def test_interactive_session_in_a_terminal(empty_device, tmp_path):
    """Prompts, ?, Tab completion and the caret, through a pseudo-terminal."""
    controller, terminal = pty.openpty()
    env = dict(os.environ, TERM="xterm", HOME=str(tmp_path), COLUMNS="120", LINES="40")
    process = subprocess.Popen(
        [sys.executable, "-m", "nefeature_cli", "--port", str(empty_device.port), "--user", USER,
         "--password", PASSWORD], stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    output = b""

    def expect(text: bytes, timeout: float = 20) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while text not in output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"did not see {text!r} in {output[-2000:]!r}"
            ready, _, _ = select.select([controller], [], [], remaining)
            if ready:
                try:
                    output += os.read(controller, 65536)
                except OSError:
                    break

    def send(text: str) -> None:
        os.write(controller, text.encode())

    try:
        expect(b"<HUAWEI>")
        send("sys\r")
        expect(b"[~HUAWEI]")
        send("remote-backup-p\t")  # Tab completes the keyword
        expect(b"remote-backup-profile")
        send(" rbp9\r")
        expect(b"[*HUAWEI-rm-backup-prf-rbp9]")
        send("backup-id ?")
        expect(b"INTEGER<1-4095>")
        send("\x15")  # Ctrl+U: clear the line
        send("vrrp-idd 1\r")
        expect(b"Error: Unrecognized command found at '^' position.")
        send("return\r")
        expect(b"<HUAWEI>")
        send("quit\r")
        process.wait(timeout=20)
        assert process.returncode == 0
        history = Path(tmp_path) / ".nefeature_cli_history"
        assert "remote-backup-profile rbp9" in history.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
