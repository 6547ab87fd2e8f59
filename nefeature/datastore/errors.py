"""Errors that carry their NETCONF wire fields from the place they arise.

RFC 6241 section 4.3 defines the <rpc-error> fields; RFC 7950 section 15
says which error-tag and error-app-tag a YANG constraint violation gets.
Whoever detects a problem raises :class:`NetconfError` with those fields
filled in, so the NETCONF layer only serializes them and never has to
guess a tag from message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ErrorInfo:
    """One child of <error-info>, e.g. ``bad-element`` or ``non-unique``."""

    name: str
    value: str


@dataclass
class NetconfError(Exception):
    """An <rpc-error>: error-type, error-tag and what a user needs to fix it.

    ``path`` is an instance identifier whose prefixes are YANG module names
    (``/nefeature-rbs:rbs/services/service[name="s1"]/tcp-port``).
    """

    error_type: str  # transport | rpc | protocol | application
    tag: str
    message: str
    path: str | None = None
    app_tag: str | None = None
    info: tuple[ErrorInfo, ...] = field(default=())
    severity: str = "error"
    # Further problems found in the same request; each becomes its own <rpc-error>.
    others: tuple["NetconfError", ...] = field(default=())

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def every(self) -> tuple["NetconfError", ...]:
        """This error and the others found with it, in document order."""
        return (self, *self.others)

    @classmethod
    def combined(cls, errors: list["NetconfError"], limit: int) -> "NetconfError":
        """One exception for several errors; at most ``limit`` of them are kept."""
        flat = [single for error in errors for single in error.every()][:limit]
        first = flat[0]
        return cls(first.error_type, first.tag, first.message, first.path, first.app_tag,
                   first.info, first.severity, others=tuple(flat[1:]))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"
