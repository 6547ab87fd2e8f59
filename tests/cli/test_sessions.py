"""Private candidates, commit trial, exclusive, save: shells sharing one device's datastores.

Each shell is a session on the same in-process ``Datastores`` the NETCONF
server uses (tests/cli/conftest.py), so the locks, the commit rules and the
clean-up at the end of a session are the server's own.
"""

from __future__ import annotations

import pytest
from lxml import etree

from nefeature.datastore.errors import NetconfError
from nefeature_cli.commands import NC
from nefeature_cli.shell import LEAVE_QUESTION, SAVE_QUESTION, CliError, Shell
from tests.cli.conftest import LocalBackend

POOL = ["ip pool half-typed", "network 10.7.0.0 mask 16"]


def pair_of_shells(first_answers=(), second_answers=()):
    first = LocalBackend()
    second = first.other_session()
    return (Shell(first, ask=answering(first_answers)) if first_answers else Shell(first),
            Shell(second, ask=answering(second_answers)) if second_answers else Shell(second))


def answering(answers):
    """An ``ask`` that records the questions and gives the answers in turn."""
    queue = list(answers)

    def ask(question, options):
        ask.questions.append(question)
        return queue.pop(0) if queue else None

    ask.questions = []
    return ask


def run(sh, *lines):
    return [sh.execute(line) for line in lines]


def pools(backend, source="running"):
    tree = backend.config(source)
    return [p["ip-pool-name"] for p in tree.get("nefeature-dhcp-server:dhcp", {})
            .get("server", {}).get("ip-pools", {}).get("ip-pool", [])]


def test_a_second_session_neither_sees_nor_commits_the_firsts_edits():
    alice, bob = pair_of_shells()
    run(alice, "system-view", *POOL)
    assert alice.prompt() == "[*HUAWEI-ip-pool-half-typed]"
    run(bob, "system-view")
    assert bob.prompt() == "[~HUAWEI]"  # the edits are not bob's
    assert "no uncommitted configuration" in bob.execute("display configuration candidate")
    assert bob.execute("commit") == ""
    assert pools(bob.backend) == []  # bob's commit pushed nothing of alice's
    with pytest.raises(CliError) as caught:
        bob.execute("sysname Other")
    assert caught.value.message == (f"Error: The configuration is being edited by session "
                                    f"{alice.backend.session_id} (user admin); try again later.")
    with pytest.raises(CliError):
        bob.execute("clear configuration candidate") or bob.execute("sysname Other")
    run(alice, "commit")
    assert pools(alice.backend) == ["half-typed"]
    assert alice.prompt() == "[~HUAWEI-ip-pool-half-typed]"
    run(bob, "sysname Other", "commit")  # the lock went with alice's edits
    assert bob.prompt() == "[~Other]"


def test_a_lost_session_leaves_no_edit_behind():
    alice, bob = pair_of_shells()
    run(alice, "system-view", *POOL)
    alice.backend.close()  # the server's clean-up of a session that ended or was lost
    assert pools(bob.backend, "candidate") == []
    run(bob, "system-view", "ip pool other", "network 10.8.0.0 mask 16", "commit")
    assert pools(bob.backend) == ["other"]


def test_clear_configuration_candidate_ends_the_edits_and_frees_the_candidate():
    alice, bob = pair_of_shells()
    run(alice, "system-view", *POOL, "clear configuration candidate")
    assert alice.prompt() == "[~HUAWEI-ip-pool-half-typed]"
    run(bob, "system-view", "sysname Other")
    assert bob.prompt() == "[*HUAWEI]"


def test_a_line_that_changes_nothing_holds_no_lock():
    alice, bob = pair_of_shells()
    run(alice, "system-view", *POOL, "commit", "quit", "ip pool half-typed")
    assert alice.prompt() == "[~HUAWEI-ip-pool-half-typed]"
    run(bob, "system-view", "sysname Other")  # not refused: alice has nothing pending
    # and views of existing entries open while another session has edits
    run(alice, "ip pool half-typed", "quit", "ip pool half-typed")
    assert "network 10.7.0.0" in alice.execute("display this")


def test_a_netconf_client_cannot_commit_or_discard_a_shells_edits():
    alice, _ = pair_of_shells()
    run(alice, "system-view", *POOL)
    client = alice.backend.other_session()
    with pytest.raises(NetconfError) as caught:
        client.commit()
    assert caught.value.tag == "in-use"
    with pytest.raises(NetconfError):
        client.discard()
    with pytest.raises(NetconfError):
        client.edit('<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><enable>false'
                    "</enable></dhcp>")
    assert pools(client) == []


def test_unlocked_netconf_edits_are_not_taken_over_by_a_shell():
    alice, _ = pair_of_shells()
    client = alice.backend.other_session()
    client.edit('<dhcp xmlns="urn:nefeature:yang:nefeature-dhcp-server"><enable>false'
                "</enable></dhcp>")
    with pytest.raises(CliError) as caught:
        run(alice, "system-view", "sysname Other")
    assert "did not lock it" in caught.value.message
    assert alice.prompt() == "[~HUAWEI]"


@pytest.mark.parametrize("answer, committed, view", [
    ("Y", ["half-typed"], "<HUAWEI>"), ("N", [], "<HUAWEI>"),
    ("C", [], "[*HUAWEI-ip-pool-half-typed]"), (None, [], "[*HUAWEI-ip-pool-half-typed]")])
def test_leaving_with_edits_asks_vrps_question(answer, committed, view):
    sh, _ = pair_of_shells(first_answers=[answer])
    run(sh, "system-view", *POOL, "return")
    assert sh.ask.questions == [LEAVE_QUESTION]
    assert pools(sh.backend) == committed
    assert sh.prompt() == view
    assert sh.pending == (answer in ("C", None))


def test_a_script_leaving_with_edits_keeps_them_until_the_session_ends():
    sh, other = pair_of_shells()
    output = run(sh, "system-view", *POOL, "quit", "quit")
    assert "discarded when the session ends" in output[-1]
    assert sh.prompt() == "<HUAWEI>" and sh.pending
    messages = sh.close()
    assert messages[0] == "Warning: The uncommitted configurations of this session were " \
                          "discarded."
    assert pools(other.backend, "candidate") == []
    run(other, "system-view", "sysname Free")


def test_committed_but_unsaved_is_pointed_out_at_the_end_and_save_clears_it():
    sh, _ = pair_of_shells(first_answers=["Y"])
    run(sh, "system-view", *POOL, "commit")
    assert sh.close() == ["Warning: The current configuration has been committed but not "
                          "saved; it is lost when the device restarts. Use 'save' to keep it."]
    assert sh.execute("save").splitlines() == [
        "Now saving the current configuration to the slot 0.",
        "Info: Save the configuration successfully."]
    assert sh.ask.questions == [SAVE_QUESTION]
    assert sh.close() == []
    assert pools(sh.backend, "startup") == ["half-typed"]
    assert "is the same as the saved" in sh.execute("compare configuration")
    assert "ip pool half-typed" in sh.execute("display saved-configuration")


def test_save_answered_no_saves_nothing():
    sh, _ = pair_of_shells(first_answers=["N"])
    run(sh, "system-view", *POOL, "commit")
    assert sh.execute("save") == ""
    assert pools(sh.backend, "startup") == []
    compared = sh.execute("compare configuration").splitlines()
    assert compared[:3] == ["The current configuration (+) differs from the saved "
                            "configuration (-):", "#", "+ip pool half-typed"]


def test_commit_trial_is_a_confirmed_commit_that_rolls_back_unless_confirmed():
    sh, other = pair_of_shells()
    run(sh, "system-view", *POOL)
    assert "rolled back in 60 seconds" in sh.execute("commit trial 60")
    assert pools(sh.backend) == ["half-typed"] and sh.prompt().startswith("[~")
    assert "Rollback in    : 60 seconds" in sh.execute("display configuration trial status")
    with pytest.raises(CliError):  # the candidate stays this session's during the trial
        other.execute("system-view") or other.execute("sysname Other")
    assert sh.execute("abort trial") == "Info: The trial configuration has been rolled back."
    assert pools(sh.backend) == []
    run(sh, *POOL, "commit trial")
    assert sh.execute("commit") == "Info: The trial configuration is confirmed."
    sh.backend.close()  # a confirmed trial survives its session
    assert pools(other.backend) == ["half-typed"]


def test_a_trial_the_session_does_not_confirm_goes_with_the_session():
    sh, other = pair_of_shells()
    run(sh, "system-view", *POOL, "commit trial 600")
    sh.backend.close()
    assert pools(other.backend) == []


def test_configuration_exclusive_locks_out_every_other_session():
    sh, other = pair_of_shells()
    assert "locked" in sh.execute("configuration exclusive")
    with pytest.raises(CliError) as caught:
        run(other, "system-view", "sysname Other")
    assert f"session {sh.backend.session_id}" in caught.value.message
    client = sh.backend.other_session()
    config = etree.fromstring(f'<config xmlns="{NC}"><system xmlns="urn:nefeature:yang:'
                              'nefeature-interfaces"><sysname>X</sysname></system></config>')
    with pytest.raises(NetconfError):  # not even running, directly
        client.datastores.edit_config(client.session_id, "running", config)
    run(sh, "system-view", "sysname Mine", "commit", "return")
    assert sh.prompt() == "<Mine>"
    sh.execute("undo configuration exclusive")
    run(other, "sysname Other", "commit")
    with pytest.raises(CliError):
        sh.execute("undo configuration exclusive")


def test_exclusive_is_refused_while_another_session_edits():
    sh, other = pair_of_shells()
    run(other, "system-view", *POOL)
    with pytest.raises(CliError) as caught:
        sh.execute("configuration exclusive")
    assert f"session {other.backend.session_id}" in caught.value.message
    run(other, "clear configuration candidate", "return")
    sh.execute("configuration exclusive")


def test_a_failed_commit_keeps_the_sessions_edits_to_fix():
    sh, other = pair_of_shells()
    run(sh, "system-view", "ip pool p1")  # no network: the model's mandatory choice
    with pytest.raises(CliError) as caught:
        sh.execute("commit")
    assert "must be configured here (ip pool p1)" in caught.value.message
    assert sh.prompt() == "[*HUAWEI-ip-pool-p1]"
    run(sh, "network 10.9.0.0 mask 16", "commit")
    assert pools(other.backend) == ["p1"]
