"""What the NETCONF server needs from a device: one typed interface.

The server never reaches into a device by attribute names it guesses; it
reads the engines listed here (for state) and calls the operations listed
here (for the RPCs that act on the device).  Everything is read and called
on the event loop thread that owns the device (the server hands it over
with ``call_in_loop``).  Events travel the other way: the device hands each
engine event it wants reported to ``NetconfHandler.publish`` (see
``nefeature.netconf.notifications``).
"""

from __future__ import annotations

from typing import Protocol

from nefeature.config.model import DeviceConfig
from nefeature.datastore.datastores import Datastores
from nefeature.dhcp.server import DhcpServer
from nefeature.vrrp.router import VrrpRouter


class ManagedDevice(Protocol):
    """A device as the management plane sees it."""

    #: running / candidate / startup, locks, (confirmed) commit bookkeeping.
    datastores: Datastores
    #: the running configuration as typed objects.
    config: DeviceConfig
    #: the DHCP server engine (pools, lease table and its indexes, statistics).
    dhcp: DhcpServer
    #: the VRRP routers, by (interface, vrid).
    vrrp: dict[tuple[str, int], VrrpRouter]
    #: RFC 8347 global VRRP error counters, by leaf name.
    vrrp_errors: dict[str, int]
    #: the hot-backup engine: read only, for state (``nefeature.state.backup_view``).
    backup: object

    def channel_tcp_states(self) -> dict[str, str]:
        """tcp-state of each remote-backup-service's channel, by service name."""
        ...

    def now(self) -> float:
        """Wall-clock time, seconds since the epoch (the clock of lease times)."""
        ...

    def protocol_now(self) -> float:
        """The monotonic clock protocol timers run on (VRRP, channel, preemption)."""
        ...

    def commit(self, session: int, confirmed: bool, timeout: int, persist: str | None,
               persist_id: str | None) -> None:
        """Commit the candidate (RFC 6241 8.3.4, 8.4); raises NetconfError."""
        ...

    def cancel_commit(self, session: int, persist_id: str | None) -> None:
        """Cancel a confirmed commit (RFC 6241 8.4.4.1); raises NetconfError."""
        ...

    def reset_statistics(self) -> None:
        """Zero the DHCP message counters."""
        ...

    def reset_address_state(self, pool: str, start: int | None, end: int | None,
                            flag: str | None) -> int:
        """Return a pool's addresses (all, or start..end) in the flagged states to idle;
        the journal holds the change when this returns.  How many were reset."""
        ...

    def batch_backup_now(self, service: str) -> bool:
        """Send the whole lease table to the peer of ``service`` now; False when the
        channel is not connected."""
        ...
