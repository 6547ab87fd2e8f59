"""The lease journal across releases: schema version, migration in place, refusal of a newer one.

``data/journal-v0.sql`` is a journal written by the release before journals had a schema
version; the tests build it on disk and open it with today's code, as an upgraded device would.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nefeature.dhcp import journal as journal_module
from nefeature.dhcp.journal import SCHEMA_VERSION, JournalTooNew, LeaseJournal
from nefeature.dhcp.leases import Lease, LeaseState
from tests.conftest import EXAMPLES

V0_DUMP = Path(__file__).parent / "data" / "journal-v0.sql"
BASE = 0x0A0A0A00  # 10.10.10.0

V0_LEASES = [
    Lease(address=BASE + 10, pool="pool1", client=b"\x01\x02\x00\x00\x00\x00\x01",
          hardware_address=bytes.fromhex("020000000001"), state=LeaseState.BOUND,
          start=1795000000.0, expiry=1795086400.0, client_id=b"\x01\x02\x00\x00\x00\x00\x01",
          hostname="host-a", option82=b"\x01\x0bVlanif100:1\x02\x09demo-rely"),
    Lease(address=BASE + 11, pool="pool1", client=b"h\x02\x00\x00\x00\x00\x02",
          hardware_address=bytes.fromhex("020000000002"), state=LeaseState.RELEASED,
          start=1795000100.0, expiry=1795000200.0, origin="peer-sync"),
    Lease(address=BASE + 12, pool="pool1", client=b"h\x02\x00\x00\x00\x00\x03",
          hardware_address=bytes.fromhex("020000000003"), state=LeaseState.BOUND,
          start=1795000300.0, expiry=None, static=True),
]


def v0_journal(directory: Path) -> Path:
    path = directory / "leases.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V0_DUMP.read_text())
    db.close()
    return path


def pragma(path: Path, name: str):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        db.close()


def test_a_journal_of_the_previous_layout_is_migrated_in_place_and_read(tmp_path):
    path = v0_journal(tmp_path)
    assert pragma(path, "user_version") == 0
    journal = LeaseJournal(path)
    try:
        assert journal.found_version == 0
        assert journal.load() == V0_LEASES
        journal.commit({BASE + 13: Lease(BASE + 13, "pool1", b"h4", b"\x02" * 6,
                                         LeaseState.BOUND, 1.0, 2.0)})
    finally:
        journal.close()
    assert pragma(path, "user_version") == SCHEMA_VERSION
    reopened = LeaseJournal(path)
    try:
        assert reopened.found_version == SCHEMA_VERSION  # migrated once, not again
        assert [lease.address for lease in reopened.load()] == [BASE + 10, BASE + 11, BASE + 12,
                                                                BASE + 13]
    finally:
        reopened.close()
    # the way back: a copy of the journal as the old release left it
    backup = tmp_path / "leases.sqlite.schema-0.bak"
    assert pragma(backup, "user_version") == 0
    db = sqlite3.connect(backup)
    assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 3
    db.close()


def test_a_new_journal_has_the_current_layout_and_says_who_wrote_it(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.close()
    assert journal.found_version is None
    db = sqlite3.connect(tmp_path / "leases.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()[0] \
        == journal_module.WRITTEN_BY
    db.close()
    assert not list(tmp_path.glob("*.bak"))  # nothing to migrate, nothing copied


def test_the_next_layout_migrates_a_journal_of_this_release(tmp_path, monkeypatch):
    """A release that adds a step to MIGRATIONS reads what this release wrote."""
    path = tmp_path / "leases.sqlite"
    current = LeaseJournal(path)
    current.commit({lease.address: lease for lease in V0_LEASES})
    current.close()
    monkeypatch.setattr(journal_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(journal_module.MIGRATIONS, SCHEMA_VERSION,
                        ("ALTER TABLE leases ADD COLUMN vendor_class TEXT",))
    upgraded = LeaseJournal(path)
    try:
        assert upgraded.found_version == SCHEMA_VERSION
        assert upgraded.load() == V0_LEASES
    finally:
        upgraded.close()
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1
    assert (tmp_path / f"leases.sqlite.schema-{SCHEMA_VERSION}.bak").exists()


def newer_journal(directory: Path) -> Path:
    """A journal as a future release (schema one above ours, nefeature 9.0.0) leaves it."""
    path = directory / "leases.sqlite"
    LeaseJournal(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("UPDATE journal_info SET value = 'nefeature 9.0.0' WHERE key = 'written-by'")
    db.commit()
    db.close()
    return path


def test_a_journal_from_a_newer_release_is_refused_untouched(tmp_path):
    path = newer_journal(tmp_path)
    before = path.read_bytes()
    with pytest.raises(JournalTooNew) as refused:
        LeaseJournal(path)
    message = str(refused.value)
    assert f"lease journal schema {SCHEMA_VERSION + 1}, written by nefeature 9.0.0" in message
    assert f"reads schema {SCHEMA_VERSION} at most" in message
    assert path.read_bytes() == before


def test_nefeature_run_refuses_a_newer_journal_with_exit_status_78(tmp_path):
    """78 (EX_CONFIG): the unit's RestartPreventExitStatus, no restart loop."""
    newer_journal(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "nefeature", "run", "--startup",
         str(EXAMPLES / "single" / "server.xml"), "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 78, result.stderr
    assert "written by nefeature 9.0.0" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cleanly_closed_journal_leaves_no_wal(tmp_path):
    path = tmp_path / "leases.sqlite"
    journal = LeaseJournal(path)
    journal.fold_in_background(checkpoint_interval=60)
    journal.commit({lease.address: lease for lease in V0_LEASES})
    assert (tmp_path / "leases.sqlite-wal").stat().st_size > 0
    journal.close()
    wal = tmp_path / "leases.sqlite-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    # the database file alone holds every lease
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    assert db.execute("SELECT count(*) FROM leases").fetchone()[0] == 3
    db.close()


def nefeature(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nefeature", *map(str, args)],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_journal_info_reads_without_migrating(tmp_path):
    path = v0_journal(tmp_path)
    result = nefeature("journal", "info", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == ["  schema       0", "  written by   unknown",
                                              "  leases       2 bound, 1 released",
                                              "  integrity    ok"]
    assert pragma(path, "user_version") == 0  # looked at, not migrated


def test_journal_backup_beside_a_writer_restores_every_lease(tmp_path):
    state, elsewhere = tmp_path / "state", tmp_path / "backup"
    state.mkdir()
    elsewhere.mkdir()
    running = LeaseJournal(state / "leases.sqlite")  # a device holding it open, mid-WAL
    try:
        running.commit({lease.address: lease for lease in V0_LEASES})
        result = nefeature("journal", "backup", state, elsewhere / "leases.sqlite")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith(f"3 leases copied to {elsewhere / 'leases.sqlite'}")
    finally:
        running.close()
    restored = LeaseJournal(elsewhere / "leases.sqlite")
    try:
        assert restored.load() == V0_LEASES
    finally:
        restored.close()
