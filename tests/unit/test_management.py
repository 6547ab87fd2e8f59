"""The management plane without a network: filters, lease state, throttle, door, notifications."""

from __future__ import annotations

import inspect
from ipaddress import IPv4Address

import pytest
from lxml import etree

from nefeature.backup.hotbackup import ProtectDown, RbpStateChanged
from nefeature.dhcp.events import PoolThresholdExceeded
from nefeature.dhcp.leases import Lease, LeaseState, LeaseTable
from nefeature.netconf.auth import LoginThrottle
from nefeature.netconf.compat import admit_startup
from nefeature.netconf.device import ManagedDevice
from nefeature.netconf.filters import ALL, lookup, parse_filter, select
from nefeature.netconf.notifications import ConfigChanged, notification_content
from nefeature.state import (LeaseEntries, lease_entry, lease_entry_xml, lease_snapshot,
                             lease_xml)
from nefeature.vrrp.router import VrrpNewMaster

DHCP = "urn:nefeature:yang:nefeature-dhcp-server"
IF = "urn:nefeature:yang:nefeature-interfaces"


def parsed(xml: str):
    return parse_filter(etree.fromstring(f'<filter xmlns="urn:ietf:params:xml:ns:netconf:'
                                         f'base:1.0">{xml}</filter>'))


POOLS = {"nefeature-dhcp-server:dhcp": {"enable": True, "server": {"ip-pools": {"ip-pool": [
    {"ip-pool-name": "a", "dns-list": ["10.0.0.53"], "domain-name": "a.example"},
    {"ip-pool-name": "b", "domain-name": "b.example"}]}}}}


def test_containment_keeps_list_keys_rfc6241_6_2_5():
    kept = select(POOLS, parsed(f'<dhcp xmlns="{DHCP}"><server><ip-pools><ip-pool><dns-list/>'
                                "</ip-pool></ip-pools></server></dhcp>"))
    assert kept == {"nefeature-dhcp-server:dhcp": {"server": {"ip-pools": {"ip-pool": [
        {"ip-pool-name": "a", "dns-list": ["10.0.0.53"]}]}}}}  # pool b has no dns-list


def test_content_match_selects_all_siblings_and_conditions_others():
    every = select(POOLS, parsed(f'<dhcp xmlns="{DHCP}"><server><ip-pools><ip-pool>'
                                 "<ip-pool-name>b</ip-pool-name></ip-pool></ip-pools></server>"
                                 "</dhcp>"))
    assert every["nefeature-dhcp-server:dhcp"]["server"]["ip-pools"]["ip-pool"] == [
        {"ip-pool-name": "b", "domain-name": "b.example"}]
    some = select(POOLS, parsed(f'<dhcp xmlns="{DHCP}"><server><ip-pools><ip-pool>'
                                "<ip-pool-name>a</ip-pool-name><domain-name/></ip-pool>"
                                "</ip-pools></server></dhcp>"))
    assert some["nefeature-dhcp-server:dhcp"]["server"]["ip-pools"]["ip-pool"] == [
        {"ip-pool-name": "a", "domain-name": "a.example"}]
    none = select(POOLS, parsed(f'<dhcp xmlns="{DHCP}"><enable>false</enable></dhcp>'))
    assert none == {}


def test_two_filter_nodes_for_one_list_select_the_union():
    both = select(POOLS, parsed(
        f'<dhcp xmlns="{DHCP}"><server><ip-pools><ip-pool><ip-pool-name>a</ip-pool-name>'
        "<dns-list/></ip-pool><ip-pool><ip-pool-name>b</ip-pool-name><domain-name/></ip-pool>"
        "</ip-pools></server></dhcp>"))
    assert both["nefeature-dhcp-server:dhcp"]["server"]["ip-pools"]["ip-pool"] == [
        {"ip-pool-name": "a", "dns-list": ["10.0.0.53"]},
        {"ip-pool-name": "b", "domain-name": "b.example"}]


def test_lookup_tells_what_a_filter_can_reach():
    statistics = parsed(f'<dhcp xmlns="{DHCP}"><server><statistics/></server></dhcp>')
    assert lookup(statistics, ("nefeature-dhcp-server:dhcp", "server", "statistics")) == ALL
    assert lookup(statistics, ("nefeature-dhcp-server:dhcp", "server", "ip-pools")) is None
    assert lookup(statistics, ("nefeature-interfaces:interfaces",)) is None
    assert lookup(None, ("nefeature-interfaces:interfaces",)) == ALL
    whole = parsed(f'<dhcp xmlns="{DHCP}"/>')
    assert lookup(whole, ("nefeature-dhcp-server:dhcp", "server", "statistics")) == ALL
    by_mac = parsed(f'<dhcp xmlns="{DHCP}"><server><ip-pool-user-infos><ip-pool-user-info>'
                    "<mac-address>02:00:00:00:00:07</mac-address></ip-pool-user-info>"
                    "</ip-pool-user-infos></server></dhcp>")
    found = lookup(by_mac, ("nefeature-dhcp-server:dhcp", "server", "ip-pool-user-infos",
                            "ip-pool-user-info"))
    assert [child.name for node in found for child in node.children] == ["mac-address"]


def _table(count: int) -> LeaseTable:
    table = LeaseTable()
    for n in range(count):
        mac = bytes([2, 0, 0, 0, 0, n])
        table.put(Lease(0x0A000002 + n, "p1" if n % 2 else "p2", b"h" + mac, mac,
                        LeaseState.BOUND, 1000.0 + n, 87400.0, hostname=f"h{n}",
                        option82=b"\x01\x04eth" + bytes([48 + n % 3])))
    table.put(Lease(0x0A0000FF, "p1", b"hgone", bytes(6), LeaseState.RELEASED, 0.0, 1.0))
    return table


def _lease_filter(xml: str):
    return lookup(parsed(f'<dhcp xmlns="{DHCP}"><server><ip-pool-user-infos>'
                         f"<ip-pool-user-info>{xml}</ip-pool-user-info></ip-pool-user-infos>"
                         "</server></dhcp>"),
                  ("nefeature-dhcp-server:dhcp", "server", "ip-pool-user-infos",
                   "ip-pool-user-info"))


@pytest.mark.parametrize("condition, expected", [
    ("<ip-address>10.0.0.5</ip-address>", ["10.0.0.5"]),
    ("<mac-address>02:00:00:00:00:04</mac-address>", ["10.0.0.6"]),
    ("<mac-address>02:00:00:00:00:0A</mac-address>", ["10.0.0.12"]),  # either case
    ("<option82><circuit-id>65:74:68:31</circuit-id></option82>",
     ["10.0.0.3", "10.0.0.6", "10.0.0.9", "10.0.0.12"]),
    ("<pool-name>p1</pool-name><hostname>h3</hostname>", ["10.0.0.5"]),
    ("<ip-address>10.0.0.255</ip-address>", []),  # released: not shown
])
def test_one_lease_comes_from_the_indexes(condition, expected):
    table = _table(12)
    found = _lease_filter(condition)
    snapshot = lease_snapshot(table, found)
    if "hostname" not in condition:
        assert len(snapshot) <= len(expected) or not expected  # no scan of the table
    kept = snapshot.filtered([child for node in found for child in node.children])
    addresses = [] if kept is None else [entry["ip-address"] for _, entry in kept._keyed()]
    assert sorted(addresses, key=lambda a: int(IPv4Address(a))) == expected


def test_selected_leaves_of_leases_keep_their_keys():
    table = _table(3)
    found = _lease_filter("<hostname/>")
    kept = lease_snapshot(table, found).filtered(found[0].children)
    assert [entry for _, entry in sorted(kept._keyed())] == [
        {"pool-name": "p1", "ip-address": "10.0.0.3", "hostname": "h1"},
        {"pool-name": "p2", "ip-address": "10.0.0.2", "hostname": "h0"},
        {"pool-name": "p2", "ip-address": "10.0.0.4", "hostname": "h2"}]


def test_pages_walk_every_entry_once_in_key_order():
    table = _table(25)
    seen = []
    cursor = None
    while True:
        entries = lease_snapshot(table, ALL)
        entries.page(7, cursor=cursor)
        text = "".join(entries.chunks())
        seen += [(e.split("<pool-name>")[1].split("<")[0],
                  int(IPv4Address(e.split("<ip-address>")[1].split("<")[0])))
                 for e in text.split("</ip-pool-user-info>")[:-1]]
        if entries.next_cursor is None:
            assert entries.remaining == 0
            break
        assert entries.remaining == 25 - len(seen)
        cursor = entries.next_cursor
    assert seen == sorted((l.pool, l.address) for l in table.by_address.values()
                          if l.state is not LeaseState.RELEASED)
    offset = lease_snapshot(table, ALL)
    offset.page(5, offset=20)
    assert len(offset) == 5 and offset.remaining == 0 and offset.next_cursor is None


def test_whole_table_text_equals_the_generic_writer():
    leases = [
        Lease(0x0A000002, "p&1", b"h1", bytes([2, 0, 0, 0, 0, 1]), LeaseState.BOUND, 1.5,
              99.25, client_id=b"\x01ab", hostname="a<b", option82=b"\x01\x04eth0\x02\x02r1"),
        Lease(0x0A000003, "p", b"h2", bytes(7), LeaseState.DECLINED, 2.0, None, static=True,
              option82=b"\x02\x02r1", origin="peer-sync"),
        Lease(0x0A000004, "p", b"h3", bytes(6), LeaseState.OFFERED, 3.0, 4.0),
    ]
    for lease in leases:
        assert lease_xml(lease) == lease_entry_xml(lease_entry(lease))
    document = etree.fromstring(f'<ip-pool-user-infos xmlns="{DHCP}">'
                                + "".join(LeaseEntries(leases).chunks())
                                + "</ip-pool-user-infos>")
    assert [e.findtext(f"{{{DHCP}}}pool-name") for e in document] == ["p", "p", "p&1"]


def test_login_throttle_spaces_attempts_across_connections_and_blocks():
    throttle = LoginThrottle(free=2, base_delay=1.0, max_delay=8.0, block_after=6,
                             forget_after=100.0)
    now = 0.0
    assert throttle.reserve("192.0.2.1", now) == 0.0
    for _ in range(3):
        throttle.failed("192.0.2.1", now)
    # parallel attempts from one source (several connections) queue one after another
    waits = [throttle.reserve("192.0.2.1", now) for _ in range(3)]
    assert waits == [0.0, 2.0, 4.0]
    assert throttle.reserve("198.51.100.7", now) == 0.0  # another source is not slowed
    for _ in range(3):
        throttle.failed("192.0.2.1", now)
    assert throttle.blocked("192.0.2.1", now + 50)
    assert not throttle.blocked("192.0.2.1", now + 100)  # forgotten after a quiet while
    throttle.failed("192.0.2.9", 0.0)
    throttle.succeeded("192.0.2.9")
    assert throttle.delay("192.0.2.9") == 0.0


def test_admit_startup_follows_maxstartups():
    assert admit_startup(3, 0.0, (4, 50, 8))
    assert not admit_startup(4, 0.49, (4, 50, 8)) and admit_startup(4, 0.51, (4, 50, 8))
    assert not admit_startup(6, 0.74, (4, 50, 8)) and admit_startup(6, 0.76, (4, 50, 8))
    assert not admit_startup(8, 0.99, (4, 50, 8))


@pytest.mark.parametrize("event, name, leaves", [
    (PoolThresholdExceeded("pool1", 100, 80, 81), "address-pool-utilization-threshold-exceeded",
     {"pool-name": "pool1", "allocated-address-count": "81"}),
    (ProtectDown("s1", False, "peer unreachable"), "rbs-protect-down",
     {"rbs-name": "s1", "protect-type": "dhcp-server"}),
    (ProtectDown("s1", True, "peer connected"), "rbs-protect-down-resume", {"rbs-name": "s1"}),
    (RbpStateChanged("p1", "init", "master", "vrrp master"), "rbp-state-change",
     {"old-state": "init", "new-state": "master"}),
    (VrrpNewMaster("Vlanif100", 1, 0x0A0A0A02, "priority"), "vrrp-new-master-event",
     {"vrid": "1", "master-ip-address": "10.10.10.2"}),
])
def test_each_event_becomes_its_notification(event, name, leaves):
    element = notification_content(event)
    assert etree.QName(element).localname == name
    for leaf, value in leaves.items():
        assert element.findtext(f"{{*}}{leaf}") == value


def test_config_change_names_the_session_or_the_server_rfc6470():
    by_user = notification_content(ConfigChanged(7, "admin"))
    assert by_user.findtext("{*}changed-by/{*}username") == "admin"
    assert by_user.findtext("{*}changed-by/{*}session-id") == "7"
    by_server = notification_content(ConfigChanged(0, None))
    assert by_server.find("{*}changed-by/{*}server") is not None
    assert notification_content(object()) is None


def test_the_device_shell_provides_what_the_protocol_asks():
    from nefeature.node import Device

    members = [name for name, _ in inspect.getmembers(ManagedDevice)
               if not name.startswith("_")] + list(ManagedDevice.__annotations__)
    missing = [name for name in members
               if not hasattr(Device, name) and name not in Device.__init__.__code__.co_names]
    assert missing == []


def test_candidate_edit_prepared_off_the_loop_is_installed_only_on_the_content_it_saw():
    from nefeature.datastore.datastores import Datastores
    from nefeature.datastore.validation import validate_config_text
    from tests.conftest import EXAMPLES

    datastores = Datastores(validate_config_text((EXAMPLES / "single" / "server.xml")
                                                 .read_bytes()), lambda old, new: None)

    def edit(domain: str):
        return etree.fromstring(
            f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><dhcp xmlns="{DHCP}">'
            f"<server><ip-pools><ip-pool><ip-pool-name>pool1</ip-pool-name><domain-name>"
            f"{domain}</domain-name></ip-pool></ip-pools></server></dhcp></config>")

    base = datastores.content("candidate")
    late = datastores.prepare_edit(base, edit("late.example"), "merge", "test-then-set")
    early = datastores.prepare_edit(base, edit("early.example"), "merge", "test-then-set")
    datastores.lock(2, "candidate")
    with pytest.raises(Exception) as caught:
        datastores.install_candidate_edit(1, base, *early, "test-then-set")
    assert caught.value.tag == "in-use"
    datastores.unlock(2, "candidate")
    assert datastores.install_candidate_edit(1, base, *early, "test-then-set")
    assert not datastores.install_candidate_edit(1, base, *late, "test-then-set")
    pool = datastores.content("candidate")["nefeature-dhcp-server:dhcp"]["server"][
        "ip-pools"]["ip-pool"][0]
    assert pool["domain-name"] == "early.example"
