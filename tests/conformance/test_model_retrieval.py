"""Retrieval over the whole model: every list's filter reply (RFC 6241 6.2.5, judged by
yanglint), lease look-ups by secondary key, list pagination, and the YANG library and
monitoring that controllers read (RFC 6022, RFC 7895, RFC 5277 streams).

The device runs the pair example's DeviceA moved onto loopback (as the demo does), with
every list of the model populated and a lease journal written by LeaseJournal.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from lxml import etree
from ncclient.operations import RPCError
from yangson.schemanode import InternalNode, ListNode

from nefeature.datastore.schema import modules, namespaces, served_model
from nefeature.dhcp.journal import LeaseJournal
from nefeature.dhcp.leases import Lease, LeaseState
from tests.conformance.conftest import DeviceProcess
from tests.conformance.test_rfc6241_session import RawSession

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
DHCP = "urn:nefeature:yang:nefeature-dhcp-server"
LPG = "urn:nefeature:yang:nefeature-list-pagination"
LEASES = 40
POOL1_EXTRAS = """<excluded-ip-addresses><excluded-ip-address>
          <start-ip-address>10.10.10.90</start-ip-address>
          <end-ip-address>10.10.10.95</end-ip-address></excluded-ip-address></excluded-ip-addresses>
        <static-binds><static-bind><ip-address>10.10.10.50</ip-address>
          <mac-address>02:00:00:00:aa:01</mac-address><description>printer</description>
        </static-bind></static-binds>
        <dns-list>10.10.10.53</dns-list>
        <user-options>
          <user-option><option-code>43</option-code>
            <sub-option><sub-code>1</sub-code><sub-ascii>vendor</sub-ascii></sub-option>
          </user-option>
          <user-option><option-code>66</option-code><ascii>tftp.example</ascii></user-option>
        </user-options>
        <identifier-ip>10.10.10.100</identifier-ip>"""
#: Lists the example has no instance of (the reply is still validated).
EMPTY_LISTS = {"partial-lock", "deviation", "submodule"}


def mac_of(n: int) -> bytes:
    return bytes([2, 0, 0, 0, 1, n])


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    from nefeature.demo import demo_config, free_port as free_backup_port

    process = DeviceProcess(tmp_path_factory.mktemp("rich"))
    text = demo_config("A", free_backup_port(low=20000, high=55535))
    text = text.replace("<vlan-id>100</vlan-id>",  # a VLAN with a child to select
                        "<vlan-id>100</vlan-id><name>users</name>", 1)
    process.startup.write_text(text.replace("<identifier-ip>10.10.10.100</identifier-ip>",
                                            POOL1_EXTRAS, 1))
    process.state_dir.mkdir(parents=True)
    journal = LeaseJournal(process.state_dir / "leases.sqlite")
    now = time.time()
    journal.commit({0x0A0A0A0A + n: Lease(
        0x0A0A0A0A + n, "pool1", b"h" + mac_of(n), mac_of(n), LeaseState.BOUND, now,
        now + 86400, client_id=b"\x01id" + bytes([n]) if n % 4 == 0 else None,
        hostname=f"host-{n}", option82=b"\x01\x04eth" + bytes([48 + n % 3]) + b"\x02\x02r1"
        if n % 2 else None) for n in range(LEASES)})
    journal.close()
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def session(rich):
    connection = rich.connect()
    yield connection
    connection.close_session()


def _lists(node, path=()):
    for child in node.data_children():
        here = path + (child,)
        if isinstance(child, ListNode):
            yield here
        if isinstance(child, InternalNode):
            yield from _lists(child, here)


LIST_PATHS = list(_lists(served_model().schema))


def _filter_for(path) -> str:
    """Containment down to the list; in it, a selection node per non-key child."""
    listed = path[-1]
    keys = {name for name, _ in listed.keys}
    inner = "".join(f"<{c.name}/>" for c in listed.data_children() if c.name not in keys)
    for node in reversed(path):
        xmlns = f' xmlns="{namespaces()[node.ns]}"' if node is path[0] or \
            node.ns != path[path.index(node) - 1].ns else ""
        inner = f"<{node.name}{xmlns}>{inner}</{node.name}>"
    return inner


def _yanglint(kind: str, data: etree._Element, tmp_path) -> subprocess.CompletedProcess:
    from tests.conftest import YANG

    document = tmp_path / "reply.xml"
    document.write_bytes(b"".join(etree.tostring(child) for child in data))
    return subprocess.run(["yanglint", "-p", str(YANG), "-p", str(YANG / "ietf"), "-t", kind,
                           *[str(m.path) for m in modules()], str(document)],
                          capture_output=True, text=True, timeout=60)


def _check_keys(data: etree._Element, path) -> int:
    """Every entry of every list on the path carries its keys first; entries of the last."""
    entries = [data]
    for node in path:
        found = []
        for parent in entries:
            found += parent.findall(f"{{{namespaces()[node.ns]}}}{node.name}")
        entries = found
        if isinstance(node, ListNode):
            keys = [name for name, _ in node.keys]
            for entry in entries:
                children = [etree.QName(c).localname for c in entry if isinstance(c.tag, str)]
                assert children[:len(keys)] == keys, (node.name, children)
    return len(entries)


@pytest.fixture(scope="module")
def raw(rich):
    """A base:1.0 session that keeps the reply's bytes as sent (ncclient re-serializes
    replies and drops namespace declarations only identityref values use)."""
    session = RawSession(rich)
    session.read_until(b"]]>]]>")
    session.channel.sendall(f'<hello xmlns="{NC}"><capabilities><capability>'
                            "urn:ietf:params:netconf:base:1.0</capability></capabilities>"
                            "</hello>]]>]]>".encode())
    session.sent = 0
    yield session
    session.close()


def _rpc(raw, body: str) -> etree._Element:
    raw.sent += 1
    raw.channel.sendall(f'<rpc xmlns="{NC}" message-id="{raw.sent}">{body}</rpc>]]>]]>'.encode())
    reply = etree.fromstring(raw.read_until(b"]]>]]>").strip())
    assert reply.find(f"{{{NC}}}rpc-error") is None, etree.tostring(reply)
    return reply.find(f"{{{NC}}}data")


@pytest.mark.parametrize("path", LIST_PATHS, ids=lambda p: "/".join(n.name for n in p))
def test_every_list_reply_keeps_its_keys_and_validates_rfc6241_6_2_5(raw, path, tmp_path,
                                                                      yanglint):
    subtree = f'<filter type="subtree">{_filter_for(path)}</filter>'
    if path[-1].name == "datastore":  # a datastore entry's only non-key data is its lock
        _rpc(raw, "<lock><target><candidate/></target></lock>")
    replies = [("get", _rpc(raw, f"<get>{subtree}</get>"))]
    if path[-1].name == "datastore":
        _rpc(raw, "<unlock><target><candidate/></target></unlock>")
    if path[-1].config:
        replies.append(("getconfig", _rpc(raw, "<get-config><source><running/></source>"
                                               f"{subtree}</get-config>")))
    for kind, data in replies:
        count = _check_keys(data, path)
        if path[-1].name in EMPTY_LISTS:
            assert count == 0
            continue
        assert count > 0, f"no {path[-1].name} in the reply"
        result = _yanglint(kind, data, tmp_path)
        assert result.returncode == 0, result.stderr + etree.tostring(data).decode()[:2000]


def _leases(session, condition: str) -> list[etree._Element]:
    reply = session.get(filter=("subtree", (
        f'<dhcp xmlns="{DHCP}"><server><ip-pool-user-infos><ip-pool-user-info>{condition}'
        "</ip-pool-user-info></ip-pool-user-infos></server></dhcp>")))
    return etree.fromstring(reply.data_xml.encode()).findall(f".//{{{DHCP}}}ip-pool-user-info")


@pytest.mark.parametrize("condition, address", [
    ("<mac-address>02:00:00:00:01:07</mac-address>", "10.10.10.17"),
    ("<client-id>01:69:64:08</client-id>", "10.10.10.18"),
    ("<ip-address>10.10.10.33</ip-address>", "10.10.10.33"),
])
def test_one_lease_by_a_secondary_key_comes_with_its_address(session, condition, address):
    entries = _leases(session, condition)
    assert [e.findtext(f"{{{DHCP}}}ip-address") for e in entries] == [address]
    assert entries[0].findtext(f"{{{DHCP}}}pool-name") == "pool1"
    assert entries[0].findtext(f"{{{DHCP}}}status") == "used"


def test_leases_by_circuit_id_with_selected_leaves(session):
    entries = _leases(session, "<option82><circuit-id>65:74:68:31</circuit-id></option82>"
                               "<hostname/>")
    numbers = sorted(int(e.findtext(f"{{{DHCP}}}hostname").split("-")[1]) for e in entries)
    assert numbers == [n for n in range(LEASES) if n % 2 and n % 3 == 1]
    assert all([etree.QName(c).localname for c in e] == ["pool-name", "ip-address", "hostname",
                                                         "option82"] for e in entries)


def _page(session, limit: int, start: str = "") -> etree._Element:
    request = etree.fromstring(
        f'<get xmlns="{NC}"><filter type="subtree"><dhcp xmlns="{DHCP}"><server>'
        "<ip-pool-user-infos/></server></dhcp></filter>"
        f'<list-pagination xmlns="{LPG}"><limit>{limit}</limit>{start}</list-pagination></get>')
    reply = etree.fromstring(session.dispatch(request).xml.encode())
    return reply.find(f".//{{{DHCP}}}ip-pool-user-infos")


def test_list_pagination_walks_the_lease_table_with_a_cursor(session):
    seen, cursor, pages = [], None, 0
    while True:
        container = _page(session, 15, f"<cursor>{cursor}</cursor>" if cursor else "")
        pages += 1
        seen += [e.findtext(f"{{{DHCP}}}ip-address") for e in container]
        remaining = int(container.get(f"{{{LPG}}}remaining"))
        assert remaining == LEASES - len(seen)
        cursor = container.get(f"{{{LPG}}}next")
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"10.10.10.{10 + n}" for n in range(LEASES)]


def test_list_pagination_by_offset_and_bad_parameters(session):
    container = _page(session, 5, "<offset>38</offset>")
    assert [e.findtext(f"{{{DHCP}}}ip-address") for e in container] == ["10.10.10.48",
                                                                        "10.10.10.49"]
    assert container.get(f"{{{LPG}}}remaining") == "0"
    for bad in ("<cursor>not-a-cursor</cursor>", "<offset>1</offset><cursor>10.0.0.1@a</cursor>"):
        with pytest.raises(RPCError) as caught:
            _page(session, 5, bad)
        assert caught.value.tag == "invalid-value"
    with pytest.raises(RPCError) as caught:
        _page(session, 0)
    assert caught.value.tag == "invalid-value"


def test_yang_library_lists_every_module_and_get_schema_returns_each_rfc7895_rfc6022(session):
    reply = etree.fromstring(session.get(filter=("subtree", (
        '<modules-state xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/>'))).data_xml
        .encode())
    listed = {e.findtext("{*}name"): (e.findtext("{*}revision"), e.findtext("{*}conformance-type"),
                                      [f.text for f in e.findall("{*}feature")])
              for e in reply.iter("{*}module")}
    for module in modules():
        assert listed[module.name][:2] == (module.revision, "implement" if module.implemented
                                           else "import")
        assert session.get_schema(module.name, version=module.revision).data == \
            module.path.read_text()
    for name in ("ietf-netconf", "ietf-netconf-monitoring", "ietf-yang-library",
                 "ietf-netconf-with-defaults", "ietf-netconf-notifications", "notifications",
                 "nc-notifications"):
        assert listed[name][1] == "implement"
    assert "candidate" in listed["ietf-netconf"][2] and "url" not in listed["ietf-netconf"][2]
    capabilities = list(session.server_capabilities)
    assert any(c.startswith("urn:ietf:params:xml:ns:netconf:notification:1.0?module="
                            "notifications&revision=2008-07-14") for c in capabilities)
    assert any("module=ietf-netconf&revision=2011-06-01&features=" in c for c in capabilities)


def test_sessions_have_login_time_and_the_netconf_stream_is_listed(session, rich):
    other = rich.connect()
    reply = session.get(filter=etree.fromstring(
        f'<filter xmlns="{NC}" type="subtree">'
        '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring">'
        "<sessions/></netconf-state>"
        '<netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/></filter>')).data_xml
    sessions = re.findall(r"<session>(.*?)</session>", reply, re.S)
    assert len(sessions) >= 2
    for text in sessions:
        assert re.search(r"<login-time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</login-time>", text)
        assert "<source-host>127.0.0.1</source-host>" in text and "netconf-ssh" in text
    assert "<name>NETCONF</name>" in reply and "<replaySupport>false</replaySupport>" in reply
    other.close_session()
