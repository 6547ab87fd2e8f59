"""Configuration and state as VRP prints them.

``render_configuration`` turns the explicit configuration (what was set,
in yangson's JSON form) back into the commands that set it, in VRP's
layout: ``#`` between sections, one space of indent inside a view,
``return`` at the end; global lines first (``sysname``, VLANs, ``dhcp
enable``), then pools, remote backup services and profiles, and interfaces
in VRP's order (Vlanif before physical ports, numbers numerically).
Replaying the output into an empty device gives the same configuration
(tests/cli/test_shell.py).  A pool is written in the dialect it was
configured in: ``gateway`` pools in the NE form (``ip pool X server``,
``lease D H M``, ``dns-server``), ``network`` pools in the CE/AR form.

``render_changes`` compares two configurations section by section (a
section is known by its first line) and prints what differs as VRP
configuration: with ``+``/``-`` marks, or as the lines to type (``undo``
for what went away).

The display functions format operational state (from <get>) with the
field names of Huawei's documented output.
"""

from __future__ import annotations

import difflib
import re
from ipaddress import IPv4Address

IF = "nefeature-interfaces:"
VRRP = "nefeature-vrrp:"
DHCP = "nefeature-dhcp-server:"
RBS = "nefeature-rbs:"

#: VRP lists logical interfaces before physical ones.
INTERFACE_ORDER = ("Vlanif", "MEth", "Eth-Trunk", "Ethernet", "GigabitEthernet",
                   "XGigabitEthernet", "10GE", "100GE", "LoopBack", "NULL")


def _mac_vrp(mac: str) -> str:
    digits = mac.replace(":", "")
    return "-".join(digits[i:i + 4] for i in range(0, 12, 4))


def _same_named(entry: dict, *leaves: str) -> list[str]:
    """' LEAF value' for each leaf set in ``entry`` whose command word is the leaf's name."""
    return [f" {leaf} {entry[leaf]}" for leaf in leaves if leaf in entry]


def _flag(value: bool, on: str, off: str | None) -> list[str]:
    return [on] if value else ([off] if off else [])


def vlan_ranges(vlans: list[int]) -> str:
    """VLAN IDs as VRP writes them: '100 200 to 205'."""
    parts: list[str] = []
    ordered = sorted(set(vlans))
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        parts.append(str(ordered[index]) if end == index
                     else f"{ordered[index]} to {ordered[end]}")
        index = end + 1
    return " ".join(parts)


def pool_lines(entry: dict) -> list[str]:
    ne = "gateway" in entry
    lines = [f"ip pool {entry['ip-pool-name']}" + (" server" if ne else "")]
    if ne:
        lines.append(f" gateway {entry['gateway']['ip-address']} {entry['gateway']['mask']}")
    if entry.get("gateway-list"):
        lines.append(" gateway-list " + " ".join(entry["gateway-list"]))
    if "network" in entry:
        lines.append(f" network {entry['network']['ip-address']} mask {entry['network']['mask']}")
    for section in sorted(entry.get("sections", {}).get("section", []),
                          key=lambda s: s["section-index"]):
        lines.append(f" section {section['section-index']} {section['start-ip']} "
                     f"{section['end-ip']}")
    for excluded in entry.get("excluded-ip-addresses", {}).get("excluded-ip-address", []):
        start, end = excluded["start-ip-address"], excluded["end-ip-address"]
        lines.append(f" excluded-ip-address {start}" + ("" if start == end else f" {end}"))
    for bind in sorted(entry.get("static-binds", {}).get("static-bind", []),
                       key=lambda b: int(IPv4Address(b["ip-address"]))):
        lines.append(f" static-bind ip-address {bind['ip-address']} mac-address "
                     f"{_mac_vrp(bind['mac-address'])}"
                     + (f" description {bind['description']}" if "description" in bind else ""))
    lease = entry.get("lease-time")
    if lease is not None:
        if "unlimited" in lease:
            lines.append(" lease unlimited")
        elif ne:
            lines.append(f" lease {lease.get('day', 0)} {lease.get('hour', 0)} "
                         f"{lease.get('minute', 0)}")
        else:
            lines.append(f" lease day {lease.get('day', 0)} hour {lease.get('hour', 0)} "
                         f"minute {lease.get('minute', 0)}")
    if entry.get("dns-list"):
        lines.append((" dns-server " if ne else " dns-list ") + " ".join(entry["dns-list"]))
    if "domain-name" in entry:
        lines.append(f" domain-name {entry['domain-name']}")
    for option in sorted(entry.get("user-options", {}).get("user-option", []),
                         key=lambda o: o["option-code"]):
        if "ascii" in option:
            value = f"ascii {option['ascii']}"
        elif "hex" in option:
            value = f"hex {option['hex']}"
        elif "ip-address" in option:
            value = "ip-address " + " ".join(option["ip-address"])
        else:
            continue  # sub-options have no VRP command here: NETCONF only
        lines.append(f" option {option['option-code']} {value}")
    if "identifier-ip" in entry:
        lines.append(f" server identifier ip {entry['identifier-ip']}")
    return lines + _same_named(entry, "remote-backup-profile", "warning-threshold")


def service_lines(entry: dict) -> list[str]:
    lines = [f"remote-backup-service {entry['name']}"]
    if "peer-ip" in entry:
        lines.append(f" peer {entry['peer-ip']} source {entry['source-ip']} port "
                     f"{entry['tcp-port']}")
    if "shared-key" in entry:
        lines.append(f" shared-key {entry['shared-key']}")
    if "shut-down" in entry:
        lines += _flag(entry["shut-down"], " shutdown", " undo shutdown")
    return lines


def profile_lines(entry: dict) -> list[str]:
    lines = [f"remote-backup-profile {entry['name']}"]
    for kind in entry.get("service-type", []):
        lines.append(f" service-type {kind}")
    if "backup-id" in entry:
        lines.append(f" backup-id {entry['backup-id']} remote-backup-service "
                     f"{entry['service-name']}")
    if "mode" in entry:
        lines.append(f" peer-backup {entry['mode']}")
    for group in entry.get("vrrps", {}).get("vrrp", []):
        lines.append(f" vrrp-id {group['id']} interface {group['if-name']}")
    return lines + _same_named(entry, "sync-mode", "mclt", "partition-share")


def vlan_lines(entry: dict) -> list[str]:
    return [f"vlan {entry['vlan-id']}"] + _same_named(entry, "name", "description")


def _advertise(vrid: int, centiseconds: int) -> str:
    if centiseconds % 100 == 0:
        return f" vrrp vrid {vrid} timer advertise {centiseconds // 100}"
    return f" vrrp vrid {vrid} timer advertise millisecond {centiseconds * 10}"


def interface_lines(entry: dict) -> list[str]:
    lines = [f"interface {entry['name']}"]
    if "description" in entry:
        lines.append(f" description {entry['description']}")
    if "linux-name" in entry:
        lines.append(f" linux-name {entry['linux-name']}")
    if "portswitch" in entry:
        lines += _flag(entry["portswitch"], " portswitch", " undo portswitch")
    if "shutdown" in entry:
        lines += _flag(entry["shutdown"], " shutdown", " undo shutdown")
    port = entry.get("port", {})
    if "link-type" in port:
        lines.append(f" port link-type {port['link-type']}")
    if "default-vlan" in port:
        lines.append(f" port default vlan {port['default-vlan']}")
    if port.get("trunk-allow-pass-vlan"):
        lines.append(" port trunk allow-pass vlan " + vlan_ranges(port["trunk-allow-pass-vlan"]))
    ipv4 = entry.get("ipv4", {})
    if "address" in ipv4:
        lines.append(f" ip address {ipv4['address']} {ipv4['mask']}")
    vrrp = ipv4.get(VRRP + "vrrp", {})
    for instance in sorted(vrrp.get("vrrp-instance", []), key=lambda i: i["vrid"]):
        vrid = instance["vrid"]
        for address in instance.get("virtual-ipv4-addresses", {}).get("virtual-ipv4-address", []):
            lines.append(f" vrrp vrid {vrid} virtual-ip {address['ipv4-address']}")
        if "priority" in instance:
            lines.append(f" vrrp vrid {vrid} priority {instance['priority']}")
        preempt = instance.get("preempt", {})
        if preempt.get("enabled") is False:
            lines.append(f" vrrp vrid {vrid} preempt-mode disable")
        if "hold-time" in preempt:
            lines.append(f" vrrp vrid {vrid} preempt-mode timer delay {preempt['hold-time']}")
        if "advertise-interval-centi-sec" in instance:
            lines.append(_advertise(vrid, instance["advertise-interval-centi-sec"]))
        if "virtual-mac" in instance:
            lines += _flag(instance["virtual-mac"], f" vrrp vrid {vrid} virtual-mac enable",
                           f" undo vrrp vrid {vrid} virtual-mac enable")
        for track in instance.get("track", {}).get("interfaces", {}).get("interface", []):
            change = ""
            if "priority-decrement" in track:
                change = f" reduced {track['priority-decrement']}"
            elif "priority-increment" in track:
                change = f" increased {track['priority-increment']}"
            lines.append(f" vrrp vrid {vrid} track interface {track['interface']}{change}")
    if "recover-delay" in vrrp:
        lines.append(f" vrrp recover-delay {vrrp['recover-delay']}")
    dhcp = entry.get(DHCP + "dhcp", {})
    if "server-enable" in dhcp:
        lines.append(f" dhcp server {dhcp['server-enable']}")
    if "select" in dhcp:
        lines.append(f" dhcp select {dhcp['select']}")
    return lines


def interface_order(name: str) -> tuple:
    """Sort key: VRP's type order, then the numbers of the name as numbers."""
    kind = re.match(r"[A-Za-z\-]*", name).group()
    rank = next((i for i, known in enumerate(INTERFACE_ORDER) if known.lower() == kind.lower()),
                len(INTERFACE_ORDER))
    numbers = tuple(int(n) for n in re.findall(r"\d+", name[len(kind):]))
    return (rank, kind.lower(), numbers, name)


def global_lines(tree: dict) -> list[list[str]]:
    """The system view's own lines, each a section of its own."""
    sections = []
    system = tree.get(IF + "system", {})
    if "sysname" in system:
        sections.append([f"sysname {system['sysname']}"])
    return sections


def _system_settings(tree: dict) -> list[list[str]]:
    sections = []
    dhcp = tree.get(DHCP + "dhcp", {})
    if "enable" in dhcp:
        sections.append(["dhcp enable" if dhcp["enable"] else "undo dhcp enable"])
    vrrp = tree.get(VRRP + "vrrp", {})
    if "recover-delay" in vrrp:
        sections.append([f"vrrp recover-delay {vrrp['recover-delay']}"])
    return sections


def _vlans(tree: dict) -> list[dict]:
    return sorted(tree.get(IF + "vlans", {}).get("vlan", []), key=lambda v: v["vlan-id"])


def _pools(tree: dict) -> list[dict]:
    return tree.get(DHCP + "dhcp", {}).get("server", {}).get("ip-pools", {}).get("ip-pool", [])


def _services(tree: dict) -> list[dict]:
    return tree.get(RBS + "rbs", {}).get("services", {}).get("service", [])


def _profiles(tree: dict) -> list[dict]:
    return tree.get(RBS + "rbs", {}).get("profiles", {}).get("profile", [])


def _interfaces(tree: dict) -> list[dict]:
    return sorted(tree.get(IF + "interfaces", {}).get("interface", []),
                  key=lambda entry: interface_order(entry["name"]))


def configuration_sections(tree: dict) -> list[list[str]]:
    """The configuration as VRP sections, in VRP's order; each a list of lines."""
    sections = global_lines(tree)
    sections += [vlan_lines(entry) for entry in _vlans(tree)]
    sections += _system_settings(tree)
    sections += [pool_lines(entry) for entry in _pools(tree)]
    sections += [service_lines(entry) for entry in _services(tree)]
    sections += [profile_lines(entry) for entry in _profiles(tree)]
    sections += [interface_lines(entry) for entry in _interfaces(tree)]
    return sections


def _framed(sections: list[list[str]], end: str | None = "return") -> str:
    out = ["#"]
    for section in sections:
        out += section + ["#"]
    if end:
        out.append(end)
    return "\n".join(out)


def render_configuration(tree: dict) -> str:
    """The whole configuration as VRP commands."""
    return _framed(configuration_sections(tree))


def render_interface(tree: dict, name: str) -> str | None:
    """``display current-configuration interface X``; None if X is not configured."""
    for entry in _interfaces(tree):
        if entry["name"].lower() == name.lower():
            return _framed([interface_lines(entry)])
    return None


def render_view(tree: dict, view: str, key: str) -> str:
    """``display this``: the section of the current view (the system view: its own lines)."""
    from nefeature_cli.commands import INTERFACE, POOL, PROFILE, SERVICE, SYSTEM, VLAN

    finders = {
        POOL: (_pools, "ip-pool-name", pool_lines),
        SERVICE: (_services, "name", service_lines),
        PROFILE: (_profiles, "name", profile_lines),
        INTERFACE: (_interfaces, "name", interface_lines),
        VLAN: (_vlans, "vlan-id", vlan_lines),
    }
    if view == SYSTEM:
        return _framed(global_lines(tree) + _system_settings(tree))
    if view not in finders:
        return render_configuration(tree)
    entries, key_name, lines = finders[view]
    for entry in entries(tree):
        if str(entry.get(key_name)) == key:
            return _framed([lines(entry)])
    return "#\nreturn"


def _section_changes(before: list[str] | None, after: list[str] | None) -> list[tuple[str, str]]:
    """(mark, line) for one section: '+' added, '-' removed, ' ' the unchanged header."""
    if before is None:
        return [("+", line) for line in after]
    if after is None:
        return [("-", line) for line in before]
    changes = [(" ", after[0])]
    matcher = difflib.SequenceMatcher(a=before[1:], b=after[1:], autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag != "equal":
            changes += [("-", line) for line in before[1:][a1:a2]]
            changes += [("+", line) for line in after[1:][b1:b2]]
    return changes


def render_changes(old: dict, new: dict, marks: bool = True) -> str:
    """What differs from ``old`` to ``new``, as VRP configuration; '' when nothing does.

    With ``marks``, every line starts with ``+`` (added), ``-`` (removed) or a
    blank (the unchanged first line of a changed section).  Without, the lines
    to type: added lines as they are, removed ones as ``undo`` lines.
    """
    old_sections = {section[0]: section for section in configuration_sections(old)}
    new_list = configuration_sections(new)
    new_sections = {section[0]: section for section in new_list}
    headers = [section[0] for section in new_list] + [
        header for header in old_sections if header not in new_sections]
    blocks = []
    for header in headers:
        before, after = old_sections.get(header), new_sections.get(header)
        if before == after:
            continue
        changes = _section_changes(before, after)
        if marks:
            blocks.append([f"{mark}{line}" for mark, line in changes])
        else:
            blocks.append([line if mark != "-" else _undo(line) for mark, line in changes
                           if mark != "-" or after is not None or line == header])
    return _framed(blocks, end=None if marks else "return") if blocks else ""


def _undo(line: str) -> str:
    indent = len(line) - len(line.lstrip())
    return " " * indent + "undo " + line.strip()


# --- displays of operational state (JSON form of <get>) ---


def display_dhcp_statistics(tree: dict) -> str:
    stats = tree.get(DHCP + "dhcp", {}).get("server", {}).get("statistics", {})

    def value(name):
        return int(stats.get(name, 0))

    rows = [("Client Request", "client-request", 1), ("DHCP Discover", "discover", 3),
            ("DHCP Request", "request", 3), ("DHCP Decline", "decline", 3),
            ("DHCP Release", "release", 3), ("DHCP Inform", "inform", 3),
            ("Server Reply", "server-reply", 1), ("DHCP Offer", "offer", 3),
            ("DHCP Ack", "ack", 3), ("DHCP Nak", "nak", 3),
            ("DHCP Force Renew", "force-renew", 3), ("Bad Messages", "bad-messages", 1),
            ("Flood Dropped", "flood-dropped", 1)]
    lines = ["DHCP Server Statistics:"]
    for label, name, indent in rows:
        lines.append(" " * indent + f"{label:<{24 - indent}}: {value(name)}")
    return "\n".join(lines)


def display_ip_pool(tree: dict, name: str | None = None, used: bool = False) -> str | None:
    """The pools (or one); None when the named pool does not exist."""
    pools = _pools(tree)
    if name is not None and all(entry["ip-pool-name"] != name for entry in pools):
        return None
    users = tree.get(DHCP + "dhcp", {}).get("server", {}).get("ip-pool-user-infos", {}) \
        .get("ip-pool-user-info", [])
    out = []
    for index, entry in enumerate(pools):
        if name is not None and entry["ip-pool-name"] != name:
            continue
        usage = entry.get("ip-pool-usage", {})
        gateway = entry.get("gateway", {}).get("ip-address") or \
            " ".join(entry.get("gateway-list", [])) or "-"
        mask = entry.get("gateway", entry.get("network", {})).get("mask", "-")
        out += [
            f"  Pool-Name      : {entry['ip-pool-name']}",
            f"  Pool-No        : {index}",
            "  Position       : Local           Status           : Unlocked",
            f"  Gateway-0      : {gateway}",
            f"  Mask           : {mask}",
            "  ----------------------------------------------------------------------",
            "  IP address Statistic",
            f"    Total       :{usage.get('total', 0):<8}",
            f"    Used        :{usage.get('used', 0):<8}  Idle        :{usage.get('idle', 0):<8}",
            f"    Expired     :{usage.get('expired', 0):<8}  Conflict    :"
            f"{usage.get('conflict', 0):<8}  Disable   :{usage.get('disable', 0):<8}",
            f"    Ratio       :{usage.get('ratio', 0)}%",
        ]
        if used or name is not None:
            out += ["", "  Index   IP               MAC              Lease       Status    Origin"]
            for row, user in enumerate(u for u in users if u["pool-name"] == entry["ip-pool-name"]):
                if used and user.get("status") not in ("used", "static-bind-used"):
                    continue
                mac = _mac_vrp(user["mac-address"]) if "mac-address" in user else "-"
                out.append(f"  {row:<7} {user['ip-address']:<16} {mac:<16} "
                           f"{user.get('lease-expire', 'unlimited')[:19]:<11} "
                           f"{user.get('status', '-'):<9} {user.get('origin', '-')}")
        out.append("")
    return "\n".join(out).rstrip() or "Info: No pool is configured."


def _instances(tree: dict):
    for entry in tree.get(IF + "interfaces", {}).get("interface", []):
        vrrp = entry.get("ipv4", {}).get(VRRP + "vrrp", {})
        for instance in vrrp.get("vrrp-instance", []):
            yield entry, instance


def _vrp_time(value: str | None) -> str:
    """yang:date-and-time (UTC) as VRP prints a time: 2026-11-28 10:15:02 UTC."""
    if not value:
        return "--"
    return value[:19].replace("T", " ") + " UTC"


def _track_lines(instance: dict) -> list[str]:
    """Huawei's Track IF / IF state pair for each tracked interface."""
    lines = []
    for track in instance.get("track", {}).get("interfaces", {}).get("interface", []):
        if "priority-increment" in track:
            change = f"Priority increased : {track['priority-increment']}"
        else:
            change = f"Priority reduced : {track.get('priority-decrement', 10)}"
        lines += [f"    Track IF        : {track['interface']:<24} {change}",
                  f"    IF state        : {track.get('oper-status', '--').upper()}"]
    return lines


def _virtual_mac(entry: dict, state: dict) -> str:
    if "virtual-mac" in state:
        return _mac_vrp(state["virtual-mac"])
    own = entry.get("state", {}).get("phys-address")
    return f"{_mac_vrp(own)} (interface MAC)" if own else "-- (interface MAC)"


def display_vrrp(tree: dict, mode: str = "verbose", interface: str | None = None,
                 vrid: int | None = None) -> str:
    instances = [(entry, instance) for entry, instance in _instances(tree)
                 if (interface is None or entry["name"].lower() == interface.lower())
                 and (vrid is None or instance["vrid"] == vrid)]
    if mode == "statistics":
        return _vrrp_statistics(tree, instances)
    if mode == "brief":
        states = [i.get("state", {}).get("state", "initialize") for _, i in instances]
        out = [f"Total:{len(instances)}     Master:{states.count('master')}     "
               f"Backup:{states.count('backup')}     Non-active:{states.count('initialize')}",
               "VRID  State        Interface                Type     Virtual IP",
               "----------------------------------------------------------------"]
        for entry, instance in instances:
            vips = [a["ipv4-address"] for a in instance.get("virtual-ipv4-addresses", {})
                    .get("virtual-ipv4-address", [])]
            out.append(f"{instance['vrid']:<5} {instance.get('state', {}).get('state', '-').title():<12} "
                       f"{entry['name']:<24} Normal   {' '.join(vips)}")
        return "\n".join(out)
    out = []
    for entry, instance in instances:
        state = instance.get("state", {})
        vips = [a["ipv4-address"] for a in instance.get("virtual-ipv4-addresses", {})
                .get("virtual-ipv4-address", [])]
        preempt = instance.get("preempt", {})
        interval = instance.get("advertise-interval-centi-sec", 100)
        out += [
            f"  {entry['name']} | Virtual Router {instance['vrid']}",
            f"    State           : {state.get('state', 'initialize').title()}",
            f"    Virtual IP      : {' '.join(vips)}",
            f"    Master IP       : {state.get('master-ip-address', '0.0.0.0')}",
            f"    Local IP        : {entry.get('ipv4', {}).get('address', '-')}",
            f"    PriorityRun     : {state.get('running-priority', '-')}",
            f"    PriorityConfig  : {instance.get('priority', 100)}",
            f"    MasterPriority  : {state.get('master-priority', '-')}",
            f"    Preempt         : {'YES' if preempt.get('enabled', True) else 'NO'}   "
            f"Delay Time : {preempt.get('hold-time', 0)} s   "
            f"Remain : {state.get('preempt-remaining', '--')}",
            f"    TimerRun        : {state.get('master-advertise-interval', interval) / 100:g} s",
            f"    TimerConfig     : {interval / 100:g} s",
            f"    Virtual MAC     : {_virtual_mac(entry, state)}",
            "    Check TTL       : YES",
            "    Config Type     : normal-vrrp",
            *_track_lines(instance),
            f"    Create Time     : {_vrp_time(state.get('up-datetime'))}",
            f"    Last Change Time : {_vrp_time(state.get('last-change-datetime'))}",
            "",
        ]
    return "\n".join(out).rstrip() or "Info: The VRRP does not exist."


def _vrrp_statistics(tree: dict, instances: list) -> str:
    """``display vrrp statistics``: RFC 8347 counters under VRP's labels."""
    rows = [("Become Master", "master-transitions"),
            ("Received Advertisement", "advertisement-rcvd"),
            ("Sent Advertisement", "advertisement-sent"),
            ("Advertisement Interval Errors", "interval-errors"),
            ("Priority Zero Packets Received", "priority-zero-pkts-rcvd"),
            ("Priority Zero Packets Sent", "priority-zero-pkts-sent"),
            ("Invalid Type Packets Received", "invalid-type-pkts-rcvd"),
            ("Address List Errors", "address-list-errors"),
            ("Packet Length Errors", "packet-length-errors")]
    out = []
    for entry, instance in instances:
        counters = instance.get("state", {}).get("statistics", {})
        out.append(f"  {entry['name']} | Virtual Router {instance['vrid']}")
        out += [f"    {label:<31}: {int(counters.get(name, 0))}" for label, name in rows]
        out.append("")
    if not instances:
        return "Info: The VRRP does not exist."
    totals = tree.get(VRRP + "vrrp", {}).get("statistics", {})
    out.append("  Global statistics")
    for label, name in (("Checksum Errors", "checksum-errors"), ("Version Errors",
                                                                  "version-errors"),
                        ("VRID Errors", "vrid-errors"), ("IP TTL Errors", "ip-ttl-errors")):
        out.append(f"    {label:<31}: {int(totals.get(name, 0))}")
    return "\n".join(out)


def display_rbs(tree: dict, name: str | None = None) -> str:
    out = []
    services = tree.get(RBS + "rbs", {}).get("services", {}).get("service", [])
    for index, entry in enumerate(services, start=1):
        if name is not None and entry["name"] != name:
            continue
        state = entry.get("state", {})
        out += [
            " " + "-" * 58,
            f" Service-Index    : {index}",
            f" Service-Name     : {entry['name']}",
            f" TCP-State        : {state.get('tcp-state', 'initial').title()}",
            f" Peer-ip          : {entry.get('peer-ip', '--')}",
            f" Source-ip        : {entry.get('source-ip', '--')}",
            f" TCP-Port         : {entry.get('tcp-port', '--')}",
            " Track-BFD        : --",
            " SSL-Policy-Name  : --",
            " SSL-State        : --",
            f" Last-Down-Reason : {state.get('last-down-reason', '--')}",
            f" Pending-Updates  : {state.get('statistics', {}).get('pending-updates', 0)}",
            f" Unconfirmed-ACKs : {state.get('statistics', {}).get('unconfirmed-replies', 0)}",
        ]
    return "\n".join(out + [" " + "-" * 58]) if out else "Info: No remote backup service."


def display_rbp(tree: dict, name: str | None = None) -> str:
    out = []
    profiles = tree.get(RBS + "rbs", {}).get("profiles", {}).get("profile", [])
    for index, entry in enumerate(profiles, start=1):
        if name is not None and entry["name"] != name:
            continue
        state = entry.get("state", {})
        vrrps = entry.get("vrrps", {}).get("vrrp", [{}])
        batch = state.get("batch-backup", {})
        out += [
            " " + "-" * 47,
            f" Profile-Index        : 0x{0x1000 + index - 1:x}",
            f" Profile-Name         : {entry['name']}",
            f" Service              : {' '.join(entry.get('service-type', [])) or '--'}",
            f" Remote-backup-service: {entry.get('service-name', '--')}",
            f" Backup-ID            : {entry.get('backup-id', '--')}",
            " track protocol       : VRRP",
            f" VRRP-ID              : {vrrps[0].get('id', '--')}",
            f" VRRP-Interface       : {vrrps[0].get('if-name', '--')}",
            f" State                : {state.get('local-state', 'init').title()}",
            f" Peer State           : {state.get('peer-state', '--').title()}",
            f" Backup mode          : {entry.get('mode', 'hot')}",
            f" Sync mode            : {entry.get('sync-mode', 'strict')}",
            f" Batch backup         : {batch.get('status', 'idle')}",
            f" Failover state       : {state.get('failover-state', '--')}",
            f" Address share        : {state.get('failover-role', '--')}, "
            f"{entry.get('partition-share', 50)}% of free addresses to the secondary",
        ]
        out += [f"   Pool {share['pool']:<16}: split {share.get('split', '--')}"
                f" (peer {share.get('peer-split', '--')}), free {share.get('own-free', '--')}"
                f" own / {share.get('peer-free', '--')} peer"
                for share in state.get("pool-share", [])]
    return "\n".join(out) if out else "Info: No remote backup profile."
