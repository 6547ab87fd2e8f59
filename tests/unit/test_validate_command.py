"""`nefeature validate FILE...`: offline checking, `file: path: message`, exit status."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import EXAMPLES, ROOT


def run_validate(*files: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nefeature", "validate", *files],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_examples_pass():
    files = [str(p) for p in sorted(EXAMPLES.glob("*/*.xml"))]
    result = run_validate(*files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{f}: ok" for f in files]


def test_each_bad_file_is_reported_and_the_status_is_one(tmp_path):
    bad_port = tmp_path / "bad-port.xml"
    bad_port.write_text((EXAMPLES / "pair" / "deviceA.xml").read_text()
                        .replace("<tcp-port>10000", "<tcp-port>80"))
    bad_profile = tmp_path / "bad-profile.xml"
    bad_profile.write_text((EXAMPLES / "pair" / "deviceB.xml").read_text()
                           .replace("<remote-backup-profile>service1", "<remote-backup-profile>nope"))
    good = EXAMPLES / "single" / "server.xml"
    result = run_validate(str(bad_port), str(good), str(bad_profile))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad_port}: /nefeature-rbs:rbs/services/service[name=\"service1\"]/tcp-port: "
        "The remote backup TCP port is 1024..55535, the same on both devices. [invalid-value]",
        f"{good}: ok",
        f"{bad_profile}: /nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool[ip-pool-name=\"pool1\"]"
        "/remote-backup-profile: \"nope\" is not configured: remote-backup-profile must name an "
        "existing one [data-missing/instance-required]",
    ]


def test_missing_file_is_an_error(tmp_path):
    result = run_validate(str(tmp_path / "absent.xml"))
    assert result.returncode == 1
    assert "absent.xml: No such file or directory" in result.stderr
