"""Who may log in over SSH, and how hard guessing is.

``Users`` holds the password and public-key users.  Each TCP connection gets
its own :class:`ConnectionAuthentication` (a ``paramiko.ServerInterface``)
that knows the peer's address, so every failed login is logged with the
user name and the source.

``LoginThrottle`` slows guessing down across connections, per source
address (sans-IO: it is given the time).  Every attempt from a source is
given a slot: after ``free`` failures the slots are spaced by a delay that
doubles with each further failure (up to ``max_delay``), so opening more
connections does not buy more guesses; after ``block_after`` failures the
source is refused outright, at accept time, until ``forget_after`` seconds
pass without a failure.  A successful login clears the source's record.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

import paramiko

log = logging.getLogger("nefeature.netconf")


@dataclass
class _Source:
    failures: int = 0
    last_failure: float = 0.0
    next_slot: float = 0.0


class LoginThrottle:
    """Per-source login failure accounting (see the module docstring)."""

    def __init__(self, free: int = 3, base_delay: float = 1.0, max_delay: float = 30.0,
                 block_after: int = 20, forget_after: float = 600.0) -> None:
        self.free = free
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.block_after = block_after
        self.forget_after = forget_after
        self._sources: dict[str, _Source] = {}

    def _record(self, source: str, now: float) -> _Source:
        record = self._sources.get(source)
        if record is not None and record.failures and \
                now - record.last_failure >= self.forget_after:
            del self._sources[source]
            record = None
        if record is None:
            record = self._sources[source] = _Source()
        return record

    def delay(self, source: str) -> float:
        """The spacing between attempts the source has earned so far."""
        record = self._sources.get(source)
        if record is None or record.failures < self.free:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (record.failures - self.free))

    def reserve(self, source: str, now: float) -> float:
        """Seconds the attempt starting now must wait for its slot."""
        record = self._record(source, now)
        start = max(now, record.next_slot)
        record.next_slot = start + self.delay(source)
        return start - now

    def failed(self, source: str, now: float) -> int:
        """Count a failure; how many the source has now."""
        record = self._record(source, now)
        record.failures += 1
        record.last_failure = now
        return record.failures

    def succeeded(self, source: str) -> None:
        self._sources.pop(source, None)

    def blocked(self, source: str, now: float) -> bool:
        """Refuse the source's connections outright?"""
        record = self._sources.get(source)
        if record is None or record.failures < self.block_after:
            return False
        if now - record.last_failure >= self.forget_after:
            del self._sources[source]
            return False
        return True

    def forget_idle(self, now: float) -> None:
        """Drop sources whose last failure is older than ``forget_after``."""
        for source in [s for s, r in self._sources.items()
                       if now - r.last_failure >= self.forget_after]:
            del self._sources[source]


class Users:
    """Password and public-key users, the throttle, and the time source."""

    def __init__(self, passwords: dict[str, str], keys: dict[str, list[paramiko.PKey]],
                 throttle: LoginThrottle | None = None, clock=time.monotonic,
                 sleep=time.sleep) -> None:
        self.passwords = passwords
        self.keys = keys
        self.throttle = throttle or LoginThrottle()
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.Lock()

    def for_connection(self, source: str) -> ConnectionAuthentication:
        return ConnectionAuthentication(self, source)

    def blocked(self, source: str) -> bool:
        with self.lock:
            return self.throttle.blocked(source, self.clock())

    def password_ok(self, username: str, password: str) -> bool:
        expected = self.passwords.get(username)
        return expected is not None and bool(password) and hmac.compare_digest(
            hashlib.sha256(password.encode()).digest(),
            hashlib.sha256(expected.encode()).digest())

    def key_ok(self, username: str, key: paramiko.PKey) -> bool:
        return any(key == known for known in self.keys.get(username, ()))

    def wait_for_slot(self, source: str) -> None:
        """Sleep until this source may try again (in the connection's own thread)."""
        with self.lock:
            wait = self.throttle.reserve(source, self.clock())
        if wait > 0:
            self.sleep(wait)

    def record(self, source: str, username: str, method: str, ok: bool) -> None:
        with self.lock:
            if ok:
                self.throttle.succeeded(source)
                return
            failures = self.throttle.failed(source, self.clock())
        log.warning("NETCONF login failed: user %r from %s (%s); %d failure(s) from this "
                    "source", username, source, method, failures)


class ConnectionAuthentication(paramiko.ServerInterface):
    """Authentication of one SSH connection from ``source``."""

    def __init__(self, users: Users, source: str) -> None:
        self.users = users
        self.source = source
        self.authenticated = threading.Event()
        self.username: str | None = None

    def get_allowed_auths(self, username):
        methods = []
        if username in self.users.passwords:
            methods.append("password")
        if self.users.keys.get(username):
            methods.append("publickey")
        return ",".join(methods) or "password"

    def _result(self, username: str, method: str, ok: bool) -> int:
        self.users.record(self.source, username, method, ok)
        if ok:
            self.username = username
            self.authenticated.set()
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_auth_password(self, username, password):
        self.users.wait_for_slot(self.source)
        return self._result(username, "password", self.users.password_ok(username, password))

    def check_auth_publickey(self, username, key):
        # Clients offer every key they hold before a password: an unknown key is
        # not a guess, so it is neither throttled nor counted.
        if self.users.key_ok(username, key):
            return self._result(username, "publickey", True)
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_subsystem_request(self, channel, name):
        return name == "netconf"
