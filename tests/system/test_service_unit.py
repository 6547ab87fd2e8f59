"""packaging/nefeature@.service: its command line runs a device with only the capabilities
it lists.

systemd is not PID 1 here, so the test does what the unit tells systemd to do, read from the
unit file itself: ExecStart with ``%i`` and ``$NEFEATURE_OPTIONS`` expanded (the program
path replaced by this environment's interpreter; /etc/nefeature and /var/lib/nefeature by
directories of the test), a clean environment, ``NoNewPrivileges``, and exactly the
capabilities of ``AmbientCapabilities`` and ``CapabilityBoundingSet``, with the root user
granting nothing beyond them (securebits noroot).  The device then has to do all of its
job in a namespace lab: bind port 67 and NETCONF's 830, serve a real DHCP client on its
AF_PACKET socket, win VRRP on its raw socket and add the virtual IP over rtnetlink, tell
the service manager it is ready, and on SIGTERM withdraw the virtual IP, checkpoint the
journal and exit 0.  A second run without CAP_NET_ADMIN shows the test can tell.
"""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path

import pytest

from tests.system.netns import (
    LAN_IF,
    ROOT,
    Lab,
    Process,
    hook_events,
    journal_rows,
    make_lab,
    require_root,
    require_tool,
    run,
    wait_for,
    write_hook,
)

UNIT = ROOT / "packaging" / "nefeature@.service"
INSTANCE = "a"
VIP = "10.10.10.100"
#: capabilities(7) numbers of what the unit grants
CAPABILITY_BITS = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONFIG = (ROOT / "examples" / "single" / "server.xml").read_text().replace(
    "</mask>\n    </ipv4>", f"""</mask>
      <vrrp xmlns="urn:nefeature:yang:nefeature-vrrp">
        <vrrp-instance>
          <vrid>1</vrid>
          <virtual-ipv4-addresses>
            <virtual-ipv4-address><ipv4-address>{VIP}</ipv4-address></virtual-ipv4-address>
          </virtual-ipv4-addresses>
        </vrrp-instance>
      </vrrp>
    </ipv4>""", 1)


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the [Service] section, values in order."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def unit_command(etc: Path, state: Path) -> list[str]:
    """ExecStart as systemd would run it for instance ``a``."""
    settings = unit_settings()
    options = dict(shlex.split(assignment)[0].split("=", 1)
                   for assignment in settings["Environment"])["NEFEATURE_OPTIONS"]
    command = settings["ExecStart"][0].replace("%i", INSTANCE)
    argv = []
    for word in shlex.split(command):
        if word == "$NEFEATURE_OPTIONS":
            argv += options.split()  # unbraced: split at whitespace (systemd.service(5))
        else:
            argv.append(word.replace("/etc/nefeature", str(etc))
                        .replace("/var/lib/nefeature", str(state)))
    assert argv[0].endswith("/bin/nefeature"), argv
    return [sys.executable, "-m", "nefeature", *argv[1:]]


def unit_capabilities() -> list[str]:
    settings = unit_settings()
    ambient = settings["AmbientCapabilities"][0].split()
    assert settings["CapabilityBoundingSet"][0].split() == ambient
    assert settings["NoNewPrivileges"] == ["yes"]
    return ambient


def confined(capabilities: list[str], environment: dict[str, str],
             command: list[str]) -> list[str]:
    """``command`` with exactly ``capabilities``, no new privileges, a clean environment."""
    names = ",".join(f"+{c.removeprefix('CAP_').lower()}" for c in capabilities)
    return ["setpriv", f"--inh-caps=-all,{names}", f"--ambient-caps=-all,{names}",
            f"--bounding-set=-all,{names}", "--securebits=+noroot,+noroot_locked",
            "--no-new-privs", "--", "env", "-i",
            *(f"{key}={value}" for key, value in environment.items()), *command]


def capabilities_of(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {line.split(":")[0]: int(line.split()[1], 16) for line in status.splitlines()
            if line.startswith("Cap")}


@pytest.fixture
def lab():
    require_root()
    ip = require_tool("ip", "iproute2")
    require_tool("setpriv", "util-linux")
    with make_lab(ip) as built:
        yield built


def start_device(lab: Lab, tmp_path: Path, capabilities: list[str]) -> tuple[Process, Path]:
    etc, state = tmp_path / "etc", tmp_path / "var"
    etc.mkdir(exist_ok=True)
    (etc / f"{INSTANCE}.xml").write_text(CONFIG)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    lab.notify = notify
    environment = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8",
                   "NOTIFY_SOCKET": str(tmp_path / "notify")}
    process = lab.start(lab.server_ns, confined(capabilities, environment,
                                                unit_command(etc, state)),
                        tmp_path / f"device-{len(capabilities)}.log", "nefeature@a")
    return process, state / INSTANCE


def has_vip(lab: Lab) -> bool:
    """On the LAN interface, or on its virtual-MAC interface (the default)."""
    out = run([lab.ip, "-n", lab.server_ns, "-4", "-o", "addr", "show"]).stdout
    return f"inet {VIP}/" in out


@pytest.mark.system
def test_the_units_command_line_runs_a_device_with_only_its_capabilities(lab, tmp_path):
    udhcpc = require_tool("udhcpc", "udhcpc")
    capabilities = unit_capabilities()
    process, state = start_device(lab, tmp_path, capabilities)
    lab.notify.settimeout(30)
    try:
        assert lab.notify.recv(64) == b"READY=1", process.output()
        granted = capabilities_of(process.pid)
        wanted = sum(1 << CAPABILITY_BITS[c] for c in capabilities)
        assert granted["CapEff"] == granted["CapBnd"] == wanted, (granted, wanted)
        output = process.output()
        assert "NETCONF over SSH on 127.0.0.1 port 830" in output, output
        assert "serving DHCP on port 67 (direct on Vlanif100)" in output, output
        wait_for(lambda: has_vip(lab), 15, "VRRP master adding the virtual IP")

        hook_log = tmp_path / "hook.log"
        client = lab.start(lab.client_ns, [udhcpc, "-f", "-q", "-n", "-i", lab.client_if, "-s",
                                           write_hook(tmp_path / "hook.sh", hook_log, lab.ip),
                                           "-t", "5", "-T", "1"],
                           tmp_path / "udhcpc.log", "udhcpc")
        assert client.wait(20) == 0, client.output()
        bound = [event for event in hook_events(hook_log) if event["event"] == "bound"]
        assert len(bound) == 1 and bound[0]["server"] == "10.10.10.1", hook_events(hook_log)
        assert (state / "netconf-password").exists()

        process.signal(15)
        assert lab.notify.recv(64) == b"STOPPING=1"
        assert process.wait(15) == 0, process.output()
        assert not has_vip(lab), "the virtual IP outlived its device"
        wal = state / "leases.sqlite-wal"
        assert not wal.exists() or wal.stat().st_size == 0
        assert [row["ip"] for row in journal_rows(state / "leases.sqlite")] == [bound[0]["ip"]]
        assert "Traceback" not in process.output() and " ERROR " not in process.output()
    finally:
        lab.notify.close()


@pytest.mark.system
def test_without_net_admin_the_device_cannot_add_its_virtual_ip(lab, tmp_path):
    """The control: one capability less and the device says what it could not do."""
    capabilities = [c for c in unit_capabilities() if c != "CAP_NET_ADMIN"]
    process, _ = start_device(lab, tmp_path, capabilities)
    lab.notify.settimeout(30)
    try:
        assert lab.notify.recv(64) == b"READY=1", process.output()
        wait_for(lambda: f"adding {VIP} on {LAN_IF}: Operation not permitted"
                 in process.output(), 15,
                 lambda: f"the device to say it cannot add the virtual IP:\n{process.output()}")
        assert not has_vip(lab)
    finally:
        lab.notify.close()
