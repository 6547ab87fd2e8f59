"""? help, Tab and typing-time checks: the words and ranges come from the YANG model."""

from __future__ import annotations

import pytest

from nefeature_cli import model
from nefeature_cli.commands import COMMANDS, POOL_NODE, VRRP_INSTANCE_NODE
from nefeature_cli.grammar import Choice, Keyword, Optional, Param
from nefeature_cli.shell import CliError, Shell
from tests.cli.conftest import LocalBackend


def shell_in(*lines: str) -> Shell:
    sh = Shell(LocalBackend())
    for line in lines:
        sh.execute(line)
    return sh


def items(pattern):
    for item in pattern:
        if isinstance(item, (Keyword, Param)):
            yield item
        elif isinstance(item, Optional):
            yield from items(item.body)
        elif isinstance(item, Choice):
            for option in item.options:
                yield from items(option)


def test_every_keyword_and_parameter_has_help():
    missing = [(command.syntax, getattr(item, "word", None) or item.name)
               for command in COMMANDS for item in items(command.pattern) if not item.help]
    assert missing == []


def test_every_configuration_parameter_is_typed_by_the_model():
    """No range constant in the CLI for what the model configures."""
    untyped = [(command.syntax, item.name) for command in COMMANDS if command.node
               for item in items(command.pattern)
               if isinstance(item, Param) and item.data_type is None]
    assert untyped == []


def test_keyword_help_is_the_models_description():
    sh = shell_in("system-view", "interface Vlanif100")
    lines = dict(line.split(None, 1) for line in sh.execute("vrrp vrid 1 ?").splitlines())
    assert lines["priority"] == model.help_text(VRRP_INSTANCE_NODE + "/priority") \
        == "Configured priority"
    assert lines["preempt-mode"] == "Preemption"
    assert "VRP" not in "".join(lines.values())


@pytest.mark.parametrize("line, shown", [
    ("vrrp vrid 1 priority ?", "INTEGER<1-254>"),
    ("vrrp vrid 1 timer advertise ?", "INTEGER<1-40>"),  # 1..4095 centiseconds, in seconds
    ("vrrp vrid 1 timer advertise millisecond ?", "INTEGER<10-40950>"),
    ("port trunk allow-pass vlan ?", "INTEGER<1-4094>"),
])
def test_ranges_shown_are_the_models(line, shown):
    sh = shell_in("system-view", "interface Vlanif100")
    assert shown in sh.execute(line)


def test_option_codes_are_the_models_sparse_range():
    sh = shell_in("system-view", "ip pool p1")
    code = model.leaf_type(POOL_NODE + "/user-options/user-option/option-code")
    listed = sh.execute("option ?").split()[0]
    assert listed == model.describe(code) and listed.startswith("INTEGER<2,4-5,7-14,")
    for reserved in ("3", "6", "82", "255"):
        with pytest.raises(CliError) as caught:
            sh.execute(f"option {reserved} ascii x")
        assert caught.value.message == "Error: Wrong parameter found at '^' position."
        assert caught.value.column == len("option ")
    sh.execute("option 66 ascii tftp.example.net")


@pytest.mark.parametrize("line, column", [
    ("port trunk allow-pass vlan 4095", len("port trunk allow-pass vlan ")),
    ("port trunk allow-pass vlan 20 to 10", len("port trunk allow-pass vlan ")),
    ("description " + "x" * 243, len("description ")),
    ("vrrp vrid 1 timer advertise 41", len("vrrp vrid 1 timer advertise ")),
])
def test_values_outside_the_model_fail_as_they_are_typed(line, column):
    sh = shell_in("system-view", "interface GigabitEthernet0/1/1")
    before = sh.backend.config("candidate")
    with pytest.raises(CliError) as caught:
        sh.execute(line)
    assert (caught.value.message, caught.value.column) == (
        "Error: Wrong parameter found at '^' position.", column)
    assert sh.backend.config("candidate") == before


@pytest.mark.parametrize("line, column", [("re", 0), ("d", 0), ("display c", 8),
                                          ("undo d", 5)])
def test_an_ambiguous_abbreviation_is_refused_with_a_caret(line, column):
    sh = shell_in("system-view", "interface Vlanif100")
    with pytest.raises(CliError) as caught:
        sh.execute(line)
    assert (caught.value.message, caught.value.column) == (
        "Error: Ambiguous command found at '^' position.", column)
    assert sh.prompt() == "[*HUAWEI-Vlanif100]"


def test_an_exact_keyword_is_never_ambiguous():
    sh = shell_in("system-view", "interface GigabitEthernet0/1/1", "portswitch")
    sh.execute("port link-type trunk")  # 'port' is also the start of 'portswitch'
    sh.execute("commit")
    assert sh.execute("ret") == ""
    assert sh.prompt() == "<HUAWEI>"


def test_a_help_request_on_a_bad_word_puts_the_caret_under_it():
    sh = shell_in("system-view")
    with pytest.raises(CliError) as caught:
        sh.execute("vrrp vridd ?")
    assert (caught.value.message, caught.value.column) == (
        "Error: Unrecognized command found at '^' position.", len("vrrp "))


def test_help_after_a_complete_command_offers_cr_and_the_next_words():
    sh = shell_in("system-view", "ip pool p1")
    listed = sh.execute("lease day 1 ?").splitlines()
    assert [line.split()[0] for line in listed] == ["<cr>", "hour"]
