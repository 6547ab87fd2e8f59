"""The starvation defence against real traffic (issue 9 item 1).

perfdhcp, acting as a relay, floods the server with DISCOVERs from 100,000
simulated clients (each a different MAC) while a real client, busybox
udhcpc, holds a lease.  With ``max-offers-in-flight`` at 40 the flood gets
40 offers and no more, so the pool keeps its addresses, and udhcpc renews
in the middle of the flood.
"""

from __future__ import annotations

import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.system.netns import (
    Server,
    hook_events,
    make_lab,
    replace_once,
    require_root,
    require_tool,
    wait_for_event,
    write_config,
    write_hook,
)
from tests.system.test_dhcp_clients import SINGLE_CONFIG, Udhcpc

pytestmark = pytest.mark.system

OFFER_CAP = 40
FLOOD_RATE = 1000  # DISCOVERs per second
FLOOD_SECONDS = 5


@pytest.fixture
def lab():
    require_root()
    require_tool("perfdhcp", "kea-admin")
    require_tool("udhcpc", "udhcpc")
    with make_lab(shutil.which("ip")) as built:
        yield built


def test_a_discover_flood_gets_at_most_the_offer_cap_and_a_real_client_still_renews(
        lab, tmp_path: Path):
    limits = (f"<flood-protection><max-offers-in-flight>{OFFER_CAP}</max-offers-in-flight>"
              "<client-rate>20</client-rate></flood-protection>")
    config = replace_once(SINGLE_CONFIG.read_text(), "<ip-pools>", limits + "<ip-pools>")
    server = Server(lab, write_config(tmp_path / "server.xml", config), tmp_path / "state",
                    tmp_path)
    server.start()
    hook_log = tmp_path / "hook.log"
    udhcpc = Udhcpc(lab, tmp_path, (write_hook(tmp_path / "hook.sh", hook_log, lab.ip),
                                    hook_log), shutil.which("udhcpc"))
    bound = udhcpc.obtain()

    lab.add_address(lab.client_ns, "10.10.10.2/24", lab.client_if)  # perfdhcp's giaddr
    flood = lab.start(lab.client_ns, [
        "perfdhcp", "-4", "-i", "-l", "10.10.10.2", "-r", str(FLOOD_RATE), "-R", "100000",
        "-p", str(FLOOD_SECONDS), "10.10.10.1"], tmp_path / "perfdhcp.log", "perfdhcp")
    seen = len(hook_events(hook_log))
    time.sleep(1.5)  # well into the flood: the cap is reached after 40 ms
    udhcpc.process.signal(signal.SIGUSR1)
    renewed = wait_for_event(hook_log, {"renew", "bound"}, after=seen, process=udhcpc.process,
                             what="udhcpc to renew during the flood")
    assert flood.running(), "the flood ended before the renewal; the test proves nothing"
    flood.wait(FLOOD_SECONDS + 30)
    report = flood.output()
    sent = int(re.search(r"sent packets: (\d+)", report).group(1))
    offers = int(re.search(r"received packets: (\d+)", report).group(1))

    assert renewed["ip"] == bound["ip"]
    assert sent >= FLOOD_RATE * FLOOD_SECONDS * 0.8, report
    assert offers == OFFER_CAP, report
    server.stop()
    server.assert_healthy()
