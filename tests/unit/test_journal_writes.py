"""How the device writes its journal: one append to the log in line, folded into SQLite by a
process of its own; what a crash leaves is folded at the next start; never an ACK before its
write."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import pytest

from nefeature.datastore.validation import validate_config_text
from nefeature.dhcp.codec import DhcpMessage, MessageType, Option, decode, encode
from nefeature.dhcp import journal as journal_module
from nefeature.dhcp.journal import JournalTooNew, LeaseJournal, snapshot
from nefeature.dhcp.leases import Lease, LeaseState
from nefeature.dhcp.server import Received
from nefeature.node import Device
from tests.conftest import EXAMPLES
from tests.system.netns import wait_for

ADDRESS = 0x0A0A0A0A


def lease(address: int = ADDRESS) -> Lease:
    return Lease(address, "pool1", b"h\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x01",
                 LeaseState.BOUND, 1.0e9, 1.0e9 + 3600)


def hold_write_lock(path) -> sqlite3.Connection:
    """Another connection holding SQLite's write lock, as a checkpoint or another process
    can."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def rows(path) -> set[int]:
    """The addresses in the SQLite file alone (what is folded)."""
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT address FROM leases")}
    finally:
        db.close()


def journaled(path) -> set[int]:
    """The addresses in the journal: SQLite and the log not yet folded."""
    db = snapshot(path)
    try:
        return {row[0] for row in db.execute("SELECT address FROM leases")}
    finally:
        db.close()


def crash(journal: LeaseJournal) -> None:
    """Leave the journal as a killed process would: the log file open, nothing folded."""
    os.close(journal._log)
    journal._db.close()


def test_a_commit_is_in_the_log_at_once_while_sqlite_is_locked_and_folded_after(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    other = hold_write_lock(journal.path)
    started = time.perf_counter()
    journal.commit({ADDRESS: lease()})
    assert time.perf_counter() - started < 1.0, "a commit never waits for SQLite's lock"
    assert rows(journal.path) == set() and journaled(journal.path) == {ADDRESS}
    other.execute("COMMIT")
    journal.close()
    assert rows(journal.path) == {ADDRESS}
    assert not list(tmp_path.glob("leases.sqlite.log-*")), "a closed journal leaves no log"


def test_the_peer_sync_point_is_written_with_the_leases_and_read_back(tmp_path):
    """``synced_until`` goes in the same record as the leases, the newest per service wins,
    and a reopened journal has it, folded or not."""
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    assert journal.load_synced_until() == {}
    journal.commit({ADDRESS: lease()}, {"service1": 1.8e9 + 0.25})
    journal.commit({ADDRESS + 1: lease(ADDRESS + 1)}, {"service1": 1.8e9 + 7.5, "other": 3.0})
    journal.commit({ADDRESS + 2: lease(ADDRESS + 2)})
    crash(journal)
    reopened = LeaseJournal(tmp_path / "leases.sqlite")
    assert reopened.load_synced_until() == {"service1": 1.8e9 + 7.5, "other": 3.0}
    assert len(reopened.load()) == 3
    reopened.close()


def test_a_crash_leaves_every_whole_record_and_drops_one_cut_short(tmp_path):
    """What a kill leaves: log files not folded (the one being written, and one queued
    for the folder), the last record cut short.  The next start folds them in order."""
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.commit({ADDRESS: lease(), ADDRESS + 1: lease(ADDRESS + 1)})
    journal.commit({ADDRESS: None, ADDRESS + 2: lease(ADDRESS + 2)})
    journal.commit({ADDRESS + 3: lease(ADDRESS + 3)})
    with journal._lock:
        journal._start_next_log()  # finished: the folder never got to it
    journal.commit({ADDRESS + 1: lease(ADDRESS + 1)._replace(state=LeaseState.RELEASED)})
    journal.commit({ADDRESS + 4: lease(ADDRESS + 4)})
    log_file = journal._log_path(journal._generation)
    crash(journal)
    whole = log_file.stat().st_size
    with open(log_file, "r+b") as torn:  # the last write cut short
        torn.truncate(whole - 3)
    assert rows(tmp_path / "leases.sqlite") == set()
    reopened = LeaseJournal(tmp_path / "leases.sqlite")
    by_address = {each.address: each for each in reopened.load()}
    assert sorted(by_address) == [ADDRESS + 1, ADDRESS + 2, ADDRESS + 3]
    assert by_address[ADDRESS + 1].state is LeaseState.RELEASED
    assert [f.name for f in tmp_path.glob("leases.sqlite.log-*")] == [
        reopened._log_path(reopened._generation).name], "the folded files are gone"
    reopened.close()


def test_a_log_of_another_format_is_refused_untouched(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.commit({ADDRESS: lease()})
    log_file = journal._log_path(journal._generation)
    crash(journal)
    log_file.write_bytes(b"nefeature lease log 2\n" + log_file.read_bytes()[22:])
    with pytest.raises(JournalTooNew, match="not a lease log this release reads"):
        LeaseJournal(tmp_path / "leases.sqlite")
    assert log_file.read_bytes().startswith(b"nefeature lease log 2\n")


def test_a_snapshot_taken_while_the_folder_folds_has_every_committed_lease(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(journal_module, "FOLD_ROWS", 7)
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.fold_in_background(checkpoint_interval=0.0)
    committed: set[int] = set()
    try:
        for n in range(300):
            journal.commit({ADDRESS + n: lease(ADDRESS + n)})
            committed.add(ADDRESS + n)
            if n % 20 == 0:
                assert journaled(journal.path) == committed
        assert journal._generation > 30, "the folder folded log files meanwhile"
    finally:
        journal.close()
    assert rows(journal.path) == committed


def test_the_log_is_folded_by_a_process_of_its_own_and_by_another_when_it_dies(
        tmp_path, monkeypatch, caplog):
    """The fold's CPU is off the device's GIL; a folder killed loses nothing, and the
    journal starts another."""
    monkeypatch.setattr(journal_module, "FOLD_ROWS", 5)
    monkeypatch.setattr(journal_module, "FOLD_INTERVAL", 0.05)
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.fold_in_background(checkpoint_interval=0.0)
    first = journal._folder
    try:
        assert first.pid != os.getpid() and first.poll() is None
        for n in range(10):
            journal.commit({ADDRESS + n: lease(ADDRESS + n)})
        wait_for(lambda: rows(journal.path) == {ADDRESS + n for n in range(10)}, 10.0,
                 "the folder to fold both finished log files")
        os.kill(first.pid, signal.SIGKILL)
        wait_for(lambda: journal._folder is not first and journal._folder.poll() is None, 10.0,
                 "another folder")
        for n in range(10, 23):
            journal.commit({ADDRESS + n: lease(ADDRESS + n)})
        wait_for(lambda: rows(journal.path) >= {ADDRESS + n for n in range(20)}, 10.0,
                 "the new folder to fold what the log held meanwhile and after")
        assert journaled(journal.path) == {ADDRESS + n for n in range(23)}
    finally:
        journal.close()
    assert "the process folding the log into the database exited" in caplog.text
    assert rows(journal.path) == {ADDRESS + n for n in range(23)}
    assert journal._folder is None and not list(tmp_path.glob("leases.sqlite.log-*"))


def test_folding_held_for_a_batch_backup_waits_for_its_release_or_its_limit(tmp_path,
                                                                            monkeypatch):
    """While held, finished log files stay unfolded (the log keeps every lease); released,
    or held past FOLD_HOLD_LIMIT, the folder gets them all."""
    monkeypatch.setattr(journal_module, "FOLD_ROWS", 5)
    monkeypatch.setattr(journal_module, "FOLD_INTERVAL", 0.05)
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.fold_in_background(checkpoint_interval=0.0)
    first_ten = {ADDRESS + n for n in range(10)}
    try:
        journal.commit({ADDRESS - 1: lease(ADDRESS - 1)})
        wait_for(lambda: rows(journal.path) == {ADDRESS - 1}, 10.0, "a fold before the hold")
        journal.hold_folding(True)
        for n in range(10):
            journal.commit({ADDRESS + n: lease(ADDRESS + n)})
        time.sleep(0.5)  # ten times the folder's interval
        assert rows(journal.path) == {ADDRESS - 1}
        assert len(list(tmp_path.glob("leases.sqlite.log-*"))) >= 3  # two finished, one open
        assert journaled(journal.path) == first_ten | {ADDRESS - 1}
        journal.hold_folding(False)
        wait_for(lambda: rows(journal.path) >= first_ten, 10.0, "the fold once released")
        monkeypatch.setattr(journal_module, "FOLD_HOLD_LIMIT", 0.2)
        journal.hold_folding(True)
        for n in range(10, 20):
            journal.commit({ADDRESS + n: lease(ADDRESS + n)})
        wait_for(lambda: rows(journal.path) >= {ADDRESS + n for n in range(20)}, 10.0,
                 "the fold once the hold outlived its limit")
    finally:
        journal.close()
    assert rows(journal.path) == {ADDRESS + n for n in range(-1, 20)}


def test_the_folder_dies_with_the_device(tmp_path):
    """A device killed (kill -9) takes its folder with it: no process is left writing a
    journal that the next start opens."""
    device = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from nefeature.dhcp.journal import "
         "LeaseJournal; j = LeaseJournal(sys.argv[1]); j.fold_in_background(); "
         "print(j._folder.pid, flush=True); time.sleep(60)", str(tmp_path / "leases.sqlite")],
        stdout=subprocess.PIPE, text=True)
    try:
        folder = int(device.stdout.readline())
        os.kill(folder, 0)  # running
        device.kill()
        device.wait()

        def gone() -> bool:
            try:
                with open(f"/proc/{folder}/stat") as stat:
                    return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # not yet reaped
            except FileNotFoundError:
                return True
        wait_for(gone, 5.0, "the folder to go with its device")
    finally:
        device.kill()
        device.wait()
        device.stdout.close()


def test_a_log_file_folded_already_is_deleted_not_folded_again(tmp_path):
    """Two folders (a device's and an in-line fold, or a start beside a dying folder) may
    list the same file: the second finds it folded under SQLite's lock and only deletes it,
    so an old file never brings back a lease a later one deleted."""
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    journal.commit({ADDRESS: lease()})
    with journal._lock:
        first = journal._start_next_log()
    journal.commit({ADDRESS: None, ADDRESS + 1: lease(ADDRESS + 1)})
    first_bytes = journal._log_path(first).read_bytes()
    journal.fold()
    assert rows(journal.path) == {ADDRESS + 1}
    journal._log_path(first).write_bytes(first_bytes)  # as listed by the slower folder
    assert journal_module.fold_log_files(journal._db, journal.path, first) == first + 1
    assert rows(journal.path) == {ADDRESS + 1}, "the deleted lease stays deleted"
    assert not journal._log_path(first).exists()
    journal.close()


class Wire:
    """Stands in for the DHCP sockets: what the device sent, decoded."""

    def __init__(self) -> None:
        self.sent: list[DhcpMessage] = []

    def send(self, replies) -> None:
        self.sent.extend(decode(reply.data) for reply in replies)

    def of_type(self, kind: int) -> list[DhcpMessage]:
        return [m for m in self.sent if m.message_type == kind]

    def close(self) -> None:
        pass


def relayed(kind: int, mac: int, options: dict[int, bytes] | None = None) -> Received:
    opts = {Option.MESSAGE_TYPE: bytes([kind]), **(options or {})}
    chaddr = (b"\x02\x00\x00\x00\x00" + bytes([mac])).ljust(16, b"\x00")
    message = DhcpMessage(xid=mac, giaddr=0x0A0A0A01, chaddr=chaddr, options=opts)
    return Received(encode(message))


def single_device(state_dir) -> tuple[Device, Wire]:
    """The single-server example's device, its replies caught on a Wire."""
    device = Device(validate_config_text((EXAMPLES / "single" / "server.xml").read_text()),
                    state_dir)
    wire = device.sockets = Wire()
    return device, wire


def dora(device: Device, wire: Wire, mac: int) -> int:
    """DISCOVER, then REQUEST of the offer; the offered address."""
    device.on_dhcp_batch([relayed(MessageType.DISCOVER, mac)])
    offer = wire.of_type(MessageType.OFFER)[-1]
    device.on_dhcp_batch([relayed(MessageType.REQUEST, mac, {
        Option.REQUESTED_ADDRESS: struct.pack("!I", offer.yiaddr),
        Option.SERVER_ID: offer.options[Option.SERVER_ID]})])
    return offer.yiaddr


def test_an_ack_leaves_in_line_with_its_lease_in_the_log_even_while_sqlite_is_locked(
        tmp_path):
    device, wire = single_device(tmp_path)
    path = device.journal.path

    async def scenario() -> None:
        device._loop = asyncio.get_running_loop()
        first = dora(device, wire, 1)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == [first]
        assert first in journaled(path)
        other = hold_write_lock(path)  # the fold waits for it; the DHCP path does not
        second = dora(device, wire, 2)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == [first, second]
        assert second in journaled(path)
        other.execute("COMMIT")

    try:
        asyncio.run(scenario())
    finally:
        device.sockets = None
        device.close()
    assert rows(path) >= {1, 2} or len(rows(path)) == 2


def test_the_event_loop_is_uvloop_where_installed_unless_asyncio_is_asked_for(monkeypatch):
    from nefeature.__main__ import event_loop

    monkeypatch.setenv("NEFEATURE_EVENT_LOOP", "asyncio")
    assert event_loop() == ("asyncio", None)
    monkeypatch.delenv("NEFEATURE_EVENT_LOOP")
    name, factory = event_loop()
    try:
        import uvloop
    except ImportError:
        assert (name, factory) == ("asyncio", None)
    else:
        assert name.startswith("uvloop") and factory is uvloop.new_event_loop


def test_a_large_commit_writes_every_row_as_it_reads_back(tmp_path):
    """A commit of many leases (a batch backup's page) goes in statements of many rows."""
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    first = [lease(ADDRESS + n)._replace(hostname=f"pc{n}", client_id=bytes([1, n % 256]),
                                         state=(LeaseState.BOUND, LeaseState.EXPIRED)[n % 2],
                                         origin="peer-sync")
             for n in range(150)]  # two statements of ROWS_PER_UPSERT rows, then the rest
    journal.commit({each.address: each for each in first})
    journal.commit({ADDRESS + 3: None, ADDRESS + 149: first[148]._replace(address=ADDRESS + 149)})
    expected = {each.address: each for each in first if each.address != ADDRESS + 3}
    expected[ADDRESS + 149] = first[148]._replace(address=ADDRESS + 149)
    assert {each.address: each for each in journal.load()} == expected
    journal.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: a disk that can be filled for real (ENOSPC), then given room."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a full disk) needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk, room: int) -> None:
    """Fill the disk but for ``room`` bytes (whole pages)."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(bytes(4096))
        except OSError:
            pass
    os.truncate(disk / "filler", (disk / "filler").stat().st_size - room)


def read_back_after_a_crash(journal: LeaseJournal) -> list[int]:
    """The addresses a start reads from the journal a killed process left."""
    crash(journal)
    reopened = LeaseJournal(journal.path)
    try:
        return sorted(each.address for each in reopened.load())
    finally:
        reopened.close()


def test_a_write_that_fills_the_disk_leaves_no_torn_record_in_front_of_the_next(small_disk):
    """A full disk cuts a commit short (part of its record written, then ENOSPC): the part
    is cut off before the commit raises, so the commits after it, once there is room, are
    read back.  Left in place, it hid every later commit from the next start."""
    journal = LeaseJournal(small_disk / "leases.sqlite")
    journal.commit({ADDRESS: lease()})
    log_file = journal._log_path(journal._generation)
    whole = log_file.stat().st_size
    fill(small_disk, 4096)
    big = {ADDRESS + n: lease(ADDRESS + n) for n in range(1, 400)}  # ~40 KB: over the room
    with pytest.raises(OSError) as failed:
        journal.commit(big)
    assert failed.value.errno == errno.ENOSPC
    assert log_file.stat().st_size == whole, "the part written is cut off again"
    os.unlink(small_disk / "filler")
    journal.commit({ADDRESS + 500: lease(ADDRESS + 500)})
    assert read_back_after_a_crash(journal) == [ADDRESS, ADDRESS + 500]


def test_a_log_file_that_cannot_be_started_leaves_the_journal_writing_the_one_it_has(
        small_disk):
    journal = LeaseJournal(small_disk / "leases.sqlite")
    journal.commit({ADDRESS: lease()})
    fill(small_disk, 0)
    with journal._lock:
        assert journal._start_next_log_or_say_why() is None  # no room for the next file
    os.unlink(small_disk / "filler")
    journal.commit({ADDRESS + 1: lease(ADDRESS + 1)})
    assert read_back_after_a_crash(journal) == [ADDRESS, ADDRESS + 1]


def test_a_device_whose_disk_is_full_holds_its_acks_and_sends_them_once_there_is_room(
        small_disk, caplog):
    """The write of a lease fails (ENOSPC): no DHCPACK for it, and the device does not
    stop writing; it tries again, and takes no DHCP meanwhile (nothing could be
    acknowledged).  Once there is room the lease is on disk, its ACK leaves, and new
    clients are served."""
    device, wire = single_device(small_disk)
    path = device.journal.path

    async def scenario() -> None:
        device._loop = asyncio.get_running_loop()
        fill(small_disk, 0)
        offered = []
        for mac in range(1, 100):  # until the log's last page is full too
            offered.append(dora(device, wire, mac))
            if len(wire.of_type(MessageType.ACK)) < len(offered):
                break
        acked = [m.yiaddr for m in wire.of_type(MessageType.ACK)]
        assert acked == offered[:-1], "no ACK for the lease whose write failed"
        offers = len(wire.of_type(MessageType.OFFER))
        device.on_dhcp_batch([relayed(MessageType.DISCOVER, 100)])
        await asyncio.sleep(0.5)  # a few tries, all failing
        assert len(wire.of_type(MessageType.OFFER)) == offers, "no DHCP taken meanwhile"
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == acked
        os.unlink(small_disk / "filler")
        await wait_for_async(lambda: len(wire.of_type(MessageType.ACK)) == len(offered), 10.0)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == offered
        offered.append(dora(device, wire, 100))
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == offered
        assert journaled(path) >= set(offered)

    try:
        asyncio.run(scenario())
    finally:
        device.sockets = None
        device.close()
    assert "lease journal: write failed" in caplog.text
    assert "lease journal: written again" in caplog.text


async def wait_for_async(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_a_device_stopped_on_a_full_disk_keeps_its_leases_in_the_log(small_disk, caplog):
    device, wire = single_device(small_disk)

    async def scenario() -> None:
        device._loop = asyncio.get_running_loop()
        dora(device, wire, 1)

    asyncio.run(scenario())
    acked = [m.yiaddr for m in wire.of_type(MessageType.ACK)]
    fill(small_disk, 0)
    device.sockets = None
    device.close()  # no room to fold: said, not raised
    assert "not folded at stop" in caplog.text
    os.unlink(small_disk / "filler")
    assert {lease.address for lease in LeaseJournal(small_disk / "leases.sqlite").load()} \
        == set(acked)
