"""Typed config objects built from validated XML, and the diff between two."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from nefeature.config import diff_configs
from nefeature.datastore.validation import load_config, load_config_file
from nefeature.config.model import AddressRange, DeviceConfig, TrackedInterface
from nefeature.datastore import NetconfError
from tests.conftest import EXAMPLES

DEVICE_A = EXAMPLES / "pair" / "deviceA.xml"
DEVICE_B = EXAMPLES / "pair" / "deviceB.xml"
SINGLE = EXAMPLES / "single" / "server.xml"

DHCP_NS = "urn:nefeature:yang:nefeature-dhcp-server"
IF_NS = "urn:nefeature:yang:nefeature-interfaces"


def single_with_pool_extra(extra: str) -> str:
    """examples/single/server.xml with XML added inside pool1."""
    text = SINGLE.read_text()
    return text.replace("<dns-list>10.10.10.53</dns-list>",
                        "<dns-list>10.10.10.53</dns-list>" + extra)


def test_device_a_in_engine_terms():
    config = load_config_file(DEVICE_A)
    assert config.dhcp_enabled
    vlanif = config.interface("Vlanif100")
    assert (vlanif.linux_name, vlanif.address, vlanif.dhcp_server) == (
        "Vlanif100", IPv4Interface("10.10.10.1/24"), True)
    assert config.interface("GigabitEthernet0/1/2").linux_name == "uplink0"
    group = config.vrrp_group("Vlanif100", 1)
    assert (group.priority, group.preempt, group.preempt_hold_time, group.advertise_interval,
            group.recover_delay) == (200, True, 600, 100, 20)
    assert group.virtual_addresses == (IPv4Address("10.10.10.100"),)
    assert group.tracks == (TrackedInterface("GigabitEthernet0/1/2", -110),)
    pool = config.pool("pool1")
    assert pool.network == IPv4Network("10.10.10.0/24")
    assert pool.routers == (IPv4Address("10.10.10.100"),)
    assert pool.sections == (AddressRange(IPv4Address("10.10.10.1"), IPv4Address("10.10.10.100")),)
    assert (pool.identifier, pool.backup_profile, pool.lease_time) == (
        IPv4Address("10.10.10.100"), "service1", 3 * 86400)  # no lease line: NE's 3 days
    service = config.rbs_service("service1")
    assert (service.peer, service.source, service.port, service.shut_down) == (
        IPv4Address("10.10.10.2"), IPv4Address("10.10.10.1"), 10000, False)
    profile = config.rbs_profile("service1")
    assert (profile.service, profile.backup_id, profile.vrrp, profile.service_types,
            profile.sync_mode, profile.mclt) == (
        "service1", 1, ("Vlanif100", 1), frozenset({"dhcp-server"}), "strict", 3600)


def test_device_b_takes_the_defaults():
    group = load_config_file(DEVICE_B).vrrp_group("Vlanif100", 1)
    assert (group.priority, group.preempt, group.preempt_hold_time, group.tracks,
            group.recover_delay) == (100, True, 0, (), 0)


def test_single_server_ce_dialect():
    config = load_config_file(SINGLE)
    pool = config.pool("pool1")
    assert pool.routers == (IPv4Address("10.10.10.1"),)
    assert pool.dns_servers == (IPv4Address("10.10.10.53"),)
    # no section configured: the whole subnet, without network and broadcast address
    assert pool.sections == (AddressRange(IPv4Address("10.10.10.1"), IPv4Address("10.10.10.254")),)
    assert len(pool.sections[0]) == 254
    assert pool.excluded == (AddressRange(IPv4Address("10.10.10.1"), IPv4Address("10.10.10.9")),)
    assert IPv4Address("10.10.10.9") in pool.excluded[0]
    assert IPv4Address("10.10.10.10") not in pool.excluded[0]
    assert config.vrrp_groups == () and config.rbs_services == () and config.rbs_profiles == ()


def test_netconf_config_wrapper_gives_the_same_config():
    bare = DEVICE_A.read_text()
    wrapped = ('<?xml version="1.0"?><config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
               + bare + "</config>")
    assert load_config(wrapped) == load_config(bare)


@pytest.mark.parametrize("lease, seconds", [
    ("<day>0</day><hour>2</hour><minute>30</minute>", 9000),
    ("<day>3</day>", 3 * 86400),
    ("<unlimited/>", None),
])
def test_lease_time_in_seconds(lease, seconds):
    text = SINGLE.read_text().replace(
        "<day>1</day>\n          <hour>0</hour>\n          <minute>0</minute>", lease)
    assert load_config(text).pool("pool1").lease_time == seconds


@pytest.mark.parametrize("example, days", [(DEVICE_A, 3), (SINGLE, 1)])
def test_a_pool_without_a_lease_gets_its_dialects_default(example, days):
    text = example.read_text()
    start, end = text.find("<lease-time>"), text.find("</lease-time>")
    if start >= 0:
        text = text[:start] + text[end + len("</lease-time>"):]
    assert load_config(text).pool("pool1").lease_time == days * 86400


def test_a_backed_up_ce_pool_identifies_itself_by_its_virtual_gateway():
    text = DEVICE_A.read_text()
    ne = text[text.find("<gateway>"):text.find("</gateway>") + len("</gateway>")]
    text = text.replace(ne, "<network><ip-address>10.10.10.0</ip-address>"
                            "<mask>255.255.255.0</mask></network>"
                            "<gateway-list>10.10.10.100</gateway-list>")
    text = text.replace("<identifier-ip>10.10.10.100</identifier-ip>", "")
    assert load_config(text).pool("pool1").identifier == IPv4Address("10.10.10.100")


def test_system_recover_delay_applies_where_the_interface_sets_none():
    text = DEVICE_B.read_text().replace(
        "</interfaces>", '</interfaces><vrrp xmlns="urn:nefeature:yang:nefeature-vrrp">'
                         "<recover-delay>30</recover-delay></vrrp>")
    assert load_config(text).vrrp_group("Vlanif100", 1).recover_delay == 30
    assert load_config_file(DEVICE_A).vrrp_group("Vlanif100", 1).recover_delay == 20


def test_sysname_vlans_and_layer2_ports_are_carried():
    text = DEVICE_B.read_text().replace("</interfaces>", """
    <interface>
      <name>GigabitEthernet0/1/1</name>
      <shutdown>false</shutdown>
      <portswitch>true</portswitch>
      <port><link-type>trunk</link-type>
        <trunk-allow-pass-vlan>200</trunk-allow-pass-vlan>
        <trunk-allow-pass-vlan>100</trunk-allow-pass-vlan></port>
    </interface>
  </interfaces>
  <system xmlns="urn:nefeature:yang:nefeature-interfaces"><sysname>DeviceB</sysname></system>
  <vlans xmlns="urn:nefeature:yang:nefeature-interfaces"><vlan><vlan-id>100</vlan-id></vlan></vlans>""")
    config = load_config(text)
    port = config.interface("GigabitEthernet0/1/1")
    assert (port.portswitch, port.link_type, port.trunk_vlans, port.address) == (
        True, "trunk", (100, 200), None)
    assert (config.sysname, config.vlans) == ("DeviceB", (100,))


def test_user_options_are_encoded_for_the_wire():
    options = (
        "<user-options>"
        "<user-option><option-code>43</option-code><hex>0a0B</hex></user-option>"
        "<user-option><option-code>66</option-code><ascii>tftp.example</ascii></user-option>"
        "<user-option><option-code>150</option-code>"
        "<ip-address>10.0.0.1</ip-address><ip-address>10.0.0.2</ip-address></user-option>"
        "<user-option><option-code>125</option-code>"
        "<sub-option><sub-code>1</sub-code><sub-ascii>ab</sub-ascii></sub-option>"
        "<sub-option><sub-code>2</sub-code><sub-ip-address>192.0.2.1</sub-ip-address></sub-option>"
        "</user-option>"
        "</user-options>"
    )
    pool = load_config(single_with_pool_extra(options)).pool("pool1")
    assert {o.code: o.value for o in pool.options} == {
        43: b"\x0a\x0b",
        66: b"tftp.example",
        150: bytes([10, 0, 0, 1, 10, 0, 0, 2]),
        125: b"\x01\x02ab" + b"\x02\x04" + bytes([192, 0, 2, 1]),
    }


def test_static_bind_mac_is_normalized():
    binds = ("<static-binds><static-bind><ip-address>10.10.10.20</ip-address>"
             "<mac-address>00:1A:2B:3C:4D:5E</mac-address><description>printer</description>"
             "</static-bind></static-binds>")
    pool = load_config(single_with_pool_extra(binds)).pool("pool1")
    assert [(b.address, b.mac, b.description) for b in pool.static_binds] == [
        (IPv4Address("10.10.10.20"), "00:1a:2b:3c:4d:5e", "printer")]


def test_increased_tracking_is_a_positive_change():
    text = DEVICE_A.read_text().replace(
        "<priority-decrement>110</priority-decrement>", "<priority-increment>20</priority-increment>")
    assert load_config(text).vrrp_group("Vlanif100", 1).tracks[0].priority_change == 20


def test_default_decrement_is_ten():
    text = DEVICE_A.read_text().replace("<priority-decrement>110</priority-decrement>", "")
    assert load_config(text).vrrp_group("Vlanif100", 1).tracks[0].priority_change == -10


def test_config_objects_are_immutable():
    config = load_config_file(DEVICE_A)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.pools[0].lease_time = 1  # type: ignore[misc]
    assert isinstance(config.pools, tuple)


def test_shared_key_is_not_printed():
    text = DEVICE_A.read_text().replace(
        "<tcp-port>10000</tcp-port>", "<tcp-port>10000</tcp-port><shared-key>s3cret-key</shared-key>")
    service = load_config(text).rbs_service("service1")
    assert service.shared_key == "s3cret-key"
    assert "s3cret" not in repr(service)


# --- diff ---


def test_same_config_has_no_diff():
    assert not diff_configs(load_config_file(DEVICE_A), load_config_file(DEVICE_A))


def test_diff_from_empty_creates_everything():
    diff = diff_configs(DeviceConfig(), load_config_file(DEVICE_A))
    assert diff.keys("pools", "created") == ("pool1",)
    assert diff.keys("vrrp_groups", "created") == (("Vlanif100", 1),)
    assert diff.keys("rbs_services", "created") == ("service1",)
    assert diff.keys("rbs_profiles", "created") == ("service1",)
    assert diff.keys("interfaces", "created") == ("GigabitEthernet0/1/2", "Vlanif100")
    assert diff.of("dhcp_enabled") == ()  # on by default, as on NE routers


def test_diff_between_the_pair_devices():
    diff = diff_configs(load_config_file(DEVICE_A), load_config_file(DEVICE_B))
    assert diff.keys("interfaces", "deleted") == ("GigabitEthernet0/1/2",)
    assert diff.keys("interfaces", "changed") == ("Vlanif100",)  # address differs
    (group,) = diff.of("vrrp_groups", "changed")
    assert (group.old.priority, group.new.priority) == (200, 100)
    assert diff.keys("rbs_services", "changed") == ("service1",)
    assert diff.of("pools") == () and diff.of("rbs_profiles") == ()


def test_diff_of_one_pool_leaf():
    before = load_config_file(SINGLE)
    after = load_config(SINGLE.read_text().replace("10.10.10.53", "10.10.10.54"))
    diff = diff_configs(before, after)
    assert [(c.kind, c.section, c.key) for c in diff.changes] == [("changed", "pools", "pool1")]
    assert diff.changes[0].new.dns_servers == (IPv4Address("10.10.10.54"),)


# --- hostile or broken input ---


def test_not_xml_is_malformed_message():
    with pytest.raises(NetconfError) as caught:
        load_config("<interfaces")
    assert (caught.value.error_type, caught.value.tag) == ("rpc", "malformed-message")


def test_unknown_namespace():
    with pytest.raises(NetconfError) as caught:
        load_config('<dhcp xmlns="urn:example:not-ours"><enable>true</enable></dhcp>')
    assert caught.value.tag == "unknown-namespace"
    assert caught.value.info[0].value == "urn:example:not-ours"


def test_external_entities_are_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("10.10.10.77")
    text = (f'<!DOCTYPE interfaces [<!ENTITY e SYSTEM "file://{secret}">]>'
            + SINGLE.read_text().split("-->", 1)[1].replace("10.10.10.53", "&e;"))
    try:
        config = load_config(text)
    except NetconfError:
        return  # refused outright is fine
    assert IPv4Address("10.10.10.77") not in config.pool("pool1").dns_servers


def test_empty_config_is_valid_and_empty():
    assert load_config('<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>') == DeviceConfig()
