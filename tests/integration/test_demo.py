"""`make demo` end to end (no root): two device processes, clients, a switchover, the summary."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_demo_runs_to_a_clean_summary(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nefeature", "demo", "--clients", "12",
                             "--dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=180, cwd=ROOT)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "clients bound                 12 of 12" in out
    assert "renewals after switchover     12 of 12 with the same address" in out
    assert "leases lost at switchover     0" in out
    assert "duplicate addresses           0" in out
    assert "DeviceA master again          yes" in out
    for name in ("deviceA", "deviceB"):
        log = (tmp_path / name / "device.log").read_text()
        assert "Traceback" not in log, log
