"""bench/ha's JournalCounter: the leases in a journal that a device is writing, each log
record read once, counted as a whole read of the journal (``snapshot``) counts them."""

from __future__ import annotations

import marshal
import zlib
from pathlib import Path

from nefeature.dhcp import journal as journal_module
from nefeature.dhcp.journal import LOG_FORMAT, LOG_SUFFIX, RECORD_HEADER, LeaseJournal, snapshot
from nefeature.dhcp.leases import BOUND, RELEASED, Lease


def lease(address: int, pool: str = "bulk", state=BOUND) -> Lease:
    return Lease(address, pool, b"h" + address.to_bytes(6, "big"), address.to_bytes(6, "big"),
                 state, 1000.0, 5000.0)


def truth(path: Path, pool: str | None) -> int:
    copy = snapshot(path)
    try:
        if pool is None:
            return copy.execute("SELECT count(*) FROM leases").fetchone()[0]
        return copy.execute("SELECT count(*) FROM leases WHERE pool = ? AND state = 'bound'",
                            (pool,)).fetchone()[0]
    finally:
        copy.close()


def test_the_count_follows_a_journal_being_written_and_folded(bench_ha, tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "FOLD_ROWS", 10)  # log files start over, and fold
    path = tmp_path / "leases.sqlite"
    journal = LeaseJournal(path)
    counter, bulk_counter = bench_ha.JournalCounter(path), bench_ha.JournalCounter(path)
    address = 0x0A000000
    try:
        for step in range(12):
            changes = {}
            for _ in range(3):
                address += 1
                pool = "other" if address % 4 == 0 else "bulk"
                state = RELEASED if address % 5 == 0 else BOUND
                changes[address] = lease(address, pool, state)
            journal.commit(changes)
            for pool, kept in ((None, counter), ("bulk", bulk_counter)):
                expected = truth(path, pool)
                assert kept.count(pool) == expected, (step, pool)
                assert bench_ha.journal_count(path, pool) == expected, (step, pool)
        assert counter.count() == 36
        assert bench_ha.JournalCounter(path).count("bulk") == bulk_counter.count("bulk") < 36
    finally:
        journal.close()
    assert counter.count() == 36  # all folded now: SQLite alone


def log_record(addresses) -> bytes:
    """A log record as ``LeaseJournal.commit`` writes it: bound leases of pool 'bulk'."""
    rows = [(a, "bulk", b"h%d" % a, b"%6d" % a, "bound", 1000.0, 5000.0, None, None, None,
             "local", False) for a in addresses]
    payload = marshal.dumps((rows, [], []))
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def test_a_record_cut_short_is_counted_once_whole(bench_ha, tmp_path):
    path = tmp_path / "leases.sqlite"
    LeaseJournal(path).close()  # an empty SQLite, nothing folded: log file 1 comes next
    log_file = path.with_name(path.name + LOG_SUFFIX + "1")
    first, second = log_record((1, 2)), log_record((3, 4, 5))
    counter = bench_ha.JournalCounter(path)
    log_file.write_bytes(LOG_FORMAT[:5])  # created, its format line not yet whole
    assert counter.count() == 0
    log_file.write_bytes(LOG_FORMAT + first + second[:20])
    assert counter.count() == 2
    with open(log_file, "ab") as f:
        f.write(second[20:])
    assert counter.count() == 5
    assert counter.count("bulk") == 5 == truth(path, "bulk")
    assert counter.count("other") == 0
