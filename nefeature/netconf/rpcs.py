"""The device's own RPCs (nefeature-dhcp-server, nefeature-rbs), over ``ManagedDevice``.

Each runs its device operation on the event loop through ``in_loop``.  An
RPC whose cost grows with the lease table (reset-address-state over a
large pool) runs in slices of ``RESET_SLICE`` leases, each one short call
on the loop, so VRRP, DHCP and the backup channel keep their turn between
slices.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from lxml import etree

from nefeature.datastore.errors import NetconfError
from nefeature.datastore.schema import namespaces
from nefeature.netconf.device import ManagedDevice

RESET_SLICE = 2048  # leases reset per turn on the event loop


def _text(operation: etree._Element, namespace: str, tag: str) -> str | None:
    child = operation.find(f"{{{namespace}}}{tag}")
    return None if child is None else (child.text or "").strip()


def reset_statistics(device: ManagedDevice, in_loop: Callable, operation) -> None:
    in_loop(device.reset_statistics)
    return None


def reset_address_state(device: ManagedDevice, in_loop: Callable, operation):
    namespace = namespaces()["nefeature-dhcp-server"]
    pool = _text(operation, namespace, "pool-name")
    start_text = _text(operation, namespace, "start-ip-address")
    end_text = _text(operation, namespace, "end-ip-address")
    flag = _text(operation, namespace, "reset-flag")
    try:
        start = int(IPv4Address(start_text)) if start_text else None
        end = int(IPv4Address(end_text)) if end_text else None
    except ValueError as error:
        raise NetconfError("application", "invalid-value", str(error)) from None
    if start is not None and end is not None and end < start:
        raise NetconfError("application", "invalid-value",
                           f"end-ip-address {end_text} is below start-ip-address {start_text}")

    def addresses() -> list[int] | None:
        if pool not in device.dhcp.pools:
            return None
        return list(device.dhcp.table.addresses_in(pool))

    candidates = in_loop(addresses)
    if candidates is None:
        raise NetconfError("application", "data-missing", f"no pool {pool}",
                           app_tag="instance-required")
    last = start if end is None else end
    if start is not None:
        candidates = [a for a in candidates if start <= a <= last]
    candidates.sort()
    count = 0
    for index in range(0, len(candidates), RESET_SLICE):
        chunk = candidates[index:index + RESET_SLICE]
        try:
            count += in_loop(device.reset_address_state, pool, chunk[0], chunk[-1], flag)
        except ValueError as error:
            raise NetconfError("application", "invalid-value", str(error)) from None
    output = etree.Element(f"{{{namespace}}}reset-count", nsmap={None: namespace})
    output.text = str(count)
    return output


def batch_backup_now(device: ManagedDevice, in_loop: Callable, operation) -> None:
    namespace = namespaces()["nefeature-rbs"]
    name = _text(operation, namespace, "rbs-name")

    def start() -> bool | None:
        if name not in device.channel_tcp_states():
            return None
        return device.batch_backup_now(name)

    started = in_loop(start)
    if started is None:
        raise NetconfError("application", "data-missing",
                           f"no remote-backup-service {name} with a dhcp-server profile",
                           app_tag="instance-required")
    if not started:
        raise NetconfError("application", "operation-failed",
                           f"remote-backup-service {name} is not connected: the batch "
                           "backup runs when the peer connects")
    return None


#: (module, rpc name) -> handler(device, in_loop, operation)
DEVICE_RPCS = {
    ("nefeature-dhcp-server", "reset-statistics"): reset_statistics,
    ("nefeature-dhcp-server", "reset-address-state"): reset_address_state,
    ("nefeature-rbs", "batch-backup-now"): batch_backup_now,
}
