"""Crash consistency under load (issue 9 item 4): SIGKILL the server 50 times.

A relay in the client namespace (``relay_load.py``) runs DORAs round robin
for 150 clients and writes down every DHCPACK it gets.  The server is killed
with SIGKILL at a random moment 0.1-0.6 s after it starts serving, 50 times.
After each kill the lease journal must pass SQLite's integrity check and
hold, for every client, the address last acknowledged to it with at least
the lease time that ACK promised: a lease is on disk before its ACK leaves.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from tests.system.netns import (
    PYTHON,
    ROOT,
    Server,
    journal_rows,
    make_lab,
    require_root,
)
from tests.system.test_dhcp_clients import SINGLE_CONFIG

pytestmark = pytest.mark.system

KILLS = 50
CLIENTS = 150
CLOCK_SLACK = 2.0  # seconds between the server stamping a lease and the client's clock


@pytest.fixture
def lab():
    require_root()
    with make_lab(shutil.which("ip")) as built:
        yield built


def integrity(journal: Path) -> str:
    db = sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def last_ack_per_client(records: Path) -> dict[str, dict]:
    acked: dict[str, dict] = {}
    for line in records.read_text().splitlines():
        if line.endswith("}"):  # a line being written at the moment of reading is skipped
            record = json.loads(line)
            acked[record["mac"]] = record
    return acked


def test_fifty_sigkills_under_load_lose_no_acknowledged_lease(lab, tmp_path: Path):
    rng = random.Random(20261128)
    lab.add_address(lab.client_ns, "10.10.10.2/24", lab.client_if)
    records = tmp_path / "acks.jsonl"
    load = lab.start(lab.client_ns, [PYTHON, ROOT / "tests" / "system" / "relay_load.py",
                                     "10.10.10.2", "10.10.10.1", "3600", str(CLIENTS), records],
                     tmp_path / "relay.log", "relay load")
    server = Server(lab, SINGLE_CONFIG, tmp_path / "state", tmp_path)
    checked = 0
    for kill in range(KILLS):
        server.start()
        time.sleep(rng.uniform(0.1, 0.6))
        server.kill()
        assert load.running(), load.output()
        assert integrity(server.journal) == "ok", f"after kill {kill + 1}"
        rows = {row["hardware_address"].hex(): row for row in journal_rows(server.journal)}
        for mac, ack in last_ack_per_client(records).items():
            row = rows.get(mac)
            assert row is not None, f"kill {kill + 1}: the lease of {mac} ({ack}) is gone"
            assert (row["ip"], row["state"]) == (ack["ip"], "bound"), (kill + 1, ack, row)
            assert row["expiry"] >= ack["acked_at"] + ack["lease_time"] - CLOCK_SLACK, \
                (kill + 1, ack, row)
            checked += 1
    acked = last_ack_per_client(records)
    assert len(acked) == CLIENTS, f"only {len(acked)} clients were ever acknowledged"
    assert checked >= KILLS * CLIENTS // 2, checked
    load.stop()
