"""Every constraint of the model, violated once: the error a user gets.

Each case edits a valid example (examples/pair/deviceA.xml or
examples/single/server.xml) so that exactly one rule breaks, then checks the
NetconfError our validator raises (error-tag, error-app-tag, error-path,
message) and, where yanglint is installed, that libyang rejects the same
instance: the rule lives in the YANG model, not in Python.  The errors are
checked with each validator in charge: libyang judging and yangson
explaining (where the binding is installed), and yangson alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lxml import etree

from nefeature.datastore import NetconfError
from nefeature.datastore.validation import validate_config, validator
from tests.conftest import EXAMPLES, run_yanglint, validator_environment

NS = {
    "if": "urn:nefeature:yang:nefeature-interfaces",
    "vrrp": "urn:nefeature:yang:nefeature-vrrp",
    "dhcp": "urn:nefeature:yang:nefeature-dhcp-server",
    "rbs": "urn:nefeature:yang:nefeature-rbs",
}
VLANIF = "/if:interfaces/if:interface[if:name='Vlanif100']"
VRRP1 = VLANIF + "/if:ipv4/vrrp:vrrp/vrrp:vrrp-instance[vrrp:vrid='1']"
POOL = "/dhcp:dhcp/dhcp:server/dhcp:ip-pools/dhcp:ip-pool[dhcp:ip-pool-name='pool1']"
SERVICE = "/rbs:rbs/rbs:services/rbs:service[rbs:name='service1']"
PROFILE = "/rbs:rbs/rbs:profiles/rbs:profile[rbs:name='service1']"

# error paths as the validator reports them (module names as prefixes)
P_VLANIF = '/nefeature-interfaces:interfaces/interface[name="Vlanif100"]'
P_VRRP1 = P_VLANIF + '/ipv4/nefeature-vrrp:vrrp/vrrp-instance[vrid="1"]'
P_POOL = '/nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool[ip-pool-name="pool1"]'
P_SERVICE = '/nefeature-rbs:rbs/services/service[name="service1"]'
P_PROFILE = '/nefeature-rbs:rbs/profiles/profile[name="service1"]'


@dataclass
class Case:
    id: str
    edits: list  # ("set", xpath, text) | ("remove", xpath) | ("add", parent xpath, xml)
    tag: str
    app_tag: str | None
    path: str
    message: str  # a substring of the message
    base: str = "pair/deviceA.xml"


def _elem(xml: str, parent: etree._Element) -> etree._Element:
    nsdecl = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    default = f'xmlns="{etree.QName(parent).namespace}"'
    wrapper = etree.fromstring(f"<w {default} {nsdecl}>{xml}</w>")
    return list(wrapper)


def mutated(case: Case) -> etree._Element:
    text = (EXAMPLES / case.base).read_bytes()
    root = etree.fromstring(b"<config xmlns='urn:ietf:params:xml:ns:netconf:base:1.0'>"
                            + text + b"</config>", etree.XMLParser(remove_comments=True))
    for edit in case.edits:
        nodes = root.xpath("." + edit[1], namespaces=NS)
        assert nodes, f"{case.id}: nothing at {edit[1]}"
        for node in nodes:
            if edit[0] == "set":
                node.text = edit[2]
            elif edit[0] == "remove":
                node.getparent().remove(node)
            else:
                node.extend(_elem(edit[2], node))
    return root


def A(xpath: str, xml: str) -> tuple:
    return ("add", xpath, xml)


def S(xpath: str, text: str) -> tuple:
    return ("set", xpath, text)


def R(xpath: str) -> tuple:
    return ("remove", xpath)


UPLINK = "/if:interfaces/if:interface[if:name='GigabitEthernet0/1/2']"
SINGLE_POOL = POOL
CASES = [
    # --- nefeature-interfaces ---
    Case("interface-name-pattern", [A("/if:interfaces", "<interface><name>1bad</name></interface>")],
         "invalid-value", None, '/nefeature-interfaces:interfaces/interface[name="1bad"]/name',
         "starts with a letter"),
    Case("linux-name-pattern", [S(UPLINK + "/if:linux-name", "eth/0")],
         "invalid-value", None,
         '/nefeature-interfaces:interfaces/interface[name="GigabitEthernet0/1/2"]/linux-name',
         "at most 15 characters"),
    Case("linux-name-required", [A("/if:interfaces", "<interface><name>GigabitEthernet0/1/3</name>"
                                   "<ipv4><address>10.9.9.1</address><mask>255.255.255.0</mask>"
                                   "</ipv4></interface>")],
         "operation-failed", "linux-name-required",
         '/nefeature-interfaces:interfaces/interface[name="GigabitEthernet0/1/3"]',
         "set linux-name"),
    Case("track-needs-linux-name", [R(UPLINK + "/if:linux-name")],
         "operation-failed", "track-needs-linux-name",
         P_VRRP1 + '/track/interfaces/interface[interface="GigabitEthernet0/1/2"]',
         "set linux-name"),
    Case("portswitch-address", [A(VLANIF, "<portswitch>true</portswitch>")],
         "operation-failed", "portswitch-address", P_VLANIF, "has no IP address"),
    Case("port-needs-portswitch", [A(UPLINK, "<port><link-type>trunk</link-type></port>")],
         "operation-failed", "port-needs-portswitch",
         '/nefeature-interfaces:interfaces/interface[name="GigabitEthernet0/1/2"]',
         "need a layer-2 port"),
    Case("allow-pass-needs-trunk", [A(UPLINK, "<portswitch>true</portswitch><port>"
                                              "<link-type>access</link-type>"
                                              "<trunk-allow-pass-vlan>100</trunk-allow-pass-vlan>"
                                              "</port>")],
         "operation-failed", "allow-pass-needs-trunk",
         '/nefeature-interfaces:interfaces/interface[name="GigabitEthernet0/1/2"]/port'
         '/trunk-allow-pass-vlan[.="100"]', "port link-type trunk"),
    Case("vlan-id-range", [A("/if:interfaces/..", "<vlans xmlns='urn:nefeature:yang:nefeature-"
                                                   "interfaces'><vlan><vlan-id>4095</vlan-id>"
                                                   "</vlan></vlans>")],
         "invalid-value", None, '/nefeature-interfaces:vlans/vlan[vlan-id="4095"]/vlan-id',
         "1..4094"),
    Case("linux-name-unique", [S(UPLINK + "/if:linux-name", "Vlanif100"),
                               A(VLANIF, "<linux-name>Vlanif100</linux-name>")],
         "operation-failed", "data-not-unique", "/nefeature-interfaces:interfaces/interface",
         "unique"),
    Case("netmask-contiguous", [S(VLANIF + "/if:ipv4/if:mask", "255.0.255.0")],
         "invalid-value", None, P_VLANIF + "/ipv4/mask", "contiguous ones"),
    Case("address-mask-pair", [R(VLANIF + "/if:ipv4/if:mask")],
         "operation-failed", "address-mask-pair", P_VLANIF + "/ipv4", "needs its mask"),
    Case("address-unique", [A(UPLINK, "<ipv4><address>10.10.10.1</address>"
                                      "<mask>255.255.255.0</mask></ipv4>")],
         "operation-failed", "data-not-unique", "/nefeature-interfaces:interfaces/interface",
         "unique"),
    Case("description-length", [S(UPLINK + "/if:description", "x" * 243)],
         "invalid-value", None,
         '/nefeature-interfaces:interfaces/interface[name="GigabitEthernet0/1/2"]/description',
         "not a valid value"),
    # --- nefeature-vrrp ---
    Case("vrrp-needs-address", [R(VLANIF + "/if:ipv4/if:address"), R(VLANIF + "/if:ipv4/if:mask"),
                                R("/rbs:rbs"), R(POOL + "/dhcp:remote-backup-profile"),
                                R(VLANIF + "/dhcp:dhcp")],
         "operation-failed", "vrrp-needs-address", P_VRRP1, "configure ip address"),
    Case("vrrp-needs-virtual-ip", [R(VRRP1 + "/vrrp:virtual-ipv4-addresses")],
         "operation-failed", "vrrp-needs-virtual-ip", P_VRRP1, "at least one virtual IP"),
    Case("vrid-range", [S(VRRP1 + "/vrrp:vrid", "0")],
         "invalid-value", None, P_VLANIF + '/ipv4/nefeature-vrrp:vrrp/vrrp-instance[vrid="0"]/vrid',
         "not a valid value"),
    Case("priority-range", [S(VRRP1 + "/vrrp:priority", "255")],
         "invalid-value", None, P_VRRP1 + "/priority", "not a valid value"),
    Case("hold-time-range", [S(VRRP1 + "/vrrp:preempt/vrrp:hold-time", "10801")],
         "invalid-value", None, P_VRRP1 + "/preempt/hold-time", "not a valid value"),
    Case("advertise-interval-range",
         [A(VRRP1, "<advertise-interval-centi-sec>4096</advertise-interval-centi-sec>")],
         "invalid-value", None, P_VRRP1 + "/advertise-interval-centi-sec", "1..4095 centiseconds"),
    Case("recover-delay-range", [S(VLANIF + "/if:ipv4/vrrp:vrrp/vrrp:recover-delay", "3601")],
         "invalid-value", None, P_VLANIF + "/ipv4/nefeature-vrrp:vrrp/recover-delay",
         "not a valid value"),
    Case("version-enum", [A(VRRP1, "<version>vrrp-v2</version>")],
         "invalid-value", None, P_VRRP1 + "/version", "not a valid value"),
    Case("track-self", [S(VRRP1 + "/vrrp:track/vrrp:interfaces/vrrp:interface/vrrp:interface",
                          "Vlanif100")],
         "operation-failed", "track-self",
         P_VRRP1 + '/track/interfaces/interface[interface="Vlanif100"]', "its own interface"),
    Case("track-leafref", [S(VRRP1 + "/vrrp:track/vrrp:interfaces/vrrp:interface/vrrp:interface",
                             "Vlanif200")],
         "data-missing", "instance-required",
         P_VRRP1 + '/track/interfaces/interface[interface="Vlanif200"]/interface',
         '"Vlanif200" is not configured'),
    Case("track-decrement-range",
         [S(VRRP1 + "/vrrp:track/vrrp:interfaces/vrrp:interface/vrrp:priority-decrement", "0")],
         "invalid-value", None,
         P_VRRP1 + '/track/interfaces/interface[interface="GigabitEthernet0/1/2"]'
         "/priority-decrement", "not a valid value"),
    Case("track-decrement-and-increment",
         [A(VRRP1 + "/vrrp:track/vrrp:interfaces/vrrp:interface",
            "<priority-increment>5</priority-increment>")],
         "bad-element", None,
         P_VRRP1 + '/track/interfaces/interface[interface="GigabitEthernet0/1/2"]',
         "another case of the same choice"),
    Case("virtual-ip-outside-subnet",
         [A(VRRP1 + "/vrrp:virtual-ipv4-addresses",
            "<virtual-ipv4-address><ipv4-address>10.10.11.100</ipv4-address></virtual-ipv4-address>")],
         "operation-failed", "virtual-ip-outside-subnet",
         P_VRRP1 + '/virtual-ipv4-addresses/virtual-ipv4-address[ipv4-address="10.10.11.100"]',
         "subnet of the interface"),
    Case("virtual-ip-in-use",
         [A(VLANIF + "/if:ipv4/vrrp:vrrp",
            "<vrrp-instance><vrid>2</vrid><virtual-ipv4-addresses><virtual-ipv4-address>"
            "<ipv4-address>10.10.10.100</ipv4-address></virtual-ipv4-address>"
            "</virtual-ipv4-addresses></vrrp-instance>")],
         "operation-failed", "virtual-ip-in-use",
         P_VRRP1 + '/virtual-ipv4-addresses/virtual-ipv4-address[ipv4-address="10.10.10.100"]',
         "another VRRP group"),
    Case("virtual-ip-max-16",
         [A(VRRP1 + "/vrrp:virtual-ipv4-addresses", "".join(
             f"<virtual-ipv4-address><ipv4-address>10.10.10.{200 + i}</ipv4-address>"
             "</virtual-ipv4-address>" for i in range(16)))],
         "operation-failed", "too-many-elements",
         P_VRRP1 + "/virtual-ipv4-addresses/virtual-ipv4-address", "too many entries"),
    # --- nefeature-dhcp-server ---
    Case("pool-overlap",
         [A("/dhcp:dhcp/dhcp:server/dhcp:ip-pools",
            "<ip-pool><ip-pool-name>pool2</ip-pool-name><network><ip-address>10.10.0.0</ip-address>"
            "<mask>255.255.0.0</mask></network></ip-pool>")],
         "operation-failed", "pool-overlap",  # reported by the pool whose subnet holds the other
         '/nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool[ip-pool-name="pool2"]', "overlaps"),
    Case("pool-name-pattern", [R(POOL + "/dhcp:remote-backup-profile"),
                               S(POOL + "/dhcp:ip-pool-name", "pool 1")],
         "invalid-value", None,
         '/nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool[ip-pool-name="pool 1"]/ip-pool-name',
         "no spaces"),
    Case("addressing-missing", [R(POOL + "/dhcp:gateway")],
         "data-missing", "missing-choice", P_POOL, "one of gateway, network"),
    Case("gateway-mandatory", [R(POOL + "/dhcp:gateway/dhcp:ip-address")],
         "data-missing", None, P_POOL + "/gateway", "missing mandatory 'ip-address'"),
    Case("gateway-and-network", [A(POOL, "<network><ip-address>10.10.10.0</ip-address>"
                                         "<mask>255.255.255.0</mask></network>")],
         "bad-element", None, P_POOL, "another case of the same choice"),
    Case("network-host-bits", [S(POOL + "/dhcp:network/dhcp:ip-address", "10.10.10.5")],
         "operation-failed", "network-host-bits", P_POOL + "/network", "host bits",
         base="single/server.xml"),
    Case("gateway-outside-network", [S(POOL + "/dhcp:gateway-list", "10.10.11.1")],
         "operation-failed", "gateway-outside-network", P_POOL + '/gateway-list[.="10.10.11.1"]',
         "in the pool's network", base="single/server.xml"),
    Case("gateway-list-max-8", [A(POOL, "".join(
        f"<gateway-list>10.10.10.{10 + i}</gateway-list>" for i in range(8)))],
         "operation-failed", "too-many-elements", P_POOL + "/gateway-list", "too many entries",
         base="single/server.xml"),
    Case("section-reversed", [S(POOL + "/dhcp:sections/dhcp:section/dhcp:end-ip", "10.10.10.0")],
         "operation-failed", "section-reversed", P_POOL + '/sections/section[section-index="0"]',
         "ends at or after"),
    Case("section-outside-subnet",
         [S(POOL + "/dhcp:sections/dhcp:section/dhcp:end-ip", "10.10.11.100")],
         "operation-failed", "section-outside-subnet",
         P_POOL + '/sections/section[section-index="0"]', "in the pool's subnet"),
    Case("section-overlap",
         [A(POOL + "/dhcp:sections", "<section><section-index>1</section-index>"
            "<start-ip>10.10.10.50</start-ip><end-ip>10.10.10.150</end-ip></section>")],
         "operation-failed", "section-overlap", P_POOL + '/sections/section[section-index="0"]',
         "must not overlap"),
    Case("section-end-mandatory", [R(POOL + "/dhcp:sections/dhcp:section/dhcp:end-ip")],
         "data-missing", None, P_POOL + '/sections/section[section-index="0"]',
         "missing mandatory 'end-ip'"),
    Case("excluded-reversed",
         [S(POOL + "/dhcp:excluded-ip-addresses/dhcp:excluded-ip-address/dhcp:end-ip-address",
            "10.10.10.0")],
         "operation-failed", "excluded-reversed",
         P_POOL + '/excluded-ip-addresses/excluded-ip-address[start-ip-address="10.10.10.1"]'
         '[end-ip-address="10.10.10.0"]', "ends at or after", base="single/server.xml"),
    Case("static-bind-outside-subnet",
         [A(POOL, "<static-binds><static-bind><ip-address>10.10.11.7</ip-address>"
                  "<mac-address>00:11:22:33:44:55</mac-address></static-bind></static-binds>")],
         "operation-failed", "static-bind-outside-subnet",
         P_POOL + '/static-binds/static-bind[ip-address="10.10.11.7"]', "in the pool's subnet"),
    Case("static-bind-mac-unique",
         [A(POOL, "<static-binds><static-bind><ip-address>10.10.10.7</ip-address>"
                  "<mac-address>00:11:22:33:44:55</mac-address></static-bind><static-bind>"
                  "<ip-address>10.10.10.8</ip-address><mac-address>00:11:22:33:44:55</mac-address>"
                  "</static-bind></static-binds>")],
         "operation-failed", "data-not-unique", P_POOL + "/static-binds/static-bind", "unique"),
    Case("static-bind-mac-malformed",
         [A(POOL, "<static-binds><static-bind><ip-address>10.10.10.7</ip-address>"
                  "<mac-address>00-11-22-33-44-5g</mac-address></static-bind></static-binds>")],
         "invalid-value", None,
         P_POOL + '/static-binds/static-bind[ip-address="10.10.10.7"]/mac-address',
         "not a valid value"),
    Case("static-bind-mac-mandatory",
         [A(POOL, "<static-binds><static-bind><ip-address>10.10.10.7</ip-address>"
                  "</static-bind></static-binds>")],
         "data-missing", None, P_POOL + '/static-binds/static-bind[ip-address="10.10.10.7"]',
         "missing mandatory 'mac-address'"),
    Case("lease-zero", [S(POOL + "/dhcp:lease-time/dhcp:day", "0")],
         "operation-failed", "lease-zero", P_POOL + "/lease-time", "at least one minute",
         base="single/server.xml"),
    Case("lease-day-range", [S(POOL + "/dhcp:lease-time/dhcp:day", "1000")],
         "invalid-value", None, P_POOL + "/lease-time/day", "not a valid value",
         base="single/server.xml"),
    Case("lease-limited-and-unlimited", [A(POOL + "/dhcp:lease-time", "<unlimited/>")],
         "bad-element", None, P_POOL + "/lease-time", "another case of the same choice",
         base="single/server.xml"),
    Case("dns-list-max-8", [A(POOL, "".join(
        f"<dns-list>10.10.10.{60 + i}</dns-list>" for i in range(8)))],
         "operation-failed", "too-many-elements", P_POOL + "/dns-list", "too many entries",
         base="single/server.xml"),
    Case("domain-name-length", [A(POOL, "<domain-name>" + "d" * 64 + "</domain-name>")],
         "invalid-value", None, P_POOL + "/domain-name", "not a valid value",
         base="single/server.xml"),
    Case("option-code-reserved",
         [A(POOL, "<user-options><user-option><option-code>82</option-code>"
                  "<hex>0102</hex></user-option></user-options>")],
         "invalid-value", None, P_POOL + '/user-options/user-option[option-code="82"]/option-code',
         "reserved or set by its own command", base="single/server.xml"),
    Case("option-hex-pattern",
         [A(POOL, "<user-options><user-option><option-code>43</option-code>"
                  "<hex>abc</hex></user-option></user-options>")],
         "invalid-value", None, P_POOL + '/user-options/user-option[option-code="43"]/hex',
         "even number of hex digits", base="single/server.xml"),
    Case("option-value-missing",
         [A(POOL, "<user-options><user-option><option-code>43</option-code>"
                  "</user-option></user-options>")],
         "data-missing", "missing-choice", P_POOL + '/user-options/user-option[option-code="43"]',
         "must be configured here", base="single/server.xml"),
    Case("option-ip-max-8",
         [A(POOL, "<user-options><user-option><option-code>150</option-code>" + "".join(
             f"<ip-address>10.0.0.{i}</ip-address>" for i in range(1, 10))
            + "</user-option></user-options>")],
         "operation-failed", "too-many-elements",
         P_POOL + '/user-options/user-option[option-code="150"]/ip-address', "too many entries",
         base="single/server.xml"),
    Case("identifier-assignable",
         [A(POOL, "<static-binds><static-bind><ip-address>10.10.10.100</ip-address>"
                  "<mac-address>00:11:22:33:44:55</mac-address></static-bind></static-binds>")],
         "operation-failed", "identifier-assignable", P_POOL + "/identifier-ip",
         "cannot be assigned to a client"),
    Case("profile-leafref", [S(POOL + "/dhcp:remote-backup-profile", "service9")],
         "data-missing", "instance-required", P_POOL + "/remote-backup-profile",
         '"service9" is not configured'),
    Case("identifier-not-virtual-ip", [S(POOL + "/dhcp:identifier-ip", "10.10.10.99")],
         "operation-failed", "identifier-not-virtual-ip", P_POOL + "/remote-backup-profile",
         "virtual IP of the profile's VRRP group"),
    Case("warning-threshold-range", [A(POOL, "<warning-threshold>0</warning-threshold>")],
         "invalid-value", None, P_POOL + "/warning-threshold", "not a valid value"),
    Case("dhcp-not-enabled", [S("/dhcp:dhcp/dhcp:enable", "false")],
         "operation-failed", "dhcp-not-enabled", P_VLANIF + "/nefeature-dhcp-server:dhcp",
         "dhcp enable", base="single/server.xml"),
    Case("dhcp-needs-address", [R(VLANIF + "/if:ipv4")],
         "operation-failed", "dhcp-needs-address", P_VLANIF + "/nefeature-dhcp-server:dhcp",
         "needs an IPv4 address", base="single/server.xml"),
    # --- nefeature-rbs ---
    Case("peer-source-port", [R(SERVICE + "/rbs:tcp-port")],
         "operation-failed", "peer-source-port", P_SERVICE, "configured together"),
    Case("peer-equals-source", [S(SERVICE + "/rbs:peer-ip", "10.10.10.1")],
         "operation-failed", "peer-equals-source", P_SERVICE, "must differ"),
    Case("source-not-local", [S(SERVICE + "/rbs:source-ip", "10.10.10.7")],
         "operation-failed", "source-not-local", P_SERVICE, "not an address of any interface"),
    Case("service-name-pattern", [A("/rbs:rbs/rbs:services",
                                    "<service><name>bad name</name></service>")],
         "invalid-value", None, '/nefeature-rbs:rbs/services/service[name="bad name"]/name',
         "letters, digits"),
    Case("tcp-port-range", [S(SERVICE + "/rbs:tcp-port", "80")],
         "invalid-value", None, P_SERVICE + "/tcp-port", "1024..55535"),
    Case("tcp-port-type", [S(SERVICE + "/rbs:tcp-port", "ten")],
         "invalid-value", None, P_SERVICE + "/tcp-port", '"ten" is not a valid value'),
    Case("shared-key-length", [A(SERVICE, "<shared-key>short</shared-key>")],
         "invalid-value", None, P_SERVICE + "/shared-key", "not a valid value"),
    Case("backup-id-service", [R(PROFILE + "/rbs:service-name")],
         "operation-failed", "backup-id-service", P_PROFILE, "configured together"),
    Case("backup-id-range", [S(PROFILE + "/rbs:backup-id", "4096")],
         "invalid-value", None, P_PROFILE + "/backup-id", "1..4095"),
    Case("backup-id-unique",
         [A("/rbs:rbs/rbs:profiles",
            "<profile><name>other</name><service-name>service1</service-name>"
            "<backup-id>1</backup-id></profile>")],
         "operation-failed", "data-not-unique", "/nefeature-rbs:rbs/profiles/profile", "unique"),
    Case("profile-service-leafref", [S(PROFILE + "/rbs:service-name", "service9")],
         "data-missing", "instance-required", P_PROFILE + "/service-name",
         '"service9" is not configured'),
    Case("dhcp-server-needs-vrrp", [R(PROFILE + "/rbs:vrrps"), R(POOL + "/dhcp:remote-backup-profile")],
         "operation-failed", "dhcp-server-needs-vrrp", P_PROFILE, "vrrp-id <vrid> interface"),
    Case("dhcp-server-needs-service", [R(PROFILE + "/rbs:service-name"),
                                       R(PROFILE + "/rbs:backup-id")],
         "operation-failed", "dhcp-server-needs-service", P_PROFILE, "needs a channel"),
    Case("vrrp-group-missing", [S(PROFILE + "/rbs:vrrps/rbs:vrrp/rbs:id", "2"),
                                R(POOL + "/dhcp:remote-backup-profile")],
         "operation-failed", "vrrp-group-missing", P_PROFILE + '/vrrps/vrrp[id="2"]',
         "not configured on that interface"),
    Case("vrrp-if-leafref", [S(PROFILE + "/rbs:vrrps/rbs:vrrp/rbs:if-name", "Vlanif200"),
                             R(POOL + "/dhcp:remote-backup-profile")],
         "data-missing", "instance-required", P_PROFILE + '/vrrps/vrrp[id="1"]/if-name',
         '"Vlanif200" is not configured'),
    Case("vrrp-max-1", [A(PROFILE + "/rbs:vrrps",
                          "<vrrp><id>2</id><if-name>Vlanif100</if-name></vrrp>")],
         "operation-failed", "too-many-elements", P_PROFILE + "/vrrps/vrrp", "too many entries"),
    Case("mclt-range", [A(PROFILE, "<mclt>59</mclt>")],
         "invalid-value", None, P_PROFILE + "/mclt", "not a valid value"),
    Case("sync-mode-enum", [A(PROFILE, "<sync-mode>eventual</sync-mode>")],
         "invalid-value", None, P_PROFILE + "/sync-mode", "not a valid value"),
    Case("mode-enum", [S(PROFILE + "/rbs:mode", "warm")],
         "invalid-value", None, P_PROFILE + "/mode", "not a valid value"),
    Case("service-type-repeated", [A(PROFILE, "<service-type>dhcp-server</service-type>")],
         "operation-failed", "data-not-unique", P_PROFILE + "/service-type", "listed twice"),
    Case("unknown-element", [A(PROFILE, "<bogus>1</bogus>")],
         "unknown-element", None, P_PROFILE + "/bogus", "unknown element 'bogus'"),
    Case("state-data-in-config", [A(PROFILE, "<state><local-state>master</local-state></state>")],
         "bad-element", None, P_PROFILE, "state data"),
]


@pytest.fixture(params=["libyang", "yangson"])
def each_validator(request, monkeypatch) -> str:
    """Run the test with libyang judging validity, then with yangson alone."""
    for variable, value in validator_environment(request.param).items():
        monkeypatch.setenv(variable, value)
    assert validator() == request.param
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_validator_reports_the_violation(case, each_validator):
    with pytest.raises(NetconfError) as caught:
        validate_config(mutated(case))
    error = caught.value
    assert (error.error_type, error.tag, error.app_tag, error.path) == (
        "application", case.tag, case.app_tag, case.path)
    assert case.message in error.message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_yanglint_rejects_the_same_instance(yanglint, case, tmp_path):
    instance = tmp_path / "config.xml"
    instance.write_bytes(b"".join(etree.tostring(child) for child in mutated(case)))
    result = run_yanglint(yanglint, instance)
    assert result.returncode != 0, f"yanglint accepted {case.id}"


def test_each_error_app_tag_of_the_model_is_exercised():
    """Every error-app-tag written in the YANG modules has a case above."""
    import re

    from tests.conftest import MODULE_FILES

    model_tags = set()
    for path in MODULE_FILES:
        model_tags |= set(re.findall(r'error-app-tag "([^"]+)"', path.read_text()))
    tested = {case.app_tag for case in CASES}
    assert model_tags - tested == set()


@pytest.mark.parametrize("name", ["pair/deviceA.xml", "pair/deviceB.xml", "single/server.xml"])
def test_unmodified_examples_are_valid(name, each_validator):
    validate_config(mutated(Case(name, [], "", None, "", "", base=name)))
