"""Operational state from live engines fits the YANG model's config-false nodes."""

from __future__ import annotations

from ipaddress import IPv4Address

from yangson.enumerations import ContentType, ValidationScope

from nefeature.datastore.validation import load_config
from nefeature.datastore.schema import data_model
from nefeature.datastore.validation import validate_config_text
from nefeature.dhcp.server import DhcpServer
from nefeature.state import merge_trees, operational_state
from nefeature.vrrp.packet import Advertisement, ReceivedAdvertisement
from nefeature.vrrp.router import VrrpRouter
from tests.conftest import EXAMPLES
from tests.unit.test_dhcp_server import OPTION82, RELAY_POOL, Client, ip


def test_state_of_a_busy_device_validates_against_the_model():
    text = (EXAMPLES / "pair" / "deviceA.xml").read_text().replace(
        "</ip-pools>", RELAY_POOL.replace("<ip-pool-name>relayed", "<ip-pool-name>relayed")
        + "</ip-pools>")
    validated = validate_config_text(text)
    config = load_config(text)
    dhcp = DhcpServer(config)
    Client(dhcp, mac=1).dora(now=1000.0)
    Client(dhcp, mac=2, client_id=b"\x01abc", giaddr=ip("10.20.0.1"), option82=OPTION82).dora(1000.0)
    Client(dhcp, mac=3).discover(now=1000.0)  # an offer
    group = config.vrrp_group("Vlanif100", 1)
    router = VrrpRouter(group, int(IPv4Address("10.10.10.1")))
    router.startup(1000.0)
    router.receive(ReceivedAdvertisement(
        Advertisement(1, 100, 100, (int(IPv4Address("10.10.10.100")),)),
        int(IPv4Address("10.10.10.2")), 255), 1000.5)
    state = operational_state(config, dhcp, {group.key: router}, {"vrid-errors": 2}, 1001.0)
    merged = merge_trees(validated.raw, state)
    instance = data_model().from_raw(merged)
    instance.validate(ValidationScope.all, ContentType.all)

    leases = state["nefeature-dhcp-server:dhcp"]["server"]["ip-pool-user-infos"][
        "ip-pool-user-info"]
    relayed = next(e for e in leases if e["pool-name"] == "relayed")
    assert relayed["option82"]["circuit-id"] == ":".join(f"{b:02x}" for b in b"eth0/1/2:100")
    assert relayed["status"] == "used" and relayed["origin"] == "local"
    assert relayed["client-id"] == "01:61:62:63"
    assert sorted(e["status"] for e in leases) == ["offered", "used", "used"]
    usage = {p["ip-pool-name"]: p["ip-pool-usage"] for p in
             state["nefeature-dhcp-server:dhcp"]["server"]["ip-pools"]["ip-pool"]}
    assert usage["pool1"]["used"] == 1 and usage["pool1"]["total"] == 97
    vlanif = next(i for i in merged["nefeature-interfaces:interfaces"]["interface"]
                  if i["name"] == "Vlanif100")
    instance_state = vlanif["ipv4"]["nefeature-vrrp:vrrp"]["vrrp-instance"][0]
    assert instance_state["priority"] == 200  # config kept beside the state
    assert instance_state["state"]["state"] == "backup"
    assert instance_state["state"]["master-ip-address"] == "10.10.10.2"
    assert instance_state["state"]["skew-time"] == (256 - 200) * 100 // 256
    stats = state["nefeature-dhcp-server:dhcp"]["server"]["statistics"]
    assert (stats["discover"], stats["ack"]) == ("3", "2")  # counter64: strings in JSON form
