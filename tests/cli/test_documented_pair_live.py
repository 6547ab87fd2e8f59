"""Huawei's documented pair typed into two shells against two real devices, both dialects.

Topology (network namespaces, every name with a random suffix, deleted at the end)::

    ncl-a-XXXX: DeviceA  Vlanif100 10.10.10.1/24, uplink0 <-> uplink0p
    ncl-b-XXXX: DeviceB  Vlanif100 10.10.10.2/24          } on the bridge of ncl-sw-XXXX
    ncl-c1-XXXX, ncl-c2-XXXX: udhcpc clients              }

Each device is ``nefeature run`` with an empty configuration and NETCONF on
its namespace's loopback; each is configured by an engineer at a
``nefeature-cli`` terminal (a pseudo-terminal), both terminals open at
once, typing the guide's lines block by block with ``commit``
(tests/cli/documented_pair.py).  Then: every line was accepted and every
commit succeeded, ``display current-configuration`` is the guide's
configuration, a real DHCP client gets an address (with the dialect's
lease: 3 days NE, the typed 1 day CE/AR), and cutting DeviceA's tracked
uplink moves the virtual IP to DeviceB, which serves the next client.

Needs root, iproute2 and udhcpc; skips naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.documented_pair import configuration, normalized, session
from tests.cli.terminal import Terminal
from tests.system.netns import (
    VIP,
    Lan,
    Nefeature,
    logs_of,
    require_root,
    require_tool,
    torn_down,
    wait_for_event,
    write_hook,
)

pytestmark = pytest.mark.system

USER, PASSWORD = "admin", "pair-secret"
NETCONF_ARGS = ("--netconf", "127.0.0.1:830", "--netconf-user", USER, "--netconf-password",
                PASSWORD)  # each namespace has a loopback of its own
EMPTY = '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>'
ADDRESS = {"A": "10.10.10.1", "B": "10.10.10.2"}
CHANNEL_UP = "remote backup service1: protected: peer connected"
TIMEOUT = 40.0  # seconds for an election or a channel, generously
LEASE = {"NE": "259200", "CE": "86400"}  # NE's default 3 days; CE/AR typed 'lease day 1'
PYTHON_TEXT = ("Traceback", "Exception", "Error(", "ncclient")
NEXT_PROMPT = b"\x1b[?2004h"  # prompt_toolkit starts every prompt with it
COMMAND_OUTPUT = b"\x1b[?2004l"  # and ends it with this, before the command prints


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    require_root()
    return {"ip": require_tool("ip", "iproute2"), "udhcpc": require_tool("udhcpc", "udhcpc")}


@pytest.fixture
def lan(tools, tmp_path) -> Iterator[Lan]:
    with torn_down(Lan(tools["ip"], tmp_path, "ncl", 0.05)) as built:
        built.build()
        built.add_router("A", ADDRESS["A"], uplink=True)
        built.add_router("B", ADDRESS["B"], uplink=False)
        yield built


def blocks(lines: list[str]) -> list[list[str]]:
    """The session cut after each commit: what is typed before each look at the device."""
    cut, current = [], []
    for line in lines:
        current.append(line)
        if line == "commit":
            cut.append(current)
            current = []
    return cut + ([current] if current else [])


def typed(shell: Terminal, lines: list[str]) -> None:
    """Type lines; after each, the next prompt, and never an error."""
    for line in lines:
        before = shell.mark
        shell.line(line)
        shell.expect(NEXT_PROMPT)
        printed = shell.output[before:shell.mark].decode(errors="replace")
        assert "Error:" not in printed and "Warning:" not in printed, \
            f"{line!r} was not accepted:\n{printed}"


def displayed_configuration(shell: Terminal) -> list[str]:
    typed(shell, ["screen-length 0 temporary"])
    shell.line("display current-configuration")
    shell.expect(COMMAND_OUTPUT)
    start = shell.mark
    shell.expect("\nreturn")
    return shell.output[start:shell.mark].decode(errors="replace").replace("\r", "").splitlines()


def dhcp_client(lan: Lan, label: str, tools: dict[str, str]) -> dict[str, str]:
    """A real udhcpc on the LAN, once: the lease it was given (the hook's record)."""
    lan.attach(label, "lan0")
    folder = lan.dir / label
    folder.mkdir()
    log = folder / "hook.log"
    hook = write_hook(folder / "hook.sh", log, tools["ip"])
    process = lan.start(lan.ns[label], [tools["udhcpc"], "-f", "-n", "-q", "-i", "lan0", "-s",
                                        hook, "-t", "8", "-T", "2", "-A", "1"],
                        folder / "udhcpc.log", f"udhcpc {label}")
    event = wait_for_event(log, {"bound"}, 0, TIMEOUT, f"udhcpc {label} bound", process)
    assert process.wait(20) == 0, process.output()
    return event


@pytest.mark.parametrize("dialect", ["NE", "CE"])
def test_the_documented_pair_typed_in_two_shells_serves_and_switches_over(
        lan, tools, tmp_path, dialect):
    devices = {label: Nefeature(lan, lan.ns[label], _empty(tmp_path / f"{label}.xml"),
                                tmp_path / f"state-{label}", tmp_path, f"Device{label}",
                                NETCONF_ARGS) for label in ("A", "B")}
    for device in devices.values():
        device.start()
        device.wait_ready()
    shells = {label: Terminal(["--port", "830", "--user", USER, "--password", PASSWORD],
                              tmp_path, prefix=(tools["ip"], "netns", "exec", lan.ns[label]))
              for label in ("A", "B")}
    context = logs_of(*devices.values())
    try:
        for shell in shells.values():
            shell.expect("<HUAWEI>")
        # DeviceA first, so that it is master before DeviceB's group exists (its
        # preemption waits 600 s, as the guide sets)
        for block in blocks(session("A", dialect)):
            typed(shells["A"], block)
        lan.wait_holders({"A"}, TIMEOUT, "DeviceA, alone, becomes master", context)
        for block in blocks(session("B", dialect)):
            typed(shells["B"], block)
        devices["A"].wait_log(CHANNEL_UP, TIMEOUT)
        devices["B"].wait_log(CHANNEL_UP, TIMEOUT)
        lan.assert_steady({"A"}, 2.0, "DeviceA stays master when DeviceB joins")

        for label, shell in shells.items():
            assert displayed_configuration(shell) == \
                normalized(configuration(label, dialect))

        first = dhcp_client(lan, "C1", tools)
        assert first["server"] == VIP and first["lease"] == LEASE[dialect], first
        assert first["ip"].startswith("10.10.10.") and first["ip"] not in (
            ADDRESS["A"], ADDRESS["B"], VIP), first

        lan.link("A", "uplink0p", "down")  # DeviceA's uplink fails: 200 - 110 < 100
        lan.wait_holders({"B"}, TIMEOUT, "the VIP moves to DeviceB", context)
        second = dhcp_client(lan, "C2", tools)
        assert second["server"] == VIP and second["ip"] != first["ip"], second

        for shell in shells.values():
            shell.line("quit")
            assert shell.wait() == 0
            text = shell.text()
            assert not [word for word in PYTHON_TEXT if word in text], text
        for device in devices.values():  # (paramiko logs every client's reset at ERROR)
            own = [line for line in device.problems(("ERROR", "CRITICAL"))
                   if " paramiko." not in line]
            assert own == [], device.logs()
    finally:
        for shell in shells.values():
            shell.close()


def _empty(path: Path) -> Path:
    path.write_text(EMPTY)
    return path
