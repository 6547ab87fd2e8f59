"""Sans-IO remote backup channel: handshake, authentication, sequenced updates, acks.

One :class:`BackupChannel` per remote-backup-service.  It outlives the TCP
connections under it: the queue of updates the peer has not acknowledged
and the sequence numbers survive a reconnect, so nothing is lost or applied
twice.

Connection life: both sides send HELLO (version, a fresh nonce, a random
incarnation number per process start, and what they last applied from the
peer's incarnation); with a shared key each then proves it holds the key
(an HMAC over both nonces) and from then on every frame carries an HMAC
under a per-direction session key (``frames.session_keys``).  Once up, the
sender resends what the peer's HELLO says it has not applied, and
heartbeats every ``heartbeat_interval``; a peer silent for
``dead_interval`` is declared down.  The first heartbeat on a connection
follows that resend, so once it has arrived (``peer_backlog_received``)
everything the peer queued while the two were apart is here.

Updates: ``send_records`` numbers lease records 1, 2, 3... per incarnation;
an UPDATE frame carries a run of consecutive ones.  A record leaves only
once the owner has ``release``d it: its lease is on the owner's own disk
(as Kea HA and ISC failover send a lease update only after the local
commit).  A peer holding a lease its grantor's journal never had would
outlive a crash of the grantor, which could hand the address out again.
Batch frames wait, in order, for the records queued before them to be
released (a page read from the table holds those records' leases).
Records are framed when
the device collects the bytes (``data_to_send``, once per group commit),
so the records of many DHCP exchanges share one frame, one MAC and one
write; and while ``LIVE_WINDOW`` frames of them await the peer's ack, new
records wait for it (Nagle's rule, RFC 896, with the ack as the clock), so
under load a frame carries what arrived during one round trip.  Once records
arrive at ``HOLD_FROM_RATE`` a second or more (counted over ``RATE_WINDOW``),
a frame also waits until ``FRAME_HOLD`` after the one before it (adaptive
interrupt moderation, as a NIC's): each frame costs both devices a wake-up, a
read, a journal commit and an ack whatever it carries, and a round trip under
load is shorter than the time that makes frames worth their cost.  A record
then waits at most ``FRAME_HOLD`` more (``frame_deadline`` says when the owner
must collect the held frame); below that rate nothing waits.  The receiver
hands new records to its owner (``RecordsReceived``), skips any it has seen,
and acknowledges only when the owner calls ``acknowledge()`` after committing
them to its own journal, so an ack means "on the peer's disk".
Acks are cumulative.

Batch backup: ``send_batch`` starts one from a lazy source of records and
``send_batch_page`` sends the next page of it, so the device decides the
pace (one page per turn of its event loop, and none while the socket is
backed up) and a table of millions never stalls it or sits in memory as
frames.  At most ``BATCH_WINDOW`` pages are unacknowledged at a time.
Batch pages are numbered in a space of their own, per connection, and
acknowledged on their own (BATCH_ACK): they are not kept for resending
(a batch cut by a lost connection is abandoned, and the owner starts a
fresh one, from the table as it is then, when the channel is up again),
and a real-time update (which a strict-mode DHCPACK waits for) is never
acknowledged later for them.  The receiver hands a real-time update to its
owner as soon as it is read, and keeps batch pages (and BATCH_BEGIN,
BATCH_END, in order) in an inbox of at most ``BATCH_WINDOW`` pages, handing
over ``BATCH_STEP_RECORDS`` per ``deliver_batch_records`` (the owner's pace,
one step per loop turn), so an update waits behind at most those, not behind
every page read with it.  Order matters in one case: a deletion carries no
transaction time to compare, so a real-time update holding one first
delivers the pages read before it.  The receiver acknowledges whole pages;
the peer's batch acks report the batch's progress (``BatchAcked``); it is
complete once everything up to BATCH_END is acknowledged.

Inputs: ``connection_made``, ``data_received``, ``connection_lost``,
``handle_timer`` and the owner's calls; outputs: ``data_to_send(now)``,
``events`` and ``close_reason`` (set when the shell must drop the
connection).
"""

from __future__ import annotations

import hmac
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from itertools import islice

from nefeature.backup.frames import (
    PROTOCOL_VERSION,
    Frame,
    FrameError,
    FrameReader,
    FrameType,
    Hello,
    LeaseRecord,
    ProfileInfo,
    auth_proof,
    decode_heartbeat,
    decode_hello,
    decode_records,
    encode_frame,
    encode_hello,
    encode_profiles,
    encode_records,
    session_keys,
)

RECORDS_PER_FRAME = 500
#: UPDATE frames of real-time records sent and not yet acknowledged, at most.  Records
#: queued meanwhile wait and leave together in one frame when an ack comes: an idle
#: channel sends each at once, a busy one sends fewer, fuller frames (each frame costs
#: both devices a wake-up, a read, a journal commit and an ack, whatever it carries).
LIVE_WINDOW = 1
#: Under load (records arriving at HOLD_FROM_RATE a second or more, counted over
#: RATE_WINDOW) a real-time frame leaves at most once per FRAME_HOLD, for a strict DHCPACK
#: at most FRAME_HOLD later.  In bench/ha's strict pair at 10,000 DORA/s, 4 ms (about 40
#: records a frame) against 1 ms (13) took the pair from 78-80 to 67-69 µs of CPU per
#: DORA, the backup's share from 22 to 15, for a REQUEST->ACK average of 5.0-5.3 ms
#: against 3.2 (bench/README.md, "Holding frames for company" and "Frames of 4 ms").  At
#: 2,000 DORA/s nothing waits.
FRAME_HOLD = 0.004
HOLD_FROM_RATE = 4000
#: The rate is counted over the frames of this long: over one frame, two records that
#: happen to come together at 2,000 a second would look like a load and hold the next.
RATE_WINDOW = 0.01
BATCH_WINDOW = 4  # pages of a batch sent and not yet acknowledged, at most
#: The peer's batch records handed to the owner per step (``deliver_batch_records``, one
#: step per loop turn): a real-time update read meanwhile waits for at most these.
BATCH_STEP_RECORDS = 100
COMPACT_FROM = 4096  # unacknowledged updates before superseded ones are dropped
BATCH_FLAG = 0x01
#: Frames the receiver keeps in its batch inbox (an UPDATE there is a flagged page: the
#: real-time ones are handled first).
_BATCH_FRAMES = frozenset({FrameType.UPDATE, FrameType.BATCH_BEGIN, FrameType.BATCH_END})


def _batch_payload(backup_id: int, count: int) -> bytes:
    return backup_id.to_bytes(2, "big") + count.to_bytes(4, "big")


class ChannelState(str, Enum):
    DOWN = "down"
    HELLO = "hello"  # connected, waiting for the peer's HELLO (and AUTH)
    UP = "up"


@dataclass(frozen=True, slots=True)
class ChannelUp:
    peer: Hello


@dataclass(frozen=True, slots=True)
class ChannelDown:
    reason: str


@dataclass(frozen=True, slots=True)
class RecordsReceived:
    records: list[LeaseRecord]
    batch: bool


@dataclass(frozen=True, slots=True)
class BatchStarted:
    backup_id: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchFinished:
    backup_id: int
    count: int


@dataclass(frozen=True, slots=True)
class BatchAcked:
    """Progress of a batch we send: ``acked`` records of it are on the peer's disk."""

    backup_id: int
    acked: int
    total: int
    complete: bool


@dataclass(frozen=True, slots=True)
class Acked:
    upto: int


@dataclass(frozen=True, slots=True)
class PeerProfiles:
    profiles: tuple[ProfileInfo, ...]


@dataclass
class ChannelStatistics:
    updates_sent: int = 0
    update_frames_sent: int = 0  # real-time UPDATE frames (resent ones too)
    updates_received: int = 0
    acks_received: int = 0
    heartbeats_sent: int = 0
    heartbeats_received: int = 0
    frames_rejected: int = 0


@dataclass
class _OutgoingBatch:
    backup_id: int
    records: Iterator[LeaseRecord]
    total: int  # at most this many: the source may skip leases that went away
    sent: int = 0
    exhausted: bool = False
    pages: deque[tuple[int, int]] = field(default_factory=deque)  # (last batch seq, sent so far)


@dataclass
class BackupChannel:
    name: str
    shared_key: bytes | None = None
    heartbeat_interval: float = 1.0
    dead_interval: float = 3.0
    random_bytes: Callable[[int], bytes] = os.urandom
    profiles: tuple[ProfileInfo, ...] = ()
    statistics: ChannelStatistics = field(default_factory=ChannelStatistics)
    events: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.incarnation = int.from_bytes(self.random_bytes(8), "big") or 1
        self.state = ChannelState.DOWN
        self.next_seq = 1
        self.unacked: deque[tuple[int, LeaseRecord]] = deque()  # real-time updates, by seq
        self.released_seq = 0  # records up to this one are on the owner's disk: may leave
        self._compact_at = COMPACT_FROM
        self._batches: dict[int, _OutgoingBatch] = {}  # by backup-id
        self.peer_acked = 0
        self.peer_incarnation = 0
        self.received_seq = 0  # highest seq from the peer handed to the owner
        self.acked_seq = 0  # highest seq we told the peer is applied
        self.peer: Hello | None = None
        self.peer_profiles: tuple[ProfileInfo, ...] = ()
        self.close_reason: str | None = None
        self._out = bytearray()
        self._encoded_profiles: tuple[tuple[ProfileInfo, ...] | None, bytes] = (None, b"")
        self._reset_connection()

    def _reset_connection(self) -> None:
        self._reader = FrameReader()
        self._send_key: bytes | None = None
        self._send_counter = 0
        self._nonce = b""
        self._peer_hello: Hello | None = None
        self._last_heard = 0.0
        self._next_heartbeat: float | None = None
        self._pending_receive_key: bytes | None = None
        self._live_in_flight: deque[int] = deque()  # last seq of each unacked UPDATE frame
        # On this connection every record up to this one is framed (sent or resent); the
        # released ones after it are framed next.
        self._framed_through = 0
        # Batch frames, each after the records queued before it are released: (last such
        # seq, frame).
        self._after_records: deque[tuple[int, Frame]] = deque()
        self._recent_frames: deque[tuple[float, int]] = deque()  # (time, records) framed
        self._recent_records = 0  # records framed over the last RATE_WINDOW
        # Batch records are numbered per connection, apart from the real-time updates.
        self.batch_sent_seq = 0  # batch records we sent on this connection
        self.batch_received = 0  # the peer's batch records handed to the owner
        self.batch_acked = 0  # of those, acknowledged to the peer
        self._batch_inbox: deque[Frame] = deque()  # the peer's batch frames, not yet handed over
        self._page: list[LeaseRecord] = []  # the peer's batch page being handed over
        self._page_at = 0  # its records before this one are handed over
        self._batches_arriving: set[int] = set()  # backup-ids begun and not ended
        self._peer_profiles_payload: bytes | None = None  # of the last heartbeat decoded
        # The peer's first heartbeat on this connection has arrived.  The peer sends it
        # right after resending what we had not acknowledged, so by then everything it
        # queued while the two were apart is here.
        self.peer_backlog_received = False

    # --- connection life ---

    def connection_made(self, now: float) -> None:
        self._reset_connection()
        self._out.clear()
        self.close_reason = None
        self.state = ChannelState.HELLO
        self._nonce = self.random_bytes(16)
        self._last_heard = now
        hello = Hello(PROTOCOL_VERSION, self._nonce, self.incarnation, self.shared_key is not None,
                      self.received_seq, self.peer_incarnation, self.profiles)
        self._send(Frame(FrameType.HELLO, payload=encode_hello(hello)))

    def connection_lost(self, now: float, reason: str) -> None:
        was_up = self.state is ChannelState.UP
        self.state = ChannelState.DOWN
        self.close_reason = None  # closed: nothing more to ask of the shell
        self._reset_connection()
        self._out.clear()
        self._batches.clear()
        if was_up:
            self.events.append(ChannelDown(reason))

    def data_received(self, data: bytes, now: float) -> None:
        if self.state is ChannelState.DOWN or self.close_reason:
            return
        self._last_heard = now
        try:
            for frame in self._reader.feed(data):
                self._handle(frame, now)
                if self.close_reason:
                    return
        except FrameError as error:
            self.statistics.frames_rejected += 1
            self._close(str(error))

    def _close(self, reason: str) -> None:
        self.close_reason = reason

    def data_to_send(self, now: float) -> bytes:
        ready = self._ready()
        if ready > 0 and len(self._live_in_flight) < LIVE_WINDOW and self._frame_due(now, ready):
            self._count_framed(now, ready)
            self._frame_unframed()
        data = bytes(self._out)
        self._out.clear()
        return data

    def _count_framed(self, now: float, records: int) -> None:
        """Count a frame's records in the last RATE_WINDOW, and forget older frames."""
        recent = self._recent_frames
        recent.append((now, records))
        self._recent_records += records
        while recent[0][0] <= now - RATE_WINDOW:
            self._recent_records -= recent.popleft()[1]

    @property
    def _last_live_frame(self) -> float:
        """When data_to_send last framed records (the newest frame is never forgotten)."""
        return self._recent_frames[-1][0] if self._recent_frames else float("-inf")

    @property
    def _holding(self) -> bool:
        """Records arrive fast enough for frames to wait (FRAME_HOLD): HOLD_FROM_RATE a
        second or more over the last RATE_WINDOW of frames."""
        return self._recent_records >= HOLD_FROM_RATE * RATE_WINDOW

    def _ready(self) -> int:
        """How many released records wait to be framed on this connection (at most: a
        compaction may have dropped some of them)."""
        if self.state is not ChannelState.UP:
            return 0
        return self.released_seq - self._framed_through

    def _frame_due(self, now: float, ready: int) -> bool:
        return not self._holding or now >= self._last_live_frame + FRAME_HOLD \
            or ready >= RECORDS_PER_FRAME

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` is due (a held frame's time is ``frame_deadline``)."""
        if self.state is ChannelState.DOWN or self.close_reason:
            return None
        dead = self._last_heard + self.dead_interval
        return dead if self._next_heartbeat is None else min(dead, self._next_heartbeat)

    def frame_deadline(self) -> float | None:
        """When held records are due to leave (``data_to_send``); None when none are held."""
        if self._holding and self._ready() > 0 and len(self._live_in_flight) < LIVE_WINDOW \
                and self.state is ChannelState.UP and not self.close_reason:
            return self._last_live_frame + FRAME_HOLD
        return None

    def handle_timer(self, now: float) -> None:
        if self.state is ChannelState.DOWN or self.close_reason:
            return
        if now >= self._last_heard + self.dead_interval:
            self._close("peer silent")
            return
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            self._heartbeat(now)

    @property
    def last_heard(self) -> float:
        """When the peer last sent anything on this connection (0 when none)."""
        return self._last_heard

    # --- what the owner sends ---

    def set_profiles(self, profiles: tuple[ProfileInfo, ...], now: float) -> None:
        """Our profiles' roles; the peer hears of a change at once."""
        if profiles != self.profiles:
            self.profiles = profiles
            if self.state is ChannelState.UP:
                self._heartbeat(now)

    def send_records(self, records: list[LeaseRecord]) -> int:
        """Queue records (sent once released, if up); returns the sequence number of the
        last."""
        for record in records:
            self.unacked.append((self.next_seq, record))
            self.next_seq += 1
        if len(self.unacked) >= self._compact_at:
            self._compact_unacked()
        return self.next_seq - 1

    def release(self, upto: int) -> None:
        """The records up to ``upto`` are on the owner's disk: they may go to the peer
        (with ``data_to_send``), and so may the batch frames that waited for them."""
        if upto <= self.released_seq:
            return
        self.released_seq = min(upto, self.next_seq - 1)
        waiting = self._after_records
        while waiting and waiting[0][0] <= self.released_seq:
            # the records released with it first: a page read before the write may hold a
            # version of a lease that one of them replaced in that same write
            self._frame_unframed()
            self._send(waiting.popleft()[1])

    def _compact_unacked(self) -> None:
        """While the peer is away, or alive and acknowledging nothing (its disk is full),
        keep only the newest update of each address among those sent or to be resent.

        An older update of an address says nothing the newer one does not, so
        the queue stays as small as the lease table however long the peer is
        gone.  The peer sees gaps in the numbers, which acks cover.  Records
        not yet released all stay (a newer one of an address may not reach the
        disk before a crash): the few of one or two journal writes.
        """
        released = self.released_seq
        newest = {(record.backup_id, record.address): seq
                  for seq, record in self.unacked if seq <= released}
        self.unacked = deque((seq, record) for seq, record in self.unacked
                             if seq > released
                             or newest[(record.backup_id, record.address)] == seq)
        self._compact_at = max(COMPACT_FROM, 2 * len(self.unacked))

    def send_batch(self, backup_id: int, records: Iterable[LeaseRecord], total: int) -> bool:
        """Start a batch backup of at most ``total`` records, read page by page.

        Replaces a batch in progress for the same backup-id.  Only while up
        (False otherwise): the owner starts one when the channel comes up.
        """
        if self.state is not ChannelState.UP:
            return False
        self._batches[backup_id] = _OutgoingBatch(backup_id, iter(records), total)
        self._send_after_records(Frame(FrameType.BATCH_BEGIN,
                                       payload=_batch_payload(backup_id, total)))
        return True

    def _send_after_records(self, frame: Frame) -> None:
        """Send a batch frame once every record queued so far is released."""
        if self._after_records or self.released_seq < self.next_seq - 1:
            self._after_records.append((self.next_seq - 1, frame))
        else:
            self._send(frame)

    def _sendable_batch(self) -> _OutgoingBatch | None:
        if not self._batches:
            return None  # asked after every input
        return next((b for b in self._batches.values()
                     if not b.exhausted and len(b.pages) < BATCH_WINDOW), None)

    @property
    def batch_pending(self) -> bool:
        """A batch page may go out now (call ``send_batch_page``)."""
        return self._sendable_batch() is not None

    def send_batch_page(self) -> bool:
        """Send the next page of a batch in progress; True while another may follow now."""
        batch = self._sendable_batch()
        if batch is None or self.state is not ChannelState.UP:
            return False
        page = list(islice(batch.records, RECORDS_PER_FRAME))
        if page:
            self.batch_sent_seq += len(page)
            self._send_after_records(Frame(FrameType.UPDATE, seq=self.batch_sent_seq,
                                           payload=encode_records(page), flags=BATCH_FLAG))
            self.statistics.updates_sent += len(page)
            batch.sent += len(page)
            batch.pages.append((self.batch_sent_seq, batch.sent))
        if len(page) < RECORDS_PER_FRAME:
            batch.exhausted = True
            self._send_after_records(Frame(FrameType.BATCH_END,
                                           payload=_batch_payload(batch.backup_id, batch.sent)))
            if not batch.pages:
                self._batch_acked(batch, 0)
        return self.batch_pending

    @property
    def batch_received_pending(self) -> bool:
        """Records of the peer's batch wait for ``deliver_batch_records``."""
        return bool(self._batch_inbox) or self._page_at < len(self._page)

    @property
    def receiving_batch(self) -> bool:
        """A batch from the peer has begun on this connection and is not all handed over."""
        return bool(self._batches_arriving) or self.batch_received_pending

    def deliver_batch_records(self, limit: int | None = BATCH_STEP_RECORDS) -> None:
        """Hand the owner the next records of the peer's batch, at most ``limit`` (None: all
        read so far), with the BATCH_BEGIN before them and a BATCH_END right after them."""
        inbox, delivered = self._batch_inbox, 0
        while not self.close_reason and (limit is None or delivered < limit):
            page, at = self._page, self._page_at
            if at < len(page):
                end = len(page) if limit is None else min(len(page), at + limit - delivered)
                self._page_at = end
                self.batch_received += end - at
                delivered += end - at
                self.events.append(RecordsReceived(page[at:end], True))
            elif inbox:
                self._on_batch_frame(inbox.popleft())
            else:
                break
        while inbox and inbox[0].type is FrameType.BATCH_END and not self.close_reason \
                and self._page_at == len(self._page):
            self._on_batch_frame(inbox.popleft())

    def acknowledge(self, now: float) -> None:
        """The owner committed everything handed to it so far: tell the peer."""
        if self.state is not ChannelState.UP:
            return
        if self.received_seq > self.acked_seq:
            self.acked_seq = self.received_seq
            self._send(Frame(FrameType.HEARTBEAT, ack=self.acked_seq,
                             payload=self._profiles_payload()))
        if self.batch_received > self.batch_acked and self._page_at == len(self._page):
            self.batch_acked = self.batch_received  # whole pages: the sender counts no less
            self._send(Frame(FrameType.BATCH_ACK, seq=self.batch_acked))

    def _profiles_payload(self) -> bytes:
        """Our profiles as a heartbeat carries them (encoded once per change: every
        acknowledgement carries them too)."""
        if self._encoded_profiles[0] is not self.profiles:
            self._encoded_profiles = (self.profiles, encode_profiles(self.profiles))
        return self._encoded_profiles[1]

    @property
    def pending(self) -> int:
        """Updates the peer has not acknowledged, and batch records not yet sent."""
        return len(self.unacked) + sum(max(0, b.total - b.sent)  # a table read as it grows
                                       for b in self._batches.values() if not b.exhausted)

    # --- frames ---

    def _frame_unframed(self) -> None:
        """Frame the released records not yet framed on this connection (any other frame
        frames them first, so the wire keeps the order they were released in)."""
        if self._ready() <= 0:
            return
        framed, upto = self._framed_through, self.released_seq
        waiting = []
        for seq, record in reversed(self.unacked):  # the newest few
            if seq <= framed:
                break
            if seq <= upto:
                waiting.append((seq, record))
        waiting.reverse()
        self._framed_through = upto
        self._send_runs(waiting)

    def _send(self, frame: Frame) -> None:
        if self.state is ChannelState.DOWN:
            return
        if frame.type is not FrameType.UPDATE:
            self._frame_unframed()  # keep the wire in sequence order
        if frame.ack == 0 and frame.type is not FrameType.HELLO:
            frame = Frame(frame.type, frame.seq, self.acked_seq, frame.payload, frame.flags)
        self._out += encode_frame(frame, self._send_key, self._send_counter)
        if self._send_key is not None:
            self._send_counter += 1

    def _send_run(self, first: int, records: list[LeaseRecord]) -> None:
        """Real-time records numbered ``first``, ``first + 1``...: UPDATE frames of up to a
        page each."""
        for start in range(0, len(records), RECORDS_PER_FRAME):
            page = records[start:start + RECORDS_PER_FRAME]
            last = first + start + len(page) - 1
            self._send(Frame(FrameType.UPDATE, seq=last, ack=self.acked_seq,
                             payload=encode_records(page)))
            self.statistics.updates_sent += len(page)
            self.statistics.update_frames_sent += 1
            self._live_in_flight.append(last)

    def _resend_unacked(self) -> None:
        """Everything released and not acknowledged (the records not yet released are
        framed once they are)."""
        self._framed_through = 0
        self._frame_unframed()

    def _send_runs(self, records: list[tuple[int, LeaseRecord]]) -> None:
        """(seq, record) pairs in order, as runs of consecutive numbers (compaction leaves
        gaps)."""
        run: list[LeaseRecord] = []
        first = 0
        for seq, record in records:
            if run and seq != first + len(run):
                self._send_run(first, run)
                run = []
            if not run:
                first = seq
            run.append(record)
        if run:
            self._send_run(first, run)

    def _heartbeat(self, now: float) -> None:
        self._send(Frame(FrameType.HEARTBEAT, ack=self.acked_seq,
                         payload=self._profiles_payload()))
        self.statistics.heartbeats_sent += 1
        self._next_heartbeat = now + self.heartbeat_interval

    def _handle(self, frame: Frame, now: float) -> None:
        if self.state is ChannelState.HELLO:
            if frame.type is FrameType.HELLO and self._peer_hello is None:
                self._on_hello(decode_hello(frame.payload), now)
            elif frame.type is FrameType.AUTH and self._peer_hello is not None:
                self._on_auth(frame.payload, now)
            else:
                self.statistics.frames_rejected += 1
                self._close(f"{frame.type.name} before the handshake completed")
            return
        if frame.ack > self.peer_acked:
            self._on_ack(frame.ack)
        if frame.type is FrameType.UPDATE and not frame.flags & BATCH_FLAG:
            self._on_update(frame)
        elif frame.type in _BATCH_FRAMES:
            self._batch_inbox.append(frame)  # handed over at the owner's pace
            if frame.type is FrameType.UPDATE and sum(
                    f.type is FrameType.UPDATE for f in self._batch_inbox) > BATCH_WINDOW:
                self.statistics.frames_rejected += 1  # a peer that ignores the window
                self._close(f"more than {BATCH_WINDOW} batch pages unacknowledged")
        elif frame.type is FrameType.BATCH_ACK:
            self._on_batch_ack(frame.seq)
        elif frame.type is FrameType.HEARTBEAT:
            self.statistics.heartbeats_received += 1
            self.peer_backlog_received = True
            if frame.payload != self._peer_profiles_payload:  # every ack is a heartbeat
                profiles = decode_heartbeat(frame.payload)
                self._peer_profiles_payload = frame.payload
                if profiles != self.peer_profiles:
                    self.peer_profiles = profiles
                    self.events.append(PeerProfiles(profiles))
        else:
            self.statistics.frames_rejected += 1
            self._close(f"unexpected {frame.type.name}")

    def _on_hello(self, hello: Hello, now: float) -> None:
        if hello.version != PROTOCOL_VERSION:
            self._close(f"peer speaks version {hello.version}, we speak {PROTOCOL_VERSION}")
            return
        if hello.authenticated != (self.shared_key is not None):
            self._close("shared-key configured on one side only")
            return
        ours = {p.backup_id: p.name for p in self.profiles}
        theirs = {p.backup_id: p.name for p in hello.profiles}
        if ours and not set(ours) & set(theirs):
            self._close(f"no common backup-id (ours {sorted(ours)}, peer {sorted(theirs)})")
            return
        self._peer_hello = hello
        if self.shared_key is None:
            self._up(now)
            return
        self._send(Frame(FrameType.AUTH, payload=auth_proof(self.shared_key, self._nonce,
                                                            hello.nonce)))
        self._send_key, receive_key = session_keys(self.shared_key, self._nonce, hello.nonce)
        self._pending_receive_key = receive_key

    def _on_auth(self, proof: bytes, now: float) -> None:
        expected = auth_proof(self.shared_key, self._peer_hello.nonce, self._nonce)
        if not hmac.compare_digest(proof, expected):
            self.statistics.frames_rejected += 1
            self._close("wrong shared key")
            return
        self._reader.mac_key = self._pending_receive_key
        self._up(now)

    def _up(self, now: float) -> None:
        hello = self._peer_hello
        if hello.incarnation != self.peer_incarnation:
            self.peer_incarnation = hello.incarnation  # a restarted (or new) peer
            self.received_seq = self.acked_seq = 0
        if hello.peer_incarnation == self.incarnation:
            self._on_ack(hello.applied)
        self.peer = hello
        self.peer_profiles = hello.profiles
        self.state = ChannelState.UP
        self.events.append(ChannelUp(hello))
        self._resend_unacked()
        self._heartbeat(now)

    def _on_ack(self, upto: int) -> None:
        if upto > self.released_seq:
            return  # acknowledges what we never sent: ignore
        advanced = False
        while self.unacked and self.unacked[0][0] <= upto:
            self.unacked.popleft()
            advanced = True
        in_flight = self._live_in_flight
        while in_flight and in_flight[0] <= upto:
            in_flight.popleft()
        if upto > self.peer_acked:
            self.peer_acked = upto
            self.statistics.acks_received += 1
        if advanced:
            self.events.append(Acked(upto))

    def _on_batch_ack(self, upto: int) -> None:
        if upto > self.batch_sent_seq:
            return  # acknowledges what we never sent: ignore
        for batch in list(self._batches.values()):
            acked = 0
            while batch.pages and batch.pages[0][0] <= upto:
                acked = batch.pages.popleft()[1]
            if acked:
                self._batch_acked(batch, acked)

    def _batch_acked(self, batch: _OutgoingBatch, acked: int) -> None:
        complete = batch.exhausted and not batch.pages
        if complete:
            del self._batches[batch.backup_id]
        self.events.append(BatchAcked(batch.backup_id, acked,
                                      batch.sent if complete else batch.total, complete))

    def _on_update(self, frame: Frame) -> None:
        records = decode_records(frame.payload)
        first = frame.seq - len(records) + 1
        if frame.seq <= self.received_seq:
            return  # all seen before (resent after a reconnect)
        new = records[max(0, self.received_seq + 1 - first):]
        if self.batch_received_pending and any(record.lease is None for record in new):
            self.deliver_batch_records(limit=None)  # the pages read before a deletion go first
        self.received_seq = frame.seq
        self.statistics.updates_received += len(new)
        self.events.append(RecordsReceived(new, False))

    def _on_batch_frame(self, frame: Frame) -> None:
        """A batch frame from the inbox, once the page before it is delivered: a page
        becomes the one ``deliver_batch_records`` hands over."""
        if frame.type is FrameType.UPDATE:
            records = decode_records(frame.payload)
            if frame.seq != self.batch_received + len(records):
                self.statistics.frames_rejected += 1
                self._close("batch page out of sequence")
                return
            self._page, self._page_at = records, 0
            self.statistics.updates_received += len(records)
        elif frame.type is FrameType.BATCH_BEGIN:
            backup_id = int.from_bytes(frame.payload[:2], "big")
            self._batches_arriving.add(backup_id)
            self.events.append(BatchStarted(backup_id, int.from_bytes(frame.payload[2:6], "big")))
        else:
            backup_id = int.from_bytes(frame.payload[:2], "big")
            self._batches_arriving.discard(backup_id)
            self.events.append(BatchFinished(backup_id, int.from_bytes(frame.payload[2:6], "big")))
