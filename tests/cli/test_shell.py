"""The VRP shell without a network: grammar, carets, views, edits, round trip."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nefeature.datastore.validation import validate_config_text
from nefeature_cli.grammar import Failure, match, parse_pattern, tokenize
from nefeature_cli.render import render_configuration
from nefeature_cli.shell import CliError, Exit, Shell
from tests.cli.conftest import LocalBackend
from tests.cli.documented_pair import configuration, normalized, session
from tests.conftest import EXAMPLES


def shell(running: dict | None = None) -> Shell:
    return Shell(LocalBackend(running))


def run(sh: Shell, *lines: str) -> list[str]:
    return [sh.execute(line) for line in lines]


# --- grammar ---


def test_interface_type_and_number_become_one_token():
    assert [t.text for t in tokenize("interface Vlanif 100")] == ["interface", "Vlanif100"]
    assert [t.text for t in tokenize("vrrp-id 1 interface GigabitEthernet 0/1/1")][-1] == \
        "GigabitEthernet0/1/1"


def test_abbreviations_and_optional_parts():
    pattern = parse_pattern("lease day <day:0-999> [ hour <hour:0-23> [ minute <minute:0-59> ] ]")
    [(used, found)] = match(pattern, tokenize("le da 2 ho 3"))
    assert found.values == {"day": 2, "hour": 3}
    failure = match(pattern, tokenize("lease day 2 minute 5"))
    assert isinstance(failure, Failure) and failure.position == 3


@pytest.mark.parametrize("line, column, message", [
    ("ip pooll x", 3, "Unrecognized"),
    ("dhcp enablee", 5, "Unrecognized"),
    ("ip", 3, "Incomplete"),
    ("remote-backup-service", 22, "Incomplete"),
])
def test_caret_under_the_offending_word(line, column, message):
    sh = shell()
    sh.execute("system-view")
    with pytest.raises(CliError) as caught:
        sh.execute(line)
    assert caught.value.column == column
    assert caught.value.message == f"Error: {message} command found at '^' position."


def test_wrong_parameter_names_the_range():
    sh = shell()
    run(sh, "sys", "interface Vlanif100")
    with pytest.raises(CliError) as caught:
        sh.execute("vrrp vrid 1 priority 255")
    assert caught.value.message == "Error: Wrong parameter found at '^' position."
    assert caught.value.column == len("vrrp vrid 1 priority ")
    help_text = sh.execute("vrrp vrid 1 priority ?")
    assert "INTEGER<1-254>" in help_text


def test_help_lists_keywords_and_cr():
    sh = shell()
    sh.execute("system-view")
    words = [line.split()[0] for line in sh.execute("dhcp ?").splitlines()]
    assert words == ["enable", "server"]  # dhcp enable, dhcp server backup enable
    assert "<cr>" in sh.execute("dhcp enable ?")
    top = sh.execute("?")
    assert "interface" in top and "remote-backup-service" in top and "commit" in top


def test_tab_candidates_complete_a_prefix():
    sh = shell()
    sh.execute("system-view")
    assert [w for w, *_ in sh.candidates("remote-backup-p")] == ["remote-backup-profile"]


# --- views and prompts ---


def test_prompts_follow_views_and_the_candidate():
    sh = shell()
    assert sh.prompt() == "<HUAWEI>"
    sh.execute("sys")
    assert sh.prompt() == "[~HUAWEI]"
    sh.execute("ip pool pool1")
    assert sh.prompt() == "[*HUAWEI-ip-pool-pool1]"
    sh.execute("quit")
    sh.execute("remote-backup-service service1")
    assert sh.prompt() == "[*HUAWEI-rm-backup-srv-service1]"
    sh.execute("remote-backup-profile p1")  # a system command from a sub-view
    assert sh.prompt() == "[*HUAWEI-rm-backup-prf-p1]"
    sh.execute("clear configuration candidate")
    assert sh.prompt() == "[~HUAWEI-rm-backup-prf-p1]"
    sh.execute("return")
    assert sh.prompt() == "<HUAWEI>"
    with pytest.raises(Exit):
        sh.execute("quit")


# --- command -> edit ---

NCA = 'xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"'


@pytest.mark.parametrize("view, line, expected", [
    ("interface Vlanif100", "vrrp vrid 1 priority 200",
     '<interfaces xmlns="urn:nefeature:yang:nefeature-interfaces"><interface><name>Vlanif100'
     '</name><ipv4><vrrp xmlns="urn:nefeature:yang:nefeature-vrrp"><vrrp-instance><vrid>1</vrid>'
     "<priority>200</priority></vrrp-instance></vrrp></ipv4></interface></interfaces>"),
    ("interface Vlanif100", "vrrp vrid 1 timer advertise millisecond 500",
     "<advertise-interval-centi-sec>50</advertise-interval-centi-sec>"),
    ("interface Vlanif100", "vrrp vrid 1 track interface GigabitEthernet 0/1/2 reduced 110",
     '<interface nc:operation="replace"><interface>GigabitEthernet0/1/2</interface>'
     "<priority-decrement>110</priority-decrement></interface>"),
    ("interface Vlanif100", "undo vrrp vrid 1 priority",
     '<priority nc:operation="remove"/>'),
    ("ip pool p1", "lease 3 12 30",
     "<lease-time><day>3</day><hour>12</hour><minute>30</minute></lease-time>"),
    ("ip pool p1", "lease day 2 hour 1",
     "<lease-time><day>2</day><hour>1</hour><minute>0</minute></lease-time>"),
    ("ip pool p1", "static-bind ip-address 10.1.1.5 mac-address 00e0-fc12-3456",
     "<mac-address>00:e0:fc:12:34:56</mac-address>"),
    ("ip pool p1", "network 10.1.1.0 mask 24",
     "<network><ip-address>10.1.1.0</ip-address><mask>255.255.255.0</mask></network>"),
    ("ip pool p1", "dns-list 10.1.1.53 10.1.1.54",
     "<dns-list>10.1.1.53</dns-list><dns-list>10.1.1.54</dns-list>"),
    ("remote-backup-service s1", "peer 10.1.1.2 source 10.1.1.1 port 10000",
     "<peer-ip>10.1.1.2</peer-ip><source-ip>10.1.1.1</source-ip><tcp-port>10000</tcp-port>"),
    ("remote-backup-profile p1", "vrrp-id 1 interface Vlanif 100",
     '<vrrps><vrrp nc:operation="replace"><id>1</id><if-name>Vlanif100</if-name></vrrp></vrrps>'),
    ("remote-backup-profile p1", "dhcp server backup enable",
     "<service-type>dhcp-server</service-type>"),
    ("remote-backup-profile p1", "partition-share 30",
     "<partition-share>30</partition-share>"),
])
def test_command_becomes_one_edit(view, line, expected):
    sh = shell()
    run(sh, "system-view", view)
    backend = sh.backend
    backend.edits.clear()
    sh.execute(line)
    assert len(backend.edits) == 1
    assert expected in backend.edits[0]


def test_backup_enable_shorthand_picks_the_only_profile_or_refuses_to_guess():
    sh = shell()
    run(sh, "system-view", "remote-backup-profile p1", "quit")
    assert "p1" in sh.execute("dhcp server backup enable")
    run(sh, "remote-backup-profile p2", "quit")
    with pytest.raises(CliError) as caught:
        sh.execute("dhcp server backup enable")
    assert "p1, p2" in caught.value.message


def test_batch_backup_is_an_rpc():
    sh = shell()
    run(sh, "system-view", "remote-backup-service service1",
        "batch-backup service-type dhcp-server now")
    assert "<batch-backup-now" in sh.backend.rpcs[0]
    assert "<rbs-name>service1</rbs-name>" in sh.backend.rpcs[0]


def test_commit_reports_the_models_message_in_cli_words():
    sh = shell()
    run(sh, "system-view", "remote-backup-service s1", "peer 10.1.1.2 source 10.1.1.2 port 10000")
    with pytest.raises(CliError) as caught:
        sh.execute("commit")
    assert "The peer and source addresses must differ" in caught.value.message


def test_several_rpc_errors_become_one_cli_line_each():
    from nefeature.datastore.errors import NetconfError

    first = NetconfError("application", "invalid-value", "bad gateway",
                         '/nefeature-dhcp-server:dhcp/server/ip-pools/ip-pool[ip-pool-name="p"]'
                         "/gateway-list")
    second = NetconfError("application", "unknown-element", "unknown element 'junk'", "/junk")

    def failing():
        raise NetconfError.combined([first, second], limit=10)

    with pytest.raises(CliError) as caught:
        shell()._server(failing)
    assert caught.value.message.splitlines() == [
        "Error: bad gateway (ip pool p: gateway-list)", "Error: unknown element 'junk'"]


# --- round trip ---


def replay(text: str) -> dict:
    sh = shell()
    sh.execute("system-view")
    for line in text.splitlines():
        if line not in ("#", "return"):
            sh.execute(line)
    sh.execute("commit")
    return sh.backend.running


@pytest.mark.parametrize("name", ["pair/deviceA.xml", "pair/deviceB.xml", "single/server.xml"])
def test_examples_round_trip(name):
    explicit = validate_config_text((EXAMPLES / name).read_bytes()).explicit
    assert replay(render_configuration(explicit)) == explicit


@pytest.mark.parametrize("dialect", ["NE", "CE"])
@pytest.mark.parametrize("device", ["A", "B"])
def test_the_documented_pair_typed_block_by_block_displays_as_the_guide(device, dialect):
    """Every line of the guide accepted, every commit succeeds, and display
    current-configuration is the guide's configuration, order and indentation."""
    sh = shell()
    for line in session(device, dialect):
        sh.execute(line)
    assert sh.prompt() == f"<Device{device}>"  # sysname is configuration, and committed
    shown = sh.execute("display current-configuration").splitlines()
    assert shown == normalized(configuration(device, dialect))


def test_the_guides_configuration_file_typed_top_to_bottom_commits_at_once():
    """The file's own order names the profile before the interface and the pool before
    the profile: all of it is accepted line by line and valid at commit."""
    sh = shell()
    sh.execute("system-view")
    for line in configuration("A", "NE").splitlines():
        if line not in ("#", "return"):
            sh.execute(line)
    assert sh.prompt() == "[*HUAWEI-GigabitEthernet0/1/2]"
    sh.execute("commit")
    assert sh.execute("display current-configuration").splitlines() == \
        normalized(configuration("A", "NE"))


addresses = st.integers(2, 250).map(lambda n: f"10.10.10.{n}")


@st.composite
def configurations(draw) -> str:
    """CLI scripts for random but valid pools, VRRP groups and backup settings."""
    lines = ["interface Vlanif100", " ip address 10.10.10.1 255.255.255.0"]
    # not the static bind's address: the VIP may become the pool's server identifier,
    # which the model forbids to be a static bind (error-app-tag identifier-assignable)
    vip = draw(addresses.filter(lambda address: address != "10.10.10.200"))
    lines.append(f" vrrp vrid 7 virtual-ip {vip}")
    if draw(st.booleans()):
        lines.append(f" vrrp vrid 7 priority {draw(st.integers(1, 254))}")
    if draw(st.booleans()):
        lines.append(f" vrrp vrid 7 preempt-mode timer delay {draw(st.integers(0, 10800))}")
    if draw(st.booleans()):
        lines.append(" vrrp vrid 7 preempt-mode disable")
    lines.append(draw(st.sampled_from([" vrrp vrid 7 timer advertise 2",
                                       " vrrp vrid 7 timer advertise millisecond 250", ""])))
    if draw(st.booleans()):
        lines.append(f" description {draw(st.sampled_from(['lan side', 'users']))}")
    lines.append(draw(st.sampled_from([" dhcp server enable", " dhcp select global",
                                       " dhcp server disable"])))
    lines.append("dhcp enable")
    ne = draw(st.booleans())
    lines.append("ip pool p1" + (" server" if ne else ""))
    if ne:
        lines.append(" gateway 10.10.10.254 255.255.255.0")
        lines.append(f" section 0 10.10.10.10 10.10.10.{draw(st.integers(10, 99))}")
        lines.append(f" lease {draw(st.integers(0, 9))} {draw(st.integers(1, 23))} 0")
    else:
        lines.append(" network 10.10.10.0 mask 255.255.255.0")
        lines.append(" gateway-list 10.10.10.254")
        lines.append(f" lease day {draw(st.integers(1, 9))} hour 0 minute 5")
    if draw(st.booleans()):
        lines.append(" excluded-ip-address 10.10.10.100 10.10.10.110")
    if draw(st.booleans()):
        lines.append(" static-bind ip-address 10.10.10.200 mac-address 00e0-fc00-0001")
    if draw(st.booleans()):
        lines.append(" domain-name example.net")
    if draw(st.booleans()):
        lines.append(" option 66 ascii tftp.example.net")
    if draw(st.booleans()):
        lines += [" server identifier ip " + vip, " remote-backup-profile rbp1",
                  "remote-backup-service rbs1", " peer 10.10.10.2 source 10.10.10.1 port 10000",
                  "remote-backup-profile rbp1", " service-type dhcp-server",
                  " backup-id 3 remote-backup-service rbs1", " vrrp-id 7 interface Vlanif100"]
        if draw(st.booleans()):
            lines.append(" sync-mode lazy")
    return "\n".join(line for line in lines if line)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_display_current_configuration_replays_to_the_same_config(script):
    configured = replay(script)
    assert replay(render_configuration(configured)) == configured


def test_display_this_shows_the_view_section():
    sh = shell()
    run(sh, "system-view", "ip pool p1", "network 10.9.0.0 mask 255.255.0.0", "commit")
    text = sh.execute("display this")
    assert text.splitlines()[1:3] == ["ip pool p1", " network 10.9.0.0 mask 255.255.0.0"]


def test_display_candidate_shows_this_sessions_lines_under_their_headers():
    sh = shell()
    run(sh, "system-view", "interface Vlanif100", "ip address 10.9.0.1 24",
        "vrrp recover-delay 20", "commit", "description pending", "undo vrrp recover-delay")
    assert sh.execute("display configuration candidate").splitlines() == [
        "#", "interface Vlanif100", " description pending", " undo vrrp recover-delay 20", "#",
        "return"]
    assert sh.execute("display configuration candidate changes").splitlines() == [
        "#", " interface Vlanif100", "+ description pending", "- vrrp recover-delay 20", "#"]
    sh.execute("commit")
    assert "no uncommitted configuration" in sh.execute("display configuration candidate")


def test_display_this_in_the_system_view_shows_the_system_views_own_lines():
    sh = shell()
    run(sh, "system-view", "sysname Edge", "vrrp recover-delay 5", "ip pool p1",
        "network 10.9.0.0 mask 16", "quit", "commit")
    assert sh.execute("display this").splitlines() == [
        "#", "sysname Edge", "#", "vrrp recover-delay 5", "#", "return"]
    sh.execute("vlan 100")
    assert sh.prompt() == "[*Edge-vlan100]"
    sh.execute("description users")
    sh.execute("commit")
    assert sh.execute("display this").splitlines() == ["#", "vlan 100", " description users",
                                                       "#", "return"]


def test_output_filters():
    sh = shell()
    run(sh, "system-view", "interface Vlanif100", "ip address 10.9.0.1 24",
        "vrrp vrid 1 virtual-ip 10.9.0.100", "vrrp vrid 1 priority 120", "commit")
    assert sh.execute("display current-configuration | include vrrp").splitlines() == [
        " vrrp vrid 1 virtual-ip 10.9.0.100", " vrrp vrid 1 priority 120"]
    assert "vrrp" not in sh.execute("display current-configuration | exclude vrrp")
    assert sh.execute("disp cur | begin ip address").splitlines()[0] == \
        " ip address 10.9.0.1 255.255.255.0"
    with pytest.raises(CliError) as caught:
        sh.execute("commit | include x")
    assert "Unrecognized" in caught.value.message
    with pytest.raises(CliError) as caught:
        sh.execute("display this | in")
    assert "Incomplete" in caught.value.message


def test_display_of_an_unknown_pool_or_interface_says_so():
    sh = shell()
    sh.execute("system-view")
    with pytest.raises(CliError) as caught:
        sh.execute("display ip pool name nosuch")
    assert caught.value.message == "Error: The IP pool nosuch does not exist."
    with pytest.raises(CliError) as caught:
        sh.execute("display current-configuration interface GigabitEthernet 0/1/9")
    assert "not configured" in caught.value.message


def test_display_vrrp_selects_by_interface_and_vrid_and_shows_statistics():
    from nefeature_cli.render import display_vrrp

    def group(vrid, state, sent):
        return {"vrid": vrid, "virtual-ipv4-addresses": {"virtual-ipv4-address": [
            {"ipv4-address": f"10.9.{vrid}.100"}]},
            "state": {"state": state, "statistics": {"advertisement-sent": sent}}}

    tree = {"nefeature-interfaces:interfaces": {"interface": [
        {"name": "Vlanif100", "ipv4": {"nefeature-vrrp:vrrp": {"vrrp-instance": [
            group(1, "master", 7), group(2, "backup", 0)]}}},
        {"name": "Vlanif200", "ipv4": {"nefeature-vrrp:vrrp": {"vrrp-instance": [
            group(1, "backup", 0)]}}}]},
        "nefeature-vrrp:vrrp": {"statistics": {"checksum-errors": 3}}}
    brief = display_vrrp(tree, "brief", "vlanif100")
    assert brief.splitlines()[0].split() == ["Total:2", "Master:1", "Backup:1", "Non-active:0"]
    assert display_vrrp(tree, "verbose", None, 2).count("Virtual Router") == 1
    statistics = display_vrrp(tree, "statistics", "Vlanif100", 1).splitlines()
    assert "    Sent Advertisement             : 7" in statistics
    assert "    Checksum Errors                : 3" in statistics
    assert display_vrrp(tree, "brief", "Vlanif300").startswith("Total:0")
    assert display_vrrp(tree, "verbose", None, 9) == "Info: The VRRP does not exist."
