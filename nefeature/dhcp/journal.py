"""The lease journal: one SQLite database (WAL) in the device's state directory.

One row per address that has a lease worth remembering (bound, released,
expired, declined; offers are never written).  The device group-commits the
table's pending changes once per batch of received datagrams, before it
sends the replies of that batch, so every acknowledged lease is on disk.

``synchronous=NORMAL`` in WAL mode makes each commit one write() to the
WAL without fsync: a committed lease survives the process being killed
(``kill -9``) but not a power cut, the same guarantee Kea's memfile gives.

Checkpoints (copying the WAL into the database, with its fsyncs) run on a
thread of their own, and the WAL is kept bounded: see ``checkpoint``.  Such a
checkpoint holds the write lock for a few milliseconds now and then;
``try_commit`` never waits for it (the device's event loop writes with it and
hands the write to a thread only when the lock is taken), ``commit`` does.
Closing checkpoints everything, so a cleanly stopped device leaves one
file and no WAL.

The layout carries a schema version (SQLite's ``user_version``; 0 is the
layout from before versions).  Opening a journal of an older layout
migrates it in place, in one transaction, after copying it to
``leases.sqlite.schema-N.bak`` (the way back to the release that wrote it);
a journal of a newer layout than this release knows is refused
(:class:`JournalTooNew`) before anything is written to it, with the release
that wrote it in the message.  The table ``journal_info`` records that
release.  Every layout change adds one step to ``MIGRATIONS``.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import time
from itertools import chain, starmap
from pathlib import Path

from nefeature import __version__

from nefeature.dhcp.leases import Lease, LeaseState

log = logging.getLogger(__name__)

#: WAL frames (one per page written, 4 KiB each) after which the WAL is started over.
WAL_RESTART_FRAMES = 8192

#: How long ``commit`` waits for the write lock (a checkpoint holds it for milliseconds).
LOCK_WAIT = 5.0
LOCK_POLL = 0.001

#: The layout this release writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1

LEASES_TABLE = """
CREATE TABLE IF NOT EXISTS leases (
    address          INTEGER PRIMARY KEY,
    pool             TEXT NOT NULL,
    client           BLOB NOT NULL,
    hardware_address BLOB NOT NULL,
    state            TEXT NOT NULL,
    start            REAL NOT NULL,
    expiry           REAL,
    client_id        BLOB,
    hostname         TEXT,
    option82         BLOB,
    origin           TEXT NOT NULL,
    static           INTEGER NOT NULL
)
"""
INFO_TABLE = """
CREATE TABLE IF NOT EXISTS journal_info (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""
#: MIGRATIONS[n]: the statements that turn layout n into layout n + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (INFO_TABLE,),  # 0 -> 1: record which release wrote the journal
}
WRITTEN_BY = f"nefeature {__version__}"
SYNCED_UNTIL = "peer-synced-until "  # + the remote-backup-service's name
SPLIT = "pool-split "  # + the pool's name
COLUMNS = ("address", "pool", "client", "hardware_address", "state", "start", "expiry",
           "client_id", "hostname", "option82", "origin", "static")
UPSERT = f"INSERT OR REPLACE INTO leases ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
#: Rows written by one statement when a commit has many (a tenth less CPU a row than one
#: statement each; 64 rows are 768 parameters, under SQLite's limit of 999 before 3.32).
ROWS_PER_UPSERT = 64
UPSERT_MANY = UPSERT + f", ({', '.join('?' * len(COLUMNS))})" * (ROWS_PER_UPSERT - 1)


class JournalTooNew(Exception):
    """The journal has a newer layout than this release reads; the message says what to do."""


class LeaseJournal:
    """Durable copy of the lease table."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            #: the layout version the file had when opened (None: a new journal)
            self.found_version = self._open_layout()
        except BaseException:
            self._db.close()
            raise
        self._db.execute("PRAGMA busy_timeout = 0")  # try_commit never waits; commit polls
        self.commits = 0
        self.wal_restart_frames = WAL_RESTART_FRAMES
        self._checkpoints: sqlite3.Connection | None = None  # the checkpointer's connection
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self.trace = False  # log checkpoints that take over 2 ms (nefeature.slowtrace)

    def _open_layout(self) -> int | None:
        """Check the layout's version, create or migrate it; the version found (None: new)."""
        found = self._db.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise JournalTooNew(
                f"{self.path}: lease journal schema {found}, written by {self._written_by()}; "
                f"this is nefeature {__version__}, which reads schema {SCHEMA_VERSION} at most. "
                "Run the newer release, or restore the copy of the journal made before the "
                "upgrade (docs/operations.md)")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        fresh = self._db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'leases'").fetchone()[0] == 0
        if not fresh and found < SCHEMA_VERSION:
            backup = self.path.with_name(f"{self.path.name}.schema-{found}.bak")
            copy = sqlite3.connect(backup)
            try:
                self._db.backup(copy)
            finally:
                copy.close()
            log.info("%s: lease journal schema %d, migrating to %d (the old journal is copied "
                     "to %s)", self.path, found, SCHEMA_VERSION, backup)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if fresh:
                for statement in (LEASES_TABLE, INFO_TABLE):
                    self._db.execute(statement)
            else:
                for version in range(found, SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self._db.execute("INSERT OR REPLACE INTO journal_info VALUES ('written-by', ?)",
                             (WRITTEN_BY,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return None if fresh else found

    def _written_by(self) -> str:
        """The release a journal says wrote it (layouts from 1 on record it)."""
        try:
            row = self._db.execute(
                "SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()
        except sqlite3.Error:
            row = None
        return row[0] if row else "an unknown release"

    def checkpoint_in_background(self, interval: float = 2.0) -> None:
        """Move WAL checkpoints (and their fsync) off the caller's thread.

        A checkpoint on the event loop stalls DHCP and VRRP for as long as the
        disk takes (seen: 180 ms under load); another connection can run it.
        """
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        # the WAL is started over in place (see checkpoint), and cut back to this size then
        self._db.execute(f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * (4096 + 24)}")

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.checkpoint()
                except sqlite3.Error:
                    pass  # busy now; the next round will do it

        self._checkpointer = threading.Thread(target=run, name="lease-journal-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    def checkpoint(self) -> None:
        """Copy the WAL into the database, from a connection of the checkpointer's own.

        A PASSIVE checkpoint never holds the writer up, but SQLite starts the
        WAL over only when a writer finds every frame already copied, and under
        steady load a commit always lands while the checkpoint runs: the WAL and
        its index (the ``-shm`` file, mapped into the process) would grow for as
        long as the load lasts (issue 9: 2 GB of WAL and 4.6 MB of RSS in a
        10-minute soak).  So once the WAL holds ``WAL_RESTART_FRAMES`` frames, a
        RESTART checkpoint follows the passive one: it has only the frames of
        the last few milliseconds to copy, holds the writer up meanwhile (two
        fsyncs), and leaves the WAL fully copied, so the next commit, a
        millisecond later under load, starts it over from its first frame.  Not
        TRUNCATE: after it every commit extended an empty file, whose block
        allocations then waited behind the checkpoints' fsyncs (an in-line commit
        took 43 ms); the file is cut back to ``journal_size_limit`` instead.  It
        does not wait for the write lock, nor, holding it, for readers (a
        ``SELECT`` over a million rows from another process held every commit back
        for its whole 100 ms): when either is busy it copies what it can and the
        next round tries again.
        """
        if self._checkpoints is None:
            self._checkpoints = sqlite3.connect(self.path, isolation_level=None,
                                                check_same_thread=False)
            # never wait holding the write lock: a busy writer or a reader still on an
            # older snapshot makes the TRUNCATE a passive one, retried at the next round
            self._checkpoints.execute("PRAGMA busy_timeout = 0")
        started = time.perf_counter()
        _busy, frames, _copied = self._checkpoints.execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        passive = time.perf_counter()
        if frames >= self.wal_restart_frames:
            self._checkpoints.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        if self.trace and time.perf_counter() - started > 0.002:
            log.info("%.3f checkpoint of %d frames: passive %.1f ms, restart %.1f ms",
                     time.time(), frames, (passive - started) * 1e3,
                     (time.perf_counter() - passive) * 1e3)

    def load(self) -> list[Lease]:
        rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM leases ORDER BY address")
        states = {state.value: state for state in LeaseState}
        intern = sys.intern

        # COLUMNS are Lease's fields in order: positional (the named tuple made without
        # its __new__'s frame), with a dict for the state, and one string object for each
        # pool and origin (SQLite makes one per row: 100 bytes a lease).
        new = tuple.__new__
        def lease(address, pool, client, hardware_address, state, start, expiry, client_id,
                  hostname, option82, origin, static) -> Lease:
            return new(Lease, (address, intern(pool), client, hardware_address, states[state],
                               start, expiry, client_id, hostname, option82, intern(origin),
                               static != 0))

        return list(starmap(lease, rows))

    def load_synced_until(self) -> dict[str, float]:
        """Per remote-backup-service, the time up to which the peer holds every lease
        change of ours (the hot-backup engine's ``synced_until``)."""
        return {service: float(value) for service, value in self._info(SYNCED_UNTIL).items()}

    def load_splits(self) -> dict[str, int]:
        """Per backed-up pool, the split between the two devices' shares last agreed."""
        return {pool: int(value) for pool, value in self._info(SPLIT).items()}

    def _info(self, prefix: str) -> dict[str, str]:
        rows = self._db.execute("SELECT key, value FROM journal_info WHERE key LIKE ?",
                                (prefix + "%",))
        return {key[len(prefix):]: value for key, value in rows}

    def try_commit(self, changes: dict[int, Lease | None],
                   synced_until: dict[str, float] | None = None,
                   splits: dict[str, int] | None = None) -> bool:
        """Write one batch of changes (address -> lease, or None to delete) atomically,
        with ``synced_until`` and ``splits`` when given; False, with nothing written, when
        another connection (a checkpoint) holds the write lock at this moment."""
        if not changes and not synced_until and not splits:
            return True
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _locked(error):
                return False
            raise
        try:
            deletes = [(address,) for address, lease in changes.items() if lease is None]
            if deletes:
                db.executemany("DELETE FROM leases WHERE address = ?", deletes)
            rows = [(lease.address, lease.pool, lease.client, lease.hardware_address,
                     _STATE_TEXT[lease.state], lease.start, lease.expiry, lease.client_id,
                     lease.hostname, lease.option82, lease.origin, lease.static)
                    for lease in changes.values() if lease is not None]
            bulk = len(rows) - len(rows) % ROWS_PER_UPSERT
            for start in range(0, bulk, ROWS_PER_UPSERT):  # a batch backup's page
                db.execute(UPSERT_MANY, tuple(chain.from_iterable(
                    rows[start:start + ROWS_PER_UPSERT])))
            db.executemany(UPSERT, rows[bulk:] if bulk else rows)
            info = [(SYNCED_UNTIL + service, repr(until))
                    for service, until in (synced_until or {}).items()]
            info += [(SPLIT + pool, str(split)) for pool, split in (splits or {}).items()]
            if info:
                db.executemany("INSERT OR REPLACE INTO journal_info (key, value) VALUES (?, ?)",
                               info)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.commits += 1
        return True

    def commit(self, changes: dict[int, Lease | None],
               synced_until: dict[str, float] | None = None,
               splits: dict[str, int] | None = None) -> None:
        """``try_commit``, waiting up to ``LOCK_WAIT`` seconds for the write lock."""
        deadline = time.monotonic() + LOCK_WAIT
        while not self.try_commit(changes, synced_until, splits):
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"{self.path}: database is locked")
            time.sleep(LOCK_POLL)

    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Stop the checkpointer, copy the whole WAL into the database, close."""
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        if self._checkpoints is not None:
            self._checkpoints.close()
        self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        self._db.close()


_STATE_TEXT = {state: state.value for state in LeaseState}  # faster than the Enum's .value


def _locked(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A connection that can neither write nor migrate (safe beside a running device)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)


def describe(path: str | Path) -> dict:
    """What ``nefeature journal info`` prints: layout, writer, leases by state, integrity."""
    db = open_read_only(path)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        try:
            written_by = db.execute(
                "SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()
        except sqlite3.OperationalError:  # layout 0 has no journal_info
            written_by = None
        states = dict(db.execute("SELECT state, count(*) FROM leases GROUP BY state ORDER BY "
                                 "state").fetchall())
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return {"schema": version, "readable": version <= SCHEMA_VERSION,
            "written-by": written_by[0] if written_by else "unknown", "leases": states,
            "integrity": integrity}


def backup(path: str | Path, destination: str | Path) -> int:
    """Copy the journal, consistent even while a device writes it (SQLite's online backup);
    returns the number of leases copied."""
    source = open_read_only(path)
    target = sqlite3.connect(destination)
    try:
        source.backup(target)
        return target.execute("SELECT count(*) FROM leases").fetchone()[0]
    finally:
        target.close()
        source.close()
