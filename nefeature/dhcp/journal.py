"""The lease journal: an append-only log in front of one SQLite database (WAL).

One row per address that has a lease worth remembering (bound, released,
expired, declined; offers are never written).  The device group-commits the
table's pending changes once per batch of received datagrams, before it
sends the replies of that batch, so every acknowledged lease is on disk.

A commit is one ``write()`` of one record to the log (``leases.sqlite.log-N``):
the rows, the deleted addresses and the journal_info keys of the commit,
behind its length and CRC-32.  The log is folded into SQLite in batches
(every ``FOLD_INTERVAL``, or once a log file holds ``FOLD_ROWS`` rows): the
writer starts the next file, and the folder writes the finished one's rows in
one transaction that also records the file's number (``folded-through``),
then deletes the file.  Replaying a log is idempotent (every record sets rows
to a value), so a crash anywhere in that sequence loses nothing: opening a
journal folds whatever files are left, in order, and ignores a torn last
record, one whose write the crash cut short (it was never acknowledged).
A write that fails while the process lives (a full disk) raises, and what it
wrote of its record is cut off again first, so no record follows a torn one;
the device tries the write again until it succeeds (``nefeature.node``).
This is Kea's memfile (an appended lease file, compacted later) with SQLite
as the compacted form: a commit costs one system call instead of SQLite's
locking, page writes and WAL index update, a tenth of the CPU for one lease.

The folder is a process of its own (``python -m nefeature.dhcp.journal``),
as Kea's lease file cleanup is: a fold of thousands of rows is CPU work that
a thread would do under the device's GIL, and each system call of the event
loop then waited for the GIL's switch interval (seen: the backup's loop 20-30
ms late all through a batch backup of a million leases).  The device tells it
the number of each log file it finishes, on a pipe; it answers with the
number folded through.  It runs at a lower priority (``FOLDER_NICENESS``), so
a busy machine serves first and folds after; a device receiving a batch
backup holds it back until the batch is in (``hold_folding``).  It dies with
the device (``PR_SET_PDEATHSIG``); if it dies alone, the device starts
another, and the log keeps every lease meanwhile.  Folding checks
``folded-through`` inside its transaction, so two folders (a device's and a
start's, or an in-line fold) never fold a file twice.

Neither the log nor SQLite's WAL (``synchronous=NORMAL``) is fsynced: a
committed lease survives the process being killed (``kill -9``) but not a
power cut, the same guarantee Kea's memfile gives.  Other processes read the
journal through :func:`snapshot` (SQLite plus the unfolded log).

Checkpoints (copying the WAL into the database, with its fsyncs) run in the
folder after its folds, and the WAL is kept bounded: see
``checkpoint_wal``.  Closing folds and checkpoints everything, so a cleanly
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

import errno
import logging
import marshal
import os
import select
import sqlite3
import subprocess
import struct
import sys
import threading
import time
import zlib
from contextlib import contextmanager
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
BUSY_TIMEOUT = f"PRAGMA busy_timeout = {int(LOCK_WAIT * 1000)}"
#: The WAL is started over in place (see checkpoint_wal), and cut back to this size then.
WAL_SIZE_LIMIT = f"PRAGMA journal_size_limit = {WAL_RESTART_FRAMES * (4096 + 24)}"

#: The log: ``leases.sqlite.log-N``, a line naming its format, then records of (length,
#: CRC-32) and a marshalled (rows, deleted addresses, journal_info pairs).
LOG_SUFFIX = ".log-"
LOG_FORMAT = b"nefeature lease log 1\n"
RECORD_HEADER = struct.Struct("!II")
#: A log file is folded into SQLite once it holds this many rows, or is this old.  A fold
#: writes each page of the table it changes once, so the more rows a fold has, the less a
#: row costs: at 13,000 renewals a second over 60,000 leases, 4.0 us a row at 4,096 rows a
#: file, 3.2 at 8,192, and no less at 13,000 (``bench/journal_fold``).  A fold holds its
#: file's rows in memory: 8.5 MB at 8,192 rows (4.3 at 4,096, 14 at 16,384).
FOLD_ROWS = 8192
FOLD_INTERVAL = 1.0
#: Checkpoints run after a fold at most this often.
CHECKPOINT_INTERVAL = 2.0
#: The longest ``hold_folding`` keeps finished log files from the folder.
FOLD_HOLD_LIMIT = 30.0
#: How long ``fold`` and ``close`` wait for the folder before folding in line (or killing it).
FOLDER_WAIT = 2 * LOCK_WAIT
#: The folder's nice value: on a busy machine the device's own work goes first, and the
#: folder catches up when the CPU is free (the log holds every lease meanwhile).
FOLDER_NICENESS = 10

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
    """Durable copy of the lease table: ``commit`` appends to the log, a folder folds it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            #: the layout version the file had when opened (None: a new journal)
            self.found_version = self._open_layout()
            self._db.execute(BUSY_TIMEOUT)
            folded = fold_log_files(self._db, self.path)  # what a crash (or a kill) left
        except BaseException:
            self._db.close()
            raise
        self._lock = threading.Lock()  # the log file being written, and the folder's pipe
        self._generation = folded + 1
        self._log = self._create_log(self._generation)
        self._log_end = len(LOG_FORMAT)  # where the log's whole records end
        self._log_torn = False  # a failed write left bytes past _log_end
        self._log_rows = 0
        self._log_started = time.monotonic()
        self._folded = threading.Condition()  # notified as the folder reports progress
        self._folded_through = folded
        self._folder: subprocess.Popen | None = None  # the folding process
        self._checkpoint_interval = CHECKPOINT_INTERVAL
        self._watcher: threading.Thread | None = None  # reads the folder's reports
        self._stop = threading.Event()
        self._fold_held_since: float | None = None  # hold_folding(True), monotonic
        self.trace = False  # log folds and checkpoints that take over 2 ms (nefeature.slowtrace)

    def _log_path(self, generation: int) -> Path:
        return self.path.with_name(f"{self.path.name}{LOG_SUFFIX}{generation}")

    def _create_log(self, generation: int) -> int:
        path = self._log_path(generation)
        log_file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            if os.write(log_file, LOG_FORMAT) != len(LOG_FORMAT):
                raise OSError(errno.ENOSPC, "short write of the log's first line")
        except OSError:
            os.close(log_file)
            path.unlink(missing_ok=True)
            raise
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
        with _transaction(self._db):
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
        return None if fresh else found

    def _written_by(self) -> str:
        """The release a journal says wrote it (layouts from 1 on record it)."""
        try:
            row = self._db.execute(
                "SELECT value FROM journal_info WHERE key = 'written-by'").fetchone()
        except sqlite3.Error:
            row = None
        return row[0] if row else "an unknown release"

    def fold_in_background(self, checkpoint_interval: float = CHECKPOINT_INTERVAL) -> None:
        """Fold the log and checkpoint the WAL in a process of their own (the folder), not
        in the caller's: a checkpoint on the event loop stalls DHCP and VRRP for as long
        as the disk takes (seen: 180 ms under load), and a fold on a thread holds the GIL
        the loop needs (see the module's docstring)."""
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.execute(WAL_SIZE_LIMIT)
        self._checkpoint_interval = checkpoint_interval
        self._folder = self._start_folder()
        self._watcher = threading.Thread(target=self._watch_folder, name="lease-journal-folder",
                                         daemon=True)
        self._watcher.start()

    def _start_folder(self) -> subprocess.Popen:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder runs this code
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
        folder = subprocess.Popen(
            [sys.executable, "-m", "nefeature.dhcp.journal", str(self.path),
             repr(self._checkpoint_interval), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        os.set_blocking(folder.stdin.fileno(), False)  # the event loop never waits on it
        return folder

    def _watch_folder(self) -> None:
        """The folder's reports, the log file started over once it is ``FOLD_INTERVAL``
        old, and a new folder if the one running dies."""
        while not self._stop.is_set():
            folder = self._folder
            if folder is None:  # closed
                return
            readable, _, _ = select.select([folder.stdout], [], [], FOLD_INTERVAL)
            if not readable:
                with self._lock:
                    if time.monotonic() - self._log_started >= FOLD_INTERVAL:
                        self._start_next_log_or_say_why()
                    self._fold_held()
                continue
            report = os.read(folder.stdout.fileno(), 4096)  # whole lines: one write() each
            if report:
                with self._folded:
                    self._folded_through = max(self._folded_through, *map(int, report.split()))
                    self._folded.notify_all()
                continue
            if self._stop.is_set():
                return
            log.warning("%s: the process folding the log into the database exited (status "
                        "%s); starting another, the log keeps every lease meanwhile",
                        self.path, folder.wait())
            folder.stdin.close()
            folder.stdout.close()
            if self._stop.wait(FOLD_INTERVAL):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                self._folder = self._start_folder()
                self._request_fold(self._generation - 1)

    def _request_fold(self, through: int) -> None:
        """Ask the folder to fold the log files up to number ``through`` (holding the lock)."""
        try:
            os.write(self._folder.stdin.fileno(), b"%d\n" % through)
        except (BlockingIOError, BrokenPipeError):
            pass  # full (a later request asks for more) or dead (its successor is asked)

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
        payload = marshal.dumps((rows, deletes, info))
        data = RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        finished = None
        with self._lock:
            self._append(data)
            self._log_rows += len(changes) or 1  # a record of journal_info alone counts too
            if self._log_rows >= FOLD_ROWS:
                finished = self._start_next_log_or_say_why()
        if finished is not None and self._folder is None:  # no folder (tools, tests)
            self._fold_in_line(finished)

    def _append(self, data: bytes) -> None:
        """Write one record at the end of the log's whole records (holding the lock).

        A write that fails (a full disk, an I/O error) may have written part of the
        record: the part is cut off again before this raises, or before the next record
        if cutting failed too, so no record ever follows a torn one (reading stops at
        the first torn record: every commit after it would be lost)."""
        if self._log_torn:
            self._cut_torn_record()
        try:
            written = os.write(self._log, data)
            while written < len(data):  # a short write: the next one raises if the disk is full
                written += os.write(self._log, data[written:])
        except OSError:
            self._log_torn = True
            try:
                self._cut_torn_record()
            except OSError:
                pass  # tried again before the next record
            raise
        self._log_end += len(data)

    def _cut_torn_record(self) -> None:
        os.ftruncate(self._log, self._log_end)
        os.lseek(self._log, self._log_end, os.SEEK_SET)
        self._log_torn = False

    def _start_next_log_or_say_why(self) -> int | None:
        """``_start_next_log``, where a failure only delays folding: the log file being
        written stays in use, and the next call tries again."""
        try:
            return self._start_next_log()
        except OSError as error:
            log.error("lease journal: cannot start log file %d: %s (still writing %d)",
                      self._generation + 1, error, self._generation)
            return None

    def _start_next_log(self) -> int | None:
        """Close the log file being written and start the next (holding the lock); the
        folder is asked to fold the closed one.  Its number, or None when it was empty
        (then nothing changes).  Raises OSError, nothing changed, when the next cannot
        be created (a full disk)."""
        self._log_started = time.monotonic()
        if not self._log_rows:
            return None
        if self._log_torn:
            self._cut_torn_record()
        next_log = self._create_log(self._generation + 1)
        os.close(self._log)
        finished = self._generation
        self._generation += 1
        self._log = next_log
        self._log_end = len(LOG_FORMAT)
        self._log_rows = 0
        if self._folder is not None and not self._fold_held():
            self._request_fold(finished)
        return finished

    def hold_folding(self, hold: bool) -> None:
        """Keep the finished log files from the folder while ``hold`` (for at most
        ``FOLD_HOLD_LIMIT``), then ask it for all of them.  A device receiving a batch
        backup holds: on two cores the folder's SQLite work (about 3 us a row) would take
        the CPU the batch needs (a million leases: 9.6 s with it, 7.6-8.7 s held), and the
        same work done after the batch is done at the folder's lower priority.  The log
        keeps every lease meanwhile."""
        with self._lock:
            if not hold:
                self._end_fold_hold()
            elif self._fold_held_since is None:
                self._fold_held_since = time.monotonic()

    def _fold_held(self) -> bool:
        """Whether folding is held (holding the lock); a hold past its limit ends here."""
        held = self._fold_held_since
        if held is not None and time.monotonic() - held >= FOLD_HOLD_LIMIT:
            self._end_fold_hold()
        return self._fold_held_since is not None

    def _end_fold_hold(self) -> None:
        """(Holding the lock.)  No hold: the folder is asked for every finished file."""
        if self._fold_held_since is not None:
            self._fold_held_since = None
            if self._folder is not None:
                self._request_fold(self._generation - 1)

    def fold(self) -> None:
        """Fold the whole log into SQLite now (``load`` and ``close`` do): the folder is
        waited for while it runs, in line otherwise."""
        with self._lock:
            self._start_next_log()
            through = self._generation - 1
            if self._folder is not None:
                self._request_fold(through)  # held or not
        if self._folder is not None:
            with self._folded:
                if self._folded.wait_for(lambda: self._folded_through >= through,
                                         timeout=FOLDER_WAIT):
                    return
        self._fold_in_line(through)  # a folder that did not answer is left to catch up

    def _fold_in_line(self, through: int) -> None:
        folded = fold_log_files(self._db, self.path, through, self.trace)
        with self._folded:
            self._folded_through = max(self._folded_through, folded)

    def integrity_check(self) -> str:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        """Stop the folder, fold the whole log, copy the WAL into the database, close: one
        file left."""
        self._stop.set()
        if self._folder is not None:
            with self._lock:
                folder, self._folder = self._folder, None
            folder.stdin.close()  # end of requests: the folder finishes its fold and exits
            try:
                folder.wait(timeout=FOLDER_WAIT)
            except subprocess.TimeoutExpired:
                folder.kill()
                folder.wait()
            self._watcher.join(timeout=FOLDER_WAIT)
            folder.stdout.close()
        self.fold()
        os.close(self._log)
        self._log_path(self._generation).unlink(missing_ok=True)
        self._db.execute(BUSY_TIMEOUT)
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


def fold_log_files(db: sqlite3.Connection, path: Path, through: int | None = None,
                   trace: bool = False) -> int:
    """Fold the journal's log files up to number ``through`` (all with None) into SQLite,
    oldest first, each in one transaction, and delete them; the number folded through.

    ``folded-through`` is read inside each transaction, under SQLite's write lock, so a
    file another folder folded meanwhile is only deleted."""
    folded = folded_through(db)
    for generation, log_file in log_files(path):
        if through is not None and generation > through:
            break
        started = time.perf_counter()
        with _transaction(db):
            folded = folded_through(db)
            if generation > folded:
                data = read_log_file(log_file)
                records, valid = read_records(data)
                if valid < len(data):
                    log.warning("%s: the last %d bytes are a record cut short (never "
                                "acknowledged): ignored", log_file, len(data) - valid)
                _write_records(db, generation, records)
                folded = generation
        log_file.unlink(missing_ok=True)
        if trace and time.perf_counter() - started > 0.002:
            log.info("%.3f fold of log file %d: %.1f ms", time.time(), generation,
                     (time.perf_counter() - started) * 1e3)
    return folded


def checkpoint_wal(db: sqlite3.Connection, restart_frames: int = WAL_RESTART_FRAMES,
                   trace: bool = False) -> None:
    """Copy the WAL into the database.

    A PASSIVE checkpoint never holds the writer up, but SQLite starts the
    WAL over only when a writer finds every frame already copied.  So once
    the WAL holds ``restart_frames`` frames, a RESTART checkpoint
    follows the passive one: it leaves the WAL fully copied, so the next
    fold starts it over from its first frame.  Not TRUNCATE: after it every
    write extended an empty file, whose block allocations then waited
    behind the checkpoints' fsyncs; the file is cut back to
    ``journal_size_limit`` instead.  Folds and checkpoints run one after
    the other in the folder, so no write lands during a checkpoint; a
    reader still on an older snapshot (a ``SELECT`` over a million rows
    from another process) makes it stop short, and it never waits for one:
    the next round tries again.
    """
    db.execute("PRAGMA busy_timeout = 0")
    try:
        started = time.perf_counter()
        _busy, frames, _copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        passive = time.perf_counter()
        if frames >= restart_frames:
            db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        db.execute(BUSY_TIMEOUT)
    if trace and time.perf_counter() - started > 0.002:
        log.info("%.3f checkpoint of %d frames: passive %.1f ms, restart %.1f ms",
                 time.time(), frames, (passive - started) * 1e3,
                 (time.perf_counter() - passive) * 1e3)


@contextmanager
def _transaction(db: sqlite3.Connection):
    """One write transaction (taking SQLite's write lock at once): committed at the end
    of the block, rolled back if it raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _write_records(db: sqlite3.Connection, generation: int | None, records: list[tuple]) -> None:
    """Apply log records, in order, inside the caller's transaction (with the log file's
    number as ``folded-through``, unless None)."""
    rows: dict[int, tuple | None] = {}
    info: dict[str, str] = {}
    for new_rows, deletes, new_info in records:  # in C loops
        rows.update(dict.fromkeys(deletes))
        rows.update(zip(map(itemgetter(0), new_rows), new_rows))
        info.update(new_info)
    if generation is not None:
        info[FOLDED_THROUGH] = str(generation)
    deletes = [(address,) for address, row in rows.items() if row is None]
    if deletes:
        db.executemany("DELETE FROM leases WHERE address = ?", deletes)
    # In the table's order, each page of the table is changed once per fold; in the order
    # the clients came, a page left SQLite's cache (2 MB) and was written to the WAL again
    # for its next row (renewals at random addresses: 5.9 -> 4.0 us a row, 4,096 a fold).
    upserts = [row for _address, row in sorted(rows.items()) if row is not None]
    bulk = len(upserts) - len(upserts) % ROWS_PER_UPSERT
    for start in range(0, bulk, ROWS_PER_UPSERT):
        db.execute(UPSERT_MANY, tuple(chain.from_iterable(
            upserts[start:start + ROWS_PER_UPSERT])))
    db.executemany(UPSERT, upserts[bulk:])
    if info:
        db.executemany("INSERT OR REPLACE INTO journal_info (key, value) VALUES (?, ?)",
                       info.items())


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
            with _transaction(copy):
                _write_records(copy, None, records)
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


# --- the folder: ``python -m nefeature.dhcp.journal PATH CHECKPOINT-INTERVAL DEVICE-PID``,
# started by LeaseJournal.fold_in_background ---

PR_SET_PDEATHSIG = 1


def _die_with(device_pid: int) -> None:
    """Be killed when the device is (a folder left behind would write a journal that the
    device's next start folds too); exit now if it is gone already.  The signals that stop
    the device (SIGTERM from systemd to the whole unit, SIGINT from a terminal to the
    process group) are ignored: the device closes the pipe when it has stopped."""
    import ctypes
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("the folder cannot ask to die with its device (errno %d)", ctypes.get_errno())
    if os.getppid() != device_pid:
        sys.exit(0)


def run_folder(path: Path, checkpoint_interval: float) -> None:
    """Read requests (``N\\n``: fold the log files up to number N) from stdin until it
    closes; after each, report the number folded through on stdout, and checkpoint the WAL
    at most every ``checkpoint_interval`` seconds."""
    trace = bool(os.environ.get("NEFEATURE_TRACE_SLOW_MS"))  # as nefeature.slowtrace
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(BUSY_TIMEOUT)
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(WAL_SIZE_LIMIT)
    last_checkpoint = 0.0
    while requests := os.read(sys.stdin.fileno(), 4096):
        through = max(map(int, requests.split()))
        while True:
            try:
                folded = fold_log_files(db, path, through, trace)
                if time.monotonic() - last_checkpoint >= checkpoint_interval:
                    last_checkpoint = time.monotonic()
                    checkpoint_wal(db, trace=trace)
                break
            except sqlite3.Error as error:
                log.warning("%s: folding the log into the database failed (%s); the log "
                            "keeps every lease, retrying", path, error)
                time.sleep(FOLD_INTERVAL)
        os.write(sys.stdout.fileno(), b"%d\n" % folded)
    db.close()


if __name__ == "__main__":
    _die_with(int(sys.argv[3]))
    os.nice(FOLDER_NICENESS)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("nefeature.dhcp.journal")
    run_folder(Path(sys.argv[1]), float(sys.argv[2]))
