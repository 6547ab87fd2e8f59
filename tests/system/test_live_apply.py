"""Live apply under DHCP load (issue 6): commits change a pool, a VRRP priority and a backup
profile while perfdhcp runs; no transaction is dropped and no lease is lost.

One device in a namespace (VRRP group on Vlanif100, a pool bound to a backup profile
whose peer is absent, so it serves alone), perfdhcp as a relay in a second namespace,
and ncclient running inside the device's namespace (NETCONF listens on its loopback).
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap

import pytest

from tests.system.netns import (
    NEFEATURE,
    Nefeature,
    journal_rows,
    make_lab,
    require_root,
    require_tool,
    write_config,
)

pytestmark = pytest.mark.system

CONFIG = """
<interfaces xmlns="urn:nefeature:yang:nefeature-interfaces">
  <interface><name>Vlanif100</name>
    <ipv4><address>10.10.10.1</address><mask>255.255.0.0</mask>
      <vrrp xmlns="urn:nefeature:yang:nefeature-vrrp"><vrrp-instance><vrid>1</vrid>
        <priority>200</priority>
        <virtual-ipv4-addresses><virtual-ipv4-address><ipv4-address>10.10.10.100</ipv4-address>
        </virtual-ipv4-address></virtual-ipv4-addresses></vrrp-instance></vrrp>
    </ipv4></interface>
</interfaces>
<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><enable>true</enable><server><ip-pools>
  <ip-pool><ip-pool-name>load</ip-pool-name>
    <network><ip-address>10.10.0.0</ip-address><mask>255.255.0.0</mask></network>
    <gateway-list>10.10.10.100</gateway-list>
    <sections><section><section-index>0</section-index><start-ip>10.10.20.1</start-ip>
      <end-ip>10.10.99.254</end-ip></section></sections>
    <identifier-ip>10.10.10.100</identifier-ip>
    <remote-backup-profile>service1</remote-backup-profile>
  </ip-pool></ip-pools></server></dhcp>
<rbs xmlns="urn:nefeature:yang:nefeature-rbs">
  <services><service><name>service1</name><peer-ip>10.10.10.3</peer-ip>
    <source-ip>10.10.10.1</source-ip><tcp-port>10000</tcp-port></service></services>
  <profiles><profile><name>service1</name><service-name>service1</service-name>
    <backup-id>1</backup-id><vrrps><vrrp><id>1</id><if-name>Vlanif100</if-name></vrrp></vrrps>
    <service-type>dhcp-server</service-type></profile></profiles>
</rbs>
"""

# Run inside the device's namespace: three commits, two seconds apart, during the load.
EDITS = textwrap.dedent("""
    import sys, time
    import ncclient.transport.session
    from ncclient import manager
    ncclient.transport.session.TICK = 0.001
    NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
    edits = [
        '<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><server><ip-pools><ip-pool>'
        '<ip-pool-name>load</ip-pool-name><dns-list>10.10.10.53</dns-list></ip-pool>'
        '</ip-pools></server></dhcp>',
        '<interfaces xmlns="urn:nefeature:yang:nefeature-interfaces"><interface>'
        '<name>Vlanif100</name><ipv4><vrrp xmlns="urn:nefeature:yang:nefeature-vrrp">'
        '<vrrp-instance><vrid>1</vrid><priority>150</priority></vrrp-instance></vrrp></ipv4>'
        '</interface></interfaces>',
        '<rbs xmlns="urn:nefeature:yang:nefeature-rbs"><profiles><profile><name>service1</name>'
        '<sync-mode>lazy</sync-mode></profile></profiles></rbs>',
    ]
    m = manager.connect(host="127.0.0.1", port=830, username="admin",
                        password=open(sys.argv[1]).read().strip(), hostkey_verify=False,
                        look_for_keys=False, allow_agent=False, timeout=30)
    if sys.argv[2:] == ["count"]:  # after the load: what the engine holds now
        state = m.get(filter=("subtree", '<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-'
                                         'server"><server><ip-pool-user-infos/></server></dhcp>'))
        print("used leases", state.data_xml.count("<status>used</status>"), flush=True)
        running = m.get_config(source="running").data_xml
        print("final", "10.10.10.53" in running, "<priority>150<" in running, "lazy" in running)
        m.close_session()
        sys.exit(0)
    time.sleep(2)
    for edit in edits:
        m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{edit}</config>')
        started = time.monotonic()
        m.commit()
        print(f"commit ok in {(time.monotonic() - started) * 1000:.0f} ms", flush=True)
        time.sleep(2)
    m.close_session()
""")


@pytest.fixture
def lab():
    require_root()
    require_tool("perfdhcp", "kea-admin")
    with make_lab(shutil.which("ip"), "10.10.10.1/16") as lab:
        yield lab


def test_commits_under_load_drop_nothing(lab, tmp_path):
    lab.add_address(lab.client_ns, "10.10.10.2/16", lab.client_if)
    device = Nefeature(lab, lab.server_ns, write_config(tmp_path / "device.xml", CONFIG),
                       tmp_path / "state", tmp_path, "device")
    device.process = lab.start(lab.server_ns, [
        *NEFEATURE, "run", "--startup", device.config, "--state-dir", device.state_dir,
        "--netconf", "127.0.0.1:830"], tmp_path / "device-1.log", "device")
    device.runs.append(device.process)
    device.wait_ready()
    device.wait_log("backup -> master", 10)  # VRRP alone on the LAN
    (tmp_path / "edits.py").write_text(EDITS)
    editor = lab.start(lab.server_ns, [sys.executable, tmp_path / "edits.py",
                                       tmp_path / "state" / "netconf-password"],
                       tmp_path / "edits.log", "editor")
    perf = lab.in_client("perfdhcp", "-4", "-l", "10.10.10.2", "-r", "300", "-R", "3000",
                         "-p", "9", "-W", "2000000", "10.10.10.100", timeout=60, check=False)
    editor.wait(60)
    counter = lab.start(lab.server_ns, [sys.executable, tmp_path / "edits.py",
                                        tmp_path / "state" / "netconf-password", "count"],
                        tmp_path / "count.log", "counter")
    counter.wait(60)
    edits = editor.output() + counter.output()
    report = perf.stdout
    assert edits.count("commit ok") == 3, edits + device.logs()
    assert "final True True True" in edits, edits
    sent = [int(n) for n in re.findall(r"sent packets: (\d+)", report)]
    received = [int(n) for n in re.findall(r"received packets: (\d+)", report)]
    assert len(sent) == 2 and sent[0] > 2000, report
    assert received == sent, f"transactions dropped during the commits:\n{report}"
    bound = [row for row in journal_rows(device.journal) if row["state"] == "bound"]
    used = int(re.search(r"used leases (\d+)", edits).group(1))
    assert used == len(bound) and len(bound) > 0  # engine and journal agree: nothing lost
    assert device.lines("configuration applied") and "Traceback" not in device.output()
    device.stop()
