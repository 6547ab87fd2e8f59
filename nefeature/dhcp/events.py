"""Lease events the DHCP engine emits, for the sync engine and the state view.

Each carries the lease as it is after the change.  ``LeaseCommitted`` is a
new or renewed binding (journaled before its DHCPACK leaves).
"""

from __future__ import annotations

from dataclasses import dataclass

from nefeature.dhcp.leases import Lease


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    lease: Lease


@dataclass(frozen=True, slots=True)
class LeaseCommitted(LeaseEvent):
    """A client was bound or renewed."""


@dataclass(frozen=True, slots=True)
class LeaseReleased(LeaseEvent):
    """The client sent DHCPRELEASE."""


@dataclass(frozen=True, slots=True)
class LeaseExpired(LeaseEvent):
    """The lease time ran out."""


@dataclass(frozen=True, slots=True)
class LeaseDeclined(LeaseEvent):
    """The client sent DHCPDECLINE: the address is in conflict."""


@dataclass(frozen=True, slots=True)
class LeaseRemoved(LeaseEvent):
    """The address went back to idle (reset-address-state); ``lease`` is the one removed."""


@dataclass(frozen=True, slots=True)
class PoolThresholdExceeded:
    """A pool's use reached its warning-threshold (sent once per crossing)."""

    pool: str
    total: int
    threshold_addresses: int
    allocated: int
