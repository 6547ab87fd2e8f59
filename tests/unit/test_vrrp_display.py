"""What an operator sees of VRRP: the virtual-mac command and ``display vrrp`` (tracked
interfaces, the virtual MAC, the last change as a time), from state the model accepts."""

from __future__ import annotations

from ipaddress import IPv4Address

from yangson.enumerations import ContentType, ValidationScope

from nefeature.datastore.validation import load_config
from nefeature.datastore.schema import data_model
from nefeature.datastore.validation import validate_config_text
from nefeature.dhcp.server import DhcpServer
from nefeature.state import merge_trees, operational_state
from nefeature.vrrp.router import VrrpRouter
from nefeature_cli.render import display_vrrp, render_configuration
from nefeature_cli.shell import Shell
from tests.cli.conftest import LocalBackend
from tests.conftest import EXAMPLES

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC


def state_tree(text: str, track_down: bool) -> dict:
    """Device A's configuration (``text``) and its VRRP state after a start at NOW and,
    maybe, its tracked uplink going down 5 s later, merged and checked by the model."""
    config = load_config(text)
    group = config.vrrp_group("Vlanif100", 1)
    router = VrrpRouter(group, int(IPv4Address("10.10.10.1")))
    router.startup(NOW)
    router.handle_timer(router.master_down_timer)
    if track_down:
        router.link_changed("GigabitEthernet0/1/2", False, NOW + 5)
    state = operational_state(config, DhcpServer(config), {group.key: router}, {}, NOW + 6)
    merged = merge_trees(validate_config_text(text).raw, state)
    data_model().from_raw(merged).validate(ValidationScope.all, ContentType.all)
    return merged


def device_a(extra: str = "") -> str:
    text = (EXAMPLES / "pair" / "deviceA.xml").read_text()
    return text.replace("<vrid>1</vrid>", "<vrid>1</vrid>" + extra, 1)


def test_display_vrrp_shows_tracked_links_the_virtual_mac_and_times():
    text = display_vrrp(state_tree(device_a(), track_down=True))
    lines = [line.strip() for line in text.splitlines()]
    assert "State           : Master" in lines
    assert "PriorityRun     : 90" in lines  # 200 reduced by 110
    assert "MasterPriority  : 90" in lines  # its own, as it advertises it
    assert "Virtual MAC     : 0000-5e00-0101" in lines
    track = lines.index(next(line for line in lines if line.startswith("Track IF")))
    assert lines[track].split() == ["Track", "IF", ":", "GigabitEthernet0/1/2", "Priority",
                                    "reduced", ":", "110"]
    assert lines[track + 1] == "IF state        : DOWN"
    assert "Create Time     : 2026-09-21 14:13:20 UTC" in lines
    # master after Master_Down_Interval: 3 s + Skew_Time (256 - 200) / 256 s = 3.21 s
    assert "Last Change Time : 2026-09-21 14:13:23 UTC" in lines


def test_display_vrrp_with_the_virtual_mac_off_names_the_interface_mac():
    merged = state_tree(device_a("<virtual-mac>false</virtual-mac>"), track_down=False)
    text = display_vrrp(merged)
    assert "IF state        : UP" in text
    assert "0000-5e00-0101" not in text
    assert "Virtual MAC     : " in text and "(interface MAC)" in text


def shell(running: dict | None = None) -> Shell:
    return Shell(LocalBackend(running))


def test_virtual_mac_commands_set_the_leaf_and_render_back():
    sh = shell()
    for line in ("system-view", "interface Vlanif100", "ip address 10.10.10.1 255.255.255.0",
                 "vrrp vrid 1 virtual-ip 10.10.10.100"):
        sh.execute(line)
    sh.backend.edits.clear()
    sh.execute("undo vrrp vrid 1 virtual-mac enable")
    assert "<virtual-mac>false</virtual-mac>" in sh.backend.edits[0]
    sh.execute("commit")
    assert " undo vrrp vrid 1 virtual-mac enable" in render_configuration(sh.backend.running)
    assert load_config(_xml(sh)).vrrp_group("Vlanif100", 1).virtual_mac is False
    sh.execute("vrrp vrid 1 virtual-mac enable")
    sh.execute("commit")
    assert " vrrp vrid 1 virtual-mac enable" in render_configuration(sh.backend.running)
    assert load_config(_xml(sh)).vrrp_group("Vlanif100", 1).virtual_mac is True


def test_the_virtual_mac_is_on_by_default():
    config = load_config((EXAMPLES / "pair" / "deviceA.xml").read_text())
    assert config.vrrp_group("Vlanif100", 1).virtual_mac is True


def _xml(sh: Shell) -> str:
    from lxml import etree

    from nefeature.datastore.xmlform import to_xml

    root = etree.Element("{urn:ietf:params:xml:ns:netconf:base:1.0}config")
    to_xml(sh.backend.running, root)
    return etree.tostring(root).decode()
