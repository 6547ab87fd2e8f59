"""Reading a busy DHCP socket less often (``ReadPacer``, ``PacedReader``): under load a
socket is read at most once per hold, so one wake-up serves what arrived meanwhile; below
the rate, and once a read finds nothing, a datagram is read as soon as it arrives.  The
pacer on a fake clock; the reader on real loopback sockets, with the C helper's timerfd and
with the event loop's timer."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from nefeature.dhcp import transport
from nefeature.dhcp.transport import DhcpSockets, PacedReader, ReadPacer


def test_below_the_rate_every_read_is_as_soon_as_the_socket_is_readable():
    pacer = ReadPacer(hold=0.0005, from_rate=6000, window=0.01)
    now = 100.0
    for _ in range(50):  # 5,000 datagrams a second, one a read
        assert pacer.after_read(now, 1) is None
        now += 0.0002
    assert not pacer.holding


def test_a_window_at_the_rate_holds_the_next_reads():
    pacer = ReadPacer(hold=0.0005, from_rate=6000, window=0.01)
    assert pacer.after_read(100.0, 30) is None  # the window starts
    assert pacer.after_read(100.005, 40) is None  # not a whole window yet
    assert pacer.after_read(100.010, 1) == pytest.approx(100.0105)  # 71 in 10 ms: 7,100 a second
    assert pacer.holding
    assert pacer.after_read(100.0105, 5) == pytest.approx(100.011)


def test_a_read_that_finds_nothing_ends_the_hold_at_once():
    pacer = ReadPacer(hold=0.0005, from_rate=6000, window=0.01)
    pacer.after_read(100.0, 100)
    assert pacer.after_read(100.01, 1) is not None
    assert pacer.after_read(100.0105, 0) is None
    assert not pacer.holding
    assert pacer.after_read(100.0106, 1) is None  # the next datagram is read when it comes


def test_a_window_below_the_rate_ends_the_hold():
    pacer = ReadPacer(hold=0.0005, from_rate=6000, window=0.01)
    pacer.after_read(100.0, 100)
    assert pacer.after_read(100.01, 1) is not None
    assert pacer.after_read(100.015, 20) is not None  # still holding within the window
    assert pacer.after_read(100.021, 1) is None  # 21 in 11 ms: 1,900 a second
    assert not pacer.holding


def _send(port: int, count: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for n in range(count):
            sender.sendto(n.to_bytes(2, "big") * 150, ("127.0.0.1", port))


@pytest.fixture(params=["asyncio", "uvloop"])
def new_loop(request):
    """A new event loop of each kind the device can run on (uvloop: ``make test`` installs
    it, ``nefeature run`` uses it where installed)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop not installed (pip extra 'fast')")
        return uvloop.new_event_loop
    return asyncio.new_event_loop


@pytest.fixture(params=["timerfd", "loop timer"])
def timer_kind(request, monkeypatch):
    if request.param == "loop timer":
        monkeypatch.setattr(transport, "_batchio", None)
    elif transport._batchio is None or not hasattr(transport._batchio, "timer_open"):
        pytest.skip("the C helper is not built here: the loop's timer times the hold")
    return request.param


def _holding_sockets(loop, on_batch, hold: float) -> tuple[DhcpSockets, PacedReader, int]:
    """DHCP sockets on loopback whose UDP reader holds after every read that finds one."""
    sockets = DhcpSockets(loop, on_batch, [], "127.0.0.1", port=0)
    reader = sockets._readers[0]
    reader.pacer = ReadPacer(hold=hold, from_rate=1, window=0.0)
    return sockets, reader, sockets.udp.getsockname()[1]


def test_a_held_socket_is_read_once_after_the_hold_with_all_that_came_meanwhile(timer_kind,
                                                                               new_loop):
    """A long hold (0.2 s) makes the timing plain: two bursts sent during it come in one
    read at its end, and a read that then finds nothing puts the socket back on watch."""
    loop = new_loop()
    batches: list[list] = []
    sockets, reader, port = _holding_sockets(loop, batches.append, hold=0.2)

    async def scenario():
        _send(port, 3)
        await _until(lambda: len(batches) == 1)
        started = time.monotonic()
        _send(port, 4)
        await asyncio.sleep(0.05)
        _send(port, 5)
        await _until(lambda: len(batches) == 2)
        held = time.monotonic() - started
        await _until(lambda: reader._watching)  # the next read found nothing
        _send(port, 2)
        await _until(lambda: len(batches) == 3)
        return held

    try:
        held = loop.run_until_complete(scenario())
        assert [len(batch) for batch in batches] == [3, 9, 2]
        assert held >= 0.15
    finally:
        sockets.close()
        loop.close()


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_quiet_socket_is_read_as_soon_as_a_datagram_arrives(timer_kind, new_loop):
    loop = new_loop()
    batches: list[list] = []
    sockets = DhcpSockets(loop, batches.append, [], "127.0.0.1", port=0)
    port = sockets.udp.getsockname()[1]

    async def scenario():
        delays = []
        for _ in range(5):
            started = time.monotonic()
            _send(port, 1)
            await _until(lambda: len(batches) == len(delays) + 1)
            delays.append(time.monotonic() - started)
        return delays

    try:
        delays = loop.run_until_complete(scenario())
        assert [len(batch) for batch in batches] == [1] * 5
        assert not sockets._readers[0].pacer.holding
        assert max(delays) < 1.0
    finally:
        sockets.close()
        loop.close()


def test_closing_a_held_reader_leaves_no_timer_behind(timer_kind, new_loop):
    loop = new_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    reads = []
    reader = PacedReader(loop, sock.fileno(), lambda: reads.append(1) or 1,
                         ReadPacer(hold=0.05, from_rate=1, window=0.0))
    try:
        reader._on_readable()  # found one: the hold starts
        assert not reader._watching
        reader.close()
        loop.run_until_complete(asyncio.sleep(0.1))
        assert reads == [1]  # the hold's end did not call read
    finally:
        sock.close()
        loop.close()


def test_an_error_in_a_held_read_leaves_the_socket_watched(timer_kind, new_loop):
    """A batch whose handling raises must not stop the socket being read: the error goes
    to the loop, as a reader callback's would, and the next datagram is read."""
    loop = new_loop()
    errors: list = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    batches: list[list] = []

    def on_batch(batch):
        batches.append(batch)
        if len(batches) == 2:
            raise RuntimeError("a bug in the batch's handling")

    sockets, reader, port = _holding_sockets(loop, on_batch, hold=0.05)

    async def scenario():
        _send(port, 1)
        await _until(lambda: len(batches) == 1)
        _send(port, 1)  # read when the hold ends; its handling raises
        await _until(lambda: len(batches) == 2)
        await _until(lambda: reader._watching)
        _send(port, 1)
        await _until(lambda: len(batches) == 3)

    try:
        loop.run_until_complete(scenario())
        assert [len(batch) for batch in batches] == [1, 1, 1]
        assert "a bug in the batch's handling" in str(errors[0].get("exception"))
    finally:
        sockets.close()
        loop.close()
