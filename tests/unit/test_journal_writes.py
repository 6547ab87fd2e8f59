"""How the device writes its journal: in line while the write lock is free, on the journal
thread while another connection (a checkpoint) holds it; never an ACK before its write."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
import threading

from nefeature.datastore.validation import validate_config_text
from nefeature.dhcp.codec import DhcpMessage, MessageType, Option, decode, encode
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.leases import Lease, LeaseState
from nefeature.dhcp.server import Received
from nefeature.node import Device
from tests.conftest import EXAMPLES

ADDRESS = 0x0A0A0A0A


def lease(address: int = ADDRESS) -> Lease:
    return Lease(address, "pool1", b"h\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x01",
                 LeaseState.BOUND, 1.0e9, 1.0e9 + 3600)


def hold_write_lock(path) -> sqlite3.Connection:
    """Another connection holding the write lock, as a TRUNCATE checkpoint does."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    return other


def rows(path) -> set[int]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT address FROM leases")}
    finally:
        db.close()


def test_try_commit_gives_up_at_once_while_another_connection_writes(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    other = hold_write_lock(journal.path)
    assert journal.try_commit({ADDRESS: lease()}) is False
    other.execute("COMMIT")
    assert rows(journal.path) == set()
    assert journal.try_commit({ADDRESS: lease()}) is True
    assert rows(journal.path) == {ADDRESS}
    journal.close()


def test_the_peer_sync_point_is_written_with_the_leases_and_read_back(tmp_path):
    """``synced_until`` goes in the same transaction as the leases (a write that the lock
    refuses writes neither), the newest per service wins, and a reopened journal has it."""
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    assert journal.load_synced_until() == {}
    other = hold_write_lock(journal.path)
    assert journal.try_commit({ADDRESS: lease()}, {"service1": 5.0}) is False
    other.execute("COMMIT")
    assert journal.load_synced_until() == {}
    journal.commit({ADDRESS: lease()}, {"service1": 1.8e9 + 0.25})
    journal.commit({ADDRESS + 1: lease(ADDRESS + 1)}, {"service1": 1.8e9 + 7.5, "other": 3.0})
    journal.commit({ADDRESS + 2: lease(ADDRESS + 2)})
    journal.close()
    reopened = LeaseJournal(tmp_path / "leases.sqlite")
    assert reopened.load_synced_until() == {"service1": 1.8e9 + 7.5, "other": 3.0}
    assert len(reopened.load()) == 3
    reopened.close()


def test_commit_waits_for_the_lock_to_be_released(tmp_path):
    journal = LeaseJournal(tmp_path / "leases.sqlite")
    other = hold_write_lock(journal.path)
    release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
    release.start()
    journal.commit({ADDRESS: lease()})
    release.join()
    assert rows(journal.path) == {ADDRESS}
    journal.close()


class Wire:
    """Stands in for the DHCP sockets: what the device sent, decoded."""

    def __init__(self) -> None:
        self.sent: list[DhcpMessage] = []

    def send(self, reply) -> None:
        self.sent.append(decode(reply.data))

    def of_type(self, kind: int) -> list[DhcpMessage]:
        return [m for m in self.sent if m.message_type == kind]

    def close(self) -> None:
        pass


def relayed(kind: int, mac: int, options: dict[int, bytes] | None = None) -> Received:
    opts = {Option.MESSAGE_TYPE: bytes([kind]), **(options or {})}
    chaddr = (b"\x02\x00\x00\x00\x00" + bytes([mac])).ljust(16, b"\x00")
    message = DhcpMessage(xid=mac, giaddr=0x0A0A0A01, chaddr=chaddr, options=opts)
    return Received(encode(message))


def dora(device: Device, wire: Wire, mac: int) -> int:
    """DISCOVER, then REQUEST of the offer; the offered address."""
    device.on_dhcp_batch([relayed(MessageType.DISCOVER, mac)])
    offer = wire.of_type(MessageType.OFFER)[-1]
    device.on_dhcp_batch([relayed(MessageType.REQUEST, mac, {
        Option.REQUESTED_ADDRESS: struct.pack("!I", offer.yiaddr),
        Option.SERVER_ID: offer.options[Option.SERVER_ID]})])
    return offer.yiaddr


def test_an_ack_leaves_in_line_when_the_journal_is_free_and_after_the_threads_write_when_not(
        tmp_path):
    validated = validate_config_text((EXAMPLES / "single" / "server.xml").read_text())
    device = Device(validated, tmp_path)
    wire = device.sockets = Wire()
    path = device.journal.path

    async def scenario() -> None:
        device._loop = asyncio.get_running_loop()
        # The lock is free: the ACK has left when the input returns, its lease on disk.
        first = dora(device, wire, 1)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == [first]
        assert first in rows(path)
        # A checkpoint holds the lock: the write goes to the journal thread, no ACK meanwhile.
        other = hold_write_lock(path)
        second = dora(device, wire, 2)
        for _ in range(10):
            await asyncio.sleep(0.02)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == [first]
        assert second not in rows(path)
        other.execute("COMMIT")
        for _ in range(500):  # bounded: the thread polls the lock every millisecond
            if len(wire.of_type(MessageType.ACK)) == 2:
                break
            await asyncio.sleep(0.01)
        assert [m.yiaddr for m in wire.of_type(MessageType.ACK)] == [first, second]
        assert second in rows(path)

    try:
        asyncio.run(scenario())
    finally:
        device.sockets = None
        device.close()


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
