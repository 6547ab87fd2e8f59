"""Strict hot backup under crashes (issue 9 item 4): SIGKILL the master 50 times.

DeviceA and DeviceB (examples/pair, advertisements every 0.1 s so a
takeover takes half a second, not four) serve a relay in its own namespace
(``relay_load.py``: DORAs round robin for 60 clients through the VIP, every
DHCPACK written down by the client side).  Then, 50 times: wait a random
0.05-0.5 s, SIGKILL whichever device is master, and once the other has
taken over check that

* the killed device's journal passes SQLite's integrity check, and
* the survivor's journal holds, for every client, the address last
  acknowledged to it with at least the lease time that ACK promised: in
  strict mode a DHCPACK leaves only after the peer has the lease on disk.

The killed device restarts on its own state directory as backup (DeviceA's
preempt hold-time stays 600 s, so the roles alternate), and the next kill
waits for its batch backup to complete, as an operator would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.netns import (
    PYTHON,
    ROOT,
    VIP,
    Lan,
    Nefeature,
    explain_failure,
    ip_pool,
    logs_of,
    pair_device,
    require_root,
    require_tool,
    run,
    torn_down,
    wait_for,
)
from tests.system.test_crash_consistency import CLOCK_SLACK, integrity, last_ack_per_client
from tests.system.test_hot_backup import ADDRESS, GIADDR, RELAY_LAN, RELAYED

pytestmark = pytest.mark.system

KILLS = 50
CLIENTS = 60
ADVERTISE_CENTISECONDS = 10
TAKEOVER_TIMEOUT = 15.0
START_TIMEOUT = 30.0
CHANNEL_UP = "remote backup service1: protected: peer connected"
BATCH_RECEIVED = "batch backup of"


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    require_root()
    ip = require_tool("ip", "iproute2")
    with torn_down(Lan(ip, tmp_path, "npc", 0.02)) as built:
        built.build()
        for label in ("A", "B"):
            built.add_router(label, ADDRESS[label], uplink=label == "A")
            run([ip, "-n", built.ns[label], "route", "replace", str(RELAYED), "via", RELAY_LAN])
        built.attach("rl", "lan0")
        built.addr("rl", f"{RELAY_LAN}/24")
        built.addr("rl", f"{GIADDR}/24")
        yield built


def device(lan: Lan, label: str) -> Nefeature:
    return pair_device(lan, label, ip_pool("relayed", RELAYED, GIADDR, identifier=VIP,
                                           backup_profile="service1"),
                       advertise_centiseconds=ADVERTISE_CENTISECONDS)


def became_master(device: Nefeature) -> int:
    return len(device.lines("-> master"))


def test_fifty_master_kills_under_load_the_survivor_holds_every_acknowledged_lease(
        lan: Lan, tmp_path: Path) -> None:
    rng = random.Random(20261128)
    a, b = device(lan, "A"), device(lan, "B")
    a.start()
    a.wait_ready(START_TIMEOUT)
    lan.wait_holders({"A"}, TAKEOVER_TIMEOUT, "A (priority 200) master", logs_of(a))
    b.start()
    for started in (a, b):
        started.wait_log(CHANNEL_UP, START_TIMEOUT)
    records = tmp_path / "acks.jsonl"
    load = lan.start(lan.ns["rl"], [PYTHON, ROOT / "tests" / "system" / "relay_load.py",
                                    GIADDR, VIP, "3600", str(CLIENTS), records],
                     tmp_path / "relay.log", "relay load")
    master, survivor = a, b
    checked = 0
    for kill in range(KILLS):
        time.sleep(rng.uniform(0.05, 0.5))
        masters_before = became_master(survivor)
        master.kill()
        with explain_failure(logs_of(master, survivor)):
            wait_for(lambda: became_master(survivor) > masters_before, TAKEOVER_TIMEOUT,
                     f"kill {kill + 1}: {survivor.name} takes over", 0.02)
        assert load.running(), load.output()
        assert integrity(master.journal) == "ok", f"kill {kill + 1}: {master.name}'s journal"
        acked = last_ack_per_client(records)  # read before the journal: each ACK precedes
        rows = {row["hardware_address"].hex(): row for row in survivor.rows()}
        for mac, ack in acked.items():
            row = rows.get(mac)
            where = f"kill {kill + 1} of {master.name}: {survivor.name}'s journal"
            assert row is not None, f"{where} lacks the lease of {mac} ({ack})"
            assert (row["ip"], row["state"]) == (ack["ip"], "bound"), (where, ack, row)
            assert row["expiry"] >= ack["acked_at"] + ack["lease_time"] - CLOCK_SLACK, \
                (where, ack, row)
            checked += 1
        master.start()
        master.wait_ready(START_TIMEOUT)
        master.wait_log(BATCH_RECEIVED, START_TIMEOUT)  # the survivor's table, in full
        master, survivor = survivor, master
    assert len(last_ack_per_client(records)) == CLIENTS
    assert checked >= KILLS * CLIENTS // 2, checked
    for device_ in (a, b):
        device_.assert_healthy(("ERROR", "CRITICAL"))
    load.stop()
