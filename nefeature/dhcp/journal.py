"""The lease journal: an append-only log in front of one SQLite database (WAL).

One row per address that has a lease worth remembering (bound, released,
expired, declined; offers are never written).  The device group-commits the
table's pending changes once per batch of received datagrams, before it
sends the replies of that batch, so every acknowledged lease is on disk.

A commit is one ``write()`` of one record to the log (``leases.sqlite.log-N``):
the rows, the deleted addresses and the journal_info keys of the commit,
behind its length and CRC-32.  A thread folds the log into SQLite in batches
(every ``FOLD_INTERVAL``, or once a log file holds ``FOLD_ROWS`` rows): the
writer starts the next file, the thread writes the finished one's rows in one
transaction that also records the file's number (``folded-through``), then
deletes the file.  Replaying a log is idempotent (every record sets rows to a
value), so a crash anywhere in that sequence loses nothing: opening a journal
folds whatever files are left, in order, and ignores a torn last record, one
whose write the crash cut short (it was never acknowledged).  This is Kea's
memfile (an appended lease file, compacted later) with SQLite as the
compacted form: a commit costs one system call instead of SQLite's locking,
page writes and WAL index update, a tenth of the CPU for one lease.

Neither the log nor SQLite's WAL (``synchronous=NORMAL``) is fsynced: a
committed lease survives the process being killed (``kill -9``) but not a
power cut, the same guarantee Kea's memfile gives.  Other processes read the
journal through :func:`snapshot` (SQLite plus the unfolded log).

Checkpoints (copying the WAL into the database, with its fsyncs) run on the
folding thread after each fold, and the WAL is kept bounded: see
``checkpoint``.  Closing folds and checkpoints everything, so a cleanly
stopped device leaves one file: no log, no WAL.

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
import marshal
import os
import sqlite3
import struct
import sys
import threading
import time
import zlib
from collections import deque
from itertools import chain, starmap
from operator import itemgetter
from pathlib import Path

from nefeature import __version__

from nefeature.dhcp.leases import Lease, LeaseState

log = logging.getLogger(__name__)

#: WAL frames (one per page written, 4 KiB each) after which the WAL is started over.
WAL_RESTART_FRAMES = 8192

#: How long a fold waits for the write lock (another process may hold it).
LOCK_WAIT = 5.0

#: The log: ``leases.sqlite.log-N``, a line naming its format, then records of (length,
#: CRC-32) and a marshalled (rows, deleted addresses, journal_info pairs).
LOG_SUFFIX = ".log-"
LOG_FORMAT = b"nefeature lease log 1\n"
RECORD_HEADER = struct.Struct("!II")
#: A log file is folded into SQLite once it holds this many rows, or is this old.
FOLD_ROWS = 4096
FOLD_INTERVAL = 1.0
#: Checkpoints run after a fold at most this often.
CHECKPOINT_INTERVAL = 2.0

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
FOLDED_THROUGH = "folded-through"  # the number of the last log file folded into SQLite
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
    """Durable copy of the lease table: ``commit`` appends to the log, a thread folds it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            #: the layout version the file had when opened (None: a new journal)
            self.found_version = self._open_layout()
            self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}")
            folded = self._fold_leftover_logs()
        except BaseException:
            self._db.close()
            raise
        self.wal_restart_frames = WAL_RESTART_FRAMES
        self._lock = threading.Lock()  # the log file being written and what waits to be folded
        self._folding = threading.Lock()  # one fold at a time, in the log files' order
        self._generation = folded + 1
        self._log = self._create_log()
        self._unfolded: list[tuple] = []  # the records in the log file being written
        self._unfolded_rows = 0
        self._log_started = time.monotonic()
        self._to_fold: deque[tuple[int, list[tuple]]] = deque()  # finished log files
        self._background: sqlite3.Connection | None = None  # the folding thread's connection
        self._folder: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_checkpoint = 0.0
        self.trace = False  # log folds and checkpoints that take over 2 ms (nefeature.slowtrace)

    def _log_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.name}{LOG_SUFFIX}{generation}")

    def _create_log(self) -> int:
        log_file = os.open(self._log_path(self._generation),
                           os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.write(log_file, LOG_FORMAT)
        return log_file

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

    def _fold_leftover_logs(self) -> int:
        """Fold the log files a crash (or a kill) left, in order; the last number folded."""
        folded = folded_through(self._db)
        for generation, path in log_files(self.path):
            if generation > folded:
                data = read_log_file(path)
                records, valid = read_records(data)
                if valid < len(data):
                    log.warning("%s: the last %d bytes are a record cut short (never "
                                "acknowledged): ignored", path, len(data) - valid)
                _fold(self._db, generation, records)
                folded = generation
            path.unlink()
        return folded

    def _written_by(self) -> str:
        """The release a journal says wrote it (layouts from 1 on record it)."""
        try:
            row = self._db.execute(
                "SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()
        except sqlite3.Error:
            row = None
        return row[0] if row else "an unknown release"

    def fold_in_background(self, checkpoint_interval: float = CHECKPOINT_INTERVAL) -> None:
        """Fold the log and checkpoint the WAL on a thread of their own, not the caller's.

        A checkpoint on the event loop stalls DHCP and VRRP for as long as the
        disk takes (seen: 180 ms under load), and a fold of thousands of rows
        takes milliseconds.
        """
        self._background = sqlite3.connect(self.path, isolation_level=None,
                                           check_same_thread=False)
        for writer in (self._db, self._background):
            writer.execute("PRAGMA wal_autocheckpoint=0")
            # the WAL is started over in place (see checkpoint), and cut back to this size then
            writer.execute(f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * (4096 + 24)}")

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(FOLD_INTERVAL)
                self._wake.clear()
                with self._lock:
                    if time.monotonic() - self._log_started >= FOLD_INTERVAL:
                        self._start_next_log()
                try:
                    self._fold_finished(self._background)
                    if time.monotonic() - self._last_checkpoint >= checkpoint_interval:
                        self._last_checkpoint = time.monotonic()
                        self.checkpoint()
                except sqlite3.Error as error:
                    log.warning("%s: folding the log into the database failed (%s); the log "
                                "keeps every lease, retrying", self.path, error)
                    self._stop.wait(FOLD_INTERVAL)

        self._folder = threading.Thread(target=run, name="lease-journal-fold", daemon=True)
        self._folder.start()

    def checkpoint(self) -> None:
        """Copy the WAL into the database, from the folding thread's connection.

        A PASSIVE checkpoint never holds the writer up, but SQLite starts the
        WAL over only when a writer finds every frame already copied.  So once
        the WAL holds ``WAL_RESTART_FRAMES`` frames, a RESTART checkpoint
        follows the passive one: it leaves the WAL fully copied, so the next
        fold starts it over from its first frame.  Not TRUNCATE: after it every
        write extended an empty file, whose block allocations then waited
        behind the checkpoints' fsyncs; the file is cut back to
        ``journal_size_limit`` instead.  Folds and checkpoints run one after
        the other on one thread, so no write lands during a checkpoint; a
        reader still on an older snapshot (a ``SELECT`` over a million rows
        from another process) makes it stop short, and it never waits for one:
        the next round tries again.
        """
        db = self._background if self._background is not None else self._db
        db.execute("PRAGMA busy_timeout = 0")
        try:
            started = time.perf_counter()
            _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            passive = time.perf_counter()
            if frames >= self.wal_restart_frames:
                db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}")
        if self.trace and time.perf_counter() - started > 0.002:
            log.info("%.3f checkpoint of %d frames: passive %.1f ms, restart %.1f ms",
                     time.time(), frames, (passive - started) * 1e3,
                     (time.perf_counter() - passive) * 1e3)

    def load(self) -> list[Lease]:
        self.fold()
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
        self.fold()
        rows = self._db.execute("SELECT key, value FROM journal_info WHERE key LIKE ?",
                                (prefix + "%",))
        return {key[len(prefix):]: value for key, value in rows}

    def commit(self, changes: dict[int, Lease | None],
               synced_until: dict[str, float] | None = None,
               splits: dict[str, int] | None = None) -> None:
        """Write one batch of changes (address -> lease, or None to delete) atomically,
        with ``synced_until`` and ``splits`` when given: one record, one write() to the
        log.  Once this returns, the changes survive the process being killed."""
        if not changes and not synced_until and not splits:
            return
        rows = [(lease.address, lease.pool, lease.client, lease.hardware_address,
                 _STATE_TEXT[lease.state], lease.start, lease.expiry, lease.client_id,
                 lease.hostname, lease.option82, lease.origin, lease.static)
                for lease in changes.values() if lease is not None]
        deletes = [address for address, lease in changes.items() if lease is None] \
            if len(rows) < len(changes) else []
        info = [(SYNCED_UNTIL + service, repr(until))
                for service, until in (synced_until or {}).items()]
        if splits:
            info += [(SPLIT + pool, str(split)) for pool, split in splits.items()]
        record = (rows, deletes, info)
        payload = marshal.dumps(record)
        data = RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            written = os.write(self._log, data)
            while written < len(data):  # a short write (a full disk raises instead)
                written += os.write(self._log, data[written:])
            self._unfolded.append(record)
            self._unfolded_rows += len(changes)
            fold_now = self._unfolded_rows >= FOLD_ROWS
            if fold_now:
                self._start_next_log()
        if fold_now:
            if self._folder is not None:
                self._wake.set()
            else:  # no folding thread (tools, tests): fold in line
                self._fold_finished(self._db)

    def _start_next_log(self) -> None:
        """Queue the log file being written for folding and start the next (holding the
        lock); nothing to do while it is empty."""
        self._log_started = time.monotonic()
        if not self._unfolded:
            return
        self._to_fold.append((self._generation, self._unfolded))
        os.close(self._log)
        self._generation += 1
        self._log = self._create_log()
        self._unfolded, self._unfolded_rows = [], 0

    def fold(self) -> None:
        """Fold the whole log into SQLite now, in line (``load`` and ``close`` do)."""
        with self._lock:
            self._start_next_log()
        self._fold_finished(self._db)

    def _fold_finished(self, db: sqlite3.Connection) -> None:
        """Fold every finished log file into SQLite, oldest first, and delete it."""
        with self._folding:
            self._fold_queued(db)

    def _fold_queued(self, db: sqlite3.Connection) -> None:
        while True:
            with self._lock:
                if not self._to_fold:
                    return
                generation, records = self._to_fold[0]
            started = time.perf_counter()
            _fold(db, generation, records)
            with self._lock:
                self._to_fold.popleft()
            self._log_path(generation).unlink(missing_ok=True)
            if self.trace and time.perf_counter() - started > 0.002:
                log.info("%.3f fold of %d records: %.1f ms", time.time(), len(records),
                         (time.perf_counter() - started) * 1e3)

    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Stop the folding thread, fold the whole log, copy the WAL into the database,
        close: one file left."""
        self._stop.set()
        self._wake.set()
        if self._folder is not None:
            self._folder.join(timeout=10)
        self.fold()
        os.close(self._log)
        self._log_path(self._generation).unlink(missing_ok=True)
        if self._background is not None:
            self._background.close()
        self._db.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        self._db.close()


_STATE_TEXT = {state: state.value for state in LeaseState}  # faster than the Enum's .value


def log_files(path: Path) -> list[tuple[int, Path]]:
    """The journal's log files, by number."""
    prefix = path.name + LOG_SUFFIX
    found = []
    for entry in path.parent.glob(prefix + "*"):
        number = entry.name[len(prefix):]
        if number.isdigit():
            found.append((int(number), entry))
    return sorted(found)


def read_log_file(path: Path) -> bytes:
    """The records of a log file (what follows the line naming its format)."""
    data = path.read_bytes()
    if data.startswith(LOG_FORMAT):
        return data[len(LOG_FORMAT):]
    if LOG_FORMAT.startswith(data):
        return b""  # created, and the process killed before its first line was whole
    raise JournalTooNew(f"{path}: not a lease log this release reads (it starts with "
                        f"{data[:40]!r}); run the release that wrote it")


def read_records(data: bytes) -> tuple[list[tuple], int]:
    """The records of a log file's bytes, up to the first one cut short or damaged; and
    the length of what is whole."""
    records = []
    offset = 0
    while offset + RECORD_HEADER.size <= len(data):
        length, crc = RECORD_HEADER.unpack_from(data, offset)
        start, end = offset + RECORD_HEADER.size, offset + RECORD_HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        records.append(marshal.loads(data[start:end]))
        offset = end
    return records, offset


def folded_through(db: sqlite3.Connection) -> int:
    try:
        row = db.execute("SELECT value FROM journal_info WHERE key = ?",
                         (FOLDED_THROUGH,)).fetchone()
    except sqlite3.OperationalError:  # layout 0 has no journal_info
        return 0
    return int(row[0]) if row else 0


def _fold(db: sqlite3.Connection, generation: int | None, records: list[tuple]) -> None:
    """Apply log records, in order, to the database in one transaction (with the log
    file's number as ``folded-through``, unless None)."""
    rows: dict[int, tuple | None] = {}
    info: dict[str, str] = {}
    for new_rows, deletes, new_info in records:  # in C loops: the thread holds the GIL less
        rows.update(dict.fromkeys(deletes))
        rows.update(zip(map(itemgetter(0), new_rows), new_rows))
        info.update(new_info)
    if generation is not None:
        info[FOLDED_THROUGH] = str(generation)
    db.execute("BEGIN IMMEDIATE")
    try:
        deletes = [(address,) for address, row in rows.items() if row is None]
        if deletes:
            db.executemany("DELETE FROM leases WHERE address = ?", deletes)
        upserts = [row for row in rows.values() if row is not None]
        bulk = len(upserts) - len(upserts) % ROWS_PER_UPSERT
        for start in range(0, bulk, ROWS_PER_UPSERT):
            db.execute(UPSERT_MANY, tuple(chain.from_iterable(
                upserts[start:start + ROWS_PER_UPSERT])))
        db.executemany(UPSERT, upserts[bulk:])
        if info:
            db.executemany("INSERT OR REPLACE INTO journal_info (key, value) VALUES (?, ?)",
                           info.items())
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A connection to the SQLite file alone that can neither write nor migrate (safe
    beside a running device; what the log holds is not in it: see ``snapshot``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)


#: Attempts ``snapshot`` makes when the device folds a log file while it reads.
SNAPSHOT_ATTEMPTS = 20


def snapshot(path: str | Path, destination: str | Path = ":memory:") -> sqlite3.Connection:
    """A consistent copy of a journal, safe while a device writes it: the database
    (SQLite's online backup) with the log files not yet folded applied on top.

    The copy says which log file it holds folded (``folded-through``); the files
    after it are read in order.  A file missing from that run was folded and
    deleted after the copy was taken, so the copy is taken again.
    """
    path = Path(path)
    for _attempt in range(SNAPSHOT_ATTEMPTS):
        source = open_read_only(path)
        copy = sqlite3.connect(destination, isolation_level=None)
        try:
            source.backup(copy)
        finally:
            source.close()
        try:
            records = unfolded_records(path, folded_through(copy))
        except FileNotFoundError:
            copy.close()
            continue
        if records:
            _fold(copy, None, records)
        return copy
    raise sqlite3.OperationalError(f"{path}: the device kept folding its log while it was read")


def unfolded_records(path: Path, folded: int) -> list[tuple]:
    """The records of the log files after the one numbered ``folded``, in order;
    FileNotFoundError when one of them is gone (folded and deleted meanwhile: read the
    database again)."""
    records: list[tuple] = []
    expected = folded + 1
    for generation, log_file in log_files(path):
        if generation <= folded:
            continue  # folded, not yet deleted
        if generation != expected:
            raise FileNotFoundError(log_file)
        records += read_records(read_log_file(log_file))[0]
        expected += 1
    return records


def describe(path: str | Path) -> dict:
    """What ``nefeature journal info`` prints: layout, writer, leases by state, integrity."""
    raw = open_read_only(path)
    try:
        version = raw.execute("PRAGMA user_version").fetchone()[0]
        integrity = raw.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        raw.close()
    db = snapshot(path) if version <= SCHEMA_VERSION else open_read_only(path)
    try:
        try:
            written_by = db.execute(
                "SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()
        except sqlite3.OperationalError:  # layout 0 has no journal_info
            written_by = None
        states = dict(db.execute("SELECT state, count(*) FROM leases GROUP BY state ORDER BY "
                                 "state").fetchall())
    finally:
        db.close()
    return {"schema": version, "readable": version <= SCHEMA_VERSION,
            "written-by": written_by[0] if written_by else "unknown", "leases": states,
            "integrity": integrity}


def backup(path: str | Path, destination: str | Path) -> int:
    """Copy the journal, consistent even while a device writes it (``snapshot``), to a
    file that is a journal with no log; returns the number of leases copied."""
    target = snapshot(path, destination)
    try:
        return target.execute("SELECT count(*) FROM leases").fetchone()[0]
    finally:
        target.close()
