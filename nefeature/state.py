"""Operational state of the engines, in the shape of the YANG model's config-false nodes.

``operational_state`` returns the state tree in yangson's JSON form (the
same form as a validated configuration's ``raw``), keyed by the same list
keys as the configuration, so the NETCONF server can merge it with the
running configuration for <get> and serialize both the same way.  Tests
validate the merged tree against the model (content type "all"), so the
state can only ever show what the model allows.
"""

from __future__ import annotations

from datetime import datetime, timezone
from ipaddress import IPv4Address
from pathlib import Path

from nefeature.config.model import DeviceConfig
from nefeature.dhcp.leases import LeaseState
from nefeature.dhcp.server import DhcpServer
from nefeature.vrrp.router import VrrpRouter

IF = "nefeature-interfaces:"
VRRP = "nefeature-vrrp:"
DHCP = "nefeature-dhcp-server:"
RBS = "nefeature-rbs:"

_LEASE_STATUS = {
    LeaseState.OFFERED: "offered",
    LeaseState.BOUND: "used",
    LeaseState.EXPIRED: "expired",
    LeaseState.DECLINED: "conflict",
}


def date_and_time(epoch: float) -> str:
    """RFC 3339 / yang:date-and-time in UTC."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hex_string(data: bytes) -> str:
    """yang:hex-string ('01:ab:...')."""
    return ":".join(f"{b:02x}" for b in data)


def counter64(value: int) -> str:
    """64-bit integers are strings in the JSON form (RFC 7951 section 6.1)."""
    return str(value)


def _address(value: int) -> str:
    return str(IPv4Address(value))


def _link_state(linux_name: str) -> dict:
    base = Path("/sys/class/net") / linux_name
    try:
        state = {"oper-status": "up" if (base / "carrier").read_text().strip() == "1" else "down",
                 "if-index": int((base / "ifindex").read_text()),
                 "phys-address": (base / "address").read_text().strip()}
    except (OSError, ValueError):
        state = {"oper-status": "down"}
    return state


def vrrp_instance_state(router: VrrpRouter, now: float) -> dict:
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
        state["up-datetime"] = date_and_time(router.up_since)
    if router.last_change is not None:
        state["last-change-datetime"] = date_and_time(router.last_change)
    if router.virtual_mac is not None:
        state["virtual-mac"] = hex_string(router.virtual_mac)
    if router.preempt_timer is not None:
        state["preempt-remaining"] = max(0, min(65535, int(router.preempt_timer - now)))
    return state


def vrrp_instance(vrid: int, router: VrrpRouter, now: float) -> dict:
    """A vrrp-instance's state, with each tracked interface's link as VRRP saw it."""
    instance = {"vrid": vrid, "state": vrrp_instance_state(router, now)}
    tracked = router.tracked_links()
    if tracked:
        instance["track"] = {"interfaces": {"interface": [
            {"interface": name, "oper-status": "up" if up else "down"}
            for name, up in tracked.items()]}}
    return instance


def lease_entry(lease, pool_name: str) -> dict:
    entry = {
        "pool-name": pool_name,
        "ip-address": _address(lease.address),
        "status": "static-bind-used" if lease.static and lease.state is LeaseState.BOUND
        else _LEASE_STATUS[lease.state],
        "lease-start": date_and_time(lease.start),
        "origin": lease.origin,
    }
    if len(lease.hardware_address) == 6:
        entry["mac-address"] = hex_string(lease.hardware_address)
    if lease.client_id:
        entry["client-id"] = hex_string(lease.client_id)
    if lease.hostname:
        entry["hostname"] = lease.hostname
    if lease.expiry is not None:
        entry["lease-expire"] = date_and_time(lease.expiry)
    if lease.option82:
        option82 = {"raw": hex_string(lease.option82)}
        if lease.circuit_id:
            option82["circuit-id"] = hex_string(lease.circuit_id)
        if lease.remote_id:
            option82["remote-id"] = hex_string(lease.remote_id)
        entry["option82"] = option82
    return entry


def dhcp_state(dhcp: DhcpServer) -> dict:
    stats = dhcp.statistics
    pools = []
    for name, pool in dhcp.pools.items():
        counts = {"used": 0, "expired": 0, "conflict": 0}
        for lease in dhcp.table.by_address.values():
            if lease.pool != name:
                continue
            if lease.state is LeaseState.BOUND:
                counts["used"] += 1
            elif lease.state is LeaseState.EXPIRED:
                counts["expired"] += 1
            elif lease.state is LeaseState.DECLINED:
                counts["conflict"] += 1
        total = pool.addresses.size
        idle = max(0, total - pool.addresses.in_use - counts["expired"])
        ratio = round(100 * counts["used"] / total, 2) if total else 0
        pools.append({"ip-pool-name": name, "ip-pool-usage": {
            "total": total, "used": counts["used"], "idle": idle, "expired": counts["expired"],
            "conflict": counts["conflict"],
            "disable": sum(len(r) for r in pool.config.excluded), "ratio": str(ratio)}})
    leases = [lease_entry(lease, lease.pool) for lease in dhcp.table.by_address.values()
              if lease.state is not LeaseState.RELEASED]
    return {
        "server": {
            "ip-pools": {"ip-pool": pools},
            "ip-pool-user-infos": {"ip-pool-user-info": leases},
            "statistics": {name: counter64(value) for name, value in (
                ("client-request", stats.client_request), ("discover", stats.discover),
                ("request", stats.request), ("decline", stats.decline),
                ("release", stats.release), ("inform", stats.inform),
                ("server-reply", stats.server_reply), ("offer", stats.offer),
                ("ack", stats.ack), ("nak", stats.nak), ("force-renew", stats.force_renew),
                ("bad-messages", stats.bad_messages), ("flood-dropped", stats.flood_dropped))},
        },
    }


def rbs_state(backup, tcp_states: dict[str, str] | None = None) -> dict:
    """nefeature-rbs state: channels and profiles of a HotBackup."""
    services = []
    for name, channel in backup.channels.items():
        stats = channel.statistics
        services.append({"name": name, "state": {
            "tcp-state": (tcp_states or {}).get(name, "initial"),
            "statistics": {
                "updates-sent": counter64(stats.updates_sent),
                "updates-received": counter64(stats.updates_received),
                "acks-received": counter64(stats.acks_received),
                "heartbeats-sent": counter64(stats.heartbeats_sent),
                "heartbeats-received": counter64(stats.heartbeats_received),
                "frames-rejected": counter64(stats.frames_rejected),
                "pending-updates": channel.pending,
                "unconfirmed-replies": counter64(backup.unconfirmed_replies.get(name, 0)),
            }}})
        times = getattr(backup, "channel_times", {}).get(name, {})
        for leaf in ("last-up-time", "last-down-time"):
            if leaf in times:
                services[-1]["state"][leaf] = date_and_time(times[leaf])
        if "last-down-reason" in times:
            services[-1]["state"]["last-down-reason"] = times["last-down-reason"]
    profiles = []
    for profile in backup.profiles.values():
        state = {"local-state": profile.local_state, "peer-state": profile.peer_state,
                 "pending-updates": backup.channels[profile.service].pending,
                 "batch-backup": {"status": profile.batch_status,
                                  "leases-total": profile.batch_total,
                                  "leases-sent": profile.batch_received}}
        if profile.last_batch_time is not None:
            state["last-batch-backup-time"] = date_and_time(profile.last_batch_time)
        profiles.append({"name": profile.name, "state": state})
    return {RBS + "rbs": {"services": {"service": services},
                          "profiles": {"profile": profiles}}}


def operational_state(config: DeviceConfig, dhcp: DhcpServer,
                      vrrp: dict[tuple[str, int], VrrpRouter], vrrp_errors: dict[str, int],
                      now: float, backup=None, tcp_states: dict[str, str] | None = None) -> dict:
    """The config-false part of the model for the running engines."""
    interfaces = []
    for interface in config.interfaces:
        entry: dict = {"name": interface.name, "state": _link_state(interface.linux_name)}
        instances = [vrrp_instance(vrid, router, now)
                     for (name, vrid), router in vrrp.items() if name == interface.name]
        if instances:
            entry["ipv4"] = {VRRP + "vrrp": {"vrrp-instance": instances}}
        interfaces.append(entry)
    state = {
        IF + "interfaces": {"interface": interfaces},
        VRRP + "vrrp": {
            "virtual-routers": len(vrrp),
            "interfaces": len({name for name, _ in vrrp}),
            "statistics": {name: counter64(vrrp_errors.get(name, 0)) for name in
                           ("checksum-errors", "version-errors", "vrid-errors", "ip-ttl-errors")},
        },
        DHCP + "dhcp": dhcp_state(dhcp),
    }
    if backup is not None:
        state.update(rbs_state(backup, tcp_states))
    return state


def merge_trees(config: dict, state: dict, schema_node=None) -> dict:
    """Config and state in one tree: list entries are matched by their YANG keys."""
    from nefeature.datastore.schema import data_model

    schema_node = schema_node if schema_node is not None else data_model().schema
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
