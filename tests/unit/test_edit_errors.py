"""edit-config reports every problem of an edit (RFC 6241 section 4.3), within a bound."""

from __future__ import annotations

import pytest
from lxml import etree

from nefeature.datastore.edit import MAX_REPORTED_ERRORS, apply_edit
from nefeature.datastore.errors import NetconfError

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
DHCP_NS = "urn:nefeature:yang:nefeature-dhcp-server"


def edit(inner: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC_NS}"><dhcp xmlns="{DHCP_NS}"><server>'
                            f"{inner}</server></dhcp></config>")


def test_errors_of_nested_and_sibling_elements_come_in_document_order():
    bad = edit("<ip-pools><ip-pool><ip-pool-name>p</ip-pool-name><lease-bogus/>"
               "<gateway-list>not-an-address</gateway-list></ip-pool></ip-pools><junk/>")
    with pytest.raises(NetconfError) as caught:
        apply_edit({}, bad)
    tags = [(error.tag, error.path.rsplit("/", 1)[-1]) for error in caught.value.every()]
    assert tags == [("unknown-element", "lease-bogus"), ("invalid-value", "gateway-list"),
                    ("unknown-element", "junk")]


def test_a_hostile_edit_gets_a_bounded_number_of_errors():
    bad = edit("<x/>" * 5000)
    with pytest.raises(NetconfError) as caught:
        apply_edit({}, bad)
    assert len(caught.value.every()) == MAX_REPORTED_ERRORS


def test_a_good_edit_still_applies():
    result = apply_edit({}, edit("<ip-pools><ip-pool><ip-pool-name>p</ip-pool-name>"
                                 "</ip-pool></ip-pools>"))
    pools = result["nefeature-dhcp-server:dhcp"]["server"]["ip-pools"]["ip-pool"]
    assert [pool["ip-pool-name"] for pool in pools] == ["p"]
