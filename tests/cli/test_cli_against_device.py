"""nefeature-cli against a running device: scripts, terminals, sessions side by side.

The device is ``nefeature run`` on loopback (tests/conformance/conftest.py);
shells are real ``nefeature-cli`` processes, in batch mode or in a
pseudo-terminal (tests/cli/terminal.py), and the third party in the session
tests is a real ncclient session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ncclient.operations import RPCError

from nefeature.datastore.validation import validate_config_text
from tests.cli.documented_pair import configuration, normalized, session
from tests.cli.terminal import Terminal
from tests.conformance.conftest import PASSWORD, USER, DeviceProcess, free_port
from tests.conftest import EXAMPLES

EMPTY = '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'
POOL = ["ip pool half-typed", "network 10.7.0.0 mask 16"]
PYTHON_TEXT = ("Traceback", "Exception", "Error(", "ncclient", "paramiko", "Not connected")


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


def terminal(device, tmp_path, prompt: str = "<HUAWEI>") -> Terminal:
    shell = Terminal(["--port", str(device.port), "--user", USER, "--password", PASSWORD],
                     tmp_path)
    shell.expect(prompt)
    return shell


def canonical(tree: dict) -> bytes:
    """The tree as the server serializes it (system-ordered lists sorted by key)."""
    from lxml import etree

    from nefeature.datastore.xmlform import to_xml

    return etree.tostring(to_xml(tree, etree.Element("data")))


def config_of(device, source: str = "running") -> dict:
    from nefeature.datastore.schema import data_model

    session = device.connect()
    try:
        return data_model().from_xml(session.get_config(source=source).data_ele).raw_value()
    finally:
        session.close_session()


def pools(device, source: str = "running") -> list[str]:
    return [p["ip-pool-name"] for p in config_of(device, source)
            .get("nefeature-dhcp-server:dhcp", {}).get("server", {}).get("ip-pools", {})
            .get("ip-pool", [])]


def assert_no_python_text(text: str) -> None:
    assert not [word for word in PYTHON_TEXT if word in text], text


def start_on(device: DeviceProcess, port: int) -> None:
    """(Re)start a device on a given NETCONF port, from its state directory."""
    command = [sys.executable, "-m", "nefeature", "run", "--startup", str(device.startup),
               "--state-dir", str(device.state_dir), "--netconf", f"127.0.0.1:{port}",
               "--netconf-user", USER, "--netconf-password", PASSWORD,
               "--dhcp-port", str(free_port(socket.SOCK_DGRAM)),
               "--emulate-lan", f"239.255.71.{os.getpid() % 200 + 10}:"
                                f"{free_port(socket.SOCK_DGRAM)}"]
    device.port = port
    device.process = subprocess.Popen(command, stderr=open(device.log, "w"),
                                      env=device.environment)
    deadline = time.monotonic() + 30
    while "NETCONF over SSH" not in device.log.read_text():
        assert device.process.poll() is None and time.monotonic() < deadline, \
            device.log.read_text()
        time.sleep(0.05)


# --- batch ---


@pytest.mark.parametrize("name", ["deviceA", "deviceB"])
def test_the_example_scripts_give_the_example_configuration(empty_device, name):
    result = cli(empty_device, str(EXAMPLES / "pair" / f"{name}.cli"))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = validate_config_text((EXAMPLES / "pair" / f"{name}.xml").read_bytes()).explicit
    assert canonical(config_of(empty_device)) == canonical(expected)


@pytest.mark.parametrize("dialect", ["NE", "CE"])
def test_the_documented_pair_as_a_script(empty_device, dialect):
    result = cli(empty_device, stdin="\n".join(session("A", dialect)
                                               + ["display current-configuration"]))
    assert result.returncode == 0, result.stdout + result.stderr
    shown = result.stdout.split("<DeviceA>display current-configuration\n")[1]
    assert shown.splitlines()[:len(normalized(configuration("A", dialect)))] == \
        normalized(configuration("A", dialect))


def test_error_stops_the_batch_and_names_the_line(empty_device):
    result = cli(empty_device, "-c", "system-view", "-c", "ip pooll p1", "-c", "commit")
    assert result.returncode == 1
    assert "Error: Unrecognized command found at '^' position." in result.stdout
    assert result.stderr.strip() == "nefeature-cli: line 2: ip pooll p1"
    assert "commit" not in result.stdout.split("ip pooll p1")[1]


def test_script_on_standard_input(empty_device):
    result = cli(empty_device, stdin="system-view\ndhcp enable\ncommit\n"
                                     "display current-configuration\n")
    assert result.returncode == 0, result.stdout
    assert "\ndhcp enable\n" in result.stdout
    assert "committed but not saved" in result.stdout


def test_a_script_that_ends_with_uncommitted_edits_fails_and_leaves_nothing(empty_device):
    result = cli(empty_device, "-c", "system-view", "-c", POOL[0], "-c", POOL[1])
    assert result.returncode == 1
    assert "The uncommitted configurations of this session were discarded." in result.stdout
    assert pools(empty_device, "candidate") == []


def test_commit_error_in_words_an_engineer_understands(empty_device):
    result = cli(empty_device, "-c", "system-view", "-c", "remote-backup-profile p1",
                 "-c", "backup-id 5 remote-backup-service nothere", "-c", "commit")
    assert result.returncode == 1
    assert 'Error: "nothere" is not configured: service-name must name an existing one ' \
           "(remote-backup-profile p1: service-name)" in result.stdout


def test_connection_errors_in_ssh_words(empty_device, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "nefeature_cli", "--port",
                              str(free_port()), "--password", "x", "-c", "display this"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("Error: Failed to connect to 127.0.0.1 port ")
    assert refused.stderr.strip().endswith(": connection refused.")
    wrong = cli(empty_device, "--password", "not-it", "-c", "display this")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (f"Error: Authentication failed for user {USER} "
                                    f"(127.0.0.1 port {empty_device.port}).")
    for result in (refused, wrong):
        assert_no_python_text(result.stdout + result.stderr)


# --- sessions side by side ---


def test_two_shells_and_a_netconf_client_keep_to_their_own_edits(empty_device, tmp_path):
    alice = terminal(empty_device, tmp_path)
    bob = terminal(empty_device, tmp_path)
    client = empty_device.connect()
    try:
        alice.line("system-view", "[~HUAWEI]")
        for line in POOL:
            alice.line(line)
        alice.expect("[*HUAWEI-ip-pool-half-typed]")
        bob.line("system-view", "[~HUAWEI]")
        bob.line("sysname Other", "Error: The configuration is being edited by session ")
        bob.expect("(user admin); try again later.")
        bob.line("commit", "[~HUAWEI]")
        assert pools(empty_device) == []  # bob's commit took none of alice's lines
        with pytest.raises(RPCError) as caught:
            client.commit()  # nor can a NETCONF client push them
        assert caught.value.tag == "in-use"
        alice.line("commit", "[~HUAWEI-ip-pool-half-typed]")
        assert pools(empty_device) == ["half-typed"]
        bob.line("sysname Other", "[*HUAWEI]")  # free again
        bob.line("commit", "[~Other]")
        # a shell that dies mid-edit leaves nothing behind, and no lock
        alice.line("ip pool lost-edit", "[*HUAWEI-ip-pool-lost-edit]")
        os.kill(alice.process.pid, signal.SIGKILL)
        alice.process.wait(10)
        deadline = time.monotonic() + 20
        while "lost-edit" in pools(empty_device, "candidate"):
            assert time.monotonic() < deadline, "the dead session's edits stayed"
            time.sleep(0.1)
        client.lock("candidate")  # nobody holds it any more
        client.unlock("candidate")
        assert pools(empty_device) == ["half-typed"]
        assert_no_python_text(alice.text() + bob.text())
    finally:
        client.close_session()
        alice.close()
        bob.close()


def test_leaving_with_edits_asks_and_no_answers_discards(empty_device, tmp_path):
    shell = terminal(empty_device, tmp_path)
    try:
        shell.line("system-view", "[~HUAWEI]")
        shell.line(POOL[0], "[*HUAWEI-ip-pool-half-typed]")
        shell.line("return", "[Y(yes)/N(no)/C(cancel)]:")
        shell.line("C", "[*HUAWEI-ip-pool-half-typed]")
        shell.line("return", "[Y(yes)/N(no)/C(cancel)]:")
        shell.line("N", "<HUAWEI>")
        assert pools(empty_device, "candidate") == []
        shell.line("quit")
        assert shell.wait() == 0
    finally:
        shell.close()


def test_save_survives_a_restart(empty_device, tmp_path):
    shell = terminal(empty_device, tmp_path)
    try:
        shell.line("system-view", "[~HUAWEI]")
        for line in session("B", "NE")[1:-1]:
            shell.line(line)
        shell.line("return", "<DeviceB>")
        shell.line("save", "Are you sure to save the configuration? [Y/N]:")
        shell.line("Y", "Info: Save the configuration successfully.")
        shell.expect("<DeviceB>")
        shell.line("compare configuration", "is the same as the saved configuration.")
        shell.line("quit")
        assert shell.wait() == 0
        assert "not saved" not in shell.text()
        assert_no_python_text(shell.text())
    finally:
        shell.close()
    before = cli(empty_device, "-c", "display current-configuration").stdout
    port = empty_device.port
    empty_device.stop()
    start_on(empty_device, port)
    after = cli(empty_device, "-c", "display current-configuration").stdout
    assert after == before
    assert after.splitlines()[1:] == normalized(configuration("B", "NE"))


def killed_mid_edit(device, tmp_path) -> Terminal:
    """A shell with an edit pending when its device is killed (SIGKILL: no goodbye)."""
    shell = terminal(device, tmp_path)
    shell.line("system-view", "[~HUAWEI]")
    shell.line(POOL[0], "[*HUAWEI-ip-pool-half-typed]")
    device.process.send_signal(signal.SIGKILL)
    device.process.wait(10)
    return shell


def test_a_device_killed_mid_session_gets_a_message_not_a_traceback(empty_device, tmp_path):
    shell = killed_mid_edit(empty_device, tmp_path)
    try:
        shell.line("display this", "Error: The connection to the device 127.0.0.1 port "
                                   f"{empty_device.port} was lost.")
        shell.expect("cannot be reached; the session ends.", timeout=60)
        assert shell.wait() == 3
        assert_no_python_text(shell.text())
    finally:
        shell.close()


def test_the_shell_reconnects_to_a_device_that_comes_back(empty_device, tmp_path):
    shell = killed_mid_edit(empty_device, tmp_path)
    try:
        start_on(empty_device, empty_device.port)
        shell.line("display this", "was lost.")
        shell.expect(f"Info: Reconnected to 127.0.0.1 port {empty_device.port}", timeout=60)
        shell.expect("<HUAWEI>")
        shell.line("display current-configuration", "return")
        shell.line("quit")
        assert shell.wait() == 0
        assert_no_python_text(shell.text())
    finally:
        shell.close()


# --- the terminal ---


def test_interactive_session_in_a_terminal(empty_device, tmp_path):
    """Prompts, ?, Tab, carets, Ctrl+C, ambiguity and history, through a pseudo-terminal."""
    shell = terminal(empty_device, tmp_path)
    try:
        shell.line("sys", "[~HUAWEI]")
        shell.send("remote-backup-p\t")  # Tab completes the keyword
        # the completed tail: a redraw that keeps what is on the screen writes only that
        # (seen under load), and the view below shows the whole keyword was taken
        shell.expect("rofile")
        shell.line(" rbp9", "[*HUAWEI-rm-backup-prf-rbp9]")
        shell.send("backup-id ?")
        shell.expect("INTEGER<1-4095>  Identifies this profile on the channel")
        shell.expect("[*HUAWEI-rm-backup-prf-rbp9]backup-id")  # the line comes back
        shell.send("\x03")  # Ctrl+C: a fresh, empty line; the shell stays
        shell.expect("[*HUAWEI-rm-backup-prf-rbp9]")
        shell.line("vrrp-idd 1", "Error: Unrecognized command found at '^' position.")
        shell.line("re", "Error: Ambiguous command found at '^' position.")
        shell.send("vrrp-idd ?")
        shell.expect("Error: Unrecognized command found at '^' position.")
        shell.expect("[*HUAWEI-rm-backup-prf-rbp9]vrrp-idd")  # the line comes back
        shell.send("\x03")
        shell.line("clear configuration candidate", "[~HUAWEI-rm-backup-prf-rbp9]")
        shell.line("return", "<HUAWEI>")
        shell.line("quit")
        assert shell.wait() == 0
        history = tmp_path / ".nefeature_cli_history"
        assert "remote-backup-profile rbp9" in history.read_text()
        assert_no_python_text(shell.text())
    finally:
        shell.close()


def test_long_output_is_paged(empty_device, tmp_path):
    cli(empty_device, stdin="\n".join(session("A", "NE")))
    shell = terminal(empty_device, tmp_path, "<DeviceA>")
    try:
        shell.line("screen-length 20 temporary", "<DeviceA>")
        shell.line("display current-configuration", "---- More ----")
        assert "interface GigabitEthernet0/1/2" not in shell.text()
        shell.send(" ")  # the next screen: the rest
        shell.expect("interface GigabitEthernet0/1/2")
        shell.expect("<DeviceA>")
        shell.line("display current-configuration", "---- More ----")
        shell.send("q")  # stop here
        shell.expect("<DeviceA>")
        shell.line("screen-length 0 temporary", "<DeviceA>")
        shell.line("display current-configuration", "linux-name uplink0")
        shell.expect("<DeviceA>")
        assert shell.text().count("---- More ----") == 2
        shell.line("quit")
        assert shell.wait() == 0
    finally:
        shell.close()


def test_a_password_is_asked_for_when_none_is_given(empty_device, tmp_path):
    shell = Terminal(["--port", str(empty_device.port), "--user", USER], tmp_path)
    try:
        shell.expect(f"{USER}@127.0.0.1's password: ")
        shell.send(PASSWORD + "\r")
        shell.expect("<HUAWEI>")
        assert PASSWORD not in shell.text()  # not echoed
        shell.line("quit")
        assert shell.wait() == 0
    finally:
        shell.close()
