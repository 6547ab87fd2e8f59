"""The VRP command set and the YANG edit each command becomes.

Every configuration command is one ``Edit``: a fragment of the candidate in
our modules' XML, with ``nc:operation`` where it deletes (``undo``).  The
fragments are the CLI -> YANG map of research/huawei-cli-yang.md section
3.6; both pool dialects (NE: ``gateway``, ``section``, ``lease D H M``,
``dns-server``; CE/AR: ``network``, ``gateway-list``, ``lease day``,
``dns-list``) land on the same leaves their YANG names say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from nefeature_cli.grammar import parse_pattern

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
IF = "urn:nefeature:yang:nefeature-interfaces"
VRRP = "urn:nefeature:yang:nefeature-vrrp"
DHCP = "urn:nefeature:yang:nefeature-dhcp-server"
RBS = "urn:nefeature:yang:nefeature-rbs"

USER, SYSTEM, INTERFACE, POOL, SERVICE, PROFILE = (
    "user", "system", "interface", "ip-pool", "rm-backup-srv", "rm-backup-prf")
CONFIG_VIEWS = (SYSTEM, INTERFACE, POOL, SERVICE, PROFILE)
ALL_VIEWS = (USER,) + CONFIG_VIEWS


# --- effects a command has ---


@dataclass(frozen=True)
class Edit:
    config: str  # the children of <config>


@dataclass(frozen=True)
class Enter:
    view: str
    key: str


@dataclass(frozen=True)
class Action:
    name: str  # quit, return, commit, clear-candidate, display-*, reset-statistics, ...
    args: dict = field(default_factory=dict)


@dataclass
class Command:
    syntax: str
    views: tuple[str, ...]
    effect: Callable[[str, dict], list]
    help: str = ""

    def __post_init__(self) -> None:
        self.pattern = parse_pattern(self.syntax)


# --- XML fragments ---


def _delete(operation: str | None) -> str:
    return f' nc:operation="{operation}"' if operation else ""


def leaf(name: str, value=None, operation: str | None = None) -> str:
    text = "" if value is None else escape(str(value))
    return f"<{name}{_delete(operation)}>{text}</{name}>"


def interface(name: str, inner: str = "", operation: str | None = None) -> str:
    return (f'<interfaces xmlns="{IF}"><interface{_delete(operation)}>{leaf("name", name)}'
            f"{inner}</interface></interfaces>")


def vrrp(ifname: str, inner: str) -> str:
    return interface(ifname, f'<ipv4><vrrp xmlns="{VRRP}">{inner}</vrrp></ipv4>')


def vrrp_instance(ifname: str, vrid: int, inner: str = "", operation: str | None = None) -> str:
    return vrrp(ifname, f"<vrrp-instance{_delete(operation)}>{leaf('vrid', vrid)}{inner}"
                        "</vrrp-instance>")


def pool(name: str, inner: str = "", operation: str | None = None) -> str:
    return (f'<dhcp xmlns="{DHCP}"><server><ip-pools><ip-pool{_delete(operation)}>'
            f'{leaf("ip-pool-name", name)}{inner}</ip-pool></ip-pools></server></dhcp>')


def service(name: str, inner: str = "", operation: str | None = None) -> str:
    return (f'<rbs xmlns="{RBS}"><services><service{_delete(operation)}>{leaf("name", name)}'
            f"{inner}</service></services></rbs>")


def profile(name: str, inner: str = "", operation: str | None = None) -> str:
    return (f'<rbs xmlns="{RBS}"><profiles><profile{_delete(operation)}>{leaf("name", name)}'
            f"{inner}</profile></profiles></rbs>")


def dhcp_interface(ifname: str, inner: str) -> str:
    return interface(ifname, f'<dhcp xmlns="{DHCP}">{inner}</dhcp>')


# --- the commands ---

C = Command


def _system() -> list[Command]:
    return [
        C("dhcp enable", (SYSTEM,), lambda k, v: [Edit(f'<dhcp xmlns="{DHCP}">'
                                                          f'{leaf("enable", "true")}</dhcp>')],
          "Enable DHCP"),
        C("undo dhcp enable", (SYSTEM,), lambda k, v: [Edit(
            f'<dhcp xmlns="{DHCP}">{leaf("enable", "false")}</dhcp>')], "Disable DHCP"),
        C("ip pool <name:word> [ server ]", (SYSTEM,),
          lambda k, v: [Edit(pool(v["name"])), Enter(POOL, v["name"])], "Address pool"),
        C("undo ip pool <name:word>", (SYSTEM,),
          lambda k, v: [Edit(pool(v["name"], operation="delete"))], "Delete a pool"),
        C("interface <name:ifname>", (SYSTEM, INTERFACE),
          lambda k, v: [Edit(interface(v["name"])), Enter(INTERFACE, v["name"])], "Interface"),
        C("undo interface <name:ifname>", (SYSTEM,),
          lambda k, v: [Edit(interface(v["name"], operation="delete"))], "Delete an interface"),
        C("remote-backup-service <name:word>", (SYSTEM,),
          lambda k, v: [Edit(service(v["name"])), Enter(SERVICE, v["name"])],
          "Remote backup service"),
        C("undo remote-backup-service <name:word>", (SYSTEM,),
          lambda k, v: [Edit(service(v["name"], operation="delete"))], ""),
        C("remote-backup-profile <name:word>", (SYSTEM, POOL),
          _profile_command, "Remote backup profile"),
        C("undo remote-backup-profile [ <name:word> ]", (SYSTEM, POOL), _undo_profile_command,
          ""),
        C("dhcp server backup enable", (SYSTEM, PROFILE), lambda k, v: [
            Action("backup-enable", {"profile": k or None})],
          "Back up DHCP server leases (service-type dhcp-server)"),
        # Layer 2 and system lines of Huawei's sample: accepted, nothing to configure here
        C("sysname <name:word>", (SYSTEM,), lambda k, v: [Action("sysname", {"name": v["name"]})],
          "Device name (this shell's prompt only)"),
        C("vlan <vlan:1-4094>", (SYSTEM,), lambda k, v: [Action("layer2")], ""),
        C("portswitch", (INTERFACE,), lambda k, v: [Action("layer2")], ""),
        C("port link-type { access | trunk | hybrid }", (INTERFACE,),
          lambda k, v: [Action("layer2")], ""),
        C("port trunk allow-pass vlan <vlans:text>", (INTERFACE,),
          lambda k, v: [Action("layer2")], ""),
    ]


def _profile_command(key: str, values: dict) -> list:
    if key:  # in a pool view (its key is the pool): bind the pool
        return [Edit(pool(key, leaf("remote-backup-profile", values["name"])))]
    return [Edit(profile(values["name"])), Enter(PROFILE, values["name"])]


def _undo_profile_command(key: str, values: dict) -> list:
    if key:
        return [Edit(pool(key, leaf("remote-backup-profile", operation="remove")))]
    if "name" not in values:
        return []
    return [Edit(profile(values["name"], operation="delete"))]


def _interface() -> list[Command]:
    def vi(values, inner, operation=None):
        return vrrp_instance(values["ifname"], values["vrid"], inner, operation)

    def with_if(effect):
        return lambda k, v: effect({**v, "ifname": k})

    track_leaf = {"reduced": "priority-decrement", "increased": "priority-increment"}
    return [
        C("ip address <address:ipv4> <mask:mask>", (INTERFACE,), lambda k, v: [Edit(interface(
            k, f"<ipv4>{leaf('address', v['address'])}{leaf('mask', v['mask'])}</ipv4>"))],
          "Primary IPv4 address"),
        C("undo ip address [ <address:ipv4> [ <mask:mask> ] ]", (INTERFACE,),
          lambda k, v: [Edit(interface(k, "<ipv4>" + leaf("address", operation="remove")
                                       + leaf("mask", operation="remove") + "</ipv4>"))], ""),
        C("description <text:text>", (INTERFACE,),
          lambda k, v: [Edit(interface(k, leaf("description", v["text"])))], "Description"),
        C("undo description", (INTERFACE,),
          lambda k, v: [Edit(interface(k, leaf("description", operation="remove")))], ""),
        C("linux-name <name:word>", (INTERFACE,),
          lambda k, v: [Edit(interface(k, leaf("linux-name", v["name"])))],
          "Bind to a Linux interface"),
        C("undo linux-name", (INTERFACE,),
          lambda k, v: [Edit(interface(k, leaf("linux-name", operation="remove")))], ""),
        C("shutdown", (INTERFACE,), lambda k, v: [Edit(interface(k, leaf("shutdown", "true")))],
          "Shut the interface down"),
        C("undo shutdown", (INTERFACE,),
          lambda k, v: [Edit(interface(k, leaf("shutdown", "false")))], ""),
        C("dhcp server { enable | disable }", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, leaf("server-enable", v["keywords"][-1])))], "DHCP server on the interface"),
        C("undo dhcp server { enable | disable }", (INTERFACE,), lambda k, v: [Edit(
            dhcp_interface(k, leaf("server-enable", operation="remove")))], ""),
        C("dhcp select global", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, leaf("select", "global")))], "Serve from the global pools"),
        C("undo dhcp select global", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, leaf("select", operation="remove")))], ""),
        C("vrrp vrid <vrid:1-255> virtual-ip <vip:ipv4>", (INTERFACE,), with_if(lambda v: [Edit(
            vi(v, "<virtual-ipv4-addresses><virtual-ipv4-address>"
               + leaf("ipv4-address", v["vip"]) + "</virtual-ipv4-address>"
               "</virtual-ipv4-addresses>"))]), "VRRP virtual IP"),
        C("undo vrrp vrid <vrid:1-255> virtual-ip <vip:ipv4>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, '<virtual-ipv4-addresses><virtual-ipv4-address nc:operation="delete">'
                    + leaf("ipv4-address", v["vip"]) + "</virtual-ipv4-address>"
                    "</virtual-ipv4-addresses>"))]), ""),
        C("undo vrrp vrid <vrid:1-255>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, operation="delete"))]), "Delete the VRRP group"),
        C("vrrp vrid <vrid:1-255> priority <priority:1-254>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("priority", v["priority"])))]), "VRRP priority"),
        C("undo vrrp vrid <vrid:1-255> priority", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("priority", operation="remove")))]), ""),
        C("vrrp vrid <vrid:1-255> preempt-mode timer delay <delay:0-10800>", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, "<preempt>" + leaf("hold-time", v["delay"])
                                     + "</preempt>"))]),
          "Preemption delay"),
        C("undo vrrp vrid <vrid:1-255> preempt-mode timer delay", (INTERFACE,), with_if(
            lambda v: [Edit(vi(v, "<preempt>" + leaf("hold-time", operation="remove")
                               + "</preempt>"))]), ""),
        C("vrrp vrid <vrid:1-255> preempt-mode disable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, "<preempt>" + leaf("enabled", "false") + "</preempt>"))]),
          "No preemption"),
        C("undo vrrp vrid <vrid:1-255> preempt-mode", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, '<preempt nc:operation="remove"/>'))]), ""),
        C("vrrp vrid <vrid:1-255> timer advertise <seconds:1-40>", (INTERFACE,), with_if(
            lambda v: [Edit(vi(v, leaf("advertise-interval-centi-sec", v["seconds"] * 100)))]),
          "Advertisement interval (s)"),
        C("vrrp vrid <vrid:1-255> timer advertise millisecond <ms:10-40950>",
          (INTERFACE,), with_if(lambda v: [Edit(vi(v, leaf(
              "advertise-interval-centi-sec", max(1, v["ms"] // 10))))]),
          "Advertisement interval (ms; 100, 200 and 500 on VRP)"),
        C("undo vrrp vrid <vrid:1-255> timer advertise", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("advertise-interval-centi-sec", operation="remove")))]), ""),
        C("vrrp vrid <vrid:1-255> virtual-mac enable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("virtual-mac", "true")))]), "Use the virtual router MAC"),
        C("undo vrrp vrid <vrid:1-255> virtual-mac enable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("virtual-mac", "false")))]), ""),
        C("vrrp vrid <vrid:1-255> track interface <track:ifname> "
          "[ { reduced <value:1-255> | increased <value:1-255> } ]", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, '<track><interfaces><interface nc:operation="replace">'
                                     + leaf("interface", v["track"])
                                     + (leaf(track_leaf[v["keywords"][-1]], v["value"])
                                        if "value" in v else "")
                                     + "</interface></interfaces></track>"))]),
          "Track an interface"),
        C("undo vrrp vrid <vrid:1-255> track interface [ <track:ifname> ]", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, "<track><interfaces>"
                                     + ('<interface nc:operation="remove">'
                                        + leaf("interface", v["track"]) + "</interface>"
                                        if "track" in v else "") + "</interfaces></track>"
                                     if "track" in v else
                                     '<track nc:operation="remove"/>'))]), ""),
        C("vrrp recover-delay <delay:0-3600>", (INTERFACE,), lambda k, v: [Edit(vrrp(
            k, leaf("recover-delay", v["delay"])))], "Delay after the interface comes up"),
        C("undo vrrp recover-delay", (INTERFACE,), lambda k, v: [Edit(vrrp(
            k, leaf("recover-delay", operation="remove")))], ""),
    ]


def _pool() -> list[Command]:
    def p(k, inner):
        return [Edit(pool(k, inner))]

    def lease(v):
        return "<lease-time>" + leaf("day", v.get("day", 0)) + leaf("hour", v.get("hour", 0)) \
            + leaf("minute", v.get("minute", 0)) + "</lease-time>"

    def many(name, v):
        return "".join(leaf(name, a) for a in v["addresses"].split())

    return [
        C("gateway <address:ipv4> <mask:mask>", (POOL,), lambda k, v: p(
            k, "<gateway>" + leaf("ip-address", v["address"]) + leaf("mask", v["mask"])
            + "</gateway>"), "Gateway and mask (NE)"),
        C("undo gateway", (POOL,), lambda k, v: p(k, '<gateway nc:operation="remove"/>'), ""),
        C("network <address:ipv4> [ mask <mask:mask> ]", (POOL,), lambda k, v: p(
            k, "<network>" + leaf("ip-address", v["address"])
            + leaf("mask", v.get("mask", "255.255.255.0")) + "</network>"), "Network (CE/AR)"),
        C("undo network", (POOL,), lambda k, v: p(k, '<network nc:operation="remove"/>'), ""),
        C("gateway-list <addresses:text>", (POOL,), lambda k, v: p(k, many("gateway-list", v)),
          "Gateways, up to 8 (CE/AR)"),
        C("undo gateway-list { all | <address:ipv4> }", (POOL,), lambda k, v: p(
            k, leaf("gateway-list", v.get("address"), "remove") if "address" in v
            else '<gateway-list nc:operation="remove"/>'), ""),
        C("section <index:0-255> <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, "<sections><section>" + leaf("section-index", v["index"])
            + leaf("start-ip", v["start"]) + leaf("end-ip", v.get("end", v["start"]))
            + "</section></sections>"), "Address range"),
        C("undo section <index:0-255>", (POOL,), lambda k, v: p(
            k, '<sections><section nc:operation="delete">' + leaf("section-index", v["index"])
            + "</section></sections>"), ""),
        C("excluded-ip-address <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, "<excluded-ip-addresses><excluded-ip-address>" + leaf("start-ip-address",
                                                                     v["start"])
            + leaf("end-ip-address", v.get("end", v["start"]))
            + "</excluded-ip-address></excluded-ip-addresses>"), "Never allocated"),
        C("undo excluded-ip-address <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, '<excluded-ip-addresses><excluded-ip-address nc:operation="delete">'
            + leaf("start-ip-address", v["start"]) + leaf("end-ip-address",
                                                          v.get("end", v["start"]))
            + "</excluded-ip-address></excluded-ip-addresses>"), ""),
        C("static-bind ip-address <address:ipv4> mac-address <mac:mac> "
          "[ description <text:text> ]", (POOL,), lambda k, v: p(
              k, '<static-binds><static-bind nc:operation="replace">'
              + leaf("ip-address", v["address"]) + leaf("mac-address", v["mac"])
              + (leaf("description", v["text"]) if "text" in v else "")
              + "</static-bind></static-binds>"), "Fixed address for a MAC"),
        C("undo static-bind ip-address <address:ipv4> [ mac-address <mac:mac> ]", (POOL,),
          lambda k, v: p(k, '<static-binds><static-bind nc:operation="delete">'
                         + leaf("ip-address", v["address"]) + "</static-bind></static-binds>"),
          ""),
        C("lease <day:0-999> [ <hour:0-23> [ <minute:0-59> ] ]", (POOL,),
          lambda k, v: p(k, lease(v)), "Lease time (NE: days hours minutes)"),
        C("lease day <day:0-999> [ hour <hour:0-23> [ minute <minute:0-59> ] ]", (POOL,),
          lambda k, v: p(k, lease(v)), "Lease time (CE/AR)"),
        C("lease unlimited", (POOL,), lambda k, v: p(
            k, '<lease-time><unlimited/></lease-time>'), "No lease limit"),
        C("undo lease", (POOL,), lambda k, v: p(k, '<lease-time nc:operation="remove"/>'), ""),
        C("dns-list <addresses:text>", (POOL,), lambda k, v: p(k, many("dns-list", v)),
          "DNS servers (CE/AR)"),
        C("dns-server <addresses:text>", (POOL,), lambda k, v: p(k, many("dns-list", v)),
          "DNS servers (NE)"),
        C("undo { dns-list | dns-server } { all | <address:ipv4> }", (POOL,), lambda k, v: p(
            k, leaf("dns-list", v["address"], "remove") if "address" in v
            else '<dns-list nc:operation="remove"/>'), ""),
        C("domain-name <name:word>", (POOL,), lambda k, v: p(k, leaf("domain-name", v["name"])),
          "Domain name"),
        C("undo domain-name", (POOL,), lambda k, v: p(k, leaf("domain-name", operation="remove")),
          ""),
        C("option <code:2-254> { ascii <value:text> | hex <value:hex> | ip-address "
          "<addresses:text> }", (POOL,), lambda k, v: p(
              k, '<user-options><user-option nc:operation="replace">'
              + leaf("option-code", v["code"])
              + (many("ip-address", v) if "addresses" in v else
                 leaf(v["keywords"][1], v["value"]))
              + "</user-option></user-options>"), "User-defined option"),
        C("undo option [ <code:2-254> ]", (POOL,), lambda k, v: p(
            k, '<user-options><user-option nc:operation="delete">' + leaf("option-code",
                                                                          v["code"])
            + "</user-option></user-options>" if "code" in v
            else '<user-options nc:operation="remove"/>'), ""),
        C("server identifier ip <address:ipv4>", (POOL,), lambda k, v: p(
            k, leaf("identifier-ip", v["address"])), "Server identifier (the VRRP virtual IP)"),
        C("undo server identifier ip [ <address:ipv4> ]", (POOL,), lambda k, v: p(
            k, leaf("identifier-ip", operation="remove")), ""),
        C("warning-threshold <percent:1-100>", (POOL,), lambda k, v: p(
            k, leaf("warning-threshold", v["percent"])), "Utilization alarm"),
        C("undo warning-threshold", (POOL,), lambda k, v: p(
            k, leaf("warning-threshold", operation="remove")), ""),
    ]


def _service() -> list[Command]:
    def s(k, inner):
        return [Edit(service(k, inner))]

    return [
        C("peer <peer:ipv4> source <source:ipv4> port <port:1024-55535>", (SERVICE,),
          lambda k, v: s(k, leaf("peer-ip", v["peer"]) + leaf("source-ip", v["source"])
                         + leaf("tcp-port", v["port"])), "Peer, source and TCP port"),
        C("undo peer [ <peer:ipv4> ]", (SERVICE,), lambda k, v: s(
            k, leaf("peer-ip", operation="remove") + leaf("source-ip", operation="remove")
            + leaf("tcp-port", operation="remove")), ""),
        C("shared-key <key:word>", (SERVICE,), lambda k, v: s(k, leaf("shared-key", v["key"])),
          "Shared key for the channel's HMAC"),
        C("undo shared-key", (SERVICE,), lambda k, v: s(k, leaf("shared-key",
                                                                operation="remove")), ""),
        C("shutdown", (SERVICE,), lambda k, v: s(k, leaf("shut-down", "true")), ""),
        C("undo shutdown", (SERVICE,), lambda k, v: s(k, leaf("shut-down", "false")), ""),
        C("batch-backup service-type dhcp-server now", (SERVICE,), lambda k, v: [
            Action("batch-backup", {"service": k})], "Send every lease to the peer now"),
    ]


def _profile() -> list[Command]:
    def pr(k, inner):
        return [Edit(profile(k, inner))]

    return [
        C("peer-backup hot", (PROFILE,), lambda k, v: pr(k, leaf("mode", "hot")), "Hot backup"),
        C("vrrp-id <vrid:1-255> interface <ifname:ifname>", (PROFILE,), lambda k, v: pr(
            k, '<vrrps><vrrp nc:operation="replace">' + leaf("id", v["vrid"])
            + leaf("if-name", v["ifname"]) + "</vrrp></vrrps>"), "VRRP group deciding the role"),
        C("undo vrrp-id <vrid:1-255>", (PROFILE,), lambda k, v: pr(
            k, '<vrrps><vrrp nc:operation="delete">' + leaf("id", v["vrid"])
            + "</vrrp></vrrps>"), ""),
        C("backup-id <id:1-4095> remote-backup-service <service:word>", (PROFILE,),
          lambda k, v: pr(k, leaf("backup-id", v["id"]) + leaf("service-name", v["service"])),
          "Backup ID on a service"),
        C("undo backup-id <id:1-4095> remote-backup-service <service:word>", (PROFILE,),
          lambda k, v: pr(k, leaf("backup-id", operation="remove")
                          + leaf("service-name", operation="remove")), ""),
        C("service-type dhcp-server", (PROFILE,), lambda k, v: pr(
            k, leaf("service-type", "dhcp-server")), "Back up DHCP server leases"),
        C("undo service-type dhcp-server", (PROFILE,), lambda k, v: pr(
            k, leaf("service-type", "dhcp-server", "remove")), ""),
        C("sync-mode { strict | lazy }", (PROFILE,), lambda k, v: pr(
            k, leaf("sync-mode", v["keywords"][-1])), "Consistency of replies and the peer"),
        C("mclt <seconds:60-86400>", (PROFILE,), lambda k, v: pr(k, leaf("mclt", v["seconds"])),
          "Maximum client lead time (lazy mode)"),
    ]


def _anywhere() -> list[Command]:
    return [
        C("system-view", (USER,), lambda k, v: [Enter(SYSTEM, "")], "Enter the system view"),
        C("quit", ALL_VIEWS, lambda k, v: [Action("quit")], "Leave this view"),
        C("return", CONFIG_VIEWS, lambda k, v: [Action("return")], "Back to the user view"),
        C("commit", CONFIG_VIEWS, lambda k, v: [Action("commit")], "Commit the candidate"),
        C("clear configuration candidate", CONFIG_VIEWS,
          lambda k, v: [Action("clear-candidate")], "Discard uncommitted changes"),
        C("display current-configuration", ALL_VIEWS, lambda k, v: [
            Action("display-configuration", {"source": "running"})], "Running configuration"),
        C("display this", ALL_VIEWS, lambda k, v: [Action("display-this")],
          "This view's configuration"),
        C("display configuration candidate [ changes ]", CONFIG_VIEWS, lambda k, v: [
            Action("display-candidate", {"changes": "changes" in v["keywords"]})],
          "Uncommitted configuration"),
        C("display ip pool [ name <name:word> [ used ] ]", ALL_VIEWS, lambda k, v: [
            Action("display-pool", {"name": v.get("name"),
                                    "used": "used" in v["keywords"]})], "Address pools"),
        C("display dhcp server statistics", ALL_VIEWS, lambda k, v: [
            Action("display-dhcp-statistics")], "DHCP message counters"),
        C("display vrrp [ { brief | verbose } ]", ALL_VIEWS, lambda k, v: [
            Action("display-vrrp", {"mode": v["keywords"][-1] if len(v["keywords"]) > 2
                                    else "verbose"})], "VRRP groups"),
        C("display remote-backup-service [ <name:word> ]", ALL_VIEWS, lambda k, v: [
            Action("display-rbs", {"name": v.get("name")})], "Remote backup services"),
        C("display remote-backup-profile [ <name:word> ]", ALL_VIEWS, lambda k, v: [
            Action("display-rbp", {"name": v.get("name")})], "Remote backup profiles"),
        C("reset dhcp server statistics", ALL_VIEWS, lambda k, v: [
            Action("reset-statistics")], "Clear the DHCP counters"),
    ]


COMMANDS: list[Command] = _anywhere() + _system() + _interface() + _pool() + _service() \
    + _profile()


def commands_for(view: str) -> list[Command]:
    return [c for c in COMMANDS if view in c.views]
