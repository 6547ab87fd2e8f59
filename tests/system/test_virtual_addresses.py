"""Virtual IPs go on and off the interface over rtnetlink, idempotently (as root, in a netns)."""

from __future__ import annotations

import sys

from tests.system.netns import make_lab, require_root, require_tool, run

SCRIPT = """
import sys
from ipaddress import IPv4Interface
from nefeature.vrrp.transport import VirtualAddresses
virtual = VirtualAddresses("Vlanif100", IPv4Interface("10.10.10.1/24"))
action, address = sys.argv[1], int(sys.argv[2])
for _ in range(2):  # the second time finds it done: no error either way
    (virtual.add if action == "add" else virtual.remove)((address,))
virtual.close()
"""


def test_virtual_ip_added_and_removed_twice_each():
    require_root()
    ip = require_tool("ip", "iproute2")
    with make_lab(ip) as lab:
        def addresses():
            out = run([ip, "-n", lab.server_ns, "-4", "-o", "addr", "show", "dev",
                       "Vlanif100"]).stdout
            return sorted(line.split()[3] for line in out.splitlines())

        def change(action):
            result = run(lab.exec_args(lab.server_ns, sys.executable, "-c", SCRIPT, action,
                                       str(0x0A0A0A64)))
            assert result.stderr == "", result.stderr  # a failure is logged as a warning

        change("add")
        assert addresses() == ["10.10.10.1/24", "10.10.10.100/24"]
        change("remove")
        assert addresses() == ["10.10.10.1/24"]
