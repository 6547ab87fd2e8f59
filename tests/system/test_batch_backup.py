"""A batch backup of 250,000 leases leaves the master in charge (issue 5, found by bench/ha).

DeviceA starts with 250,000 bound leases in its journal and VRRP
advertisements every 0.1 s (a master-down interval of about 0.35 s), and
becomes master; DeviceB starts empty and receives the batch backup.  A
master that built the whole batch in one go stopped its event loop for
about half a second: B's VRRP took over and served from a partial table.
Paged from the lease table, the batch must arrive complete while A stays
the only master, B stays backup, and the channel never drops.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from nefeature.dhcp.journal import LeaseJournal, snapshot
from nefeature.dhcp.leases import Lease, LeaseState
from tests.system.netns import (
    VIP,
    Lan,
    Nefeature,
    explain_failure,
    ip_pool,
    journal_rows,
    logs_of,
    pair_device,
    require_root,
    require_tool,
    torn_down,
    wait_for,
)
from tests.system.test_hot_backup import ADDRESS
from tests.system.test_pair_crash import ADVERTISE_CENTISECONDS, CHANNEL_UP

pytestmark = pytest.mark.system

LEASES = 250_000
BULK = IPv4Network("10.64.0.0/13")
BATCH_TIMEOUT = 120.0


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    require_root()
    with torn_down(Lan(require_tool("ip", "iproute2"), tmp_path, "nbb", 0.02)) as built:
        built.build()
        for label in ("A", "B"):
            built.add_router(label, ADDRESS[label], uplink=label == "A")
        yield built


def device(lan: Lan, label: str) -> Nefeature:
    return pair_device(lan, label, ip_pool("bulk", BULK, str(BULK.network_address + 1),
                                           identifier=VIP, backup_profile="service1"),
                       advertise_centiseconds=ADVERTISE_CENTISECONDS)


def prefill(journal: Path, count: int) -> None:
    journal.parent.mkdir(parents=True, exist_ok=True)
    store = LeaseJournal(str(journal))
    now, first = time.time(), int(BULK.network_address) + 2
    try:
        for chunk in range(0, count, 50_000):
            changes = {}
            for i in range(chunk, min(count, chunk + 50_000)):
                mac = (0x02BB00000000 + i).to_bytes(6, "big")
                changes[first + i] = Lease(address=first + i, pool="bulk", client=b"h" + mac,
                                           hardware_address=mac, state=LeaseState.BOUND,
                                           start=now, expiry=now + 86400)
            store.commit(changes)
    finally:
        store.close()


def bound_rows(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        db = snapshot(journal)
    except sqlite3.OperationalError:  # the journal is being created
        return 0
    try:
        return db.execute("SELECT count(*) FROM leases WHERE pool = 'bulk' AND state = 'bound'"
                          ).fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0
    finally:
        db.close()


def test_batch_backup_of_250k_leases_with_fast_adverts_keeps_the_master_in_charge(
        lan: Lan) -> None:
    a, b = device(lan, "A"), device(lan, "B")
    prefill(a.journal, LEASES)
    a.start()
    a.wait_ready(60)
    lan.wait_holders({"A"}, 15, "A (priority 200) master", logs_of(a))
    b.start()
    b.wait_log(CHANNEL_UP, 60)
    with explain_failure(logs_of(a, b)):
        wait_for(lambda: bound_rows(b.journal) == LEASES, BATCH_TIMEOUT,
                 lambda: f"B's journal to hold the {LEASES} leases (has {bound_rows(b.journal)})",
                 0.5)
        assert [t for t in b.transitions() if t[1] == "master"] == [], "B took over"
        assert f"batch backup of {LEASES} leases received" in b.wait_log("batch backup of", 10)
        lan.assert_steady({"A"}, 1.0, "A stays the only VIP holder")
        assert [t for t in a.transitions() if t[0] == "master"] == [], "A lost the role"
        assert not b.lines("protect down") and not a.lines("protect down"), "channel dropped"
    rows = [r for r in journal_rows(b.journal) if r["pool"] == "bulk"]
    assert len(rows) == LEASES
    assert {r["state"] for r in rows} == {"bound"} and {r["origin"] for r in rows} == {"peer-sync"}
    assert {r["ip"] for r in rows} == {str(IPv4Address(int(BULK.network_address) + 2 + i))
                                       for i in range(LEASES)}
    for started in (a, b):
        started.assert_healthy(("ERROR", "CRITICAL"))
