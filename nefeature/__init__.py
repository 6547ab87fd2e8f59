"""nefeature: DHCP server dual-device hot backup, modelled in YANG.

Two routers in a VRRP group serve DHCPv4 to one LAN; the VRRP master
answers and synchronizes every lease to the backup, which takes over when
VRRP says so.  See README.md and docs/architecture.md for the architecture.
"""

__version__ = "0.1.0"
