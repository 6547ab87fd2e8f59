"""Typed, immutable configuration objects that the engines read.

A :class:`DeviceConfig` is built only from a configuration that passed YANG
validation (``nefeature.datastore.validation``), with defaults filled in,
so nothing here re-checks a constraint: the model is the source of truth.
What happens here is translation into the terms an engine works in:
addresses become ``ipaddress`` objects, the two pool dialects become one
subnet and router list, a lease time becomes seconds (with the dialect's
default when none is configured: 3 days NE, 1 day CE/AR), a user option
becomes the bytes that go on the wire, a tracked interface becomes a signed
priority change, a pool bound to a remote-backup-profile without a server
identifier takes its gateway-list virtual IP.  Layer-2 settings (VLANs,
switch ports) are carried for completeness; no engine acts on them.

Every collection is a tuple of items with a ``key``; the diff
(``nefeature.config.diff``) compares items by key.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

IF = "nefeature-interfaces:"
VRRP = "nefeature-vrrp:"
DHCP = "nefeature-dhcp-server:"
RBS = "nefeature-rbs:"

#: A pool's lease when none is configured, per VRP dialect (nefeature-dhcp-server lease-time).
DEFAULT_LEASE_DAYS_NE = 3  # 'gateway' pools: NE40E 'lease', default 3 days
DEFAULT_LEASE_DAYS_CE = 1  # 'network' pools: CE/AR 'lease day', default 1 day


@dataclass(frozen=True)
class Interface:
    """One interface and the Linux device it runs on."""

    name: str
    linux_name: str
    description: str | None = None
    shutdown: bool = False
    address: IPv4Interface | None = None
    dhcp_server: bool = False  # 'dhcp server enable' or 'dhcp select global'
    portswitch: bool = False  # layer 2: stored, carried out by the Linux bridge or switch
    link_type: str | None = None
    default_vlan: int | None = None
    trunk_vlans: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class TrackedInterface:
    """A tracked interface; its link going down adds ``priority_change``."""

    interface: str
    priority_change: int  # negative: 'reduced N'; positive: 'increased N'


@dataclass(frozen=True)
class VrrpGroup:
    """One VRRPv3 virtual router (RFC 5798 names; times in centiseconds)."""

    interface: str
    vrid: int
    priority: int = 100
    preempt: bool = True
    preempt_hold_time: int = 0  # seconds
    advertise_interval: int = 100  # centiseconds
    accept_mode: bool = False
    virtual_mac: bool = True  # RFC 5798 section 7.3 MAC, 00:00:5e:00:01:{vrid}
    virtual_addresses: tuple[IPv4Address, ...] = ()
    tracks: tuple[TrackedInterface, ...] = ()
    recover_delay: int = 0  # seconds, per interface

    @property
    def key(self) -> tuple[str, int]:
        return (self.interface, self.vrid)


@dataclass(frozen=True)
class AddressRange:
    """An inclusive range of IPv4 addresses."""

    start: IPv4Address
    end: IPv4Address

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.start <= address <= self.end

    def __len__(self) -> int:
        return int(self.end) - int(self.start) + 1


@dataclass(frozen=True)
class StaticBind:
    """A fixed address for one MAC (lower-case, colon-separated)."""

    address: IPv4Address
    mac: str
    description: str | None = None


@dataclass(frozen=True)
class UserOption:
    """A configured DHCP option, already encoded as its wire value."""

    code: int
    value: bytes


@dataclass(frozen=True)
class Pool:
    """A global address pool, whichever VRP dialect configured it."""

    name: str
    network: IPv4Network
    routers: tuple[IPv4Address, ...] = ()
    sections: tuple[AddressRange, ...] = ()  # the whole subnet when none is configured
    excluded: tuple[AddressRange, ...] = ()
    static_binds: tuple[StaticBind, ...] = ()
    lease_time: int | None = 86400  # seconds; None is unlimited
    dns_servers: tuple[IPv4Address, ...] = ()
    domain_name: str | None = None
    options: tuple[UserOption, ...] = ()
    identifier: IPv4Address | None = None
    backup_profile: str | None = None
    warning_threshold: int | None = None  # percent

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class RbsService:
    """A remote backup service: the TCP channel to the peer."""

    name: str
    peer: IPv4Address | None = None
    source: IPv4Address | None = None
    port: int | None = None
    shared_key: str | None = field(default=None, repr=False)
    shut_down: bool = False

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class RbsProfile:
    """A remote backup profile: which VRRP group decides, what is backed up."""

    name: str
    service: str | None = None
    backup_id: int | None = None
    mode: str = "hot"
    vrrp: tuple[str, int] | None = None  # (interface, vrid)
    service_types: frozenset[str] = frozenset()
    sync_mode: str = "strict"
    mclt: int = 3600  # seconds
    partition_share: int = 50  # percent of each pool's addresses that are the secondary's

    @property
    def key(self) -> str:
        return self.name


@dataclass(frozen=True)
class FloodProtection:
    """Starvation defence limits; 0 turns a limit off."""

    client_rate: int = 0
    circuit_rate: int = 0
    max_offers_in_flight: int = 0


@dataclass(frozen=True)
class DeviceConfig:
    """The whole configuration of one device."""

    dhcp_enabled: bool = True
    sysname: str = "HUAWEI"
    vlans: tuple[int, ...] = ()
    flood_protection: FloodProtection = FloodProtection()
    interfaces: tuple[Interface, ...] = ()
    vrrp_groups: tuple[VrrpGroup, ...] = ()
    pools: tuple[Pool, ...] = ()
    rbs_services: tuple[RbsService, ...] = ()
    rbs_profiles: tuple[RbsProfile, ...] = ()

    def interface(self, name: str) -> Interface:
        return _by_key(self.interfaces, name)

    def pool(self, name: str) -> Pool:
        return _by_key(self.pools, name)

    def vrrp_group(self, interface: str, vrid: int) -> VrrpGroup:
        return _by_key(self.vrrp_groups, (interface, vrid))

    def rbs_service(self, name: str) -> RbsService:
        return _by_key(self.rbs_services, name)

    def rbs_profile(self, name: str) -> RbsProfile:
        return _by_key(self.rbs_profiles, name)


def _by_key(items: tuple, key: object):
    for item in items:
        if item.key == key:
            return item
    raise KeyError(key)


# --- building from validated raw data (yangson JSON form, defaults added) ---


def _flood_protection(entry: dict[str, Any]) -> FloodProtection:
    return FloodProtection(client_rate=entry.get("client-rate", 0),
                           circuit_rate=entry.get("circuit-rate", 0),
                           max_offers_in_flight=entry.get("max-offers-in-flight", 0))


def build_device_config(raw: dict[str, Any]) -> DeviceConfig:
    """Translate a validated configuration into typed objects."""
    interface_entries = raw.get(IF + "interfaces", {}).get("interface", [])
    dhcp = raw.get(DHCP + "dhcp", {})
    rbs = raw.get(RBS + "rbs", {})
    recover_delay = raw.get(VRRP + "vrrp", {}).get("recover-delay", 0)
    vrrp_groups = tuple(
        group for entry in interface_entries for group in _vrrp_groups(entry, recover_delay)
    )
    rbs_profiles = tuple(
        _rbs_profile(entry) for entry in rbs.get("profiles", {}).get("profile", [])
    )
    pools = tuple(
        _pool(entry) for entry in dhcp.get("server", {}).get("ip-pools", {}).get("ip-pool", [])
    )
    return DeviceConfig(
        dhcp_enabled=dhcp.get("enable", True),
        sysname=raw.get(IF + "system", {}).get("sysname", "HUAWEI"),
        vlans=tuple(sorted(v["vlan-id"] for v in raw.get(IF + "vlans", {}).get("vlan", []))),
        flood_protection=_flood_protection(dhcp.get("server", {}).get("flood-protection", {})),
        interfaces=tuple(_interface(entry) for entry in interface_entries),
        vrrp_groups=vrrp_groups,
        pools=tuple(_with_virtual_identifier(pool, rbs_profiles, vrrp_groups) for pool in pools),
        rbs_services=tuple(
            _rbs_service(entry) for entry in rbs.get("services", {}).get("service", [])
        ),
        rbs_profiles=rbs_profiles,
    )


def _with_virtual_identifier(pool: Pool, profiles: tuple[RbsProfile, ...],
                             groups: tuple[VrrpGroup, ...]) -> Pool:
    """A backed-up pool without 'server identifier ip' (CE/AR form) identifies itself by
    its gateway-list address that is a virtual IP of the profile's group (the model's
    identifier-not-virtual-ip rule guarantees there is one)."""
    if pool.identifier is not None or pool.backup_profile is None:
        return pool
    profile = next((p for p in profiles if p.name == pool.backup_profile), None)
    group = next((g for g in groups if profile is not None and g.key == profile.vrrp), None)
    virtual = [router for router in pool.routers
               if group is not None and router in group.virtual_addresses]
    return replace(pool, identifier=virtual[0]) if virtual else pool


def _interface(entry: dict[str, Any]) -> Interface:
    ipv4 = entry.get("ipv4", {})
    address = None
    if "address" in ipv4:
        address = IPv4Interface(f"{ipv4['address']}/{ipv4['mask']}")
    dhcp = entry.get(DHCP + "dhcp", {})
    port = entry.get("port", {})
    return Interface(
        name=entry["name"],
        linux_name=entry.get("linux-name", entry["name"]),
        description=entry.get("description"),
        shutdown=entry.get("shutdown", False),
        address=address,
        dhcp_server=dhcp.get("server-enable") == "enable" or dhcp.get("select") == "global",
        portswitch=entry.get("portswitch", False),
        link_type=port.get("link-type"),
        default_vlan=port.get("default-vlan"),
        trunk_vlans=tuple(sorted(port.get("trunk-allow-pass-vlan", []))),
    )


def _vrrp_groups(entry: dict[str, Any], system_recover_delay: int = 0) -> list[VrrpGroup]:
    vrrp = entry.get("ipv4", {}).get(VRRP + "vrrp", {})
    groups = []
    for instance in vrrp.get("vrrp-instance", []):
        preempt = instance.get("preempt", {})
        tracks = instance.get("track", {}).get("interfaces", {}).get("interface", [])
        addresses = instance.get("virtual-ipv4-addresses", {}).get("virtual-ipv4-address", [])
        groups.append(
            VrrpGroup(
                interface=entry["name"],
                vrid=instance["vrid"],
                priority=instance.get("priority", 100),
                preempt=preempt.get("enabled", True),
                preempt_hold_time=preempt.get("hold-time", 0),
                advertise_interval=instance.get("advertise-interval-centi-sec", 100),
                accept_mode=instance.get("accept-mode", False),
                virtual_mac=instance.get("virtual-mac", True),
                virtual_addresses=tuple(IPv4Address(a["ipv4-address"]) for a in addresses),
                tracks=tuple(
                    TrackedInterface(
                        interface=track["interface"],
                        priority_change=track["priority-increment"]
                        if "priority-increment" in track
                        else -track.get("priority-decrement", 10),
                    )
                    for track in tracks
                ),
                recover_delay=vrrp.get("recover-delay", system_recover_delay),
            )
        )
    return groups


def _pool(entry: dict[str, Any]) -> Pool:
    if "gateway" in entry:  # NE dialect: gateway <ip> <mask>
        gateway = IPv4Interface(f"{entry['gateway']['ip-address']}/{entry['gateway']['mask']}")
        network, routers = gateway.network, (gateway.ip,)
    else:  # CE/AR dialect: network <ip> mask <mask> + gateway-list
        network = IPv4Network(f"{entry['network']['ip-address']}/{entry['network']['mask']}")
        routers = tuple(IPv4Address(a) for a in entry.get("gateway-list", []))
    sections = tuple(
        AddressRange(IPv4Address(s["start-ip"]), IPv4Address(s["end-ip"]))
        for s in sorted(entry.get("sections", {}).get("section", []), key=lambda s: s["section-index"])
    ) or (_host_range(network),)
    excluded = tuple(
        AddressRange(IPv4Address(e["start-ip-address"]), IPv4Address(e["end-ip-address"]))
        for e in entry.get("excluded-ip-addresses", {}).get("excluded-ip-address", [])
    )
    binds = tuple(
        StaticBind(IPv4Address(b["ip-address"]), b["mac-address"].lower(), b.get("description"))
        for b in entry.get("static-binds", {}).get("static-bind", [])
    )
    lease = entry.get("lease-time", {})
    if "unlimited" in lease:
        lease_time = None
    elif "day" not in lease and not lease.get("hour") and not lease.get("minute"):
        days = DEFAULT_LEASE_DAYS_NE if "gateway" in entry else DEFAULT_LEASE_DAYS_CE
        lease_time = days * 86400
    else:
        lease_time = (lease.get("day", 0) * 86400 + lease.get("hour", 0) * 3600
                      + lease.get("minute", 0) * 60)
    options = tuple(
        UserOption(o["option-code"], _option_bytes(o))
        for o in entry.get("user-options", {}).get("user-option", [])
    )
    identifier = entry.get("identifier-ip")
    return Pool(
        name=entry["ip-pool-name"],
        network=network,
        routers=routers,
        sections=sections,
        excluded=excluded,
        static_binds=binds,
        lease_time=lease_time,
        dns_servers=tuple(IPv4Address(a) for a in entry.get("dns-list", [])),
        domain_name=entry.get("domain-name"),
        options=options,
        identifier=IPv4Address(identifier) if identifier else None,
        backup_profile=entry.get("remote-backup-profile"),
        warning_threshold=entry.get("warning-threshold"),
    )


def _host_range(network: IPv4Network) -> AddressRange:
    """Every host address of a subnet (all of it for /31 and /32, RFC 3021)."""
    if network.prefixlen >= 31:
        return AddressRange(network.network_address, network.broadcast_address)
    return AddressRange(network.network_address + 1, network.broadcast_address - 1)


def _option_bytes(option: dict[str, Any]) -> bytes:
    """The wire value of a user option: its value, or its sub-options as TLVs."""
    if "sub-option" in option:
        return b"".join(
            struct.pack("!BB", sub["sub-code"], len(value)) + value
            for sub in option["sub-option"]
            for value in [_value_bytes(sub, "sub-")]
        )
    return _value_bytes(option)


def _value_bytes(value: dict[str, Any], prefix: str = "") -> bytes:
    """Encode the ascii / hex / ip-address choice (``sub-`` names in a sub-option)."""
    if prefix + "ascii" in value:
        return value[prefix + "ascii"].encode("utf-8")
    if prefix + "hex" in value:
        return bytes.fromhex(value[prefix + "hex"])
    return b"".join(IPv4Address(a).packed for a in value[prefix + "ip-address"])


def _rbs_service(entry: dict[str, Any]) -> RbsService:
    return RbsService(
        name=entry["name"],
        peer=IPv4Address(entry["peer-ip"]) if "peer-ip" in entry else None,
        source=IPv4Address(entry["source-ip"]) if "source-ip" in entry else None,
        port=entry.get("tcp-port"),
        shared_key=entry.get("shared-key"),
        shut_down=entry.get("shut-down", False),
    )


def _rbs_profile(entry: dict[str, Any]) -> RbsProfile:
    vrrps = entry.get("vrrps", {}).get("vrrp", [])
    return RbsProfile(
        name=entry["name"],
        service=entry.get("service-name"),
        backup_id=entry.get("backup-id"),
        mode=entry.get("mode", "hot"),
        vrrp=(vrrps[0]["if-name"], vrrps[0]["id"]) if vrrps else None,
        service_types=frozenset(entry.get("service-type", [])),
        sync_mode=entry.get("sync-mode", "strict"),
        mclt=entry.get("mclt", 3600),
        partition_share=entry.get("partition-share", 50),
    )
