"""No DHCPACK leaves the strict pair's master before its lease row is in its local journal.

The pair of test_hot_backup.py (examples/pair, strict sync mode, its ``perf`` pool behind
perfdhcp acting as a relay) serves 300 DORA/s for 2 s while strace records the master's
sendmmsg, sendmsg, sendto and write calls; tests/system/ack_trace.py decodes every DHCPACK sent
and every lease row written to the journal's log, and finds for each ACK the write of its
row (its docstring has the method).  bench/ack_order runs the same check at higher
rates, and for a lone server, with figures.

Needs root, iproute2, strace and perfdhcp (kea-admin); skips naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system import ack_trace
from tests.system.netns import (
    Process,
    explain_failure,
    logs_of,
    require_root,
    require_tool,
    torn_down,
)
from tests.system.test_hot_backup import (
    PERF,
    PERF_GIADDR,
    PERF_LAN,
    VIP,
    Lab,
    perfdhcp_stats,
    start_pair,
)

pytestmark = pytest.mark.system

RATE, SECONDS = 300, 2  # DORA/s offered, for this long
ATTACH_TIMEOUT = 10.0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_root("network namespaces, port 67, ptrace")
    tools = {"ip": require_tool("ip", "iproute2"), "strace": require_tool("strace", "strace"),
             "perfdhcp": require_tool("perfdhcp", "kea-admin")}
    with torn_down(Lab(tools, tmp_path)) as built:
        built.build()
        built.add_device("A")
        built.add_device("B")
        built.attach("pf", "lan0")
        built.addr("pf", f"{PERF_LAN}/24")
        built.addr("pf", f"{PERF_GIADDR}/{PERF.prefixlen}")
        yield built


def test_no_ack_before_its_row_is_in_the_local_journal(lab: Lab) -> None:
    a, b = start_pair(lab)
    prefix = lab.dir / "trace"
    strace = Process(ack_trace.strace_argv(a.process.pid, prefix, lab.tools["strace"]),
                     lab.dir / "strace.log", "strace")
    lab.processes.append(strace)  # stopped (detached) by the lab's teardown if not before
    strace.wait_output("attached", ATTACH_TIMEOUT, lab.poll)
    perf = lab.start(lab.ns["pf"], [lab.tools["perfdhcp"], "-4", "-l", PERF_GIADDR, "-r", RATE,
                                    "-R", "2000", "-p", SECONDS, "-W", "500000", VIP],
                     lab.dir / "perfdhcp.log", "perfdhcp")
    status = perf.wait(SECONDS + 20)
    assert status in (0, 3), f"perfdhcp exited {status}:\n{perf.output()}"  # 3: some drops
    strace.stop()  # SIGTERM: strace detaches, the master goes on

    acks_received = perfdhcp_stats(perf.output()).get("REQUEST-ACK", {}).get("received packets", 0)
    report = ack_trace.check(ack_trace.parse_trace(ack_trace.trace_files(prefix)))
    with explain_failure(logs_of(a, b, perf)):
        assert report.acks > 0, f"no DHCPACK in the master's trace: {report.summary()}"
        assert report.acks >= acks_received, \
            f"the trace misses ACKs perfdhcp received ({acks_received}): {report.summary()}"
        assert report.acks_before_row == 0, (
            f"{report.acks_before_row} of {report.acks} DHCPACKs left before their row was in"
            " the journal:\n" + "\n".join(v.describe() for v in report.violations[:10]))
    print(f"\n[ack order] {report.summary()}")
