"""`nefeature lab`: the Figure 4-10 topology comes up, switches over, and goes away clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.system


def lab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nefeature", "lab", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def clean_lab():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if not shutil.which("busybox"):
        pytest.skip("busybox (udhcpc) is not installed")
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
    import time

    deadline = time.monotonic() + 10
    while "DeviceB: running, VRRP master" not in (status := lab("status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert "2 bound leases" in status.split("DeviceB")[1]
    assert lab("down").returncode == 0
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "nfl-" not in namespaces
    assert not os.path.exists("/run/nefeature-lab")
