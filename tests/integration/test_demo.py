"""`make demo` end to end (no root): two device processes, clients, a switchover, the summary,
and the commands it prints at the end, which must work."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT

SUMMARY = [
    "clients bound                 12 of 12",
    "renewals after switchover     12 of 12 with the same address",
    "leases lost at switchover     0",
    "duplicate addresses           0",
    "DeviceA master again          yes",
]


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """The output up to the line holding ``marker``; fails if the demo exits or takes longer."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    process.kill()
    raise AssertionError(f"no {marker!r} from the demo (exit {process.poll()}):\n"
                         + "".join(lines) + process.stdout.read())


def test_demo_runs_to_a_clean_summary_and_its_shell_commands_work(tmp_path):
    # Ctrl+C as on a terminal: a pytest started in the background by a shell (`make test`
    # runs two) has SIGINT ignored, and its children would inherit that.
    demo = subprocess.Popen([sys.executable, "-m", "nefeature", "demo", "--clients", "12",
                             "--dir", str(tmp_path), "--keep-running"], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        out = read_until(demo, "Ctrl+C stops them.", timeout=180)
        for line in SUMMARY:
            assert line in out, out
        attach = out.split("Attach the VRP shell to either one:\n", 1)[1].splitlines()[:2]
        for command in attach:
            result = subprocess.run([*shlex.split(command), "-c", "display vrrp brief"],
                                    capture_output=True, text=True, timeout=60, cwd=ROOT,
                                    stdin=subprocess.DEVNULL)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            assert "Vlanif100" in result.stdout, result.stdout
        assert demo.poll() is None, "the devices stopped before Ctrl+C"
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0, demo.stdout.read()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        demo.stdout.close()
    for name in ("deviceA", "deviceB"):
        log = (tmp_path / name / "device.log").read_text()
        assert "Traceback" not in log, log
        assert "stopped" in log, log


def test_demo_without_a_terminal_says_how_to_keep_the_devices(tmp_path):
    """Run non-interactively (as here), the demo stops its devices and says so: the last
    lines tell how to rerun it with the devices kept, not commands that would fail."""
    result = subprocess.run([sys.executable, "-m", "nefeature", "demo", "--clients", "2",
                             "--dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=180, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.rstrip().splitlines()[-2:]
    assert last[0].startswith("The devices have stopped."), result.stdout
    assert last[1].strip().endswith(" demo --keep-running"), result.stdout
    assert "nefeature-cli" not in result.stdout
