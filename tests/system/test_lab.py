"""`nefeature lab`: the Figure 4-10 topology comes up, switches over, and goes away clean."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.system.netns import ROOT, require_root, require_tool, run, wait_for

pytestmark = pytest.mark.system


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nefeature", "lab", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def clean_lab():
    require_root("network namespaces")
    require_tool("busybox", "busybox")  # udhcpc
    if os.path.exists("/run/nefeature-lab"):
        pytest.skip("a lab is already up on this machine (nefeature lab down)")
    yield
    lab("down")


def test_lab_up_status_cut_down(clean_lab):
    result = lab("up", "--clients", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DeviceA: running, VRRP master" in result.stdout
    assert result.stdout.count(": 10.10.10.") == 2  # both clients got an address
    assert lab("cut").returncode == 0
    last = [""]

    def b_master() -> str | None:
        last[0] = lab("status").stdout
        return last[0] if "DeviceB: running, VRRP master" in last[0] else None

    status = wait_for(b_master, 10, lambda: f"DeviceB to be master; status:\n{last[0]}", 0.2)
    assert "2 bound leases" in status.split("DeviceB")[1]
    assert lab("down").returncode == 0
    namespaces = run(["ip", "netns", "list"], check=False).stdout
    assert "nfl-" not in namespaces
    assert not os.path.exists("/run/nefeature-lab")
