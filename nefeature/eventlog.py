"""One log line per engine event a device operator cares about (the same events become
NETCONF notifications in ``nefeature.netconf.notifications``)."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

from nefeature.backup.hotbackup import (
    STRICT_WAIT,
    UNCONFIRMED_REPORT_INTERVAL,
    BatchBackupDone,
    FailoverStateChanged,
    PeerUnresponsive,
    ProtectDown,
    RbpStateChanged,
)
from nefeature.dhcp.events import PoolThresholdExceeded
from nefeature.vrrp.router import VrrpNewMaster, VrrpSecondMaster, VrrpStateChanged

log = logging.getLogger("nefeature")


def log_event(event) -> None:
    if isinstance(event, VrrpStateChanged):
        log.info("VRRP %s vrid %d: %s -> %s (%s)", event.interface, event.vrid,
                 event.old.value, event.new.value, event.reason)
    elif isinstance(event, VrrpNewMaster):
        log.info("VRRP %s vrid %d: new master %s (%s)", event.interface, event.vrid,
                 IPv4Address(event.master_ip), event.reason)
    elif isinstance(event, VrrpSecondMaster):
        log.info("VRRP %s vrid %d: master %s of lower priority %d heard: advertising and "
                 "announcing the virtual addresses", event.interface, event.vrid,
                 IPv4Address(event.other_master), event.other_priority)
    elif isinstance(event, PoolThresholdExceeded):
        log.warning("pool %s: %d of %d addresses in use (threshold %d)", event.pool,
                    event.allocated, event.total, event.threshold_addresses)
    elif isinstance(event, ProtectDown):
        log.info("remote backup %s: %s (%s)", event.service,
                 "protected: peer connected" if event.resumed else "protect down", event.reason)
    elif isinstance(event, PeerUnresponsive):
        log.warning("remote backup %s: the peer is unresponsive (nothing acknowledged for "
                    "%.1f s, or presumed down by VRRP, or the channel is down): %d DHCPACK(s) "
                    "sent without its copy since the last such report (one every %.0f s at "
                    "most)", event.service, STRICT_WAIT, event.replies,
                    UNCONFIRMED_REPORT_INTERVAL)
    elif isinstance(event, BatchBackupDone):
        log.info("remote backup profile %s: batch backup of %d leases %s", event.profile,
                 event.leases, "sent" if event.sent else "received")
    elif isinstance(event, RbpStateChanged):
        log.info("remote backup profile %s: %s -> %s", event.profile, event.old, event.new)
    elif isinstance(event, FailoverStateChanged):
        log.info("remote backup profile %s: failover state %s -> %s", event.profile,
                 event.old.value, event.new.value)
