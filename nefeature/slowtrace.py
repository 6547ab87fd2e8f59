"""Diagnostics: what held the event loop, and which DHCPACKs waited, with timestamps.

Off unless ``NEFEATURE_TRACE_SLOW_MS`` is set (a threshold in milliseconds).  Then the
device logs, on the logger ``nefeature.trace``, one line per:

* input (``Device._input``: one call into the core and carrying out its outputs) that took
  longer than the threshold, with the table's size before and after and how much of it was
  the in-line journal write;
* turn of the loop that a 5 ms ticker saw start later than the threshold after it was due
  (whatever held the loop, inside an input or not);
* garbage-collector pass longer than 2 ms;
* journal write done on the journal thread (a checkpoint held the write lock), and checkpoint
  longer than 2 ms;
* DHCPACK (a durable reply) that left longer than the threshold after its request arrived.

Each line starts with the wall-clock time, so the two devices' logs line up.
"""

from __future__ import annotations

import gc
import logging
import os
import time

log = logging.getLogger("nefeature.trace")

TICK = 0.005


def threshold() -> float | None:
    """Seconds, from ``NEFEATURE_TRACE_SLOW_MS``; None when tracing is off."""
    value = os.environ.get("NEFEATURE_TRACE_SLOW_MS")
    return float(value) / 1000.0 if value else None


def note(what: str, *args) -> None:
    log.info("%.3f " + what, time.time(), *args)


class SlowTrace:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.journal_s = 0.0  # in-line journal time within the current input
        self.arrivals: dict[bytes, float] = {}
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            spent = time.perf_counter() - self._gc_start
            if spent > 0.002:
                note("gc gen %d %.1f ms collected %d", info["generation"], spent * 1e3,
                     info["collected"])

    def start_ticker(self, loop) -> None:
        due = time.monotonic() + TICK

        def tick() -> None:
            nonlocal due
            late = time.monotonic() - due
            if late > self.limit:
                note("loop late %.1f ms", late * 1e3)
            due = time.monotonic() + TICK
            loop.call_later(TICK, tick)

        loop.call_later(TICK, tick)

    def input_done(self, name: str, started: float, cpu: float, before: int,
                   after: int) -> None:
        """An input that took over the limit, with the CPU its thread had meanwhile (the
        rest is waiting for a core, or for a page of memory)."""
        spent = time.perf_counter() - started
        if spent > self.limit:
            note("input %s %.1f ms (cpu %.1f ms, journal %.1f ms) table %d -> %d", name,
                 spent * 1e3, (time.thread_time() - cpu) * 1e3, self.journal_s * 1e3, before,
                 after)
        self.journal_s = 0.0

    def received(self, packets) -> None:
        now = time.monotonic()
        arrivals = self.arrivals
        if len(arrivals) > 100_000:
            arrivals.clear()
        for packet in packets:
            arrivals[packet.data[4:8]] = now

    def sent(self, reply) -> None:
        arrived = self.arrivals.pop(reply.data[4:8], None)
        if reply.durable and arrived is not None:
            held = time.monotonic() - arrived
            if held > self.limit:
                note("ack held %.1f ms", held * 1e3)
