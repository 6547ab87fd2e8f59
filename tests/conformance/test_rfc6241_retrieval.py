"""Retrieval: subtree filters (RFC 6241 6), with-defaults (RFC 6243), RFC 6022, YANG library,
determinism, and the device's own RPCs."""

from __future__ import annotations

import pytest
from lxml import etree
from ncclient.operations import RPCError

from tests.conformance.conftest import DHCP_NS, IF_NS

MONITORING = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"


def test_subtree_selection_and_content_match_rfc6241_6(nc):
    reply = nc.get_config(source="running", filter=("subtree", (
        f'<interfaces xmlns="{IF_NS}"><interface><name>Vlanif100</name><ipv4/></interface>'
        "</interfaces>")))
    data = etree.fromstring(reply.data_xml.encode())
    assert data.findtext(f".//{{{IF_NS}}}address") == "10.10.10.1"
    assert data.find(f".//{{{DHCP_NS}}}dhcp") is None
    miss = nc.get_config(source="running", filter=("subtree", (
        f'<interfaces xmlns="{IF_NS}"><interface><name>Vlanif999</name></interface>'
        "</interfaces>")))
    assert etree.fromstring(miss.data_xml.encode()).find(f".//{{{IF_NS}}}interface") is None


def test_empty_filter_selects_nothing_rfc6241_6_4_2(nc):
    empty = etree.fromstring('<filter xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" '
                             'type="subtree"/>')
    reply = nc.get_config(source="running", filter=empty)
    assert len(etree.fromstring(reply.data_xml.encode())) == 0


def test_xpath_filter_is_refused_not_silently_empty(nc):
    with pytest.raises(RPCError) as caught:
        nc.get_config(source="running", filter=("xpath", "/interfaces"))
    assert caught.value.tag == "bad-attribute"


@pytest.mark.parametrize("mode, expect_default, tagged", [
    ("explicit", False, False),
    ("report-all", True, False),
    ("report-all-tagged", True, True),
    ("trim", False, False),
])
def test_with_defaults_modes_rfc6243(nc, mode, expect_default, tagged):
    reply = nc.get_config(source="running", with_defaults=mode, filter=("subtree", (
        f'<interfaces xmlns="{IF_NS}"><interface><name>Vlanif100</name></interface>'
        "</interfaces>")))
    xml = reply.data_xml
    assert ("<shutdown" in xml) == expect_default  # shutdown defaults to false
    assert ('default="true"' in xml) == tagged
    if mode == "explicit":
        assert "<priority>120</priority>" in xml  # set explicitly, kept
    if mode == "trim":
        assert "<advertise-interval-centi-sec>" not in xml


def test_get_config_is_byte_stable(nc):
    first = nc.get_config(source="running").data_xml
    second = nc.get_config(source="running").data_xml
    assert first == second


def test_get_returns_config_and_state(nc):
    reply = nc.get(filter=("subtree", f'<dhcp xmlns="{DHCP_NS}"/>')).data_xml
    assert "<statistics>" in reply and "<ip-pool-usage>" in reply and "<enable>true" in reply
    vrrp = nc.get(filter=("subtree", (
        f'<interfaces xmlns="{IF_NS}"><interface><name>Vlanif100</name></interface>'
        "</interfaces>"))).data_xml
    assert "<state>" in vrrp and "<running-priority>120</running-priority>" in vrrp


def test_netconf_state_lists_schemas_rfc6022(nc):
    reply = nc.get(filter=("subtree", f'<netconf-state xmlns="{MONITORING}"><schemas/>'
                                      "</netconf-state>")).data_xml
    for module in ("nefeature-interfaces", "nefeature-vrrp", "nefeature-rbs",
                   "nefeature-dhcp-server", "ietf-inet-types"):
        assert f"<identifier>{module}</identifier>" in reply


def test_get_schema_returns_the_exact_file_rfc6022(nc):
    from tests.conftest import YANG

    for module in ("nefeature-rbs", "nefeature-dhcp-server"):
        assert nc.get_schema(module).data == (YANG / f"{module}.yang").read_text()
    with pytest.raises(RPCError) as caught:
        nc.get_schema("no-such-module")
    assert caught.value.tag == "invalid-value"


def test_yang_library_rfc7895(nc):
    reply = nc.get(filter=("subtree", '<modules-state xmlns="urn:ietf:params:xml:ns:yang:'
                                      'ietf-yang-library"/>')).data_xml
    assert "<module-set-id>" in reply and "<name>nefeature-vrrp</name>" in reply
    set_id = reply.split("<module-set-id>")[1].split("<")[0]
    assert ("urn:ietf:params:netconf:capability:yang-library:1.0?revision=2016-06-21"
            f"&module-set-id={set_id}") in nc.server_capabilities


def test_reset_statistics_rpc(nc):
    reply = nc.dispatch(etree.fromstring(f'<reset-statistics xmlns="{DHCP_NS}"/>'))
    assert reply.ok


def test_reset_address_state_rpc(nc):
    reply = nc.dispatch(etree.fromstring(
        f'<reset-address-state xmlns="{DHCP_NS}"><pool-name>pool1</pool-name>'
        "<reset-flag>conflict</reset-flag></reset-address-state>"))
    assert f'<reset-count xmlns="{DHCP_NS}">0</reset-count>' in reply.xml
    with pytest.raises(RPCError) as caught:
        nc.dispatch(etree.fromstring(
            f'<reset-address-state xmlns="{DHCP_NS}"><pool-name>nope</pool-name>'
            "<reset-flag>all</reset-flag></reset-address-state>"))
    assert caught.value.tag == "data-missing"


def test_batch_backup_now_for_an_unknown_service(nc):
    with pytest.raises(RPCError) as caught:
        nc.dispatch(etree.fromstring(
            '<batch-backup-now xmlns="urn:nefeature:yang:nefeature-rbs"><rbs-name>s9</rbs-name>'
            "<service-type>dhcp-server</service-type></batch-backup-now>"))
    assert caught.value.tag == "data-missing"
