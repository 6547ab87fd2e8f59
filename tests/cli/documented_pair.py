"""Huawei's documented master/backup pair, as an engineer types it, in both pool dialects.

The configuration files below are Huawei's (NE40E V800R012C10 configuration
guide, "Example for Configuring DHCP Server Dual-Device Hot Backup"), line
for line and in their order.  Two additions to DeviceA are not in the
guide: ``vrrp vrid 1 track interface GigabitEthernet0/1/2 reduced 110``, so an
uplink failure moves the master (the feature text relies on it, the example
never configures it), and the section ``interface GigabitEthernet0/1/2`` /
``linux-name uplink0`` that binds the uplink to the Linux interface it runs on.

The CE/AR dialect replaces the pool and the interface's ``dhcp server
enable`` with the CE/AR commands (``ip pool pool1`` with ``gateway-list``,
``network``, ``excluded-ip-address``, ``lease day``, ``dns-list``,
``domain-name``; ``dhcp select global``; ``dhcp enable`` in the system view);
the VRRP, RBS and RBP lines stay.  The guide elides the DNS server and the
domain name; 10.10.10.53 and example.net are ours.

``session(device, dialect)`` is what an engineer types: the guide's lines,
block by block with ``commit``, in the guide's procedure order (interfaces,
VRRP, remote backup service, profile, pool).  ``configuration(device,
dialect)`` is what ``display current-configuration`` must print.
"""

from __future__ import annotations

import re

NE_A = """\
#
sysname DeviceA
#
vlan 100
#
ip pool pool1 server
 gateway 10.10.10.100 255.255.255.0
 section 0 10.10.10.1 10.10.10.100
 server identifier ip 10.10.10.100
 remote-backup-profile service1
#
remote-backup-service service1
 peer 10.10.10.2 source 10.10.10.1 port 10000
#
remote-backup-profile service1
 service-type dhcp-server
 backup-id 1 remote-backup-service service1
 peer-backup hot
 vrrp-id 1 interface Vlanif 100
#
interface Vlanif 100
 ip address 10.10.10.1 255.255.255.0
 vrrp vrid 1 virtual-ip 10.10.10.100
 vrrp vrid 1 priority 200
 vrrp vrid 1 preempt-mode timer delay 600
 vrrp vrid 1 track interface GigabitEthernet0/1/2 reduced 110
 vrrp recover-delay 20
 dhcp server enable
#
interface GigabitEthernet 0/1/1
 portswitch
 undo shutdown
 port link-type trunk
 port trunk allow-pass vlan 100
#
interface GigabitEthernet0/1/2
 linux-name uplink0
#
return
"""

NE_B = """\
#
sysname DeviceB
#
vlan 100
#
ip pool pool1 server
 gateway 10.10.10.100 255.255.255.0
 section 0 10.10.10.1 10.10.10.100
 server identifier ip 10.10.10.100
 remote-backup-profile service1
#
remote-backup-service service1
 peer 10.10.10.1 source 10.10.10.2 port 10000
#
remote-backup-profile service1
 service-type dhcp-server
 backup-id 1 remote-backup-service service1
 peer-backup hot
 vrrp-id 1 interface Vlanif 100
#
interface Vlanif 100
 ip address 10.10.10.2 255.255.255.0
 vrrp vrid 1 virtual-ip 10.10.10.100
 dhcp server enable
#
interface GigabitEthernet 0/1/1
 portswitch
 undo shutdown
 port link-type trunk
 port trunk allow-pass vlan 100
#
return
"""

NE_POOL = """\
ip pool pool1 server
 gateway 10.10.10.100 255.255.255.0
 section 0 10.10.10.1 10.10.10.100
 server identifier ip 10.10.10.100
 remote-backup-profile service1
"""

CE_POOL = """\
ip pool pool1
 gateway-list 10.10.10.100
 network 10.10.10.0 mask 255.255.255.0
 excluded-ip-address 10.10.10.1 10.10.10.2
 lease day 1 hour 0 minute 0
 dns-list 10.10.10.53
 domain-name example.net
 remote-backup-profile service1
"""


def configuration(device: str, dialect: str) -> str:
    """What ``display current-configuration`` prints for a device typed in a dialect."""
    text = NE_A if device == "A" else NE_B
    if dialect == "CE":
        text = text.replace(NE_POOL, CE_POOL).replace(" dhcp server enable\n",
                                                      " dhcp select global\n")
        text = text.replace("#\nvlan 100\n#\n", "#\nvlan 100\n#\ndhcp enable\n#\n")
    return text


def normalized(text: str) -> list[str]:
    """Lines with 'Vlanif 100' written as 'Vlanif100' (one token to the shell, and how
    VRP itself prints interface names)."""
    return [re.sub(r"\b(Vlanif|GigabitEthernet) (\d)", r"\1\2", line)
            for line in text.splitlines()]


def _block(lines: list[str]) -> list[str]:
    """A configuration section typed into its view: the lines without their indent,
    then commit and quit."""
    return [line.strip() for line in lines] + ["commit", "quit"]


def session(device: str, dialect: str) -> list[str]:
    """The lines an engineer types, in the guide's procedure order, a commit per block."""
    sections = {}
    for section in configuration(device, dialect).split("#\n"):
        lines = section.rstrip("\n").splitlines()
        if lines and lines[0] != "return":
            sections[lines[0]] = lines
    typed = ["system-view"]
    order = ["sysname", "vlan", "dhcp enable", "interface GigabitEthernet 0/1/1",
             "interface GigabitEthernet0/1/2", "interface Vlanif 100",
             "remote-backup-service", "remote-backup-profile", "ip pool"]
    for prefix in order:
        for header, lines in sections.items():
            if not header.startswith(prefix):
                continue
            if header.startswith(("sysname", "dhcp enable")):
                typed += [header, "commit"]
            elif header.startswith("interface Vlanif"):
                # the interface and VRRP first; DHCP on it once the pool is there
                dhcp = [line for line in lines if line.startswith(" dhcp ")]
                typed += _block([line for line in lines if line not in dhcp])
                sections_after = dhcp
            else:
                typed += _block(lines)
    typed += _block(["interface Vlanif 100", *sections_after])[:-1] + ["return"]
    return typed
