"""What changed between two configurations, per object, for a transaction.

The two-phase apply (docs/architecture.md: validate, prepare everywhere,
then apply or abort) hands each subsystem only the objects that concern it:
pools to the DHCP engine, VRRP groups to the VRRP routers, services and
profiles to remote backup.  An object is identified by its ``key``; one
that exists on both sides but differs is ``changed``, with both versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from nefeature.config.model import DeviceConfig

#: The keyed collections of a DeviceConfig, in the order subsystems apply them.
SECTIONS = ("interfaces", "vrrp_groups", "rbs_services", "rbs_profiles", "pools")

ChangeKind = Literal["created", "changed", "deleted"]


@dataclass(frozen=True)
class Change:
    """One object created, changed or deleted."""

    kind: ChangeKind
    section: str  # a name from SECTIONS, or "dhcp_enabled"
    key: Any
    old: Any
    new: Any


@dataclass(frozen=True)
class ConfigDiff:
    """All changes, in SECTIONS order and key order within a section."""

    changes: tuple[Change, ...]

    def __bool__(self) -> bool:
        return bool(self.changes)

    def of(self, section: str, kind: ChangeKind | None = None) -> tuple[Change, ...]:
        """The changes to one section, optionally of one kind."""
        return tuple(
            c for c in self.changes if c.section == section and (kind is None or c.kind == kind)
        )

    def keys(self, section: str, kind: ChangeKind) -> tuple[Any, ...]:
        return tuple(c.key for c in self.of(section, kind))


def diff_configs(old: DeviceConfig, new: DeviceConfig) -> ConfigDiff:
    """Compare two configurations object by object."""
    changes: list[Change] = []
    if old.dhcp_enabled != new.dhcp_enabled:
        changes.append(Change("changed", "dhcp_enabled", None, old.dhcp_enabled, new.dhcp_enabled))
    for section in SECTIONS:
        before = {item.key: item for item in getattr(old, section)}
        after = {item.key: item for item in getattr(new, section)}
        for key in sorted(before.keys() | after.keys()):
            if key not in after:
                changes.append(Change("deleted", section, key, before[key], None))
            elif key not in before:
                changes.append(Change("created", section, key, None, after[key]))
            elif before[key] != after[key]:
                changes.append(Change("changed", section, key, before[key], after[key]))
    return ConfigDiff(tuple(changes))
