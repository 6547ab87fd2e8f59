"""The diagnostics of nefeature.slowtrace: off by default, and what they log when on."""

import logging
import time

from nefeature import slowtrace
from nefeature.dhcp.server import Received, Reply


def reply(xid: bytes, durable: bool) -> Reply:
    return Reply(b"\x02\x01\x06\x00" + xid + bytes(232), 0, 68, 0, None, None, durable)


def test_off_unless_the_variable_is_set(monkeypatch):
    monkeypatch.delenv("NEFEATURE_TRACE_SLOW_MS", raising=False)
    assert slowtrace.threshold() is None
    monkeypatch.setenv("NEFEATURE_TRACE_SLOW_MS", "20")
    assert slowtrace.threshold() == 0.02


def test_a_held_ack_and_a_slow_input_are_logged_a_quick_one_is_not(caplog):
    trace = slowtrace.SlowTrace(0.005)
    try:
        caplog.set_level(logging.INFO, logger="nefeature.trace")
        trace.received([Received(b"\x01\x01\x06\x00" + b"slow" + bytes(232)),
                        Received(b"\x01\x01\x06\x00" + b"fast" + bytes(232))])
        trace.sent(reply(b"fast", durable=True))
        time.sleep(0.01)
        trace.sent(reply(b"slow", durable=True))
        trace.input_done("channel_received", time.perf_counter() - 0.03, time.thread_time(),
                         10, 510)
        trace.input_done("dhcp_received", time.perf_counter(), time.thread_time(), 510, 510)
    finally:
        slowtrace.gc.callbacks.remove(trace._on_gc)
    messages = [record.getMessage().split(" ", 1)[1] for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("ack held ")
    assert messages[1].startswith("input channel_received 3") and messages[1].endswith(
        "table 10 -> 510")
    assert " (cpu 0." in messages[1], "the thread's CPU: it ran for none of the 30 ms"
