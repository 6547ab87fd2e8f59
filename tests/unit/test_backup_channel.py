"""The remote backup channel over a fake link: handshake, keys, acks, loss and reconnects."""

from __future__ import annotations

import itertools

import pytest

from nefeature.backup.channel import (
    BATCH_FLAG,
    BATCH_STEP_RECORDS,
    BATCH_WINDOW,
    COMPACT_FROM,
    FRAME_HOLD,
    HOLD_FROM_RATE,
    LIVE_WINDOW,
    RATE_WINDOW,
    RECORDS_PER_FRAME,
    Acked,
    BackupChannel,
    BatchAcked,
    BatchFinished,
    BatchStarted,
    ChannelDown,
    ChannelState,
    ChannelUp,
    PeerProfiles,
    RecordsReceived,
)
from nefeature.backup.frames import (
    MAX_FRAME,
    Frame,
    FrameError,
    FrameReader,
    FrameType,
    LeaseRecord,
    ProfileInfo,
    decode_records,
    encode_frame,
    encode_records,
)
from nefeature.dhcp.leases import Lease, LeaseState

KEY = b"correct horse battery staple"
PROFILE = (ProfileInfo(1, "service1", "master"),)
PEER_PROFILE = (ProfileInfo(1, "service1", "slave"),)


def counter_bytes():
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def lease(n: int, **changes) -> Lease:
    base = dict(address=0x0A0A0A00 + n, pool="pool1", client=b"h" + bytes(6) + bytes([n]),
                hardware_address=bytes(5) + bytes([n]), state=LeaseState.BOUND, start=100.0 + n,
                expiry=86500.0 + n, client_id=b"\x01abc", hostname="pc%d" % n,
                option82=b"\x01\x04eth1\x02\x02r1")
    base.update(changes)
    return Lease(**base)


def record(n: int, **changes) -> LeaseRecord:
    return LeaseRecord(1, "pool1", 0x0A0A0A00 + n, lease(n, **changes))


def send_committed(channel: BackupChannel, records: list[LeaseRecord]) -> int:
    """Queue records and release them, as the device does once its journal holds them."""
    seq = channel.send_records(records)
    channel.release(seq)
    return seq


class Link:
    """Two channels joined by a fake TCP connection that can be cut."""

    def __init__(self, key_a=KEY, key_b=KEY):
        self.a = BackupChannel("s1", key_a, random_bytes=counter_bytes(), profiles=PROFILE)
        self.b = BackupChannel("s1", key_b, random_bytes=counter_bytes(), profiles=PEER_PROFILE)
        self.now = 0.0
        self.connected = False

    def connect(self):
        self.connected = True
        self.a.connection_made(self.now)
        self.b.connection_made(self.now)
        self.pump()

    def pump(self, rounds=20, applied=True):
        """Move bytes both ways; the receiver 'commits' and acknowledges when ``applied``.
        Each pump starts FRAME_HOLD after the last: a test's exchanges are not a load."""
        self.now += FRAME_HOLD
        for _ in range(rounds):
            moved = False
            for sender, receiver in ((self.a, self.b), (self.b, self.a)):
                if sender.batch_pending:
                    sender.send_batch_page()  # what the TCP side does, a page per loop turn
                    moved = True
                if sender.batch_received_pending:  # and a page of the peer's batch applied
                    sender.deliver_batch_records()
                    if applied:
                        sender.acknowledge(self.now)
                    moved = True
                data = sender.data_to_send(self.now)
                if data and self.connected:
                    moved = True
                    receiver.data_received(data, self.now)
                    if applied:
                        receiver.acknowledge(self.now)
            for channel in (self.a, self.b):
                if channel.close_reason and self.connected:
                    self.cut(channel.close_reason)
            if not moved:
                return

    def cut(self, reason="cable cut"):
        self.connected = False
        self.a.connection_lost(self.now, reason)
        self.b.connection_lost(self.now, reason)


def received(channel) -> list[LeaseRecord]:
    return [r for e in channel.events if isinstance(e, RecordsReceived) for r in e.records]


def test_records_round_trip_with_every_field():
    records = [record(1), record(2, state=LeaseState.RELEASED, expiry=None, option82=None,
                                  client_id=None, hostname=None),
               LeaseRecord(1, "pool1", 0x0A0A0A09, None)]
    decoded = decode_records(encode_records(records))
    assert decoded[0].lease == records[0].lease.with_changes(origin="peer-sync")
    assert decoded[1].lease.expiry is None and decoded[1].lease.option82 is None
    assert decoded[2] == records[2]


def test_a_page_of_one_shape_decodes_as_record_by_record():
    """A batch page whose records share one shape is unpacked in one pass; any page that
    only starts like one (other lengths, another pool, a deletion, a bad state further
    on) is read record by record, with the same result."""
    uniform = [record(n, state=(LeaseState.BOUND, LeaseState.EXPIRED)[n % 2]) for n in range(1, 10)]
    longer_hostname = [record(n) for n in range(1, 13)]  # pc9, then pc10
    other_pool = uniform[:8] + [LeaseRecord(1, "pool2", 0x0A0A0A20, lease(32, pool="pool2"))]
    deletion = uniform[:8] + [LeaseRecord(1, "pool1", 0x0A0A0A21, None)]
    for records in (uniform, longer_hostname, other_pool, deletion):
        decoded = decode_records(encode_records(records))
        assert [r._replace(lease=r.lease and r.lease.with_changes(origin="local"))
                for r in decoded] == records
    payload = bytearray(encode_records(uniform))
    payload[-(len(payload) - 4) // len(uniform) + 3 + 5 + 4] = 200  # the last record's state
    with pytest.raises(FrameError):
        decode_records(bytes(payload))


def test_handshake_with_key_then_updates_are_acknowledged():
    link = Link()
    link.connect()
    assert link.a.state is ChannelState.UP and link.b.state is ChannelState.UP
    assert any(isinstance(e, ChannelUp) for e in link.b.events)
    assert link.b.peer_profiles == PROFILE
    last = send_committed(link.a, [record(1), record(2), record(3)])
    link.pump()
    assert [r.address for r in received(link.b)] == [0x0A0A0A01, 0x0A0A0A02, 0x0A0A0A03]
    assert received(link.b)[0].lease.option82 == b"\x01\x04eth1\x02\x02r1"
    assert link.a.peer_acked == last == 3 and link.a.pending == 0
    assert any(isinstance(e, Acked) and e.upto == 3 for e in link.a.events)


def test_no_ack_before_the_receiver_commits():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1)])
    link.pump(applied=False)
    assert received(link.b) and link.a.pending == 1
    link.b.acknowledge(link.now)
    link.pump()
    assert link.a.pending == 0


def test_records_queued_while_a_frame_awaits_its_ack_leave_together_after_it():
    """An idle channel sends a record at once; while LIVE_WINDOW frames await the peer's
    ack, new records wait, and the ack lets them out in one frame."""
    link = Link()
    link.connect()
    in_flight = b""
    for n in range(1, LIVE_WINDOW + 1):
        send_committed(link.a, [record(n)])
        data = link.a.data_to_send(link.now)
        assert data, "a frame goes out while the window has room"
        in_flight += data
    held = [record(n) for n in range(LIVE_WINDOW + 1, LIVE_WINDOW + 6)]
    for one in held:
        send_committed(link.a, [one])
        assert link.a.data_to_send(link.now) == b"", "the window is full: the record waits"
    link.b.data_received(in_flight, link.now)
    link.b.acknowledge(link.now)
    link.b.events.clear()
    link.a.data_received(link.b.data_to_send(link.now), link.now)  # the ack
    link.b.data_received(link.a.data_to_send(link.now), link.now)
    deliveries = [e.records for e in link.b.events if isinstance(e, RecordsReceived)]
    assert [[r.address for r in records] for records in deliveries] == [
        [r.address for r in held]], "the held records arrive in one frame"
    assert (link.a.statistics.updates_sent, link.a.statistics.update_frames_sent) == (
        LIVE_WINDOW + len(held), LIVE_WINDOW + 1), "the records a frame carries are counted"
    link.b.acknowledge(link.now)
    link.a.data_received(link.b.data_to_send(link.now), link.now)
    assert link.a.pending == 0


def deliver_and_ack(link) -> list[list[int]]:
    """Carry a's bytes to b, b commits and acks, the ack back to a: the frames b read, as
    the addresses each carried."""
    link.b.events.clear()
    link.b.data_received(link.a.data_to_send(link.now), link.now)
    link.b.acknowledge(link.now)
    link.a.data_received(link.b.data_to_send(link.now), link.now)
    return [[r.address & 0xFF for r in e.records] for e in link.b.events
            if isinstance(e, RecordsReceived)]


def test_under_load_a_frame_waits_until_frame_hold_after_the_one_before():
    """Records arriving at HOLD_FROM_RATE a second or more: once the frames of the last
    RATE_WINDOW show it, the next leaves FRAME_HOLD after the one before (not when the
    ack comes), with all that came meanwhile; frame_deadline is that moment, so the
    device's timer sends it."""
    link = Link()
    link.connect()
    gap = 0.5 / HOLD_FROM_RATE  # records at twice the rate
    load = round(HOLD_FROM_RATE * RATE_WINDOW)  # a window's records at the rate
    start = link.now
    for n in range(1, load + 1):
        link.now += gap
        send_committed(link.a, [record(n)])
        assert deliver_and_ack(link) == [[n]], "each leaves at once until a window shows the load"
    assert link.now - start < RATE_WINDOW
    assert link.a.frame_deadline() is None, "nothing is held"
    frames_before = link.a.statistics.update_frames_sent
    held_from = link.now
    for n in range(load + 1, load + 6):
        link.now += gap
        send_committed(link.a, [record(n)])
        assert deliver_and_ack(link) == [], "held: the records wait for company"
    assert link.a.frame_deadline() == pytest.approx(held_from + FRAME_HOLD)
    link.now = held_from + FRAME_HOLD
    assert deliver_and_ack(link) == [list(range(load + 1, load + 6))]
    assert link.a.pending == 0 and link.a.statistics.update_frames_sent == frames_before + 1


def test_below_hold_from_rate_every_record_leaves_at_once():
    """Records below HOLD_FROM_RATE, every third right after the one before (as DHCP
    exchanges come): none waits, though one frame's rate alone would say load.  A burst
    of a window's load holds the next record, and the hold gives way once a window has
    passed without the load."""
    link = Link()
    link.connect()
    gap = 2.0 / HOLD_FROM_RATE
    for n in range(1, 60):
        link.now += gap if n % 3 else gap / 20
        send_committed(link.a, [record(n)])
        assert deliver_and_ack(link) == [[n]]
        assert link.a.frame_deadline() is None
    burst = round(HOLD_FROM_RATE * RATE_WINDOW)
    send_committed(link.a, [record(n) for n in range(100, 100 + burst)])  # all at once
    assert deliver_and_ack(link) == [list(range(100, 100 + burst))]
    send_committed(link.a, [record(200)])
    assert deliver_and_ack(link) == [], "right after the burst, the next record waits"
    link.now += FRAME_HOLD
    assert deliver_and_ack(link) == [[200]]
    link.now += RATE_WINDOW
    send_committed(link.a, [record(201)])
    assert deliver_and_ack(link) == [[201]], "a window without the load: it is over"


def test_a_full_frame_leaves_without_waiting_for_the_hold():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1), record(2)])
    assert deliver_and_ack(link) == [[1, 2]]
    send_committed(link.a, [record(n % 250 + 1) for n in range(RECORDS_PER_FRAME)])
    assert len(deliver_and_ack(link)) == 1, "a page's worth goes at once"


def test_wrong_key_is_refused_and_nothing_is_delivered():
    link = Link(key_b=b"another key entirely")
    send_committed(link.a, [record(1)])
    link.connect()
    assert link.a.state is ChannelState.DOWN and link.b.state is ChannelState.DOWN
    assert received(link.b) == []
    assert link.a.statistics.frames_rejected + link.b.statistics.frames_rejected >= 1


def test_key_on_one_side_only_is_refused():
    link = Link(key_b=None)
    link.connect()
    assert link.a.state is ChannelState.DOWN


def test_no_common_backup_id_is_refused():
    link = Link()
    link.b.profiles = (ProfileInfo(2, "other", "slave"),)
    link.connect()
    assert link.a.state is ChannelState.DOWN


def test_loss_and_reconnect_deliver_everything_exactly_once():
    link = Link()
    link.connect()
    send_committed(link.a, [record(n) for n in range(1, 6)])
    link.pump()
    # the next updates are lost on a cut cable
    link.connected = False
    send_committed(link.a, [record(n) for n in range(6, 11)])
    link.a.data_to_send(link.now)  # the bytes vanish
    link.cut()
    assert any(isinstance(e, ChannelDown) for e in link.a.events)
    send_committed(link.a, [record(n) for n in range(11, 13)])  # queued while down
    link.connect()
    link.pump()
    addresses = [r.address - 0x0A0A0A00 for r in received(link.b)]
    assert addresses == list(range(1, 13))
    assert link.a.pending == 0


@pytest.mark.parametrize("key", [KEY, None])
def test_the_peers_backlog_is_in_once_its_first_heartbeat_is(key):
    """What a peer queued while the two were apart is resent ahead of its first heartbeat
    on the new connection: once that has arrived, all of it has (the device allocates
    from its own share until then)."""
    link = Link(key, key)
    link.connect()
    assert link.b.peer_backlog_received
    link.cut()
    assert not link.b.peer_backlog_received
    send_committed(link.a, [record(n) for n in range(1, 8)])  # granted alone meanwhile
    link.connected = True
    link.a.connection_made(link.now)
    link.b.connection_made(link.now)
    seen_up_without_backlog = False
    for _ in range(20):  # a's bytes reach b one at a time: every point of the stream
        for byte in link.a.data_to_send(link.now):
            link.b.data_received(bytes([byte]), link.now)
            if link.b.state is ChannelState.UP and not link.b.peer_backlog_received:
                seen_up_without_backlog = True
            if link.b.peer_backlog_received:
                assert len(received(link.b)) == 7
        link.b.acknowledge(link.now)
        link.a.data_received(link.b.data_to_send(link.now), link.now)
    assert seen_up_without_backlog and link.b.peer_backlog_received


def test_a_long_outage_keeps_only_the_newest_update_per_address():
    link = Link()
    link.connect()
    link.cut()
    for round_ in range(40):  # 40 renewals of 250 leases while the peer is away
        send_committed(link.a, [record(n, start=float(round_)) for n in range(1, 251)])
    assert link.a.pending < COMPACT_FROM + 250 * 2
    link.connect()
    link.pump()
    newest = {}
    for r in received(link.b):
        newest[r.address] = r.lease.start
    assert len(newest) == 250 and set(newest.values()) == {39.0}
    assert link.a.pending == 0


def test_resent_updates_already_applied_are_skipped():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1), record(2)])
    link.pump(applied=True)
    # the ack is lost: cut before A hears it, A resends on reconnect
    send_committed(link.a, [record(3)])
    frames = link.a.data_to_send(link.now)
    link.b.data_received(frames, link.now)
    link.b.acknowledge(link.now)
    link.b.data_to_send(link.now)  # ack lost
    link.cut()
    link.connect()
    link.pump()
    assert [r.address - 0x0A0A0A00 for r in received(link.b)] == [1, 2, 3]
    assert link.b.statistics.updates_received == 3


def test_restarted_peer_gets_the_queue_again():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1)])
    link.pump(applied=False)  # B got it but never committed: it dies
    link.cut()
    link.b = BackupChannel("s1", KEY, random_bytes=counter_bytes(), profiles=PEER_PROFILE)
    link.b.random_bytes = lambda n: b"\x07" * n
    link.b.incarnation = 7
    link.connect()
    link.pump()
    assert [r.address - 0x0A0A0A00 for r in received(link.b)] == [1]


def test_batch_backup_in_pages():
    link = Link()
    link.connect()
    link.a.send_batch(1, [record(n % 250, start=float(n)) for n in range(1, 1201)], 1200)
    link.pump()
    kinds = [type(e) for e in link.b.events if isinstance(e, (BatchStarted, BatchFinished,
                                                                RecordsReceived))]
    assert kinds[0] is BatchStarted and kinds[-1] is BatchFinished
    assert kinds.count(RecordsReceived) == 1200 // BATCH_STEP_RECORDS  # a step at a time
    assert all(e.batch for e in link.b.events if isinstance(e, RecordsReceived))
    assert len(received(link.b)) == 1200 and link.a.pending == 0


def test_a_batch_is_read_from_its_source_a_page_at_a_time_and_reports_progress():
    link = Link()
    link.connect()
    taken = []

    def source():
        for n in range(1, 1201):
            taken.append(n)
            yield record(n % 250, start=float(n))

    assert link.a.send_batch(1, source(), 1200)
    assert taken == [] and link.a.batch_pending and link.a.pending == 1200
    link.a.send_batch_page()
    assert len(taken) == RECORDS_PER_FRAME  # one page read, encoded and queued
    link.pump()
    progress = [e for e in link.a.events if isinstance(e, BatchAcked)]
    acked = [e.acked for e in progress]
    assert len(acked) >= 2 and acked == sorted(set(acked)) and acked[-1] == 1200
    assert all(n % RECORDS_PER_FRAME == 0 for n in acked[:-1])  # whole pages
    assert [e.complete for e in progress] == [False] * (len(acked) - 1) + [True]
    assert progress[-1].total == 1200 and not link.a.batch_pending and link.a.pending == 0


def test_a_batch_waits_for_acks_beyond_its_window_so_updates_do_not_queue_behind_it():
    link = Link()
    link.connect()
    link.a.send_batch(1, (record(n % 250 + 1) for n in range(20 * RECORDS_PER_FRAME)),
                      20 * RECORDS_PER_FRAME)
    for _ in range(20):
        link.a.send_batch_page()
    assert link.a.statistics.updates_sent == BATCH_WINDOW * RECORDS_PER_FRAME
    assert not link.a.batch_pending
    seq = send_committed(link.a, [record(251)])  # behind BATCH_WINDOW pages at most
    link.pump(rounds=1)  # B applies the update and acknowledges it, and a step of a page
    assert link.a.peer_acked == seq and not link.a.batch_pending
    link.pump(rounds=RECORDS_PER_FRAME // BATCH_STEP_RECORDS)  # a page applied: the window opens
    assert link.a.statistics.updates_sent > BATCH_WINDOW * RECORDS_PER_FRAME + 1
    link.pump(rounds=1000)
    assert len(received(link.b)) == 20 * RECORDS_PER_FRAME + 1 and link.a.pending == 0


def test_a_real_time_update_is_not_acknowledged_later_for_the_batch_pages_read_with_it():
    """Batch pages read in one go with a real-time update wait in the receiver's inbox
    while the update is handed over and acknowledged; then one page per step, each
    acknowledged on its own numbering."""
    link = Link()
    link.connect()
    a, b = link.a, link.b
    a.send_batch(1, (record(n % 250 + 1) for n in range(3 * RECORDS_PER_FRAME)),
                 3 * RECORDS_PER_FRAME)
    a.send_batch_page()
    a.send_batch_page()
    seq = send_committed(a, [record(251)])
    b.data_received(a.data_to_send(link.now), link.now)  # BATCH_BEGIN, two pages, the update
    assert [[r.address - 0x0A0A0A00 for r in e.records] for e in b.events
            if isinstance(e, (RecordsReceived, BatchStarted))] == [[251]]
    assert b.batch_received_pending
    b.acknowledge(link.now)
    a.data_received(b.data_to_send(link.now), link.now)
    assert a.peer_acked == seq and not any(isinstance(e, BatchAcked) for e in a.events)
    b.events.clear()
    b.deliver_batch_records()  # BATCH_BEGIN and the first step of the first page
    assert [type(e) for e in b.events] == [BatchStarted, RecordsReceived]
    assert b.batch_received == len(b.events[1].records) == BATCH_STEP_RECORDS
    assert b.receiving_batch and not a.receiving_batch
    for _ in range(RECORDS_PER_FRAME // BATCH_STEP_RECORDS - 1):
        b.deliver_batch_records()
    b.acknowledge(link.now)
    a.data_received(b.data_to_send(link.now), link.now)
    assert [(e.acked, e.complete) for e in a.events if isinstance(e, BatchAcked)] \
        == [(RECORDS_PER_FRAME, False)]
    link.pump()
    assert b.batch_received == b.batch_acked == 3 * RECORDS_PER_FRAME
    assert [e.complete for e in a.events if isinstance(e, BatchAcked)][-1]
    assert any(isinstance(e, BatchFinished) for e in b.events) and a.pending == 0
    assert not b.receiving_batch


def test_a_deletion_is_handed_over_after_the_batch_pages_read_before_it():
    """A deletion has no transaction time to compare: a page that still holds the lease
    must not be applied after it."""
    link = Link()
    link.connect()
    a, b = link.a, link.b
    a.send_batch(1, [record(n) for n in range(1, 11)], 10)
    a.send_batch_page()
    send_committed(a, [LeaseRecord(1, "pool1", 0x0A0A0A00 + 5, None)])
    b.data_received(a.data_to_send(link.now), link.now)
    records = [(e.batch, r.lease is None) for e in b.events if isinstance(e, RecordsReceived)
               for r in e.records]
    assert records == [(True, False)] * 10 + [(False, True)]
    assert [type(e) for e in b.events][-3:] == [RecordsReceived, BatchFinished, RecordsReceived]
    assert not b.batch_received_pending


def test_a_batch_page_out_of_its_numbering_or_an_ack_of_pages_never_sent_is_refused():
    link = Link()
    link.connect()
    a, b = link.a, link.b
    b.send_batch(1, [record(n) for n in range(1, 11)], 10)
    b.send_batch_page()  # batch records 1-10
    a._send(Frame(FrameType.BATCH_ACK, seq=11))  # one more than b sent
    b.data_received(a.data_to_send(link.now), link.now)
    assert not any(isinstance(e, BatchAcked) for e in b.events) and b.close_reason is None
    a.send_batch(1, [record(n) for n in range(1, 11)], 10)
    a.send_batch_page()
    a.batch_sent_seq += 1  # numbering skips one
    a._send(Frame(FrameType.UPDATE, seq=a.batch_sent_seq + 3,
                  payload=encode_records([record(1), record(2), record(3)]), flags=0x01))
    b.data_received(a.data_to_send(link.now), link.now)
    b.deliver_batch_records()  # the good page, its BATCH_END, then the next page refused
    assert b.batch_received == len(received(b)) == 10
    assert b.close_reason == "batch page out of sequence"


def test_a_peer_sending_batch_pages_beyond_the_window_is_refused():
    """The inbox holds at most the window's pages: a peer that does not wait for their
    acknowledgement cannot fill the receiver's memory."""
    link = Link()
    link.connect()
    a, b = link.a, link.b
    a.send_batch(1, [record(n % 250 + 1) for n in range(BATCH_WINDOW * 3)], BATCH_WINDOW * 3)
    for page in range(BATCH_WINDOW + 1):  # pages of three, numbered as the channel would
        records = [record(3 * page + n + 1) for n in range(3)]
        a.batch_sent_seq += 3
        a._send(Frame(FrameType.UPDATE, seq=a.batch_sent_seq, payload=encode_records(records),
                      flags=0x01))
        if page == BATCH_WINDOW - 1:
            b.data_received(a.data_to_send(link.now), link.now)
            assert b.close_reason is None  # the window full, within the rule
    b.data_received(a.data_to_send(link.now), link.now)
    assert b.close_reason == f"more than {BATCH_WINDOW} batch pages unacknowledged"


def test_updates_queued_between_two_collections_share_one_frame_in_sequence_order():
    link = Link()
    link.connect()
    for n in (1, 2, 3):
        send_committed(link.a, [record(n)])  # three DHCP exchanges within one group commit
    link.a.send_batch(1, [record(10), record(11)], 2)
    link.a.send_batch_page()
    send_committed(link.a, [record(4)])
    link.pump()
    batches = [[r.address - 0x0A0A0A00 for r in e.records] for e in link.b.events
               if isinstance(e, RecordsReceived)]
    assert batches == [[1, 2, 3], [10, 11], [4]]
    assert link.a.pending == 0


def test_no_batch_while_down_and_an_empty_batch_completes_at_once():
    link = Link()
    assert not link.a.send_batch(1, [], 0)
    link.connect()
    assert link.a.send_batch(1, [], 0)
    link.pump()
    assert [e.complete for e in link.a.events if isinstance(e, BatchAcked)] == [True]
    assert [type(e) for e in link.b.events if isinstance(e, (BatchStarted, BatchFinished))] \
        == [BatchStarted, BatchFinished]


def test_a_batch_cut_by_a_lost_connection_is_dropped_but_updates_between_its_pages_are_not():
    link = Link()
    link.connect()
    link.a.send_batch(1, [record(n % 250 + 1) for n in range(1200)], 1200)
    link.a.send_batch_page()  # batch records 1-500
    send_committed(link.a, [record(251)])  # seq 1
    link.a.send_batch_page()  # batch records 501-1000
    send_committed(link.a, [record(252)])  # seq 2
    link.b.data_received(link.a.data_to_send(link.now), link.now)  # read, not yet applied
    assert link.b.receiving_batch
    link.cut()
    assert not link.b.receiving_batch and not link.b.batch_received_pending
    assert not link.a.batch_pending and link.a.pending == 2  # only the real-time updates
    link.connect()
    link.pump()
    assert [r.address - 0x0A0A0A00 for r in received(link.b)] == [251, 252]
    assert link.b.received_seq == 2 and link.a.pending == 0
    link.cut()  # and once applied they are not resent again
    link.connect()
    link.pump()
    assert len(received(link.b)) == 2


def test_heartbeats_carry_role_changes_and_silence_kills_the_channel():
    link = Link()
    link.connect()
    link.a.set_profiles((ProfileInfo(1, "service1", "slave"),), link.now)
    link.pump()
    assert link.b.peer_profiles[0].state == "slave"
    assert any(isinstance(e, PeerProfiles) for e in link.b.events)
    link.now = link.a.next_deadline()
    link.a.handle_timer(link.now)
    link.b.handle_timer(link.now)
    link.pump()
    assert link.a.statistics.heartbeats_sent >= 2
    link.connected = False  # nothing gets through any more
    link.now += 3.5
    link.a.handle_timer(link.now)
    assert link.a.close_reason == "peer silent"


def test_replayed_frame_fails_authentication():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1)])
    captured = link.a.data_to_send(link.now)
    link.b.data_received(captured, link.now)
    link.b.data_received(captured, link.now)  # replay
    assert link.b.close_reason == "frame authentication failed"
    assert link.b.statistics.frames_rejected == 1


def test_tampered_frame_fails_authentication():
    link = Link()
    link.connect()
    send_committed(link.a, [record(1)])
    captured = bytearray(link.a.data_to_send(link.now))
    captured[40] ^= 0x01
    link.b.data_received(bytes(captured), link.now)
    assert link.b.close_reason == "frame authentication failed"
    assert received(link.b) == []


def test_oversized_and_truncated_frames():
    reader = FrameReader()
    with pytest.raises(FrameError):
        list(reader.feed((MAX_FRAME + 1).to_bytes(4, "big") + b"\x03"))
    reader = FrameReader()
    frame = encode_frame(Frame(FrameType.UPDATE, seq=1, payload=encode_records([record(1)])))
    assert list(reader.feed(frame[:-5])) == []  # waits for the rest
    assert len(list(reader.feed(frame[-5:]))) == 1
    payload = encode_records([record(1), LeaseRecord(1, "pool1", 0x0A0A0A02, None), record(3)])
    for cut in range(len(payload)):  # every truncation is a FrameError, nothing else
        with pytest.raises(FrameError):
            decode_records(payload[:cut])
    with pytest.raises(FrameError):
        decode_records(payload + b"\0")


def test_frames_before_the_handshake_are_refused():
    link = Link(key_a=None, key_b=None)
    link.b.connection_made(0.0)
    link.b.data_received(encode_frame(Frame(FrameType.UPDATE, seq=1,
                                            payload=encode_records([record(1)]))), 0.0)
    assert link.b.close_reason and received(link.b) == []


def test_without_keys_the_channel_still_works():
    link = Link(key_a=None, key_b=None)
    link.connect()
    send_committed(link.a, [record(4)])
    link.pump()
    assert [r.address for r in received(link.b)] == [0x0A0A0A04]


def test_acks_repeat_the_peers_roles_and_only_a_change_is_reported():
    link = Link(key_a=None, key_b=None)
    link.connect()
    link.a.events.clear()
    for n in range(1, 4):  # each ack is a heartbeat carrying the same roles
        send_committed(link.a, [record(n)])
        link.pump()
    assert link.a.peer_acked == 3
    assert not any(isinstance(e, PeerProfiles) for e in link.a.events)
    link.b.set_profiles((ProfileInfo(1, "service1", "master"),), link.now)
    send_committed(link.a, [record(4)])
    link.pump()
    link.b.set_profiles(PEER_PROFILE, link.now)
    link.pump()
    assert [e.profiles[0].state for e in link.a.events
            if isinstance(e, PeerProfiles)] == ["master", "slave"]
    assert link.a.peer_profiles == PEER_PROFILE


def update_frames(data: bytes) -> list[tuple[int, list[LeaseRecord]]]:
    """The UPDATE frames (flags, records) in a stream without a key."""
    return [(frame.flags, decode_records(frame.payload)) for frame in FrameReader().feed(data)
            if frame.type is FrameType.UPDATE]


def updates_on_the_wire(data: bytes) -> list[int]:
    """The addresses (last octet) of the real-time records in a stream without a key."""
    return [r.address - 0x0A0A0A00 for flags, records in update_frames(data) if not flags
            for r in records]


def test_a_record_leaves_only_once_released_and_in_order():
    """A record waits until the owner says its lease is on its own disk; the released
    ones leave first, the rest stay queued for their own release."""
    link = Link(None, None)
    link.connect()
    first = link.a.send_records([record(1), record(2)])
    link.now += FRAME_HOLD
    assert updates_on_the_wire(link.a.data_to_send(link.now)) == []
    link.a.send_records([record(3)])
    link.a.release(first)
    link.now += FRAME_HOLD
    assert updates_on_the_wire(link.a.data_to_send(link.now)) == [1, 2]
    link.a._live_in_flight.clear()  # as if acknowledged (the ack itself is not released)
    link.now += FRAME_HOLD
    assert updates_on_the_wire(link.a.data_to_send(link.now)) == []
    link.a.release(first + 1)
    link.now += FRAME_HOLD
    assert updates_on_the_wire(link.a.data_to_send(link.now)) == [3]


def test_a_peer_that_acknowledges_an_unreleased_record_is_ignored():
    link = Link(None, None)
    link.connect()
    send_committed(link.a, [record(1)])
    held = link.a.send_records([record(2)])
    link.b.received_seq = held  # a hostile or broken peer claims record 2, never sent
    link.b.acknowledge(link.now)
    link.a.data_received(link.b.data_to_send(link.now), link.now)
    assert link.a.peer_acked == 0 and [seq for seq, _ in link.a.unacked] == [1, 2]


def test_across_a_reconnection_the_unreleased_records_wait_for_their_release():
    """Queued while down, some released and some not: the new connection resends the
    released ones (compacted), and the others when released, in sequence order."""
    link = Link()
    link.connect()
    link.cut()
    for round_ in range(COMPACT_FROM // 100 + 1):  # renewals enough to compact the queue
        send_committed(link.a, [record(n, start=float(round_)) for n in range(1, 101)])
    held = [record(n, start=1000.0) for n in range(1, 4)]
    last = link.a.send_records(held)
    for round_ in range(COMPACT_FROM // 100 + 1):  # more, released, after the held ones:
        link.a.send_records([record(n, start=2000.0 + round_) for n in range(4, 6)])
    assert link.a.released_seq < last  # ... stay unreleased too, behind them
    link.connect()
    link.pump()
    newest = {r.address - 0x0A0A0A00: r.lease.start for r in received(link.b)}
    assert newest == {n: float(COMPACT_FROM // 100) for n in range(1, 101)}
    link.a.release(link.a.next_seq - 1)
    link.pump()
    newest = {r.address - 0x0A0A0A00: r.lease.start for r in received(link.b)}
    assert [newest[n] for n in range(1, 6)] == [1000.0] * 3 + [2000.0 + COMPACT_FROM // 100] * 2
    assert link.a.pending == 0


def test_a_batch_page_waits_for_the_records_queued_before_it():
    """A page read from the table may hold the lease of a record not yet released: the
    batch's frames follow, in order, once the records before them are released."""
    link = Link(None, None)
    link.connect()
    seq = link.a.send_records([record(1, start=500.0)])
    link.a.send_batch(1, iter([record(1, start=500.0), record(2)]), 2)
    link.a.send_batch_page()
    assert not link.a.batch_pending  # the batch is read: it is the release that waits
    link.b.data_received(link.a.data_to_send(link.now), link.now)
    assert not any(isinstance(e, (BatchStarted, RecordsReceived)) for e in link.b.events)
    link.a.release(seq)
    link.pump()
    assert [type(e) for e in link.b.events if isinstance(
        e, (BatchStarted, RecordsReceived, BatchFinished))] == [
        RecordsReceived, BatchStarted, RecordsReceived, BatchFinished]
    assert link.a.pending == 0


def test_records_released_with_a_held_page_go_before_it_even_behind_an_unacked_frame():
    """A page read before a journal write may hold a version of a lease that a record of
    the same write replaces: released together, the record goes first, whatever the
    live window says, so the peer never holds the older version alone."""
    link = Link(None, None)
    link.connect()
    send_committed(link.a, [record(9)])
    link.now += FRAME_HOLD
    assert updates_on_the_wire(link.a.data_to_send(link.now)) == [9]  # awaits its ack
    link.a.send_batch(1, iter([record(1, start=500.0), record(2)]), 2)  # BATCH_BEGIN leaves
    older = link.a.send_records([record(1, start=500.0)])
    link.a.send_batch_page()  # read now: holds the older version, waits for its release
    newer = link.a.send_records([record(1, start=501.0)])  # replaced in the same write
    link.a.release(newer)
    frames = [(flags, [r.lease.start for r in records])
              for flags, records in update_frames(link.a.data_to_send(link.now))]
    assert frames == [(0, [500.0, 501.0]), (BATCH_FLAG, [500.0, 102.0])]
    assert older < newer


def test_a_peer_that_stays_up_and_acknowledges_nothing_keeps_the_queue_bounded():
    """A peer alive (heartbeats) whose disk is full acknowledges nothing: the updates it
    has not acknowledged keep only the newest of each address, as for a peer away, and
    once it acknowledges again it has the newest of every one."""
    link = Link()
    link.connect()
    rounds = COMPACT_FROM // 100 * 3
    for round_ in range(rounds):  # renewals of 100 leases, none acknowledged
        send_committed(link.a, [record(n, start=float(round_)) for n in range(1, 101)])
        link.pump(applied=False)
    assert link.a.state is ChannelState.UP
    assert link.a.pending < COMPACT_FROM + 2 * 100
    link.b.acknowledge(link.now)  # its disk has room again: it commits, then acknowledges
    link.pump(applied=True)
    newest = {}
    for r in received(link.b):
        newest[r.address] = r.lease.start
    assert len(newest) == 100 and set(newest.values()) == {float(rounds - 1)}
    assert link.a.pending == 0
