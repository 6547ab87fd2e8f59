"""Notification content (RFC 5277) built from the engines' event dataclasses.

``notification_content(event)`` turns one device event into the YANG
notification element the model defines for it, or None for events that
are not notifications (they are only logged by the device):

* ``PoolThresholdExceeded`` -> nefeature-dhcp-server
  address-pool-utilization-threshold-exceeded;
* ``ProtectDown`` -> nefeature-rbs rbs-protect-down / rbs-protect-down-resume;
* ``RbpStateChanged`` -> nefeature-rbs rbp-state-change;
* ``VrrpNewMaster`` -> nefeature-vrrp vrrp-new-master-event;
* ``ConfigChanged`` -> ietf-netconf-notifications netconf-config-change
  (RFC 6470 section 2.2), after every change of running.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from lxml import etree

from nefeature.backup.hotbackup import ProtectDown, RbpStateChanged
from nefeature.datastore.schema import namespaces
from nefeature.dhcp.events import PoolThresholdExceeded
from nefeature.vrrp.router import VrrpNewMaster

NETCONF_NOTIFICATIONS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """Running changed by a session (0: the system, e.g. a confirmed-commit rollback)."""

    session: int
    username: str | None
    datastore: str = "running"


def _element(module: str, name: str, leaves: list[tuple[str, str]]) -> etree._Element:
    namespace = namespaces()[module]
    element = etree.Element(f"{{{namespace}}}{name}", nsmap={None: namespace})
    for leaf, value in leaves:
        etree.SubElement(element, f"{{{namespace}}}{leaf}").text = value
    return element


def notification_content(event) -> etree._Element | None:
    """The notification for one device event, or None."""
    if isinstance(event, PoolThresholdExceeded):
        return _element("nefeature-dhcp-server", "address-pool-utilization-threshold-exceeded", [
            ("pool-name", event.pool), ("total-pool-addresses", str(event.total)),
            ("max-allocated-addresses", str(event.threshold_addresses)),
            ("allocated-address-count", str(event.allocated))])
    if isinstance(event, ProtectDown):
        return _element("nefeature-rbs", "rbs-protect-down-resume" if event.resumed
                        else "rbs-protect-down", [("rbs-name", event.service),
                                                  ("protect-type", "dhcp-server"),
                                                  ("reason", event.reason)])
    if isinstance(event, RbpStateChanged):
        return _element("nefeature-rbs", "rbp-state-change", [
            ("profile-name", event.profile), ("old-state", event.old),
            ("new-state", event.new), ("reason", event.reason)])
    if isinstance(event, VrrpNewMaster):
        return _element("nefeature-vrrp", "vrrp-new-master-event", [
            ("interface", event.interface), ("vrid", str(event.vrid)),
            ("master-ip-address", str(IPv4Address(event.master_ip))),
            ("new-master-reason", event.reason)])
    if isinstance(event, ConfigChanged):
        namespace = NETCONF_NOTIFICATIONS
        element = etree.Element(f"{{{namespace}}}netconf-config-change", nsmap={None: namespace})
        changed_by = etree.SubElement(element, f"{{{namespace}}}changed-by")
        if event.session:
            etree.SubElement(changed_by, f"{{{namespace}}}username").text = \
                event.username or "unknown"
            etree.SubElement(changed_by, f"{{{namespace}}}session-id").text = str(event.session)
        else:
            etree.SubElement(changed_by, f"{{{namespace}}}server")
        etree.SubElement(element, f"{{{namespace}}}datastore").text = event.datastore
        return element
    return None
