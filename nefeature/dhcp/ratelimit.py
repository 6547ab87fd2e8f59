"""Token buckets keyed by client or relay circuit: the DHCP starvation defence.

A DHCP exhaustion attack (RFC 2131 section 7 leaves it to the operator)
sends DISCOVERs from thousands of forged hardware addresses until the pools
are empty.  Three limits together bound how fast a flood can take addresses:
a per-client message rate, a per-circuit-id rate for relayed clients (the
attacker's port, RFC 3046), and in the server a cap on offers awaiting a
REQUEST in each pool.  A bucket holds ``rate`` tokens at most (one second of
burst) and refills at ``rate`` per second; an empty bucket drops the message.
The table of buckets is bounded: when full, the least recently used key is
forgotten, which only ever makes the limiter more lenient, never stuck.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_TRACKED_KEYS = 65_536


class KeyedRateLimiter:
    """``allow(key, now)`` is True while ``key`` stays under ``rate`` per second."""

    def __init__(self, rate: int, max_keys: int = MAX_TRACKED_KEYS) -> None:
        self.rate = rate  # 0: unlimited
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # tokens, when

    def allow(self, key: bytes, now: float) -> bool:
        if self.rate <= 0:
            return True
        tokens, last = self._buckets.pop(key, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
