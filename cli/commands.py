"""The VRP command set and the YANG edit each command becomes.

Every configuration command is one ``Edit``: a fragment of the candidate in
our modules' XML, with ``nc:operation`` where it deletes (``undo``).  Both
pool dialects (NE: ``gateway``, ``section``, ``lease D H M``,
``dns-server``; CE/AR: ``network``, ``gateway-list``, ``lease day``,
``dns-list``) land on the same leaves their YANG names say.

A configuration command names the schema node it sets (``node``).  From it
come the ``?`` text of each keyword (the description of the node the
keyword names, found by name at or around ``node``, or given in ``words``)
and the type each parameter is checked against as it is typed (the leaf of
the parameter's name, or the one ``words`` names).  Commands outside the
model (``display``, ``commit``, ``save``) carry their help text here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from yangson.datatype import IntegralType

from nefeature_cli import model
from nefeature_cli.grammar import Choice, Keyword, Optional, Param, parse_pattern

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
IF = "urn:nefeature:yang:nefeature-interfaces"
VRRP = "urn:nefeature:yang:nefeature-vrrp"
DHCP = "urn:nefeature:yang:nefeature-dhcp-server"
RBS = "urn:nefeature:yang:nefeature-rbs"

USER, SYSTEM, INTERFACE, POOL, SERVICE, PROFILE, VLAN = (
    "user", "system", "interface", "ip-pool", "rm-backup-srv", "rm-backup-prf", "vlan")
CONFIG_VIEWS = (SYSTEM, INTERFACE, POOL, SERVICE, PROFILE, VLAN)
ALL_VIEWS = (USER,) + CONFIG_VIEWS

# schema nodes (yangson data paths)
SYSTEM_NODE = "/nefeature-interfaces:system"
VLAN_NODE = "/nefeature-interfaces:vlans/vlan"
IF_NODE = "/nefeature-interfaces:interfaces/interface"
IF_VRRP_NODE = IF_NODE + "/ipv4/nefeature-vrrp:vrrp"
VRRP_INSTANCE_NODE = IF_VRRP_NODE + "/vrrp-instance"
GLOBAL_VRRP_NODE = "/nefeature-vrrp:vrrp"
DHCP_NODE = "/nefeature-dhcp-server:dhcp"
POOL_NODE = DHCP_NODE + "/server/ip-pools/ip-pool"
IF_DHCP_NODE = IF_NODE + "/nefeature-dhcp-server:dhcp"
SERVICE_NODE = "/nefeature-rbs:rbs/services/service"
PROFILE_NODE = "/nefeature-rbs:rbs/profiles/profile"

UNDO_HELP = "Negate a command or restore its default"
ALL_VLANS = list(range(1, 4095))


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
    """One command: its syntax, the views it works in, what it does, and its help.

    ``words`` maps a keyword or parameter name to the schema node that
    describes it (a path relative to ``node``, '' for ``node`` itself, or
    absolute), or to literal help text (anything that is not such a path).
    """

    syntax: str
    views: tuple[str, ...]
    effect: Callable[[str, dict], list]
    node: str | None = None
    help: str = ""
    words: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pattern = parse_pattern(self.syntax)
        self._bind(self.pattern, first=True)

    # --- help and types from the model ---

    def _path(self, name: str) -> str | None:
        """The schema node a keyword or parameter name stands for."""
        if self.node is None:
            return None
        if name in self.words:
            target = self.words[name]
            if target.startswith("/"):
                path = target
            else:
                path = f"{self.node}/{target}" if target else self.node
            try:
                model.node(path)
            except (KeyError, ValueError):
                return None  # literal help text
            return path
        found = model.descendant(self.node, name)
        if found is not None:
            return found
        steps = self.node.split("/")
        for end in range(len(steps) - 1, 0, -1):  # an enclosing node of that name
            if steps[end].split(":")[-1] == name:
                return "/".join(steps[:end + 1])
        return None

    def _help(self, name: str, first: bool) -> str:
        if name == "undo":
            return UNDO_HELP
        path = self._path(name)
        if path is None and name in self.words:
            return self.words[name]
        if path is not None:
            return model.help_text(path)
        if self.node is not None and (first or not self.help):
            return model.help_text(self.node)
        return self.help

    def _bind(self, items: list, first: bool) -> bool:
        for item in items:
            if isinstance(item, Keyword):
                item.help = self._help(item.word, first) or self.help
                first = item.word == "undo" and first
            elif isinstance(item, Param):
                self._bind_param(item)
                first = False
            elif isinstance(item, Optional):
                first = self._bind(item.body, first)
            elif isinstance(item, Choice):
                for option in item.options:
                    self._bind(option, first)
                first = False
        return first

    def _bind_param(self, param: Param) -> None:
        scaled = re.fullmatch(r"(\w+)([*/])(\d+)", param.kind)  # int*100: CLI s, model cs
        if scaled:
            param.kind = scaled.group(1)
            factor = int(scaled.group(3))
            param.scale = factor if scaled.group(2) == "*" else 1 / factor
        path = None if re.fullmatch(r"\d+-\d+", param.kind) else self._path(param.name)
        if path is None:  # a setting outside the model: its help is written here
            param.help = self.words.get(param.name, self.help)
            return
        leaf = model.node(path)
        if not hasattr(leaf, "type"):
            param.help = model.help_text(path)
            return
        param.data_type = leaf.type
        param.help = model.help_text(path)
        if param.kind == "word" and isinstance(leaf.type, IntegralType):
            param.kind = "int"


# --- XML fragments ---


def _delete(operation: str | None) -> str:
    return f' nc:operation="{operation}"' if operation else ""


def leaf(name: str, value=None, operation: str | None = None) -> str:
    text = "" if value is None else escape(str(value).lower() if isinstance(value, bool)
                                           else str(value))
    return f"<{name}{_delete(operation)}>{text}</{name}>"


def removed(name: str) -> str:
    return f'<{name} nc:operation="remove"/>'


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


def system(inner: str) -> str:
    return f'<system xmlns="{IF}">{inner}</system>'


def vlan(vlan_id: int, inner: str = "", operation: str | None = None) -> str:
    return (f'<vlans xmlns="{IF}"><vlan{_delete(operation)}>{leaf("vlan-id", vlan_id)}'
            f"{inner}</vlan></vlans>")


def many(name: str, values: list, operation: str | None = None) -> str:
    return "".join(leaf(name, value, operation) for value in values)


# --- the commands ---

C = Command


def setting(syntax: str, views: tuple[str, ...], wrap: Callable[[str, str], list], node: str,
            name: str) -> list[Command]:
    """'KEYWORDS <value>' setting the leaf ``name`` (whose node is ``node``) and
    'undo KEYWORDS' removing it; ``wrap(view key, leaf XML)`` places the leaf."""
    keywords, _, parameter = syntax.partition(" <")
    value = re.match(r"[^:>]+", parameter).group()
    return [C(syntax, views, lambda k, v: wrap(k, leaf(name, v[value])), node, words={value: ""}),
            C(f"undo {keywords}", views, lambda k, v: wrap(k, removed(name)), node)]


def switch(word: str, views: tuple[str, ...], wrap: Callable[[str, str], list], node: str,
           name: str) -> list[Command]:
    """'WORD' setting a boolean leaf true and 'undo WORD' setting it false (both shown)."""
    return [C(word, views, lambda k, v: wrap(k, leaf(name, True)), node),
            C(f"undo {word}", views, lambda k, v: wrap(k, leaf(name, False)), node)]


def _profile_command(key: str, values: dict) -> list:
    if key:  # in a pool view (its key is the pool): bind the pool
        return [Edit(pool(key, leaf("remote-backup-profile", values["name"])))]
    return [Edit(profile(values["name"])), Enter(PROFILE, values["name"])]


def _undo_profile_command(key: str, values: dict) -> list:
    if key:
        return [Edit(pool(key, removed("remote-backup-profile")))]
    if "name" not in values:
        return []
    return [Edit(profile(values["name"], operation="delete"))]


def _system() -> list[Command]:
    def dhcp(inner):
        return [Edit(f'<dhcp xmlns="{DHCP}">{inner}</dhcp>')]

    return [
        C("dhcp enable", (SYSTEM,), lambda k, v: dhcp(leaf("enable", True)),
          DHCP_NODE + "/enable"),
        C("undo dhcp enable", (SYSTEM,), lambda k, v: dhcp(leaf("enable", False)),
          DHCP_NODE + "/enable"),
        C("ip pool <name> [ server ]", (SYSTEM,),
          lambda k, v: [Edit(pool(v["name"])), Enter(POOL, v["name"])], POOL_NODE,
          words={"ip": "IP configuration", "name": "ip-pool-name",
                 "server": "A pool of this server (NE form; optional here)"}),
        C("undo ip pool <name>", (SYSTEM,),
          lambda k, v: [Edit(pool(v["name"], operation="delete"))], POOL_NODE,
          words={"ip": "IP configuration", "name": "ip-pool-name"}),
        C("interface <name:ifname>", (SYSTEM, INTERFACE),
          lambda k, v: [Edit(interface(v["name"])), Enter(INTERFACE, v["name"])], IF_NODE),
        C("undo interface <name:ifname>", (SYSTEM,),
          lambda k, v: [Edit(interface(v["name"], operation="delete"))], IF_NODE),
        C("remote-backup-service <name>", (SYSTEM,),
          lambda k, v: [Edit(service(v["name"])), Enter(SERVICE, v["name"])], SERVICE_NODE,
          words={"remote-backup-service": ""}),
        C("undo remote-backup-service <name>", (SYSTEM,),
          lambda k, v: [Edit(service(v["name"], operation="delete"))], SERVICE_NODE,
          words={"remote-backup-service": ""}),
        C("remote-backup-profile <name>", (SYSTEM, POOL), _profile_command, PROFILE_NODE,
          words={"remote-backup-profile": ""}),
        C("undo remote-backup-profile [ <name> ]", (SYSTEM, POOL), _undo_profile_command,
          PROFILE_NODE, words={"remote-backup-profile": ""}),
        C("dhcp server backup enable", (SYSTEM, PROFILE), lambda k, v: [
            Action("backup-enable", {"profile": k or None})], PROFILE_NODE + "/service-type",
          words={"dhcp": "DHCP", "server": "DHCP server",
                 "backup": "Back up DHCP server leases (service-type dhcp-server)",
                 "enable": "Back up DHCP server leases (service-type dhcp-server)"}),
        *setting("sysname <name>", (SYSTEM,), lambda k, inner: [Edit(system(inner))],
                 SYSTEM_NODE + "/sysname", "sysname"),
        C("vlan <vlan-id>", (SYSTEM,), lambda k, v: [
            Edit(vlan(v["vlan-id"])), Enter(VLAN, str(v["vlan-id"]))], VLAN_NODE,
          words={"vlan": ""}),
        C("undo vlan <vlan-id>", (SYSTEM,), lambda k, v: [
            Edit(vlan(v["vlan-id"], operation="delete"))], VLAN_NODE, words={"vlan": ""}),
        *setting("vrrp recover-delay <delay>", (SYSTEM,),
                 lambda k, inner: [Edit(f'<vrrp xmlns="{VRRP}">{inner}</vrrp>')],
                 GLOBAL_VRRP_NODE + "/recover-delay", "recover-delay"),
    ]


def _vlan() -> list[Command]:
    def edit(k, inner):
        return [Edit(vlan(int(k), inner))]

    return [
        *setting("description <text:text>", (VLAN,), edit, VLAN_NODE + "/description",
                 "description"),
        *setting("name <name>", (VLAN,), edit, VLAN_NODE + "/name", "name"),
    ]


def _interface() -> list[Command]:
    def vi(values, inner, operation=None):
        return vrrp_instance(values["ifname"], values["vrid"], inner, operation)

    def with_if(effect):
        return lambda k, v: effect({**v, "ifname": k})

    def edit(k, inner):
        return [Edit(interface(k, inner))]

    def port(k, inner):
        return edit(k, f"<port>{inner}</port>")

    track_leaf = {"reduced": "priority-decrement", "increased": "priority-increment"}
    vi_words = {"vrrp": "/nefeature-interfaces:interfaces/interface/ipv4/nefeature-vrrp:vrrp",
                "vrid": "vrid"}
    vlans = {"vlans": "port/trunk-allow-pass-vlan", "allow-pass": "port/trunk-allow-pass-vlan",
             "trunk": "port/trunk-allow-pass-vlan", "vlan": "port/trunk-allow-pass-vlan",
             "port": "port"}
    return [
        C("ip address <address:ipv4> <mask:mask>", (INTERFACE,), lambda k, v: edit(
            k, f"<ipv4>{leaf('address', v['address'])}{leaf('mask', v['mask'])}</ipv4>"),
          IF_NODE + "/ipv4", words={"ip": "IP configuration"}),
        C("undo ip address [ <address:ipv4> [ <mask:mask> ] ]", (INTERFACE,), lambda k, v: edit(
            k, "<ipv4>" + removed("address") + removed("mask") + "</ipv4>"),
          IF_NODE + "/ipv4", words={"ip": "IP configuration"}),
        *setting("description <text:text>", (INTERFACE,), edit, IF_NODE + "/description",
                 "description"),
        *setting("linux-name <name>", (INTERFACE,), edit, IF_NODE + "/linux-name", "linux-name"),
        *switch("shutdown", (INTERFACE,), edit, IF_NODE + "/shutdown", "shutdown"),
        *switch("portswitch", (INTERFACE,), edit, IF_NODE + "/portswitch", "portswitch"),
        C("port link-type { access | trunk | hybrid }", (INTERFACE,), lambda k, v: port(
            k, leaf("link-type", v["keywords"][-1])), IF_NODE + "/port/link-type",
          words={"access": "Untagged frames of one VLAN",
                 "trunk": "Tagged frames of the allowed VLANs",
                 "hybrid": "Tagged and untagged frames", "port": IF_NODE + "/port"}),
        C("undo port link-type", (INTERFACE,), lambda k, v: port(k, removed("link-type")),
          IF_NODE + "/port/link-type", words={"port": IF_NODE + "/port"}),
        C("port default vlan <vlan-id>", (INTERFACE,), lambda k, v: port(
            k, leaf("default-vlan", v["vlan-id"])), IF_NODE + "/port/default-vlan",
          words={"default": "", "vlan": "", "vlan-id": "", "port": IF_NODE + "/port"}),
        C("undo port default vlan", (INTERFACE,), lambda k, v: port(k, removed("default-vlan")),
          IF_NODE + "/port/default-vlan",
          words={"default": "", "vlan": "", "port": IF_NODE + "/port"}),
        C("port trunk allow-pass vlan { <vlans:vlans> | all }", (INTERFACE,), lambda k, v: port(
            k, many("trunk-allow-pass-vlan", v.get("vlans", ALL_VLANS))), IF_NODE,
          words={**vlans, "all": "Every VLAN, 1 to 4094"}),
        C("undo port trunk allow-pass vlan { <vlans:vlans> | all }", (INTERFACE,),
          lambda k, v: port(k, many("trunk-allow-pass-vlan", v["vlans"], "remove")
                            if "vlans" in v else removed("trunk-allow-pass-vlan")), IF_NODE,
          words={**vlans, "all": "Every VLAN, 1 to 4094"}),
        C("dhcp server { enable | disable }", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, leaf("server-enable", v["keywords"][-1])))], IF_DHCP_NODE + "/server-enable",
          words={"server": "", "enable": "Process DHCP requests on this interface",
                 "disable": "Ignore DHCP requests on this interface"}),
        C("undo dhcp server { enable | disable }", (INTERFACE,), lambda k, v: [Edit(
            dhcp_interface(k, removed("server-enable")))], IF_DHCP_NODE + "/server-enable",
          words={"server": "", "enable": "Process DHCP requests on this interface",
                 "disable": "Ignore DHCP requests on this interface"}),
        C("dhcp select global", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, leaf("select", "global")))], IF_DHCP_NODE + "/select",
          words={"global": "Serve from the global pools (CE/AR)"}),
        C("undo dhcp select global", (INTERFACE,), lambda k, v: [Edit(dhcp_interface(
            k, removed("select")))], IF_DHCP_NODE + "/select",
          words={"global": "Serve from the global pools (CE/AR)"}),
        C("vrrp vrid <vrid> virtual-ip <vip:ipv4>", (INTERFACE,), with_if(lambda v: [Edit(
            vi(v, "<virtual-ipv4-addresses><virtual-ipv4-address>"
               + leaf("ipv4-address", v["vip"]) + "</virtual-ipv4-address>"
               "</virtual-ipv4-addresses>"))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "virtual-ip": "virtual-ipv4-addresses",
                 "vip": "virtual-ipv4-addresses/virtual-ipv4-address/ipv4-address"}),
        C("undo vrrp vrid <vrid> virtual-ip <vip:ipv4>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, '<virtual-ipv4-addresses><virtual-ipv4-address nc:operation="delete">'
                    + leaf("ipv4-address", v["vip"]) + "</virtual-ipv4-address>"
                    "</virtual-ipv4-addresses>"))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "virtual-ip": "virtual-ipv4-addresses",
                 "vip": "virtual-ipv4-addresses/virtual-ipv4-address/ipv4-address"}),
        C("undo vrrp vrid <vrid>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, operation="delete"))]), VRRP_INSTANCE_NODE, words=vi_words),
        C("vrrp vrid <vrid> priority <priority>", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("priority", v["priority"])))]), VRRP_INSTANCE_NODE, words=vi_words),
        C("undo vrrp vrid <vrid> priority", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, removed("priority")))]), VRRP_INSTANCE_NODE, words=vi_words),
        C("vrrp vrid <vrid> preempt-mode timer delay <delay>", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, "<preempt>" + leaf("hold-time", v["delay"])
                                     + "</preempt>"))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "preempt-mode": "preempt", "timer": "preempt/hold-time",
                 "delay": "preempt/hold-time"}),
        C("undo vrrp vrid <vrid> preempt-mode timer delay", (INTERFACE,), with_if(
            lambda v: [Edit(vi(v, "<preempt>" + removed("hold-time") + "</preempt>"))]),
          VRRP_INSTANCE_NODE, words={**vi_words, "preempt-mode": "preempt",
                                     "timer": "preempt/hold-time",
                                     "delay": "preempt/hold-time"}),
        C("vrrp vrid <vrid> preempt-mode disable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, "<preempt>" + leaf("enabled", False) + "</preempt>"))]),
          VRRP_INSTANCE_NODE, words={**vi_words, "preempt-mode": "preempt",
                                     "disable": "Never preempt a lower-priority master"}),
        C("undo vrrp vrid <vrid> preempt-mode", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, removed("preempt")))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "preempt-mode": "preempt"}),
        C("vrrp vrid <vrid> timer advertise <seconds:int*100>", (INTERFACE,), with_if(
            lambda v: [Edit(vi(v, leaf("advertise-interval-centi-sec", v["seconds"] * 100)))]),
          VRRP_INSTANCE_NODE, words={**vi_words, "timer": "advertise-interval-centi-sec",
                                     "advertise": "advertise-interval-centi-sec",
                                     "seconds": "advertise-interval-centi-sec"}),
        C("vrrp vrid <vrid> timer advertise millisecond <ms:int/10>",
          (INTERFACE,), with_if(lambda v: [Edit(vi(v, leaf(
              "advertise-interval-centi-sec", max(1, v["ms"] // 10))))]),
          VRRP_INSTANCE_NODE, words={**vi_words, "timer": "advertise-interval-centi-sec",
                                     "advertise": "advertise-interval-centi-sec",
                                     "millisecond": "The interval in milliseconds "
                                                    "(100, 200 and 500 on VRP)",
                                     "ms": "advertise-interval-centi-sec"}),
        C("undo vrrp vrid <vrid> timer advertise", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, removed("advertise-interval-centi-sec")))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "timer": "advertise-interval-centi-sec",
                 "advertise": "advertise-interval-centi-sec"}),
        C("vrrp vrid <vrid> virtual-mac enable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("virtual-mac", True)))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "enable": "virtual-mac"}),
        C("undo vrrp vrid <vrid> virtual-mac enable", (INTERFACE,), with_if(lambda v: [
            Edit(vi(v, leaf("virtual-mac", False)))]), VRRP_INSTANCE_NODE,
          words={**vi_words, "enable": "virtual-mac"}),
        C("vrrp vrid <vrid> track interface <tracked:ifname> "
          "[ { reduced <decrement> | increased <increment> } ]", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, '<track><interfaces><interface nc:operation="replace">'
                                     + leaf("interface", v["tracked"])
                                     + "".join(leaf(track_leaf[word], v[name])
                                               for word, name in (("reduced", "decrement"),
                                                                  ("increased", "increment"))
                                               if name in v)
                                     + "</interface></interfaces></track>"))]),
          VRRP_INSTANCE_NODE,
          words={**vi_words, "track": "track/interfaces", "interface": "track/interfaces",
                 "tracked": "track/interfaces/interface/interface", "reduced": "track/interfaces/interface/priority-decrement",
                 "decrement": "track/interfaces/interface/priority-decrement",
                 "increased": "track/interfaces/interface/priority-increment",
                 "increment": "track/interfaces/interface/priority-increment"}),
        C("undo vrrp vrid <vrid> track interface [ <tracked:ifname> ]", (INTERFACE,),
          with_if(lambda v: [Edit(vi(v, "<track><interfaces>"
                                     + '<interface nc:operation="remove">'
                                     + leaf("interface", v["tracked"]) + "</interface>"
                                     + "</interfaces></track>"
                                     if "tracked" in v else removed("track")))]),
          VRRP_INSTANCE_NODE, words={**vi_words, "track": "track/interfaces",
                                     "interface": "track/interfaces",
                                     "tracked": "track/interfaces/interface/interface"}),
        *setting("vrrp recover-delay <delay>", (INTERFACE,),
                 lambda k, inner: [Edit(vrrp(k, inner))], IF_VRRP_NODE + "/recover-delay",
                 "recover-delay"),
    ]


def _pool() -> list[Command]:
    def p(k, inner):
        return [Edit(pool(k, inner))]

    def lease(v):
        return "<lease-time>" + leaf("day", v.get("day", 0)) + leaf("hour", v.get("hour", 0)) \
            + leaf("minute", v.get("minute", 0)) + "</lease-time>"

    sections = {"section": "sections/section", "index": "sections/section/section-index",
                "start": "sections/section/start-ip", "end": "sections/section/end-ip"}
    excluded = {"excluded-ip-address": "excluded-ip-addresses",
                "start": "excluded-ip-addresses/excluded-ip-address/start-ip-address",
                "end": "excluded-ip-addresses/excluded-ip-address/end-ip-address"}
    binds = {"static-bind": "static-binds", "ip-address": "static-binds/static-bind/ip-address",
             "address": "static-binds/static-bind/ip-address",
             "mac-address": "static-binds/static-bind/mac-address",
             "mac": "static-binds/static-bind/mac-address",
             "description": "static-binds/static-bind/description",
             "text": "static-binds/static-bind/description"}
    lease_words = {"lease": "lease-time", "unlimited": "lease-time/unlimited"}
    options = {"option": "user-options", "code": "user-options/user-option/option-code",
               "ascii": "user-options/user-option/ascii", "hex": "user-options/user-option/hex",
               "ip-address": "user-options/user-option/ip-address",
               "addresses": "user-options/user-option/ip-address"}
    identifier = {"server": "identifier-ip", "identifier": "identifier-ip", "ip": "identifier-ip",
                  "address": "identifier-ip"}
    return [
        C("gateway <address:ipv4> <mask:mask>", (POOL,), lambda k, v: p(
            k, "<gateway>" + leaf("ip-address", v["address"]) + leaf("mask", v["mask"])
            + "</gateway>"), POOL_NODE + "/gateway",
          words={"address": "ip-address", "mask": "mask"}),
        C("undo gateway", (POOL,), lambda k, v: p(k, removed("gateway")), POOL_NODE + "/gateway"),
        C("network <address:ipv4> [ mask <mask:mask> ]", (POOL,), lambda k, v: p(
            k, "<network>" + leaf("ip-address", v["address"])
            + leaf("mask", v.get("mask", "255.255.255.0")) + "</network>"),
          POOL_NODE + "/network", words={"address": "ip-address"}),
        C("undo network", (POOL,), lambda k, v: p(k, removed("network")), POOL_NODE + "/network"),
        C("gateway-list <addresses:ipv4s>", (POOL,), lambda k, v: p(
            k, many("gateway-list", v["addresses"])), POOL_NODE + "/gateway-list",
          words={"addresses": ""}),
        C("undo gateway-list { all | <address:ipv4> }", (POOL,), lambda k, v: p(
            k, leaf("gateway-list", v.get("address"), "remove") if "address" in v
            else removed("gateway-list")), POOL_NODE + "/gateway-list",
          words={"address": "", "all": "Every gateway"}),
        C("section <index> <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, "<sections><section>" + leaf("section-index", v["index"])
            + leaf("start-ip", v["start"]) + leaf("end-ip", v.get("end", v["start"]))
            + "</section></sections>"), POOL_NODE, words=sections),
        C("undo section <index>", (POOL,), lambda k, v: p(
            k, '<sections><section nc:operation="delete">' + leaf("section-index", v["index"])
            + "</section></sections>"), POOL_NODE, words=sections),
        C("excluded-ip-address <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, "<excluded-ip-addresses><excluded-ip-address>"
            + leaf("start-ip-address", v["start"])
            + leaf("end-ip-address", v.get("end", v["start"]))
            + "</excluded-ip-address></excluded-ip-addresses>"), POOL_NODE, words=excluded),
        C("undo excluded-ip-address <start:ipv4> [ <end:ipv4> ]", (POOL,), lambda k, v: p(
            k, '<excluded-ip-addresses><excluded-ip-address nc:operation="delete">'
            + leaf("start-ip-address", v["start"])
            + leaf("end-ip-address", v.get("end", v["start"]))
            + "</excluded-ip-address></excluded-ip-addresses>"), POOL_NODE, words=excluded),
        C("static-bind ip-address <address:ipv4> mac-address <mac:mac> "
          "[ description <text:text> ]", (POOL,), lambda k, v: p(
              k, '<static-binds><static-bind nc:operation="replace">'
              + leaf("ip-address", v["address"]) + leaf("mac-address", v["mac"])
              + (leaf("description", v["text"]) if "text" in v else "")
              + "</static-bind></static-binds>"), POOL_NODE, words=binds),
        C("undo static-bind ip-address <address:ipv4> [ mac-address <mac:mac> ]", (POOL,),
          lambda k, v: p(k, '<static-binds><static-bind nc:operation="delete">'
                         + leaf("ip-address", v["address"]) + "</static-bind></static-binds>"),
          POOL_NODE, words=binds),
        C("lease <day> [ <hour> [ <minute> ] ]", (POOL,), lambda k, v: p(k, lease(v)),
          POOL_NODE + "/lease-time", words={"lease": ""}),
        C("lease day <day> [ hour <hour> [ minute <minute> ] ]", (POOL,),
          lambda k, v: p(k, lease(v)), POOL_NODE + "/lease-time", words={"lease": ""}),
        C("lease unlimited", (POOL,), lambda k, v: p(k, "<lease-time><unlimited/></lease-time>"),
          POOL_NODE, words=lease_words),
        C("undo lease", (POOL,), lambda k, v: p(k, removed("lease-time")),
          POOL_NODE + "/lease-time", words={"lease": ""}),
        C("dns-list <addresses:ipv4s>", (POOL,), lambda k, v: p(
            k, many("dns-list", v["addresses"])), POOL_NODE + "/dns-list",
          words={"addresses": ""}),
        C("dns-server <addresses:ipv4s>", (POOL,), lambda k, v: p(
            k, many("dns-list", v["addresses"])), POOL_NODE + "/dns-list",
          words={"addresses": "", "dns-server": ""}),
        C("undo { dns-list | dns-server } { all | <address:ipv4> }", (POOL,), lambda k, v: p(
            k, leaf("dns-list", v["address"], "remove") if "address" in v
            else removed("dns-list")), POOL_NODE + "/dns-list",
          words={"address": "", "dns-server": "", "all": "Every DNS server"}),
        *setting("domain-name <name>", (POOL,), p, POOL_NODE + "/domain-name", "domain-name"),
        C("option <code> { ascii <ascii:text> | hex <hex:hex> | ip-address "
          "<addresses:ipv4s> }", (POOL,), lambda k, v: p(
              k, '<user-options><user-option nc:operation="replace">'
              + leaf("option-code", v["code"])
              + (many("ip-address", v["addresses"]) if "addresses" in v else
                 leaf("ascii", v["ascii"]) if "ascii" in v else leaf("hex", v["hex"]))
              + "</user-option></user-options>"), POOL_NODE, words=options),
        C("undo option [ <code> ]", (POOL,), lambda k, v: p(
            k, '<user-options><user-option nc:operation="delete">'
            + leaf("option-code", v["code"]) + "</user-option></user-options>" if "code" in v
            else removed("user-options")), POOL_NODE, words=options),
        C("server identifier ip <address:ipv4>", (POOL,), lambda k, v: p(
            k, leaf("identifier-ip", v["address"])), POOL_NODE, words=identifier),
        C("undo server identifier ip [ <address:ipv4> ]", (POOL,), lambda k, v: p(
            k, removed("identifier-ip")), POOL_NODE, words=identifier),
        *setting("warning-threshold <percent>", (POOL,), p, POOL_NODE + "/warning-threshold",
                 "warning-threshold"),
    ]


def _service() -> list[Command]:
    def s(k, inner):
        return [Edit(service(k, inner))]

    addresses = {"peer": "peer-ip", "source": "source-ip", "port": "tcp-port"}
    return [
        C("peer <peer:ipv4> source <source:ipv4> port <port>", (SERVICE,),
          lambda k, v: s(k, leaf("peer-ip", v["peer"]) + leaf("source-ip", v["source"])
                         + leaf("tcp-port", v["port"])), SERVICE_NODE, words=addresses),
        C("undo peer [ <peer:ipv4> ]", (SERVICE,), lambda k, v: s(
            k, removed("peer-ip") + removed("source-ip") + removed("tcp-port")), SERVICE_NODE,
          words=addresses),
        *setting("shared-key <key>", (SERVICE,), s, SERVICE_NODE + "/shared-key", "shared-key"),
        *switch("shutdown", (SERVICE,), s, SERVICE_NODE + "/shut-down", "shut-down"),
        C("batch-backup service-type dhcp-server now", (SERVICE,), lambda k, v: [
            Action("batch-backup", {"service": k})],
          help="Send every lease to the peer now"),
    ]


def _profile() -> list[Command]:
    def pr(k, inner):
        return [Edit(profile(k, inner))]

    vrrps = {"vrrp-id": "vrrps/vrrp", "vrid": "vrrps/vrrp/id", "interface": "vrrps/vrrp/if-name",
             "ifname": "vrrps/vrrp/if-name"}
    backup = {"id": "backup-id", "remote-backup-service": "service-name",
              "service": "service-name"}
    service_type = {"service-type": "", "dhcp-server": "Back up DHCP server leases"}
    return [
        C("peer-backup hot", (PROFILE,), lambda k, v: pr(k, leaf("mode", "hot")),
          PROFILE_NODE + "/mode", words={"peer-backup": "", "hot": ""}),
        C("vrrp-id <vrid> interface <ifname:ifname>", (PROFILE,), lambda k, v: pr(
            k, '<vrrps><vrrp nc:operation="replace">' + leaf("id", v["vrid"])
            + leaf("if-name", v["ifname"]) + "</vrrp></vrrps>"), PROFILE_NODE, words=vrrps),
        C("undo vrrp-id <vrid>", (PROFILE,), lambda k, v: pr(
            k, '<vrrps><vrrp nc:operation="delete">' + leaf("id", v["vrid"])
            + "</vrrp></vrrps>"), PROFILE_NODE, words=vrrps),
        C("backup-id <id> remote-backup-service <service>", (PROFILE,),
          lambda k, v: pr(k, leaf("backup-id", v["id"]) + leaf("service-name", v["service"])),
          PROFILE_NODE, words=backup),
        C("undo backup-id <id> remote-backup-service <service>", (PROFILE,),
          lambda k, v: pr(k, removed("backup-id") + removed("service-name")), PROFILE_NODE,
          words=backup),
        C("service-type dhcp-server", (PROFILE,), lambda k, v: pr(
            k, leaf("service-type", "dhcp-server")), PROFILE_NODE + "/service-type",
          words=service_type),
        C("undo service-type dhcp-server", (PROFILE,), lambda k, v: pr(
            k, leaf("service-type", "dhcp-server", "remove")), PROFILE_NODE + "/service-type",
          words=service_type),
        C("sync-mode { strict | lazy }", (PROFILE,), lambda k, v: pr(
            k, leaf("sync-mode", v["keywords"][-1])), PROFILE_NODE + "/sync-mode",
          words={"strict": "Reply only after the peer has the lease",
                 "lazy": "Reply first, synchronize after (lease capped by the MCLT)"}),
        C("undo sync-mode", (PROFILE,), lambda k, v: pr(k, removed("sync-mode")),
          PROFILE_NODE + "/sync-mode"),
        *setting("mclt <seconds>", (PROFILE,), pr, PROFILE_NODE + "/mclt", "mclt"),
        *setting("partition-share <percent>", (PROFILE,), pr, PROFILE_NODE + "/partition-share",
                 "partition-share"),
    ]


def _anywhere() -> list[Command]:
    """Commands outside the configuration model: their help is written here."""
    display = {"display": "Display information"}
    return [
        C("system-view", (USER,), lambda k, v: [Enter(SYSTEM, "")],
          help="Enter the system view"),
        C("quit", ALL_VIEWS, lambda k, v: [Action("quit")],
          help="Exit from the current view"),
        C("return", CONFIG_VIEWS, lambda k, v: [Action("return")],
          help="Return to the user view"),
        C("commit [ trial [ <seconds:1-65535> ] ]", CONFIG_VIEWS, lambda k, v: [
            Action("commit", {"trial": "trial" in v["keywords"],
                              "seconds": v.get("seconds", 600)})],
          help="Commit the configuration of this session",
          words={"trial": "Commit for a trial period; roll back unless confirmed by commit",
                 "seconds": "Trial period in seconds (default 600)"}),
        C("abort trial", ALL_VIEWS, lambda k, v: [Action("abort-trial")],
          help="Abort the trial commit: roll back now",
          words={"abort": "Abort an operation"}),
        C("clear configuration candidate", CONFIG_VIEWS,
          lambda k, v: [Action("clear-candidate")],
          help="Discard the uncommitted configuration of this session",
          words={"clear": "Clear information", "configuration": "Configuration",
                 "candidate": "Discard the uncommitted configuration of this session"}),
        C("configuration exclusive", (USER,), lambda k, v: [Action("exclusive", {"on": True})],
          help="Lock the configuration for this session alone"),
        C("undo configuration exclusive", (USER,),
          lambda k, v: [Action("exclusive", {"on": False})],
          help="Release the exclusive configuration lock"),
        C("save", ALL_VIEWS, lambda k, v: [Action("save")],
          help="Save the running configuration as the startup configuration"),
        C("compare configuration", ALL_VIEWS, lambda k, v: [Action("compare-configuration")],
          help="Compare the running configuration with the saved one",
          words={"compare": "Compare configurations"}),
        C("screen-length <lines:0-512> temporary", (USER,), lambda k, v: [
            Action("screen-length", {"lines": v["lines"]})],
          help="Lines per screen of output for this session (0: no paging)",
          words={"temporary": "For this session only", "lines": "Lines per screen"}),
        C("undo screen-length temporary", (USER,), lambda k, v: [
            Action("screen-length", {"lines": None})],
          help="Lines per screen: the terminal's height again"),
        C("display current-configuration [ interface <name:ifname> ]", ALL_VIEWS, lambda k, v: [
            Action("display-configuration", {"source": "running",
                                              "interface": v.get("name")})],
          help="Running configuration", words={**display,
                                               "interface": "One interface's configuration",
                                               "name": "Interface name, such as Vlanif100"}),
        C("display saved-configuration", ALL_VIEWS, lambda k, v: [
            Action("display-configuration", {"source": "startup", "interface": None})],
          help="The configuration the device starts with", words=display),
        C("display this", ALL_VIEWS, lambda k, v: [Action("display-this")],
          help="This view's configuration", words=display),
        C("display configuration candidate [ changes ]", CONFIG_VIEWS, lambda k, v: [
            Action("display-candidate", {"changes": "changes" in v["keywords"]})],
          help="Uncommitted configuration of this session",
          words={**display, "configuration": "Configuration",
                 "changes": "Changes against the running configuration (+ added, - removed)"}),
        C("display configuration trial status", ALL_VIEWS, lambda k, v: [
            Action("display-trial")], help="Whether a trial commit is pending",
          words={**display, "configuration": "Configuration"}),
        C("display ip pool [ name <name> [ used ] ]", ALL_VIEWS, lambda k, v: [
            Action("display-pool", {"name": v.get("name"), "used": "used" in v["keywords"]})],
          help="Address pools", words={**display, "ip": "IP information",
                                       "name": "One pool (its name)", "used": "Addresses in use"}),
        C("display dhcp server statistics", ALL_VIEWS, lambda k, v: [
            Action("display-dhcp-statistics")], help="DHCP message counters",
          words={**display, "dhcp": "DHCP information", "server": "DHCP server information"}),
        C("display vrrp [ interface <ifname:ifname> ] [ <vrid:1-255> ] "
          "[ { brief | verbose | statistics } ]", ALL_VIEWS, lambda k, v: [
              Action("display-vrrp", {"interface": v.get("ifname"), "vrid": v.get("vrid"),
                                      "mode": next((w for w in ("brief", "statistics")
                                                    if w in v["keywords"]), "verbose")})],
          help="VRRP groups", words={**display, "interface": "Groups of one interface",
                                     "ifname": "Interface name, such as Vlanif100",
                                     "vrid": "One group (its VRID)", "brief": "One line per group",
                                     "verbose": "Every detail", "statistics": "Counters"}),
        C("display remote-backup-service [ <name:word> ]", ALL_VIEWS, lambda k, v: [
            Action("display-rbs", {"name": v.get("name")})], help="Remote backup services",
          words={**display, "name": "One service (its name)"}),
        C("display remote-backup-profile [ <name:word> ]", ALL_VIEWS, lambda k, v: [
            Action("display-rbp", {"name": v.get("name")})], help="Remote backup profiles",
          words={**display, "name": "One profile (its name)"}),
        C("reset dhcp server statistics", ALL_VIEWS, lambda k, v: [
            Action("reset-statistics")], help="Clear the DHCP counters",
          words={"reset": "Reset operation", "dhcp": "DHCP", "server": "DHCP server"}),
    ]


COMMANDS: list[Command] = _anywhere() + _system() + _vlan() + _interface() + _pool() \
    + _service() + _profile()


def commands_for(view: str) -> list[Command]:
    return [c for c in COMMANDS if view in c.views]
