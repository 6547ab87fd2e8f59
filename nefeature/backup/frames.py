"""Wire format of the remote backup channel: framed, sequenced, authenticated.

Every frame is::

    u32 length            bytes after this field
    u8  type, u8 flags, u16 reserved
    u64 seq               UPDATE: sequence number of the frame's last record (a batch
                          page's: in the connection's batch numbering); BATCH_ACK: the
                          highest batch record received and applied (cumulative)
    u64 ack               highest real-time UPDATE sequence received and applied (cumulative)
    ... payload ...
    [32-byte HMAC-SHA256] once the session is authenticated

The HMAC covers a per-direction frame counter followed by the frame, under
a per-direction key derived from the shared key and both sides' nonces
(``session_keys``), so a frame cannot be replayed, reordered, reflected to
its sender or carried into another connection.

Lease records travel in UPDATE frames, several per frame; everything here
is plain ``struct`` code, and malformed input raises :class:`FrameError`.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from nefeature.dhcp.leases import Lease, LeaseState

PROTOCOL_VERSION = 2  # 2: batch pages numbered and acknowledged on their own
MAX_FRAME = 1 << 20  # 1 MiB: a page of a batch backup is far smaller
HEADER = struct.Struct("!IBBHQQ")  # length counts from type on
MAC_SIZE = 32


class FrameType(IntEnum):
    HELLO = 1
    AUTH = 2
    UPDATE = 3
    BATCH_BEGIN = 4
    BATCH_END = 5
    HEARTBEAT = 6
    BATCH_ACK = 7


class FrameError(ValueError):
    """A frame that is malformed, too big, or fails authentication."""


class Frame(NamedTuple):
    """One frame; a named tuple, as every lease exchange makes two."""

    type: FrameType
    seq: int = 0
    ack: int = 0
    payload: bytes = b""
    flags: int = 0


_FRAME_TYPES = {int(kind): kind for kind in FrameType}
_LENGTH_FIELD = struct.Struct("!I")
_COUNTER = struct.Struct("!Q")


# --- framing ---


def encode_frame(frame: Frame, mac_key: bytes | None = None, counter: int = 0) -> bytes:
    kind, seq, ack, payload, flags = frame
    length = HEADER.size - 4 + len(payload) + (MAC_SIZE if mac_key else 0)
    data = HEADER.pack(length, kind, flags, 0, seq, ack) + payload
    if mac_key:
        data += hmac.digest(mac_key, _COUNTER.pack(counter) + data, "sha256")  # one-shot
    return data


class FrameReader:
    """Splits a byte stream into frames; verifies each frame's MAC once keyed."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.mac_key: bytes | None = None
        self.counter = 0

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Yield the complete frames in the stream so far, one at a time.

        Lazily, so that a MAC key installed while handling one frame applies
        to the very next one.
        """
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 4:
            (length,) = _LENGTH_FIELD.unpack_from(buffer)
            if length > MAX_FRAME or length < HEADER.size - 4:
                raise FrameError(f"frame length {length} out of bounds")
            end = 4 + length
            if len(buffer) < end:
                break
            if self.mac_key is not None:
                raw = bytes(buffer[:end])
                del buffer[:end]
                yield self._authenticated(raw)
                continue
            _length, kind, flags, _reserved, seq, ack = HEADER.unpack_from(buffer)
            payload = bytes(buffer[HEADER.size:end])
            del buffer[:end]
            yield Frame(_frame_type(kind), seq, ack, payload, flags)

    def _authenticated(self, raw: bytes) -> Frame:
        body, mac = raw[:-MAC_SIZE], raw[-MAC_SIZE:]
        if len(body) < HEADER.size:
            raise FrameError("frame too short for its MAC")
        expected = hmac.digest(self.mac_key, _COUNTER.pack(self.counter) + body, "sha256")
        if not hmac.compare_digest(mac, expected):
            raise FrameError("frame authentication failed")
        self.counter += 1
        _length, kind, flags, _reserved, seq, ack = HEADER.unpack_from(body)
        return Frame(_frame_type(kind), seq, ack, body[HEADER.size:], flags)


def _frame_type(kind: int) -> FrameType:
    frame_type = _FRAME_TYPES.get(kind)
    if frame_type is None:
        raise FrameError(f"unknown frame type {kind}")
    return frame_type


def session_keys(shared_key: bytes, own_nonce: bytes, peer_nonce: bytes) -> tuple[bytes, bytes]:
    """(key to sign what we send, key to check what we receive)."""
    low, high = sorted((own_nonce, peer_nonce))
    session = hmac.new(shared_key, b"nefeature-session" + low + high, hashlib.sha256).digest()
    return (hmac.new(session, b"from" + own_nonce, hashlib.sha256).digest(),
            hmac.new(session, b"from" + peer_nonce, hashlib.sha256).digest())


def auth_proof(shared_key: bytes, prover_nonce: bytes, verifier_nonce: bytes) -> bytes:
    """What the prover sends to show it holds the key (HMAC challenge, both ways)."""
    return hmac.new(shared_key, b"nefeature-auth" + verifier_nonce + prover_nonce,
                    hashlib.sha256).digest()


# --- payloads ---


class PoolSplit(NamedTuple):
    """A pool's split as one device has it on disk, and the primary's proposal."""

    pool: str
    saved: int
    proposal: int


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    backup_id: int
    name: str
    state: str  # init | slave | master
    batch_done: bool = False
    splits: tuple[PoolSplit, ...] = ()


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    nonce: bytes  # 16 bytes, fresh per connection
    incarnation: int  # random per process start
    authenticated: bool  # this side has a shared key
    applied: int  # last UPDATE seq applied from the peer's incarnation below
    peer_incarnation: int  # the peer incarnation ``applied`` refers to (0: none)
    profiles: tuple[ProfileInfo, ...]


_STATES = ("init", "slave", "master")


def _pack_str(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!B", len(data)) + data


def _pack_bytes(data: bytes | None) -> bytes:
    data = data or b""
    return struct.pack("!H", len(data)) + data


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.position + size > len(self.data):
            raise FrameError("payload truncated")
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def raw(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise FrameError("payload truncated")
        value = self.data[self.position:self.position + size]
        self.position += size
        return value

    def string(self) -> str:
        try:
            return self.raw(self.take("!B")[0]).decode()
        except UnicodeDecodeError:
            raise FrameError("bad text") from None

    def blob(self) -> bytes:
        return self.raw(self.take("!H")[0])


def encode_profiles(profiles: tuple[ProfileInfo, ...]) -> bytes:
    """The profiles, then their pools' splits (a trailer a peer without splits ignores)."""
    return struct.pack("!H", len(profiles)) + b"".join(
        struct.pack("!HBB", p.backup_id, _STATES.index(p.state), int(p.batch_done))
        + _pack_str(p.name) for p in profiles) + b"".join(
        struct.pack("!H", len(p.splits)) + b"".join(
            struct.pack("!BB", split.saved, split.proposal) + _pack_str(split.pool)
            for split in p.splits) for p in profiles)


def _decode_profiles(cursor: _Cursor) -> tuple[ProfileInfo, ...]:
    (count,) = cursor.take("!H")
    profiles = []
    for _ in range(count):
        backup_id, state, done = cursor.take("!HBB")
        if state >= len(_STATES):
            raise FrameError(f"unknown profile state {state}")
        profiles.append(ProfileInfo(backup_id, cursor.string(), _STATES[state], bool(done)))
    if cursor.position == len(cursor.data):
        return tuple(profiles)
    with_splits = []
    for profile in profiles:
        splits = []
        for _ in range(cursor.take("!H")[0]):
            saved, proposal = cursor.take("!BB")
            if saved > 100 or proposal > 100:
                raise FrameError(f"split out of range: {saved}, {proposal}")
            splits.append(PoolSplit(cursor.string(), saved, proposal))
        with_splits.append(ProfileInfo(profile.backup_id, profile.name, profile.state,
                                       profile.batch_done, tuple(splits)))
    return tuple(with_splits)


def encode_hello(hello: Hello) -> bytes:
    return (struct.pack("!H16sQBQQ", hello.version, hello.nonce, hello.incarnation,
                        int(hello.authenticated), hello.applied, hello.peer_incarnation)
            + encode_profiles(hello.profiles))


def decode_hello(payload: bytes) -> Hello:
    cursor = _Cursor(payload)
    version, nonce, incarnation, authenticated, applied, peer_incarnation = cursor.take(
        "!H16sQBQQ")
    return Hello(version, nonce, incarnation, bool(authenticated), applied, peer_incarnation,
                 _decode_profiles(cursor))


def decode_heartbeat(payload: bytes) -> tuple[ProfileInfo, ...]:
    return _decode_profiles(_Cursor(payload))


# Lease records: a lease, or a deletion (address freed: state byte 255).
_LEASE_STATES = tuple(LeaseState)
_STATE_NUMBER = {state: number for number, state in enumerate(_LEASE_STATES)}
DELETED = 255


class LeaseRecord(NamedTuple):
    """A lease of a profile's pool for the peer; a named tuple, as a batch makes millions."""

    backup_id: int
    pool: str
    address: int
    lease: Lease | None  # None: the address no longer has a lease


_RECORD_HEAD = struct.Struct("!HB")  # backup id, pool name length; the name follows
_DELETION = struct.Struct("!IB")
_LEASE_FIXED = struct.Struct("!IBddB")  # address, state, start, expiry (-1: none), static


def encode_records(records: list[LeaseRecord]) -> bytes:
    parts = [struct.pack("!I", len(records))]
    heads: dict[tuple[int, str], bytes] = {}  # a page's records share one or two pools
    blob_length = _LENGTH.pack
    for backup_id, pool, address, lease in records:
        head = heads.get((backup_id, pool))
        if head is None:
            name = pool.encode()
            head = heads[(backup_id, pool)] = _RECORD_HEAD.pack(backup_id, len(name)) + name
        if lease is None:
            parts.append(head + _DELETION.pack(address, DELETED))
            continue
        client, hardware = lease.client, lease.hardware_address
        client_id, option82 = lease.client_id or b"", lease.option82 or b""
        hostname = lease.hostname.encode() if lease.hostname else b""
        parts.append(b"".join((
            head, _LEASE_FIXED.pack(address, _STATE_NUMBER[lease.state], lease.start,
                                    -1.0 if lease.expiry is None else lease.expiry,
                                    lease.static),
            blob_length(len(client)), client, blob_length(len(hardware)), hardware,
            blob_length(len(client_id)), client_id, blob_length(len(hostname)), hostname,
            blob_length(len(option82)), option82)))
    return b"".join(parts)


_COUNT = struct.Struct("!I")
_ID_AND_POOL_LENGTH = struct.Struct("!HB")
_ADDRESS_AND_STATE = struct.Struct("!IB")
_TIMES = struct.Struct("!ddB")
_LENGTH = struct.Struct("!H")


def decode_records(payload: bytes) -> list[LeaseRecord]:
    """The inverse of ``encode_records`` (the backup's hot path: fields read in place)."""
    try:
        return _decode_records(payload)
    except (struct.error, IndexError):
        raise FrameError("payload truncated") from None
    except UnicodeDecodeError:
        raise FrameError("bad text") from None


def _decode_records(payload: bytes) -> list[LeaseRecord]:
    (count,) = _COUNT.unpack_from(payload, 0)
    records = _decode_uniform_page(payload, count)
    if records is not None:
        return records
    position = 4
    records = []
    pools: dict[bytes, str] = {}
    states, state_count = _LEASE_STATES, len(_LEASE_STATES)
    new = tuple.__new__  # named tuples made without their __new__'s frame, as below
    head, deletion_or_lease, times, blob_length = (
        _ID_AND_POOL_LENGTH.unpack_from, _ADDRESS_AND_STATE.unpack_from, _TIMES.unpack_from,
        _LENGTH.unpack_from)
    for _ in range(count):
        backup_id, length = head(payload, position)
        position += 3
        raw_pool = payload[position:position + length]
        if len(raw_pool) != length:
            raise FrameError("payload truncated")
        pool = pools.get(raw_pool) or pools.setdefault(raw_pool, raw_pool.decode())
        position += length
        address, state = deletion_or_lease(payload, position)
        position += 5
        if state == DELETED:
            records.append(new(LeaseRecord, (backup_id, pool, address, None)))
            continue
        if state >= state_count:
            raise FrameError(f"unknown lease state {state}")
        start, expiry, static = times(payload, position)
        position += 17
        blobs = []
        for _ in range(5):  # client, hardware address, client id, hostname, option 82
            end = position + 2 + blob_length(payload, position)[0]
            blobs.append(payload[position + 2:end])
            position = end
        client, hardware, client_id, hostname, option82 = blobs
        if position > len(payload):
            raise FrameError("payload truncated")
        lease = new(Lease, (address, pool, client, hardware, states[state], start,
                            None if expiry < 0 else expiry, client_id or None,
                            hostname.decode("utf-8", "replace") or None, option82 or None,
                            "peer-sync", static != 0))
        records.append(new(LeaseRecord, (backup_id, pool, address, lease)))
    if position != len(payload):
        raise FrameError("trailing bytes after the records")
    return records


# A page of a batch backup is, as a rule, uniform: every record has the first one's backup
# id, pool and blob lengths, so one struct describes them all and unpacks the page in C.
_PAGE_SHAPES: dict[tuple, struct.Struct] = {}  # shape -> the struct of one record
_SHAPE_FIELDS = operator.itemgetter(0, 1, 2, 8, 10, 12, 14, 16)  # id, pool, blob lengths
_STATE_FIELD = operator.itemgetter(4)


def _decode_uniform_page(payload: bytes, count: int) -> list[LeaseRecord] | None:
    """The records of a uniform page (see above), or None when the page is not one.

    Each record's length fields are read where the first record's shape puts
    them; when all of them (and its id and pool) equal the first record's,
    every record starts where the shape says, so the page parses exactly.
    """
    if count < 8 or len(payload) < 12:  # a real-time update's few records: the loop is cheaper
        return None
    backup_id, pool_length = _ID_AND_POOL_LENGTH.unpack_from(payload, 4)
    position = 7 + pool_length
    if len(payload) < position + 5 or payload[position + 4] == DELETED:
        return None
    position += 5 + _TIMES.size
    lengths = []
    for _ in range(5):
        if len(payload) < position + 2:
            return None
        (length,) = _LENGTH.unpack_from(payload, position)
        lengths.append(length)
        position += 2 + length
    shape = (pool_length, *lengths)
    record = _PAGE_SHAPES.get(shape)
    if record is None:
        if len(_PAGE_SHAPES) > 256:
            _PAGE_SHAPES.clear()
        record = _PAGE_SHAPES[shape] = struct.Struct(
            f"!HB{pool_length}sIBddB" + "".join(f"H{length}s" for length in lengths))
    if len(payload) - 4 != count * record.size:
        return None
    rows = list(record.iter_unpack(memoryview(payload)[4:]))
    first = _SHAPE_FIELDS(rows[0])
    if list(map(_SHAPE_FIELDS, rows)).count(first) != count or \
            max(map(_STATE_FIELD, rows)) >= len(_LEASE_STATES):
        return None
    pool = first[2].decode()
    states = _LEASE_STATES
    # Named tuples made from their fields in order, without their __new__'s frame:
    # a quarter of the time of decoding a page.
    new = tuple.__new__
    return [new(LeaseRecord, (backup_id, pool, row[3], new(Lease, (
        row[3], pool, row[9], row[11], states[row[4]], row[5],
        None if row[6] < 0 else row[6], row[13] or None,
        row[15].decode("utf-8", "replace") or None, row[17] or None, "peer-sync",
        row[7] != 0)))) for row in rows]
