"""Operational state of the engines, in the shape of the YANG model's config-false nodes.

``operational_state`` returns the state tree in yangson's JSON form (the
same form as a validated configuration's ``raw``), keyed by the same list
keys as the configuration, so the NETCONF server can merge it with the
running configuration for <get> and serialize both the same way.  Tests
validate the merged tree against the model (content type "all"), so the
state can only ever show what the model allows.

Reads cost what they return.  Given a subtree filter, only the parts of the
state it can reach are built (``nefeature.netconf.filters.lookup``): a
statistics poll reads counters, a pool's usage comes from the lease table's
per-pool counts, and the lease table is never walked for them.  A lease
asked for by address, pool, MAC address, client identifier or Option 82
circuit-id comes from the table's indexes.  The lease list itself is a
:class:`LeaseEntries`: on the event loop it only takes a snapshot of the
(immutable) leases it needs, one C-level copy; the entries are formatted
later, off the loop, as XML text streamed into the reply.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from xml.sax.saxutils import escape

from nefeature.config.model import DeviceConfig
from nefeature.dhcp.leases import Lease, LeaseState, LeaseTable, indexed_addresses
from nefeature.dhcp.pool import other_side
from nefeature.dhcp.server import DhcpServer
from nefeature.vrrp.router import VrrpRouter

IF = "nefeature-interfaces:"
VRRP = "nefeature-vrrp:"
DHCP = "nefeature-dhcp-server:"
RBS = "nefeature-rbs:"

LEASE_LIST_PATH = (DHCP + "dhcp", "server", "ip-pool-user-infos", "ip-pool-user-info")
PAGINATION_NS = "urn:nefeature:yang:nefeature-list-pagination"

_LEASE_STATUS = {
    LeaseState.OFFERED: "offered",
    LeaseState.BOUND: "used",
    LeaseState.EXPIRED: "expired",
    LeaseState.DECLINED: "conflict",
}

#: Leaves of a lease entry written as lower-case hex strings (content matches are
#: compared in that form).
HEX_LEAVES = frozenset({"mac-address", "client-id", "circuit-id", "remote-id", "raw"})

STREAM_CHUNK = 64 * 1024  # characters of lease entries per piece of a streamed reply


@functools.lru_cache(maxsize=4096)
def _seconds_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def date_and_time(epoch: float) -> str:
    """RFC 3339 / yang:date-and-time in UTC."""
    seconds = int(epoch // 1)
    return f"{_seconds_text(seconds)}.{int(round((epoch - seconds) * 1e6)) % 1000000:06d}Z"


def hex_string(data: bytes) -> str:
    """yang:hex-string ('01:ab:...')."""
    return data.hex(":")


def counter64(value: int) -> str:
    """64-bit integers are strings in the JSON form (RFC 7951 section 6.1)."""
    return str(value)


def _address(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def _link_state(linux_name: str) -> dict:
    base = Path("/sys/class/net") / linux_name
    try:
        state = {"oper-status": "up" if (base / "carrier").read_text().strip() == "1" else "down",
                 "if-index": int((base / "ifindex").read_text()),
                 "phys-address": (base / "address").read_text().strip()}
    except (OSError, ValueError):
        state = {"oper-status": "down"}
    return state


def vrrp_instance_state(router: VrrpRouter, now: float, wall_offset: float = 0.0) -> dict:
    """A router's state; its times are on the protocol (monotonic) clock ``now``, shown
    as wall-clock times by adding ``wall_offset``."""
    state = {
        "state": router.state.value,
        "is-owner": router.is_owner,
        "running-priority": router.priority,
        "master-down-interval": router.master_down_interval,
        "skew-time": router.skew_time,
        "master-advertise-interval": router.master_adver_interval,
        "last-event": router.last_event,
        "new-master-reason": router.new_master_reason,
        "statistics": {
            "master-transitions": router.statistics.master_transitions,
            "advertisement-rcvd": counter64(router.statistics.advertisement_rcvd),
            "advertisement-sent": counter64(router.statistics.advertisement_sent),
            "priority-zero-pkts-rcvd": counter64(router.statistics.priority_zero_pkts_rcvd),
            "priority-zero-pkts-sent": counter64(router.statistics.priority_zero_pkts_sent),
            "address-list-errors": counter64(router.statistics.address_list_errors),
        },
    }
    if router.master_ip is not None:
        state["master-ip-address"] = _address(router.master_ip)
    if router.master_priority is not None:
        state["master-priority"] = router.master_priority
    if router.last_adv_source is not None:
        state["last-adv-source"] = _address(router.last_adv_source)
    if router.up_since is not None:
        state["up-datetime"] = date_and_time(router.up_since + wall_offset)
    if router.last_change is not None:
        state["last-change-datetime"] = date_and_time(router.last_change + wall_offset)
    if router.virtual_mac is not None:
        state["virtual-mac"] = hex_string(router.virtual_mac)
    if router.preempt_timer is not None:
        state["preempt-remaining"] = max(0, min(65535, int(router.preempt_timer - now)))
    return state


def vrrp_instance(vrid: int, router: VrrpRouter, now: float, wall_offset: float = 0.0) -> dict:
    """A vrrp-instance's state, with each tracked interface's link as VRRP saw it."""
    instance = {"vrid": vrid, "state": vrrp_instance_state(router, now, wall_offset)}
    tracked = router.tracked_links()
    if tracked:
        instance["track"] = {"interfaces": {"interface": [
            {"interface": name, "oper-status": "up" if up else "down"}
            for name, up in tracked.items()]}}
    return instance


def lease_entry(lease: Lease, pool_name: str | None = None) -> dict:
    entry = {
        "pool-name": pool_name if pool_name is not None else lease.pool,
        "ip-address": _address(lease.address),
        "status": "static-bind-used" if lease.static and lease.state is LeaseState.BOUND
        else _LEASE_STATUS[lease.state],
        "lease-start": date_and_time(lease.start),
        "origin": lease.origin,
    }
    if len(lease.hardware_address) == 6:
        entry["mac-address"] = lease.hardware_address.hex(":")
    if lease.client_id:
        entry["client-id"] = lease.client_id.hex(":")
    if lease.hostname:
        entry["hostname"] = lease.hostname
    if lease.expiry is not None:
        entry["lease-expire"] = date_and_time(lease.expiry)
    if lease.option82:
        option82 = {"raw": lease.option82.hex(":")}
        circuit, remote = lease.circuit_id, lease.remote_id
        if circuit:
            option82["circuit-id"] = circuit.hex(":")
        if remote:
            option82["remote-id"] = remote.hex(":")
        entry["option82"] = option82
    return entry


# --- the lease list: snapshot on the loop, filtered, paged and written off it ---


@functools.cache
def _lease_field_order() -> tuple[tuple[str, tuple], ...]:
    """The lease entry's members in the order XML needs: keys first, then schema order."""
    from yangson.schemanode import InternalNode

    list_node = lease_list_schema()
    keys = [name for name, _ in list_node.keys]

    def order(node) -> tuple:
        return tuple((child.name, order(child) if isinstance(child, InternalNode) else ())
                     for child in node.data_children())

    return tuple(sorted(order(list_node),
                        key=lambda f: keys.index(f[0]) if f[0] in keys else len(keys)))


@functools.cache
def lease_list_schema():
    from nefeature.datastore.schema import served_model

    node = served_model().schema
    for member in LEASE_LIST_PATH:
        name = member.rpartition(":")[2]
        node = next(c for c in node.data_children() if c.name == name)
    return node


def _members_xml(entry: dict, fields: tuple) -> str:
    parts = []
    for name, children in fields:
        value = entry.get(name)
        if value is None:
            continue
        if children:
            parts.append(f"<{name}>{_members_xml(value, children)}</{name}>")
        else:
            text = escape(value) if isinstance(value, str) else str(value)
            parts.append(f"<{name}>{text}</{name}>")
    return "".join(parts)


def lease_entry_xml(entry: dict) -> str:
    """One ip-pool-user-info element, unprefixed (its parent sets the namespace)."""
    return f"<ip-pool-user-info>{_members_xml(entry, _lease_field_order())}</ip-pool-user-info>"


@functools.lru_cache(maxsize=1024)
def _option82_xml(raw: bytes) -> str:
    """The option82 container of a lease (relays send the same option for many clients)."""
    from nefeature.dhcp.codec import relay_agent_suboptions

    suboptions = relay_agent_suboptions(raw)
    return _members_xml({"option82": {"circuit-id": suboptions[1].hex(":") if suboptions.get(1)
                                      else None,
                                      "remote-id": suboptions[2].hex(":") if suboptions.get(2)
                                      else None, "raw": raw.hex(":")}},
                        tuple(f for f in _lease_field_order() if f[0] == "option82"))


@functools.lru_cache(maxsize=1024)
def _escaped(text: str) -> str:
    return escape(text)


def lease_xml(lease: Lease) -> str:
    """``lease_entry_xml(lease_entry(lease))`` without the dict: the whole-table path.

    The order is the schema's (a unit test holds the two paths equal)."""
    address = lease.address
    hardware = lease.hardware_address
    status = "static-bind-used" if lease.static and lease.state is LeaseState.BOUND \
        else _LEASE_STATUS[lease.state]
    return "".join((
        "<ip-pool-user-info><pool-name>", _escaped(lease.pool), "</pool-name><ip-address>",
        f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}",
        "</ip-address>",
        f"<mac-address>{hardware.hex(':')}</mac-address>" if len(hardware) == 6 else "",
        f"<client-id>{lease.client_id.hex(':')}</client-id>" if lease.client_id else "",
        f"<hostname>{escape(lease.hostname)}</hostname>" if lease.hostname else "",
        "<status>", status, "</status><lease-start>", date_and_time(lease.start),
        "</lease-start>",
        f"<lease-expire>{date_and_time(lease.expiry)}</lease-expire>"
        if lease.expiry is not None else "",
        _option82_xml(lease.option82) if lease.option82 else "",
        "<origin>", lease.origin, "</origin></ip-pool-user-info>"))


def _sort_key(lease: Lease) -> tuple[str, int]:
    return (lease.pool, lease.address)


def cursor_of(key: tuple[str, int]) -> str:
    """The pagination cursor naming one entry: '<ip-address>@<pool-name>'."""
    return f"{_address(key[1])}@{key[0]}"


def parse_cursor(cursor: str) -> tuple[str, int]:
    address, _, pool = cursor.partition("@")
    return (pool, int(IPv4Address(address)))


class LeaseEntries:
    """The lease list of one reply: a snapshot of leases, the filter on its entries, a page.

    Built on the event loop from immutable :class:`Lease` objects; everything
    else (filtering, sorting, paging, formatting) runs on the caller's thread.
    ``nefeature.datastore.xmlform.to_xml`` writes ``marker`` as a comment
    where the entries go; the server streams ``chunks()`` in its place.
    """

    marker = "nefeature-lease-entries"

    def __init__(self, leases: list[Lease]) -> None:
        self._leases = [lease for lease in leases if lease.state is not LeaseState.RELEASED]
        self._entries: list[tuple[tuple[str, int], dict]] | None = None  # after a filter
        self.remaining: int | None = None  # set by page()
        self.next_cursor: str | None = None

    def __len__(self) -> int:
        return len(self._entries) if self._entries is not None else len(self._leases)

    def filtered(self, filters) -> LeaseEntries | None:
        """The entries the filter nodes under ip-pool-user-info keep (None: none)."""
        from nefeature.netconf.filters import select_entry

        filters = [_lower_hex(node) for node in filters]
        kept = []
        for lease in self._leases:
            entry = select_entry(lease_entry(lease), filters, lease_list_schema())
            if entry is not None:
                kept.append((_sort_key(lease), entry))
        if not kept:
            return None
        result = LeaseEntries([])
        result._entries = kept
        return result

    def merged(self, other: LeaseEntries) -> LeaseEntries:
        """Entries of two filter nodes of the list (each entry once)."""
        result = LeaseEntries([])
        mine = dict(self._keyed())
        for key, entry in other._keyed():
            mine.setdefault(key, entry)
        result._entries = list(mine.items())
        return result

    def _keyed(self) -> Iterator[tuple[tuple[str, int], dict]]:
        if self._entries is not None:
            return iter(self._entries)
        return ((_sort_key(lease), lease_entry(lease)) for lease in self._leases)

    def page(self, limit: int | None, offset: int = 0, cursor: str | None = None) -> None:
        """Keep one page, in key order; note what remains and the next page's cursor."""
        if self._entries is not None:
            ordered = sorted(self._entries, key=lambda item: item[0])
            keys = [key for key, _ in ordered]
        else:
            self._leases.sort(key=_sort_key)
            ordered = self._leases
            keys = [_sort_key(lease) for lease in ordered]
        start = offset
        if cursor is not None:
            import bisect

            start = bisect.bisect_right(keys, parse_cursor(cursor))
        end = len(ordered) if limit is None else min(len(ordered), start + limit)
        self.remaining = len(ordered) - end
        self.next_cursor = cursor_of(keys[end - 1]) if self.remaining and end > start else None
        if self._entries is not None:
            self._entries = ordered[start:end]
        else:
            self._leases = ordered[start:end]

    def annotate(self, container) -> None:
        """Pagination annotations on the list's parent element (nefeature-list-pagination)."""
        if self.remaining is None:
            return
        container.set(f"{{{PAGINATION_NS}}}remaining", str(self.remaining))
        if self.next_cursor is not None:
            container.set(f"{{{PAGINATION_NS}}}next", self.next_cursor)

    def chunks(self) -> Iterator[str]:
        """The entries as XML text, in key order, in pieces of about STREAM_CHUNK."""
        if self._entries is not None:
            texts = (lease_entry_xml(entry) for _, entry in
                     sorted(self._entries, key=lambda item: item[0]))
        else:
            texts = (lease_xml(lease) for lease in sorted(self._leases, key=_sort_key))
        piece: list[str] = []
        size = 0
        for text in texts:
            piece.append(text)
            size += len(text)
            if size >= STREAM_CHUNK:
                yield "".join(piece)
                piece, size = [], 0
        if piece:
            yield "".join(piece)


def _lower_hex(node):
    """Content matches on hex leaves compare in the lower case the entries use."""
    from dataclasses import replace

    children = [_lower_hex(child) for child in node.children]
    value = node.value.lower() if node.value is not None and node.name in HEX_LEAVES \
        else node.value
    return replace(node, value=value, children=children)


def _hex_bytes(text: str) -> bytes | None:
    try:
        return bytes.fromhex(text.replace(":", "").replace("-", ""))
    except ValueError:
        return None


def _indexed_addresses(table: LeaseTable, conditions) -> set[int] | None:
    """Addresses that can satisfy the content matches of one ip-pool-user-info filter node,
    from the table's indexes; None when no condition has an index."""
    candidates: list[set[int]] = []
    for node in conditions:
        value = node.value
        if node.is_content_match and node.name == "ip-address":
            try:
                candidates.append({int(IPv4Address(value))})
            except ValueError:
                candidates.append(set())
        elif node.is_content_match and node.name == "pool-name":
            candidates.append(set(table.addresses_in(value)))
        elif node.is_content_match and node.name in ("mac-address", "client-id"):
            index = table.by_mac if node.name == "mac-address" else table.by_client_id
            data = _hex_bytes(value)
            candidates.append(indexed_addresses(index, data) if data is not None else set())
        elif node.name == "option82" and node.children:
            for child in node.children:
                if child.is_content_match and child.name == "circuit-id":
                    data = _hex_bytes(child.value)
                    candidates.append(indexed_addresses(table.by_circuit_id, data)
                                      if data is not None else set())
    if not candidates:
        return None
    return set.intersection(*sorted(candidates, key=len))


def lease_snapshot(table: LeaseTable, found) -> LeaseEntries:
    """On the loop: the leases a filter can select (``found`` from ``filters.lookup``)."""
    from nefeature.netconf.filters import ALL

    if found == ALL:
        return LeaseEntries(list(table.by_address.values()))
    addresses: set[int] = set()
    for node in found:
        indexed = _indexed_addresses(table, node.children)
        if indexed is None:
            return LeaseEntries(list(table.by_address.values()))
        addresses |= indexed
    by_address = table.by_address
    return LeaseEntries([by_address[a] for a in addresses if a in by_address])


# --- the other state ---


def pool_usage(dhcp: DhcpServer, name: str) -> dict:
    """ip-pool-usage from the table's per-pool counts (no walk over the leases)."""
    pool = dhcp.pools[name]
    counts = dhcp.table.state_counts.get(name, {})
    used = counts.get(LeaseState.BOUND, 0)
    expired = counts.get(LeaseState.EXPIRED, 0)
    conflict = counts.get(LeaseState.DECLINED, 0)
    total = pool.addresses.size
    idle = max(0, total - pool.addresses.in_use - expired)
    ratio = round(100 * used / total, 2) if total else 0
    return {"total": total, "used": used, "idle": idle, "expired": expired,
            "conflict": conflict, "disable": sum(len(r) for r in pool.config.excluded),
            "ratio": str(ratio)}


def statistics_state(dhcp: DhcpServer) -> dict:
    stats = dhcp.statistics
    return {name: counter64(value) for name, value in (
        ("client-request", stats.client_request), ("discover", stats.discover),
        ("request", stats.request), ("decline", stats.decline),
        ("release", stats.release), ("inform", stats.inform),
        ("server-reply", stats.server_reply), ("offer", stats.offer),
        ("ack", stats.ack), ("nak", stats.nak), ("force-renew", stats.force_renew),
        ("bad-messages", stats.bad_messages), ("flood-dropped", stats.flood_dropped))}


def dhcp_state(dhcp: DhcpServer, filters=None, lazy: bool = False) -> dict:
    """nefeature-dhcp-server state; with ``filters``, only what they can reach.

    ``lazy``: the lease list is a :class:`LeaseEntries` (streamed by the server)
    instead of a list of entries.
    """
    from nefeature.netconf.filters import lookup

    server: dict = {}
    if lookup(filters, (DHCP + "dhcp", "server", "ip-pools")) is not None:
        server["ip-pools"] = {"ip-pool": [{"ip-pool-name": name,
                                           "ip-pool-usage": pool_usage(dhcp, name)}
                                          for name in dhcp.pools]}
    found = lookup(filters, LEASE_LIST_PATH)
    if found is not None:
        entries = lease_snapshot(dhcp.table, found)
        server["ip-pool-user-infos"] = {"ip-pool-user-info": entries if lazy else [
            entry for _, entry in sorted(entries._keyed(), key=lambda item: item[0])]}
    if lookup(filters, (DHCP + "dhcp", "server", "statistics")) is not None:
        server["statistics"] = statistics_state(dhcp)
    return {"server": server}


@dataclass(frozen=True)
class ServiceView:
    """What the state shows of one remote-backup-service."""

    name: str
    statistics: object  # updates_sent, updates_received, acks_received, heartbeats_*, ...
    pending: int
    unconfirmed_replies: int
    times: dict  # last-up-time, last-down-time (epoch), last-down-reason


@dataclass(frozen=True)
class ProfileView:
    name: str
    local_state: str
    peer_state: str
    pending: int
    batch_status: str
    batch_total: int
    batch_received: int
    last_batch_time: float | None
    failover_state: str
    failover_role: str
    shares: tuple[dict, ...] = ()  # pool-share entries


def backup_view(backup, dhcp=None) -> tuple[list[ServiceView], list[ProfileView]]:
    """The one place that reads the hot-backup engine's fields for the state (and the
    DHCP engine's free addresses per share, when given)."""
    services = [ServiceView(name, channel.statistics, channel.pending,
                            backup.unconfirmed_replies.get(name, 0),
                            getattr(backup, "channel_times", {}).get(name, {}))
                for name, channel in backup.channels.items()]
    profiles = [ProfileView(p.name, p.local_state, p.peer_state,
                            backup.channels[p.service].pending, p.batch_status, p.batch_total,
                            p.batch_received, p.last_batch_time, p.failover.value,
                            p.failover_role, _pool_shares(p, dhcp))
                for p in backup.profiles.values()]
    return services, profiles


def _pool_shares(profile, dhcp) -> tuple[dict, ...]:
    shares = []
    for pool, split in sorted(profile.splits.items()):
        entry = {"pool": pool, "split": split}
        peer = profile.peer_splits.get(pool)
        if peer is not None:
            entry["peer-split"] = peer.saved
        state = dhcp.pools.get(pool) if dhcp is not None else None
        if state is not None and state.addresses.split is not None:
            free = state.addresses.free_by_side()
            own = state.addresses.own
            entry["own-free"], entry["peer-free"] = free[own], free[other_side(own)]
        shares.append(entry)
    return tuple(shares)


def rbs_state(backup, tcp_states: dict[str, str] | None = None, dhcp=None) -> dict:
    """nefeature-rbs state: channels and profiles of a HotBackup."""
    service_views, profile_views = backup_view(backup, dhcp)
    services = []
    for view in service_views:
        stats = view.statistics
        state = {
            "tcp-state": (tcp_states or {}).get(view.name, "initial"),
            "statistics": {
                "updates-sent": counter64(stats.updates_sent),
                "update-frames-sent": counter64(stats.update_frames_sent),
                "updates-received": counter64(stats.updates_received),
                "acks-received": counter64(stats.acks_received),
                "heartbeats-sent": counter64(stats.heartbeats_sent),
                "heartbeats-received": counter64(stats.heartbeats_received),
                "frames-rejected": counter64(stats.frames_rejected),
                "pending-updates": view.pending,
                "unconfirmed-replies": counter64(view.unconfirmed_replies),
            }}
        for leaf in ("last-up-time", "last-down-time"):
            if leaf in view.times:
                state[leaf] = date_and_time(view.times[leaf])
        if "last-down-reason" in view.times:
            state["last-down-reason"] = view.times["last-down-reason"]
        services.append({"name": view.name, "state": state})
    profiles = []
    for view in profile_views:
        state = {"local-state": view.local_state, "peer-state": view.peer_state,
                 "failover-state": view.failover_state, "failover-role": view.failover_role,
                 "pending-updates": view.pending,
                 "batch-backup": {"status": view.batch_status,
                                  "leases-total": view.batch_total,
                                  "leases-sent": view.batch_received}}
        if view.last_batch_time is not None:
            state["last-batch-backup-time"] = date_and_time(view.last_batch_time)
        if view.shares:
            state["pool-share"] = list(view.shares)
        profiles.append({"name": view.name, "state": state})
    return {RBS + "rbs": {"services": {"service": services},
                          "profiles": {"profile": profiles}}}


def operational_state(config: DeviceConfig, dhcp: DhcpServer,
                      vrrp: dict[tuple[str, int], VrrpRouter], vrrp_errors: dict[str, int],
                      now: float, backup=None, tcp_states: dict[str, str] | None = None,
                      filters=None, lazy: bool = False,
                      protocol_now: float | None = None) -> dict:
    """The config-false part of the model for the running engines.

    ``now`` is the wall clock; the VRRP routers' timers run on the protocol
    clock, whose reading is ``protocol_now`` (the same clock when None).
    With ``filters`` (parsed subtree filter nodes) only the parts they can
    select are built; ``lazy`` as in :func:`dhcp_state`.
    """
    router_now = now if protocol_now is None else protocol_now
    from nefeature.netconf.filters import lookup

    state: dict = {}
    if lookup(filters, (IF + "interfaces",)) is not None:
        interfaces = []
        for interface in config.interfaces:
            entry: dict = {"name": interface.name, "state": _link_state(interface.linux_name)}
            instances = [vrrp_instance(vrid, router, router_now, now - router_now)
                         for (name, vrid), router in vrrp.items() if name == interface.name]
            if instances:
                entry["ipv4"] = {VRRP + "vrrp": {"vrrp-instance": instances}}
            interfaces.append(entry)
        state[IF + "interfaces"] = {"interface": interfaces}
    if lookup(filters, (VRRP + "vrrp",)) is not None:
        state[VRRP + "vrrp"] = {
            "virtual-routers": len(vrrp),
            "interfaces": len({name for name, _ in vrrp}),
            "statistics": {name: counter64(vrrp_errors.get(name, 0)) for name in
                           ("checksum-errors", "version-errors", "vrid-errors",
                            "ip-ttl-errors")},
        }
    if lookup(filters, (DHCP + "dhcp",)) is not None:
        state[DHCP + "dhcp"] = dhcp_state(dhcp, filters, lazy)
    if backup is not None and lookup(filters, (RBS + "rbs",)) is not None:
        state.update(rbs_state(backup, tcp_states, dhcp))
    return state


def merge_trees(config: dict, state: dict, schema_node=None) -> dict:
    """Config and state in one tree: list entries are matched by their YANG keys.

    Neither input is changed: what is merged is new, the rest is shared.
    """
    from nefeature.datastore.schema import served_model

    schema_node = schema_node if schema_node is not None else served_model().schema
    merged = dict(config)
    for name, value in state.items():
        module, _, local = name.rpartition(":")
        child = schema_node.get_data_child(local, module or schema_node.ns)
        if name not in merged or child is None:
            merged[name] = value
        elif isinstance(value, list):
            keys = [key for key, _ in child.keys]
            by_key = {tuple(e.get(k) for k in keys): e for e in merged[name]}
            for entry in value:
                key = tuple(entry.get(k) for k in keys)
                by_key[key] = merge_trees(by_key[key], entry, child) if key in by_key else entry
            merged[name] = list(by_key.values())
        elif isinstance(value, dict):
            merged[name] = merge_trees(merged[name], value, child)
        else:
            merged[name] = value
    return merged
