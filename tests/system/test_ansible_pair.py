"""examples/ansible against the hot-backup pair: the playbook passes twice, the second time
with changed=0 (ansible from PyPI, its ansible.netcommon NETCONF modules, ncclient).

The pair is the demo's: DeviceA and DeviceB on loopback with an emulated LAN for VRRP
and the backup channel between them; DeviceA's journal starts with a few leases that
the batch backup copies to DeviceB.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nefeature.demo import DemoDevice, demo_config, free_port
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.leases import Lease, LeaseState
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.system

LEASES = 5


def _playbook(tmp_path: Path, devices) -> subprocess.CompletedProcess:
    a, b = devices
    environment = {**os.environ, "NEFEATURE_A_PORT": str(a.netconf_port),
                   "NEFEATURE_A_PASSWORD": a.password, "NEFEATURE_B_PORT": str(b.netconf_port),
                   "NEFEATURE_B_PASSWORD": b.password, "ANSIBLE_HOME": str(tmp_path / "ansible"),
                   "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
                   "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    playbook = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run([str(playbook), "-i", str(EXAMPLES / "ansible" / "inventory.yml"),
                           str(EXAMPLES / "ansible" / "pair.yml")], env=environment,
                          capture_output=True, text=True, timeout=300)


def _recap(output: str) -> dict[str, dict[str, int]]:
    return {host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
            for host, counts in re.findall(r"^(device[AB])\s+:\s+(.*)$", output, re.M)}


def test_playbook_twice_second_run_changes_nothing(tmp_path):
    lan = f"239.255.{os.getpid() % 250}.19:{free_port()}"
    sync_port = free_port(low=20000, high=55535)
    relay_port = free_port()
    devices = [DemoDevice(name, tmp_path / f"device{name}", demo_config(name, sync_port), lan,
                          relay_port) for name in "AB"]
    state = devices[0].directory / "state"
    state.mkdir(parents=True)
    journal = LeaseJournal(state / "leases.sqlite")
    now = time.time()
    journal.commit({0x0A0A0A14 + n: Lease(0x0A0A0A14 + n, "pool1", b"h" + bytes([2, 0, 0, 0, 9, n]),
                                          bytes([2, 0, 0, 0, 9, n]), LeaseState.BOUND, now,
                                          now + 86400) for n in range(LEASES)})
    journal.close()
    try:
        for device in devices:
            device.start()
        for device in devices:
            device.wait_ready()
        deadline = time.monotonic() + 30
        while devices[1].status()["peer-sync"] < LEASES:  # the batch backup at channel up
            assert time.monotonic() < deadline, devices[1].status()
            time.sleep(0.2)

        first = _playbook(tmp_path, devices)
        assert first.returncode == 0, first.stdout + first.stderr
        assert {host: counts["changed"] for host, counts in _recap(first.stdout).items()} == \
            {"deviceA": 1, "deviceB": 1}
        assert first.stdout.count(f"{LEASES} lease(s) in pool1") == 2
        rpc = first.stdout.split("TASK [The master sends its whole lease table")[1]
        rpc = rpc.split("TASK [")[0].split("PLAY RECAP")[0]
        assert "ok: [deviceA]" in rpc and "skipping: [deviceB]" in rpc, rpc

        second = _playbook(tmp_path, devices)
        assert second.returncode == 0, second.stdout + second.stderr
        recap = _recap(second.stdout)
        assert {host: counts["changed"] for host, counts in recap.items()} == \
            {"deviceA": 0, "deviceB": 0}, second.stdout
        assert all(counts["failed"] == 0 for counts in recap.values())

        for device in devices:
            running = device.manager.get_config(source="running", filter=("subtree", (
                '<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><server><ip-pools>'
                "<ip-pool><ip-pool-name>pool1</ip-pool-name></ip-pool></ip-pools></server>"
                "</dhcp>"))).data_xml
            assert "<domain-name>corp.example</domain-name>" in running
            assert running.count("<dns-list>10.10.10.54</dns-list>") == 1
        master = devices[0].manager.get(filter=("subtree", (
            '<rbs xmlns="urn:nefeature:yang:nefeature-rbs"><profiles/></rbs>'))).data_xml
        assert "<local-state>master</local-state>" in master
        assert "<last-batch-backup-time>" in master
    finally:
        for device in devices:
            device.stop()
