"""``nefeature lab``: Huawei's Figure 4-10 topology in network namespaces (root).

    up [--clients N]   a switch namespace with a bridge; DeviceA and DeviceB
                       (examples/pair) with Vlanif100 on the bridge and DeviceA's
                       uplink0 (a veth whose far end, uplink0p, stays beside it);
                       N client namespaces running udhcpc once through the LAN
    status             each device's VRRP role, leases and backup channel;
                       each client's address
    cut | restore      take DeviceA's tracked uplink down or up
    down               stop every process the lab started, delete its namespaces

Devices run detached (their PIDs and logs under /run/nefeature-lab) with
NETCONF on 127.0.0.1:830 inside their namespace:
``ip netns exec nfl-a nefeature-cli --password-file /run/nefeature-lab/a/state/netconf-password``.
Clients use a hook script that only sets their address (never the host's
resolv.conf).  Every name the lab makes starts with ``nfl-``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from nefeature.dhcp.journal import snapshot

EXAMPLES = Path(str(resources.files("nefeature") / "examples"))  # examples/, shipped in the package
LAB = Path("/run/nefeature-lab")
SWITCH, DEVICES = "nfl-sw", {"a": "nfl-a", "b": "nfl-b"}
HOOK = """#!/bin/sh
case "$1" in bound|renew) /usr/sbin/ip addr replace "$ip/${mask:-24}" dev "$interface";; esac
echo "$1 $ip" >> "$(dirname "$0")/$interface.log"
exit 0
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def netns(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", name, *args, check=check)


def _state() -> dict:
    path = LAB / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _save(state: dict) -> None:
    LAB.mkdir(parents=True, exist_ok=True)
    (LAB / "state.json").write_text(json.dumps(state, indent=1))


def up(clients: int) -> int:
    if _state():
        print("the lab is already up: `nefeature lab down` first")
        return 1
    state: dict = {"namespaces": [], "pids": {}, "clients": []}
    _save(state)

    def add_namespace(name: str) -> None:
        sh("ip", "netns", "add", name)
        state["namespaces"].append(name)
        _save(state)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    add_namespace(SWITCH)
    sh("ip", "-n", SWITCH, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", SWITCH, "link", "set", "br0", "up")

    def plug(namespace: str, port: str, inside: str) -> None:
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", port + "x")
        sh("ip", "link", "set", port, "netns", SWITCH)
        sh("ip", "-n", SWITCH, "link", "set", port, "master", "br0", "up")
        sh("ip", "link", "set", port + "x", "netns", namespace)
        sh("ip", "-n", namespace, "link", "set", port + "x", "name", inside)
        sh("ip", "-n", namespace, "link", "set", inside, "up")

    for key, namespace in DEVICES.items():
        add_namespace(namespace)
        plug(namespace, f"nfl-p{key}", "Vlanif100")
        address = "10.10.10.1/24" if key == "a" else "10.10.10.2/24"
        sh("ip", "-n", namespace, "addr", "add", address, "dev", "Vlanif100")
    a = DEVICES["a"]
    sh("ip", "-n", a, "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink0p")
    sh("ip", "-n", a, "link", "set", "uplink0", "up")
    sh("ip", "-n", a, "link", "set", "uplink0p", "up")
    for key, namespace in DEVICES.items():
        directory = LAB / key
        directory.mkdir(parents=True, exist_ok=True)
        log = open(directory / "device.log", "w")
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "nefeature", "run",
             "--startup", str(EXAMPLES / "pair" / f"device{key.upper()}.xml"),
             "--state-dir", str(directory / "state"), "--netconf", "127.0.0.1:830"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        state["pids"][key] = process.pid
        _save(state)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(
            "serving DHCP" in (LAB / k / "device.log").read_text() for k in DEVICES):
        time.sleep(0.2)
    time.sleep(4)  # VRRP elects within its master down interval
    hook = LAB / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    busybox = shutil.which("busybox")
    for n in range(1, clients + 1):
        namespace = f"nfl-c{n}"
        add_namespace(namespace)
        plug(namespace, f"nfl-pc{n}", "eth0")
        state["clients"].append(namespace)
        _save(state)
        if busybox:
            netns(namespace, busybox, "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", str(hook),
                  "-t", "4", "-T", "2", check=False)
    return status()


def status() -> int:
    state = _state()
    if not state:
        print("the lab is down")
        return 1
    for key, namespace in DEVICES.items():
        alive = _alive(state["pids"].get(key))
        # on Vlanif100, or on the virtual-MAC interface over it
        addresses = netns(namespace, "ip", "-4", "-o", "addr", "show", check=False).stdout
        role = "master (holds 10.10.10.100)" if " 10.10.10.100/" in addresses else "backup"
        leases = _leases(LAB / key / "state" / "leases.sqlite")
        print(f"Device{key.upper()}: {'running' if alive else 'STOPPED'}, VRRP {role}, "
              f"{leases} bound leases")
    for namespace in state["clients"]:
        line = netns(namespace, "ip", "-4", "-o", "addr", "show", "dev", "eth0",
                     check=False).stdout.split()
        print(f"  {namespace}: {line[3] if len(line) > 3 else 'no address'}")
    return 0


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _leases(path: Path) -> int:
    if not path.exists():
        return 0
    db = snapshot(path)
    try:
        return db.execute("SELECT count(*) FROM leases WHERE state = 'bound'").fetchone()[0]
    finally:
        db.close()


def link(up_: bool) -> int:
    sh("ip", "-n", DEVICES["a"], "link", "set", "uplink0p", "up" if up_ else "down")
    print(f"DeviceA's uplink is {'up' if up_ else 'down'}")
    return 0


def down() -> int:
    state = _state()
    for pid in state.get("pids", {}).values():
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in state.get("pids", {}).values()):
        time.sleep(0.1)
    for pid in state.get("pids", {}).values():
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    for namespace in reversed(state.get("namespaces", [])):
        sh("ip", "netns", "del", namespace, check=False)
    shutil.rmtree(LAB, ignore_errors=True)
    print("the lab is down")
    return 0


def main(action: str, clients: int = 4) -> int:
    if os.geteuid() != 0:
        print("nefeature lab needs root (network namespaces)", file=sys.stderr)
        return 2
    return {"up": lambda: up(clients), "status": status, "down": down,
            "cut": lambda: link(False), "restore": lambda: link(True)}[action]()
