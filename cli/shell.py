"""The VRP shell: views, prompts, commands to NETCONF edits, displays, VRP errors.

A ``Shell`` holds the view stack (user, system, interface, ip pool,
remote-backup-service, remote-backup-profile) and turns each line into
the effects its command declares (``nefeature_cli.commands``): an edit of
the candidate over NETCONF, entering a view, or an action (commit, clear
configuration candidate, display, RPC).  Syntax is checked before anything
is sent; a bad line gets VRP's caret and message and changes nothing.  A
command of the system view typed in a sub-view leaves the sub-view first,
as on VRP.  The prompt shows ``*`` while the candidate differs from
running (two-stage commit, VRP8).

The shell talks to the device only through a ``Backend`` (ncclient), so
every check the model makes reaches the user as the server's message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from nefeature_cli import render
from nefeature_cli.commands import (
    DHCP,
    IF,
    INTERFACE,
    NC,
    POOL,
    PROFILE,
    RBS,
    SERVICE,
    SYSTEM,
    USER,
    VRRP,
    Edit,
    Enter,
    commands_for,
    leaf,
)
from nefeature_cli.commands import profile as profile_fragment
from nefeature_cli.grammar import Failure, Keyword, describe, match, next_items, tokenize

PROMPT_SUFFIX = {INTERFACE: "-{}", POOL: "-ip-pool-{}", SERVICE: "-rm-backup-srv-{}",
                 PROFILE: "-rm-backup-prf-{}"}
MESSAGES = {
    "unrecognized": "Error: Unrecognized command found at '^' position.",
    "incomplete": "Error: Incomplete command found at '^' position.",
    "wrong-parameter": "Error: Wrong parameter found at '^' position.",
    "ambiguous": "Error: Ambiguous command found at '^' position.",
}


class CliError(Exception):
    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


class Exit(Exception):
    """The user left the shell (quit in the user view)."""


class NetconfBackend:
    """What the shell needs from the device, over an ncclient session."""

    def __init__(self, manager) -> None:
        self.manager = manager

    def edit(self, fragment: str) -> None:
        # test-option "set": each command is checked for syntax and types now, the
        # whole configuration against the model at commit (VRP8's two stages).
        self.manager.edit_config(target="candidate", test_option="set", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}">{fragment}</config>'))

    def commit(self) -> None:
        self.manager.commit()

    def discard(self) -> None:
        self.manager.discard_changes()

    def config(self, source: str) -> dict:
        reply = self.manager.get_config(source=source)
        return _json_tree(reply.data_ele)

    def state(self) -> dict:
        subtree = etree.Element(f"{{{NC}}}filter", type="subtree")
        for namespace, name in ((IF, "interfaces"), (DHCP, "dhcp"), (RBS, "rbs"),
                                (VRRP, "vrrp")):
            etree.SubElement(subtree, f"{{{namespace}}}{name}")
        return _json_tree(self.manager.get(filter=subtree).data_ele)

    def rpc(self, xml: str) -> None:
        self.manager.dispatch(etree.fromstring(xml))


def _json_tree(data: etree._Element) -> dict:
    from nefeature.datastore.schema import data_model

    return data_model().from_xml(data).raw_value()


def location(path: str | None) -> str:
    """An error-path in the words of the CLI ('remote-backup-service s1: tcp-port')."""
    if not path:
        return ""
    names = {"ip-pool": "ip pool", "service": "remote-backup-service",
             "profile": "remote-backup-profile", "interface": "interface",
             "vrrp-instance": "vrrp vrid"}
    parts = []
    for step in path.strip("/").split("/"):
        name = step.split(":")[-1].split("[")[0]
        keys = re.findall(r'="([^"]*)"', step)
        if name in names and keys:
            parts.append(f"{names[name]} {keys[0]}")
    leaf_name = path.rstrip("/").split("/")[-1].split(":")[-1].split("[")[0]
    where = ", ".join(parts)
    return f"{where}: {leaf_name}" if where and leaf_name not in names else where



def _error_line(error) -> str:
    """One rpc-error (ncclient's or ours; both have .message and .path) as a CLI line."""
    where = location(error.path)
    return f"Error: {error.message}" + (f" ({where})" if where else "")

@dataclass
class Shell:
    backend: NetconfBackend
    sysname: str = "HUAWEI"
    ask: Callable[[str, list[str]], str | None] | None = None  # interactive questions

    def __post_init__(self) -> None:
        self.views: list[tuple[str, str]] = [(USER, "")]
        self.dirty = False

    # --- prompt ---

    @property
    def view(self) -> tuple[str, str]:
        return self.views[-1]

    def prompt(self) -> str:
        view, key = self.view
        if view == USER:
            return f"<{self.sysname}>"
        mark = "*" if self.dirty else "~"
        suffix = PROMPT_SUFFIX.get(view, "").format(key)
        return f"[{mark}{self.sysname}{suffix}]"

    def refresh_dirty(self) -> None:
        try:
            self.dirty = self.backend.config("candidate") != self.backend.config("running")
        except Exception:
            pass

    # --- lines ---

    def execute(self, line: str) -> str:
        """Run one line; return what it prints (raises CliError, Exit)."""
        text = line.rstrip()
        if not text.strip() or text.lstrip().startswith("#"):
            return ""
        if text.endswith("?"):
            return self.help(text[:-1])
        tokens = tokenize(text)
        command, found, left_view = self._match(tokens, text)
        if left_view:
            self.views = self.views[:1] + [(SYSTEM, "")]
        output = []
        for effect in command.effect(self.view[1], {**found.values,
                                                    "keywords": found.keywords}):
            output.append(self._apply(effect))
        return "\n".join(o for o in output if o)

    def _match(self, tokens, text):
        view = self.view[0]
        result = self._match_in(view, tokens)
        if isinstance(result, tuple):
            return (*result, False)
        if view not in (USER, SYSTEM):  # VRP: system commands work from sub-views
            parent = self._match_in(SYSTEM, tokens)
            if isinstance(parent, tuple):
                return (*parent, True)
        failure = result
        column = tokens[failure.position].start if failure.position < len(tokens) \
            else len(text) + 1
        raise CliError(MESSAGES[failure.reason], column)

    @staticmethod
    def _match_in(view: str, tokens):
        successes, best = [], Failure(0, "unrecognized")
        for command in commands_for(view):
            result = match(command.pattern, tokens)
            if isinstance(result, Failure):
                rank = (result.position, result.reason != "unrecognized")
                if rank > (best.position, best.reason != "unrecognized"):
                    best = result
            else:
                successes.append((command, result[0][1]))
        if len(successes) > 1:
            exact = [(c, m) for c, m in successes if all(
                k in (t.text for t in tokens) for k in m.keywords)]
            successes = exact if len(exact) == 1 else successes
        if len(successes) == 1:
            return successes[0]
        if successes:
            return Failure(0, "ambiguous")
        return best

    # --- effects ---

    def _apply(self, effect) -> str:
        if isinstance(effect, Edit):
            self._server(lambda: self.backend.edit(effect.config))
            self.refresh_dirty()  # entering an existing view's entry changes nothing
            return ""
        if isinstance(effect, Enter):
            if effect.view == SYSTEM:
                self.views = [(USER, ""), (SYSTEM, "")]
                self.refresh_dirty()
            else:
                self.views = self.views[:2] + [(effect.view, effect.key)]
            return ""
        return getattr(self, "_action_" + effect.name.replace("-", "_"))(**effect.args)

    def _server(self, call) -> None:
        """Run a NETCONF call; its rpc-error becomes a CLI error in plain words."""
        from ncclient.operations import RPCError

        from nefeature.datastore.errors import NetconfError

        try:
            call()
        except (RPCError, NetconfError) as error:  # remote, or an in-process backend
            # several <rpc-error>s: ncclient lists them in .errors, NetconfError in .every()
            each = error.every() if isinstance(error, NetconfError) else \
                (getattr(error, "errors", None) or [error])
            raise CliError("\n".join(_error_line(single) for single in each)) from None

    def _action_quit(self) -> str:
        if len(self.views) == 1:
            raise Exit()
        self.views.pop()
        return self._uncommitted_note() if len(self.views) == 1 else ""

    def _action_return(self) -> str:
        self.views = self.views[:1]
        return self._uncommitted_note()

    def _uncommitted_note(self) -> str:
        if self.dirty:
            return "Warning: There are uncommitted configurations; they stay in the candidate."
        return ""

    def _action_commit(self) -> str:
        self._server(self.backend.commit)
        self.dirty = False
        return ""

    def _action_clear_candidate(self) -> str:
        self._server(self.backend.discard)
        self.dirty = False
        return ""

    def _action_sysname(self, name: str) -> str:
        self.sysname = name
        return "Info: sysname changes this shell's prompt only; it is not device configuration."

    def _action_layer2(self) -> str:
        return "Info: Layer 2 (VLANs, switch ports) is the Linux bridge's; nothing to configure."

    def _action_backup_enable(self, profile: str | None) -> str:
        """The shorthand for ``service-type dhcp-server``: on which profile?"""
        chosen = profile
        if chosen is None:
            candidate = self.backend.config("candidate")
            names = [p["name"] for p in candidate.get("nefeature-rbs:rbs", {})
                     .get("profiles", {}).get("profile", [])]
            if not names:
                raise CliError("Error: No remote-backup-profile is configured: create one "
                               "with 'remote-backup-profile <name>' first.")
            if len(names) == 1:
                chosen = names[0]
            else:
                chosen = self.ask("Which remote-backup-profile?", names) if self.ask else None
                if chosen not in names:
                    raise CliError("Error: Several remote-backup-profiles exist ("
                                   + ", ".join(names) + "): enter the profile's view and "
                                   "use 'service-type dhcp-server'.")
        self._server(lambda: self.backend.edit(profile_fragment(
            chosen, leaf("service-type", "dhcp-server"))))
        self.dirty = True
        return f"Info: service-type dhcp-server is set on remote-backup-profile {chosen}."

    def _action_batch_backup(self, service: str) -> str:
        self._server(lambda: self.backend.rpc(
            f'<batch-backup-now xmlns="{RBS}"><rbs-name>{service}</rbs-name>'
            "<service-type>dhcp-server</service-type></batch-backup-now>"))
        return "Info: The batch backup has started."

    def _action_reset_statistics(self) -> str:
        self._server(lambda: self.backend.rpc(f'<reset-statistics xmlns="{DHCP}"/>'))
        return ""

    def _action_display_configuration(self, source: str) -> str:
        return render.render_configuration(self.backend.config(source))

    def _action_display_this(self) -> str:
        view, key = self.view
        return render.render_view(self.backend.config("running"), view, key)

    def _action_display_candidate(self, changes: bool) -> str:
        candidate = render.render_configuration(self.backend.config("candidate")).splitlines()
        if not changes:
            running = set(render.render_configuration(self.backend.config("running"))
                          .splitlines())
            return "\n".join(line for line in candidate if line not in running
                             or line in ("#", "return"))
        import difflib

        running = render.render_configuration(self.backend.config("running")).splitlines()
        return "\n".join(line for line in difflib.unified_diff(running, candidate, "running",
                                                               "candidate", lineterm="", n=1))

    def _action_display_pool(self, name: str | None, used: bool) -> str:
        return render.display_ip_pool(self.backend.state(), name, used)

    def _action_display_dhcp_statistics(self) -> str:
        return render.display_dhcp_statistics(self.backend.state())

    def _action_display_vrrp(self, mode: str) -> str:
        return render.display_vrrp(self.backend.state(), mode)

    def _action_display_rbs(self, name: str | None) -> str:
        return render.display_rbs(self.backend.state(), name)

    def _action_display_rbp(self, name: str | None) -> str:
        return render.display_rbp(self.backend.state(), name)

    # --- ? and Tab ---

    def candidates(self, text: str) -> list[tuple[str, str]]:
        """(word or parameter, description) that may come next after ``text``."""
        tokens = tokenize(text)
        partial = "" if not text or text[-1].isspace() else (tokens.pop().text if tokens else "")
        seen: dict[str, str] = {}
        views = [self.view[0]] + ([SYSTEM] if self.view[0] not in (USER, SYSTEM) else [])
        for view in views:
            for command in commands_for(view):
                for item in next_items(command.pattern, tokens):
                    if isinstance(item, Keyword):
                        if item.word.lower().startswith(partial.lower()):
                            head = not tokens
                            seen.setdefault(item.word, command.help if head else "")
                    elif not partial:
                        seen.setdefault(f"<{item.name}>", describe(item.kind))
        complete = any(not isinstance(match(c.pattern, tokens), Failure)
                       for c in commands_for(self.view[0]))
        if not partial and tokens and complete:
            seen.setdefault("<cr>", "")
        return sorted(seen.items())

    def help(self, text: str) -> str:
        options = self.candidates(text)
        if not options:
            tokens = tokenize(text)
            column = tokens[-1].start if tokens else 0
            raise CliError(MESSAGES["unrecognized"], column)
        width = max(len(word) for word, _ in options) + 2
        return "\n".join(f"  {word:<{width}}{description}" for word, description in options)
