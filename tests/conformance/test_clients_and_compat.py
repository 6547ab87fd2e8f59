"""A second real client (netconf-console2, a subprocess), and the netconf package fixes.

Each fix in nefeature/netconf/compat.py is pinned here (tooling.md 1.3):
lock/unlock reply, kill-session target, XPath filter not silently empty,
base:1.0 disconnect without a CPU spin, hello built by our capabilities hook.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.conformance.conftest import NC_NS, PASSWORD, USER, dns_of, pool_edit, restore
from tests.conformance.test_rfc6241_session import RawSession


def console(device, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    executable = Path(sys.executable).parent / "netconf-console2"
    if not executable.exists():
        executable = shutil.which("netconf-console2")
    return subprocess.run([str(executable), "--host", "127.0.0.1", "--port", str(device.port),
                           "-u", USER, "-p", PASSWORD, *args],
                          capture_output=True, text=True, timeout=timeout)


def test_netconf_console_hello(device):
    result = console(device, "--hello")
    assert result.returncode == 0, result.stderr
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in result.stdout
    assert "module=nefeature-rbs&amp;revision=2026-11-28" in result.stdout


def test_netconf_console_get_config_and_schema(device):
    result = console(device, "--get-config")
    assert result.returncode == 0, result.stderr
    assert "<ip-pool-name>pool1</ip-pool-name>" in result.stdout
    schema = console(device, "--get-schema", "nefeature-vrrp")
    assert schema.returncode == 0 and "module nefeature-vrrp" in schema.stdout


def test_netconf_console_edit_commit(device, tmp_path, nc):
    edit = tmp_path / "edit.xml"
    # netconf-console2 wraps the file's top-level nodes in <config> itself
    edit.write_text(pool_edit("10.10.10.90").replace(f'<config xmlns="{NC_NS}">', "")
                    .replace("</config>", ""))
    result = console(device, "--db", "candidate", "--edit-config", str(edit), "--commit")
    assert result.returncode == 0, result.stdout + result.stderr
    assert dns_of(nc) == ["10.10.10.53", "10.10.10.90"]
    restore(nc)


def test_netconf_console_lock_and_error_report(device):
    result = console(device, "--lock", "--unlock")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(":ok ") == 2  # two <nc:ok/> replies
    bad = console(device, "--get-schema", "no-such-module")
    assert "invalid-value" in bad.stdout + bad.stderr


# --- compat fixes ---


def test_lock_and_unlock_reply_ok(nc):
    assert nc.lock("candidate").ok and nc.unlock("candidate").ok


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks


def test_base10_client_disconnect_leaves_no_busy_thread(device):
    raw = RawSession(device)
    raw.read_until(b"]]>]]>")
    raw.channel.sendall(f'<hello xmlns="{NC_NS}"><capabilities><capability>'
                        'urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>'
                        "]]>]]>".encode())
    raw.channel.sendall(f'<rpc xmlns="{NC_NS}" message-id="1"><get-config><source><running/>'
                        "</source></get-config></rpc>]]>]]>".encode())
    raw.read_until(b"]]>]]>")
    raw.close()  # drop the connection without close-session
    time.sleep(0.5)
    before = _process_cpu_seconds(device.process.pid)
    time.sleep(2.0)
    used = _process_cpu_seconds(device.process.pid) - before
    assert used < 0.5, f"the device used {used:.2f} s of CPU in 2 s while idle"
